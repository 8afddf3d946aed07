"""Write one round's review files: the same instances in every format an annotator might use.

Per image a Fiji ROI set, a QuPath GeoJSON, a label TIFF and an overlay PNG; one COCO document
for all images. Every file is written atomically; the caller puts them in a folder that appears
complete or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from nuclei_pa.annotate.layout import COCO_FILE, ImageRef, instances_document
from nuclei_pa.annotate.overlay import draw_overlay
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.geojson import write_geojson
from nuclei_pa.io.imagej import write_imagej_rois
from nuclei_pa.io.images import read_image
from nuclei_pa.io.label_image import write_label_tiff

__all__ = ["write_review_files"]


def _split(ann: Annotation) -> tuple[np.ndarray, np.ndarray]:
    """(human labels, proposed labels) of one annotation, for the overlay's two colours."""
    proposed = [lab for lab in ann.ids if ann.source_of(lab) == "proposed"]
    is_prop = np.isin(ann.labels, proposed)
    return np.where(is_prop, 0, ann.labels), np.where(is_prop, ann.labels, 0)


def write_review_files(
    folder: Path,
    refs: list[ImageRef],
    anns: dict[str, Annotation],
    on_image: Callable[[], None] | None = None,
    **info: object,
) -> None:
    """``rois/``, ``geojson/``, ``labels/``, ``overlays/`` and ``coco.json`` in ``folder``.

    ``info`` goes into the COCO document's ``info`` (the round, the checkpoint); ``on_image`` is
    called after each image (a progress bar).
    """
    for ref in refs:
        ann = anns[ref.stem]
        write_imagej_rois(folder / "rois" / f"{ref.stem}.zip", ann)
        write_geojson(folder / "geojson" / f"{ref.stem}.geojson", ann)
        write_label_tiff(folder / "labels" / f"{ref.stem}.tif", ann)
        human, proposed = _split(ann)
        draw_overlay(read_image(ref.path), human, proposed, folder / "overlays" / f"{ref.stem}.png")
        if on_image is not None:
            on_image()
    write_json(folder / COCO_FILE, instances_document(refs, anns, **info))
