"""Annotation files of any supported format: which format a file is, and one read and write.

Everything converges on :class:`~nuclei_pa.io.annotation.Annotation`. Readers take COCO JSON
(:mod:`~nuclei_pa.io.coco`), instance label images (:mod:`~nuclei_pa.io.label_image`),
ImageJ/Fiji ROI sets (:mod:`~nuclei_pa.io.imagej`), QuPath GeoJSON (:mod:`~nuclei_pa.io.geojson`)
and Aperio ImageScope XML (:mod:`~nuclei_pa.io.imagescope`); writers emit Fiji ROI sets of
spline-fit polygons and QuPath GeoJSON (both editable curves, paper Fig. 7), COCO RLE JSON and
label TIFFs.

Sparse labels as users write them (issue 24) ride on the same object: ``ignore`` (pixels that
are neither nucleus nor background) and ``region`` (where every nucleus is outlined), read from
-1 or a chosen value in label images, QuPath classes and ImageJ ROI groups or names
(:mod:`nuclei_pa.io.conventions`), and written back wherever the format has a place for
them: GeoJSON and ROI sets keep both, a label TIFF keeps the ignored pixels as -1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.coco import read_coco_annotation, write_coco
from nuclei_pa.io.conventions import Conventions
from nuclei_pa.io.geojson import looks_geojson, read_geojson, write_geojson
from nuclei_pa.io.imagej import read_imagej, write_imagej_rois
from nuclei_pa.io.images import read_labels
from nuclei_pa.io.imagescope import read_imagescope
from nuclei_pa.io.jsonfile import read_json
from nuclei_pa.io.label_image import read_label_image, write_label_tiff

__all__ = [
    "ANNOTATION_SUFFIXES",
    "VECTOR_SUFFIXES",
    "detect_format",
    "read_annotation",
    "read_annotations",
    "read_region_file",
    "write_annotations",
]

# What detect_format reads: vector formats first (never mistaken for an image), then label images.
VECTOR_SUFFIXES = (".zip", ".roi", ".geojson", ".json", ".xml")
ANNOTATION_SUFFIXES = (*VECTOR_SUFFIXES, ".tif", ".tiff", ".png")


def detect_format(path: str | Path) -> str:
    """'coco', 'labels', 'imagej', 'geojson' or 'imagescope', from the suffix and, for JSON, the
    content."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff", ".png"):
        return "labels"
    if suffix in (".zip", ".roi"):
        return "imagej"
    if suffix == ".geojson":
        return "geojson"
    if suffix == ".xml":
        return "imagescope"
    if suffix == ".json":
        data = read_json(path)
        if isinstance(data, dict) and "images" in data:
            return "coco"
        if looks_geojson(data):
            return "geojson"
        if isinstance(data, list) and data and isinstance(data[0], dict) and "image_id" in data[0]:
            raise InputError(
                path, "a COCO results list lacks image sizes; pass the full COCO instances file"
            )
        raise InputError(path, "JSON is neither COCO instances nor GeoJSON features")
    if not path.is_file():
        raise InputError(path, "file not found")
    raise InputError(
        path,
        f"unknown annotation format {suffix or '(no suffix)'!r}; expected COCO .json, "
        "label .tif/.png, ImageJ .zip/.roi, QuPath .geojson or ImageScope .xml",
    )


def read_annotation(
    path: str | Path,
    image_shape: tuple[int, ...],
    image_name: str | None = None,
    invalid_regions: str = "error",
    conventions: Conventions | None = None,
) -> Annotation:
    """Instances of one image from any supported file, with score/source where stored.

    ``image_shape`` is the image's (H, W[, C]); shapes must fit inside it (within
    :data:`~nuclei_pa.io.shapes.BOUNDS_TOLERANCE` px). ``image_name`` picks the image of a
    multi-image COCO file by file name stem. Vector instances get ids 1..n in file order.
    ``invalid_regions`` ('error' or 'skip') says what an ImageScope region that cannot be an
    outline does (see :mod:`nuclei_pa.io.imagescope`). ``conventions`` says how ignored areas
    and fully annotated regions are marked (default: -1, ``Ignore*``, ``Region*``).
    """
    path = Path(path)
    shape = (int(image_shape[0]), int(image_shape[1]))
    conv = conventions or Conventions()
    fmt = detect_format(path)
    if fmt == "labels":
        return read_label_image(path, shape, conv)
    if fmt == "coco":
        return read_coco_annotation(path, shape, image_name)
    if fmt == "imagej":
        return read_imagej(path, shape, conv)
    if fmt == "imagescope":
        return Annotation(read_imagescope(path, shape, invalid_regions))
    return read_geojson(path, shape, conv)


def read_region_file(path: str | Path, image_shape: tuple[int, ...]) -> np.ndarray:
    """A second file per image marking its fully annotated regions: a mask image (non-zero
    inside) or any vector format (every shape in it a region); overlapping regions merge."""
    path = Path(path)
    shape = (int(image_shape[0]), int(image_shape[1]))
    if detect_format(path) == "labels":
        return read_labels(path, shape) > 0
    ann = read_annotation(path, shape)
    return (ann.labels > 0) | (ann.region if ann.region is not None else False)


def read_annotations(
    path: str | Path, image_shape: tuple[int, ...], image_name: str | None = None
) -> np.ndarray:
    """Instance label image (int32, 0 = background) of one image from any supported file."""
    return read_annotation(path, image_shape, image_name).labels


def write_annotations(
    path: str | Path, ann: Annotation, image_name: str | None = None, **kwargs: Any
) -> None:
    """Write by suffix: .zip → Fiji ROI set, .geojson → QuPath, .json → COCO, .tif → labels."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        write_imagej_rois(path, ann, **kwargs)
    elif suffix == ".geojson":
        write_geojson(path, ann, **kwargs)
    elif suffix == ".json":
        write_coco(path, ann, image_name)
    elif suffix in (".tif", ".tiff"):
        write_label_tiff(path, ann)
    else:
        raise InputError(path, f"cannot write annotations as {suffix or '(no suffix)'!r}")
