"""Read and write nucleus annotations in the formats annotators actually use.

Everything converges on one in-memory form, :class:`Annotation`: an int32 instance label image
(0 = background) plus optional per-instance ``score`` and ``source`` ("human" annotator or
"proposed" by the model). Readers take COCO JSON, instance label images, ImageJ/Fiji ROI sets
(``.zip``/``.roi``), QuPath GeoJSON and Aperio ImageScope XML; writers emit Fiji ROI sets of
spline-fit polygons and QuPath GeoJSON (both editable curves, paper Fig. 7), COCO RLE JSON and
label TIFFs.

Sparse labels as users write them (issue 24) ride on the same object: ``ignore`` (pixels that
are neither nucleus nor background) and ``region`` (where every nucleus is outlined), read from
-1 or a chosen value in label images, QuPath classes and ImageJ ROI groups or names
(:mod:`nuclei_pa.annotate.conventions`), and written back wherever the format has a place for
them: GeoJSON and ROI sets keep both, a label TIFF keeps the ignored pixels as -1.

Geometry convention (shared with :mod:`nuclei_pa.annotate.splines`): vector coordinates are
(x, y) pixel corners, x right, y down; a pixel belongs to a shape when its centre lies inside,
as in ImageJ and QuPath. Where vector shapes overlap, the smaller one keeps the shared pixels
(the rule :func:`nuclei_pa.io.coco.annotations_to_labels` applies without scores), so a small
nucleus is never swallowed by a large neighbour.
"""

from __future__ import annotations

import re
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from roifile import ROI_OPTIONS, ROI_SUBTYPE, ROI_TYPE, ImagejRoi

from nuclei_pa.annotate.conventions import IGNORE, REGION, Conventions, mask_polygons
from nuclei_pa.annotate.splines import instance_splines, rasterise, spline_polygon
from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_path, write_json
from nuclei_pa.io.coco import coco_document, labels_to_annotations, load_coco
from nuclei_pa.io.images import load_raw, read_labels, write_tiff
from nuclei_pa.io.imagescope import read_imagescope
from nuclei_pa.io.jsonfile import read_json

__all__ = [
    "ANNOTATION_SUFFIXES",
    "SOURCES",
    "VECTOR_SUFFIXES",
    "Annotation",
    "detect_format",
    "read_annotation",
    "read_annotations",
    "write_annotations",
    "write_coco",
    "write_geojson",
    "write_imagej_rois",
    "write_label_tiff",
]

SOURCES = ("human", "proposed")
# What detect_format reads: vector formats first (never mistaken for an image), then label images.
VECTOR_SUFFIXES = (".zip", ".roi", ".geojson", ".json", ".xml")
ANNOTATION_SUFFIXES = (*VECTOR_SUFFIXES, ".tif", ".tiff", ".png")
BOUNDS_TOLERANCE = 1.0  # px a vertex may lie outside the image (spline overshoot, edge clicks)
CLASS_NAME = "Nucleus"
# Display colours (RGB): blue-ish for human, orange for proposals — distinct to colour-blind eyes.
SOURCE_RGB = {"human": (0, 170, 255), "proposed": (255, 160, 0)}
_NAME_RE = re.compile(r"^(human|proposed)-\d+", re.IGNORECASE)
_UUID_NS = uuid.UUID("8f0c6a0e-4a36-4b55-9b3c-6b7f0f7a2d11")  # deterministic feature ids
_AREA_ROI_TYPES = (
    ROI_TYPE.POLYGON,
    ROI_TYPE.FREEHAND,
    ROI_TYPE.TRACED,
    ROI_TYPE.RECT,
    ROI_TYPE.OVAL,
)


@dataclass
class Annotation:
    """Instances of one image: int32 labels, plus score/source for the ids that have them.

    Ids without a ``source`` entry count as human (a plain label image is an annotator's work);
    ``scores`` usually exist only for proposals.
    """

    labels: np.ndarray
    scores: dict[int, float] = field(default_factory=dict)
    source: dict[int, str] = field(default_factory=dict)
    # QuPath's classification name and objectType of the ids read from GeoJSON, written back
    # unchanged (others: "Nucleus", "annotation"), so a round trip keeps what QuPath users set
    classes: dict[int, str] = field(default_factory=dict)
    object_types: dict[int, str] = field(default_factory=dict)
    # bool [H, W] or None: areas marked unknown, and fully annotated regions (issue 24)
    ignore: np.ndarray | None = None
    region: np.ndarray | None = None

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 2:
            raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
        if labels.size and labels.min() < 0:
            raise ValueError("labels must be non-negative")
        self.labels = labels.astype(np.int32, copy=False)
        for name in ("ignore", "region"):
            mask = getattr(self, name)
            if mask is not None:
                mask = np.asarray(mask, dtype=bool)
                if mask.shape != labels.shape:
                    raise ValueError(f"{name} mask {mask.shape} vs labels {labels.shape}")
                setattr(self, name, mask)
        bad = {s for s in self.source.values() if s not in SOURCES}
        if bad:
            raise ValueError(f"source must be one of {SOURCES}, got {sorted(bad)}")

    @classmethod
    def from_labels(
        cls, labels: np.ndarray, source: str = "human", scores: dict[int, float] | None = None
    ) -> Annotation:
        """Every instance of ``labels`` tagged with the same source."""
        labels = np.asarray(labels)
        ids = np.unique(labels)
        return cls(
            labels,
            scores={int(k): float(v) for k, v in (scores or {}).items()},
            source={int(lab): source for lab in ids[ids > 0]},
        )

    @property
    def ids(self) -> list[int]:
        """Positive label ids present, ascending."""
        ids = np.unique(self.labels)
        return [int(i) for i in ids[ids > 0]]

    def source_of(self, lab: int) -> str:
        return self.source.get(int(lab), "human")


# ---------------------------------------------------------------------------------------------
# Format detection and the public readers


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
        if _looks_geojson(data):
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
    ``BOUNDS_TOLERANCE`` px). ``image_name`` picks the image of a multi-image COCO file by file
    name stem. Vector instances get ids 1..n in file order. ``invalid_regions`` ('error' or
    'skip') says what an ImageScope region that cannot be an outline does (see
    :mod:`nuclei_pa.io.imagescope`). ``conventions`` says how ignored areas and fully annotated
    regions are marked (default: -1, ``Ignore*``, ``Region*``).
    """
    path = Path(path)
    shape = (int(image_shape[0]), int(image_shape[1]))
    conv = conventions or Conventions()
    fmt = detect_format(path)
    if fmt == "labels":
        return _read_label_image(path, shape, conv)
    if fmt == "coco":
        return _read_coco(path, shape, image_name)
    if fmt == "imagej":
        return _read_imagej(path, shape, conv)
    if fmt == "imagescope":
        return Annotation(read_imagescope(path, shape, invalid_regions))
    return _read_geojson(path, shape, conv)


def read_region_file(path: str | Path, image_shape: tuple[int, ...]) -> np.ndarray:
    """A second file per image marking its fully annotated regions: a mask image (non-zero
    inside) or any vector format (every shape in it a region); overlapping regions merge."""
    path = Path(path)
    shape = (int(image_shape[0]), int(image_shape[1]))
    if detect_format(path) == "labels":
        return read_labels(path, shape) > 0
    ann = read_annotation(path, shape)
    return (ann.labels > 0) | (ann.region if ann.region is not None else False)


def _read_label_image(path: Path, shape: tuple[int, int], conv: Conventions) -> Annotation:
    """A label image whose -1 (and ``conv.ignore_value``) pixels are unknown, not nuclei."""
    raw = load_raw(path)
    marked = np.zeros(raw.shape, dtype=bool)
    if raw.ndim == 2 and np.issubdtype(raw.dtype, np.signedinteger):
        marked |= raw == -1
    if conv.ignore_value is not None and raw.ndim == 2:
        value = conv.ignore_value
        ids = np.unique(raw[(raw > 0) & (raw != value)]) if raw.size else raw[:0]
        if (raw == value).any() and ids.size and ids.min() < value < ids.max():
            raise InputError(
                path,
                f"ignore value {value} is also a nucleus id here (ids run {int(ids.min())}.."
                f"{int(ids.max())}); choose a value outside them",
            )
        marked |= raw == value
    if not marked.any():
        return Annotation(read_labels(path, shape))
    if raw.shape != shape:
        raise InputError(path, f"label image shape {raw.shape} differs from its image's {shape}")
    if (raw[~marked] < 0).any():
        raise InputError(path, "label image has negative values other than -1 (ignore)")
    labels = np.where(marked, 0, raw)
    if labels.max() > np.iinfo(np.int32).max:
        raise InputError(path, "label ids exceed the int32 range")
    return Annotation(labels.astype(np.int32), ignore=marked)


def read_annotations(
    path: str | Path, image_shape: tuple[int, ...], image_name: str | None = None
) -> np.ndarray:
    """Instance label image (int32, 0 = background) of one image from any supported file."""
    return read_annotation(path, image_shape, image_name).labels


# ---------------------------------------------------------------------------------------------
# Shared helpers: rasterising shapes into a label image


@dataclass
class _Shape:
    """One instance's pixels, kept as a mask in its bounding window to bound memory."""

    r0: int
    c0: int
    mask: np.ndarray
    name: str
    score: float | None = None
    source: str | None = None
    cls: str | None = None
    object_type: str | None = None
    kind: str | None = None  # IGNORE or REGION for a marked area, None for a nucleus


def _check_bounds(path: Path, what: str, pts: np.ndarray, shape: tuple[int, int]) -> None:
    h, w = shape
    tol = BOUNDS_TOLERANCE
    if not np.all(np.isfinite(pts)):
        raise InputError(path, f"{what}: non-finite coordinates")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if lo[0] < -tol or lo[1] < -tol or hi[0] > w + tol or hi[1] > h + tol:
        bad = pts[
            (pts[:, 0] < -tol) | (pts[:, 1] < -tol) | (pts[:, 0] > w + tol) | (pts[:, 1] > h + tol)
        ][0]
        raise InputError(
            path,
            f"{what} reaches (x={bad[0]:.1f}, y={bad[1]:.1f}), outside the {w}×{h} image — "
            "are these the annotations of another image?",
        )


def _rasterise_rings(
    rings: list[np.ndarray], shape: tuple[int, int]
) -> tuple[int, int, np.ndarray]:
    """Even-odd fill of rings (outer boundaries and holes) inside their clipped bounding box."""
    allpts = np.vstack(rings)
    c0 = int(np.clip(np.floor(allpts[:, 0].min()) - 1, 0, shape[1]))
    r0 = int(np.clip(np.floor(allpts[:, 1].min()) - 1, 0, shape[0]))
    c1 = int(np.clip(np.ceil(allpts[:, 0].max()) + 1, 0, shape[1]))
    r1 = int(np.clip(np.ceil(allpts[:, 1].max()) + 1, 0, shape[0]))
    mask = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    for ring in rings:
        mask ^= rasterise(ring - [c0, r0], mask.shape)
    return r0, c0, mask


def _paint(path: Path, shapes: list[_Shape | None], shape: tuple[int, int]) -> Annotation:
    """Label image from shapes (id = position + 1); smaller shapes win shared pixels."""
    labels = np.zeros(shape, dtype=np.int32)
    present = [(i, s) for i, s in enumerate(shapes) if s is not None]
    areas = {i: int(s.mask.sum()) for i, s in present}
    for i, s in sorted(present, key=lambda item: -areas[item[0]]):
        h, w = s.mask.shape
        labels[s.r0 : s.r0 + h, s.c0 : s.c0 + w][s.mask] = i + 1
    visible = set(np.unique(labels).tolist())
    lost = [s.name for i, s in present if i + 1 not in visible]
    if lost:
        warnings.warn(
            f"{path}: {len(lost)} shape(s) cover no pixel centre or are hidden by smaller "
            f"neighbours and were dropped: {', '.join(lost[:5])}{' …' if len(lost) > 5 else ''}",
            stacklevel=3,
        )
    ann = Annotation(labels)
    for i, s in present:
        if i + 1 not in visible:
            continue
        if s.score is not None:
            ann.scores[i + 1] = s.score
        if s.source is not None:
            ann.source[i + 1] = s.source
        if s.cls is not None:
            ann.classes[i + 1] = s.cls
        if s.object_type is not None:
            ann.object_types[i + 1] = s.object_type
    return ann


def _paint_marked(path: Path, shapes: list[_Shape], shape: tuple[int, int]) -> Annotation:
    """Nuclei painted as :func:`_paint` does; ignore and region shapes OR-ed into their masks
    (overlapping regions merge)."""
    ann = _paint(path, [s for s in shapes if s.kind is None], shape)
    for kind in (IGNORE, REGION):
        marked = [s for s in shapes if s.kind == kind]
        if not marked:
            continue
        mask = np.zeros(shape, dtype=bool)
        for s in marked:
            h, w = s.mask.shape
            mask[s.r0 : s.r0 + h, s.c0 : s.c0 + w] |= s.mask
        setattr(ann, kind, mask)
    return ann


def _parse_source(value: Any, name: str) -> str | None:
    if isinstance(value, str) and value.lower() in SOURCES:
        return value.lower()
    m = _NAME_RE.match(name or "")
    return m.group(1).lower() if m else None


def _parse_score(path: Path, what: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise InputError(path, f"{what}: score {value!r} is not a number") from None
    if not np.isfinite(score):
        raise InputError(path, f"{what}: score {value!r} is not finite")
    return score


def _warn_skipped(path: Path, skipped: list[str]) -> None:
    if skipped:
        warnings.warn(
            f"{path}: skipped {len(skipped)} non-area object(s) (points, lines, text): "
            f"{', '.join(skipped[:5])}{' …' if len(skipped) > 5 else ''}",
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------------
# COCO


def _read_coco(path: Path, shape: tuple[int, int], image_name: str | None) -> Annotation:
    index = load_coco(path)
    images = list(index.images.values())
    if image_name is not None:
        stem = Path(image_name).stem
        matches = [img for img in images if Path(img["file_name"]).stem == stem]
        if not matches:
            raise InputError(path, f"no image named {stem!r} (by file name stem)")
        if len(matches) > 1:
            raise InputError(path, f"several images have the file name stem {stem!r}")
        img = matches[0]
    elif len(images) == 1:
        img = images[0]
    else:
        raise InputError(path, f"{len(images)} images listed; say which one (image_name)")
    if (img["height"], img["width"]) != shape:
        raise InputError(
            path,
            f"image {img['file_name']!r} is {img['height']}×{img['width']} (H×W) here but the "
            f"image is {shape[0]}×{shape[1]}",
        )
    anns = index.anns_by_image.get(img["id"], [])
    ann = Annotation(index.labels(img["id"]))
    visible = set(ann.ids)
    for k, a in enumerate(anns):  # annotations_to_labels paints the k-th as label k + 1
        if k + 1 not in visible:
            continue
        score = _parse_score(path, f"annotation {a.get('id')}", a.get("score"))
        if score is not None:
            ann.scores[k + 1] = score
        src = _parse_source(a.get("source"), "")
        if src is not None:
            ann.source[k + 1] = src
    return ann


def write_coco(path: str | Path, ann: Annotation, image_name: str | None = None) -> None:
    """COCO instances JSON of one image, masks as exact RLE, with ``score``/``source`` per
    instance (extra keys other COCO tools ignore). ``image_name`` defaults to ``<stem>.tif``."""
    path = Path(path)
    h, w = ann.labels.shape
    image = {"id": 1, "file_name": image_name or f"{path.stem}.tif", "height": h, "width": w}
    anns = labels_to_annotations(ann.labels, image_id=1)
    for a, lab in zip(anns, ann.ids, strict=True):
        a["source"] = ann.source_of(lab)
        if lab in ann.scores:
            a["score"] = float(ann.scores[lab])
    write_json(path, coco_document([image], anns, source="nuclei-pa annotate"))


def write_label_tiff(path: str | Path, ann: Annotation) -> None:
    """The int32 label image as a compressed TIFF (ids kept exactly); ignored pixels that are
    no nucleus as -1, StarDist's convention. A label image has no place for regions."""
    labels = ann.labels.astype(np.int32, copy=True)
    if ann.ignore is not None:
        labels[ann.ignore & (labels == 0)] = -1
    write_tiff(path, labels)


# ---------------------------------------------------------------------------------------------
# ImageJ / Fiji ROI sets


def _rect_xywh(roi: ImagejRoi) -> tuple[float, float, float, float]:
    if roi.subpixelrect:
        return roi.xd, roi.yd, roi.widthd, roi.heightd
    return roi.left, roi.top, roi.right - roi.left, roi.bottom - roi.top


def _roi_rings(roi: ImagejRoi) -> list[np.ndarray] | None:
    """Closed (x, y) corner rings of an area ROI, or None for non-area ROIs (points, lines)."""
    if roi.subtype in (ROI_SUBTYPE.TEXT, ROI_SUBTYPE.ARROW, ROI_SUBTYPE.IMAGE):
        return None
    if roi.composite and roi.multi_coordinates is not None:
        return [np.asarray(r, dtype=float) for r in roi.path2coords(roi.multi_coordinates)]
    if roi.roitype not in _AREA_ROI_TYPES:
        return None
    if roi.roitype in (ROI_TYPE.RECT, ROI_TYPE.OVAL):
        x, y, w, h = (float(v) for v in _rect_xywh(roi))
        if roi.roitype == ROI_TYPE.RECT:  # rounded corners are ignored: at most a few pixels
            return [np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])]
        n = max(32, int(np.ceil(np.pi * (w + h))))  # ≈ one vertex per pixel of perimeter
        a = 2 * np.pi * np.arange(n) / n
        return [np.column_stack([x + w / 2 * (1 + np.cos(a)), y + h / 2 * (1 + np.sin(a))])]
    pts = np.asarray(roi.coordinates(), dtype=float)
    if roi.drawoffset:  # coordinates refer to pixel centres
        pts = pts + 0.5
    return [pts]


def _roi_shape(
    path: Path, roi: ImagejRoi, label: str, shape: tuple[int, int], conv: Conventions
) -> _Shape | None:
    # A ROI tied to a later slice, z-plane or frame outlines something in an image we do not
    # have (ours are 2-D); its channel does not matter, the outline is the same in every one.
    for what, value in (
        ("slice", roi.position),
        ("z-plane", roi.z_position),
        ("frame", roi.t_position),
    ):
        if value > 1:
            raise InputError(
                path,
                f"ROI {label!r} lies on {what} {value} of a stack, but the image is 2-D: save "
                "the ROIs of that one plane with the 2-D image they outline",
            )
    rings = _roi_rings(roi)
    if rings is None:
        return None
    rings = [r for r in rings if len(r) >= 3]
    if not rings:
        raise InputError(path, f"ROI {label!r} has fewer than 3 vertices")
    for ring in rings:
        _check_bounds(path, f"ROI {label!r}", ring, shape)
    if roi.options & ROI_OPTIONS.SPLINE_FIT and not roi.composite:
        # ImageJ stores the control points of spline-fit polygons; draw the curve through them.
        rings = [spline_polygon(rings[0])]
    r0, c0, mask = _rasterise_rings(rings, shape)
    props = roi.properties if roi.props else {}
    return _Shape(
        r0,
        c0,
        mask,
        label,
        score=_parse_score(path, f"ROI {label!r}", props.get("score")),
        source=_parse_source(props.get("source"), roi.name or label),
        kind=conv.kind_of_roi(roi.name or label, int(roi.group)),
    )


def _read_imagej(path: Path, shape: tuple[int, int], conv: Conventions) -> Annotation:
    if not path.is_file():
        raise InputError(path, "file not found")
    entries: list[tuple[str, bytes]] = []
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [
                    n
                    for n in zf.namelist()
                    if n.lower().endswith(".roi") and not n.startswith("__MACOSX/")
                ]
                if not names and zf.namelist():
                    raise InputError(path, "zip holds no .roi entries; is it an ImageJ ROI set?")
                entries = [(n, zf.read(n)) for n in names]
        except zipfile.BadZipFile as exc:
            raise InputError(path, f"not a readable zip file ({exc})") from exc
    else:
        entries = [(path.name, path.read_bytes())]
    shapes: list[_Shape] = []
    skipped: list[str] = []
    for entry, data in entries:
        try:
            roi = ImagejRoi.frombytes(data)
        except Exception as exc:  # roifile raises ValueError, struct.error, ... on bad bytes
            raise InputError(
                path, f"unreadable ROI {entry!r} ({type(exc).__name__}: {exc})"
            ) from exc
        label = roi.name or Path(entry).stem
        s = _roi_shape(path, roi, label, shape, conv)
        if s is None:
            skipped.append(f"{label} ({roi.roitype.name})")
            continue
        shapes.append(s)
    _warn_skipped(path, skipped)
    return _paint_marked(path, shapes, shape)


def _argb(rgb: tuple[int, int, int]) -> bytes:
    return bytes((255, *rgb))


def _marked_roi(rings: list[np.ndarray], name: str, group: int) -> ImagejRoi:
    """One ignored area or region as a ROI: a polygon, or a composite (shape) ROI when it has
    holes, its rings filled even-odd as ImageJ fills a shape ROI."""
    if len(rings) == 1:
        roi = ImagejRoi.frompoints(rings[0][:-1].astype(np.float32), name=name)
        roi.roitype = ROI_TYPE.POLYGON
        roi.options = ROI_OPTIONS.SUB_PIXEL_RESOLUTION
    else:
        path: list[float] = []
        for ring in rings:
            path += [0.0, *ring[0]]
            for x, y in ring[1:-1]:
                path += [1.0, x, y]
            path.append(4.0)
        allpts = np.vstack(rings)
        roi = ImagejRoi(name=name)
        roi.roitype = ROI_TYPE.RECT
        roi.multi_coordinates = np.asarray(path, dtype=np.float32)
        roi.shape_roi_size = len(path)
        roi.left, roi.top = (int(np.floor(v)) for v in allpts.min(axis=0))
        roi.right, roi.bottom = (int(np.ceil(v)) for v in allpts.max(axis=0))
    roi.group = group
    return roi


def _marked_parts(ann: Annotation) -> list[tuple[str, list[np.ndarray]]]:
    """(kind, rings of one polygon) of every ignored area and region, in that order."""
    out = []
    for kind in (IGNORE, REGION):
        mask = getattr(ann, kind)
        if mask is not None and mask.any():
            out += [(kind, poly) for poly in mask_polygons(mask)]
    return out


def write_imagej_rois(
    path: str | Path, ann: Annotation, conventions: Conventions | None = None, **fit_kwargs: Any
) -> None:
    """Fiji ROI set (.zip): one spline-fit polygon per nucleus, editable by its control points.

    ROIs are named ``<source>-<id:04d>`` (e.g. ``proposed-0042``), stroked in the source's
    colour, and carry ``source``/``score`` as ROI properties so a round trip keeps them.
    Ignored areas and regions follow as exact pixel outlines named ``Ignore-0001`` …
    ``Region-0001`` … (the configured prefixes), in the configured ROI groups.
    """
    conv = conventions or Conventions()
    rois = []
    for lab, pts in instance_splines(ann.labels, **fit_kwargs).items():
        src = ann.source_of(lab)
        roi = ImagejRoi.frompoints(pts.astype(np.float32), name=f"{src}-{lab:04d}")
        roi.roitype = ROI_TYPE.POLYGON
        roi.options = ROI_OPTIONS.SUB_PIXEL_RESOLUTION | ROI_OPTIONS.SPLINE_FIT
        roi.stroke_color = _argb(SOURCE_RGB[src])
        props: dict[str, Any] = {"source": src}
        if lab in ann.scores:
            props["score"] = repr(float(ann.scores[lab]))  # exact round trip
        roi.properties = props
        rois.append(roi)
    counts = {IGNORE: 0, REGION: 0}
    for kind, rings in _marked_parts(ann):
        counts[kind] += 1
        prefix = conv.ignore_class if kind == IGNORE else conv.region_class
        rois.append(_marked_roi(rings, f"{prefix}-{counts[kind]:04d}", conv.group(kind)))
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for roi in rois:
            zf.writestr(f"{roi.name}.roi", roi.tobytes())


# ---------------------------------------------------------------------------------------------
# QuPath GeoJSON


def _looks_geojson(data: Any) -> bool:
    if isinstance(data, dict):
        return data.get("type") in (
            "FeatureCollection",
            "Feature",
            "Polygon",
            "MultiPolygon",
            "GeometryCollection",
        )
    return isinstance(data, list) and all(
        isinstance(f, dict) and f.get("type") == "Feature" for f in data
    )


def _features(path: Path, data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return data
    if data.get("type") == "FeatureCollection":
        feats = data.get("features")
        if not isinstance(feats, list):
            raise InputError(path, "FeatureCollection without a 'features' list")
        return feats
    if data.get("type") == "Feature":
        return [data]
    return [{"type": "Feature", "geometry": data, "properties": {}}]  # a bare geometry


def _polygons(path: Path, what: str, geom: Any) -> list[list[Any]] | None:
    """Polygon coordinate lists of a geometry; None when it has no area (points, lines)."""
    if not isinstance(geom, dict):
        return None
    kind = geom.get("type")
    if kind == "Polygon":
        return [geom.get("coordinates")]
    if kind == "MultiPolygon":
        return list(geom.get("coordinates") or [])
    if kind == "GeometryCollection":
        polys = [_polygons(path, what, g) for g in geom.get("geometries") or []]
        found = [p for group in polys if group for p in group]
        return found or None
    if kind in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        return None
    raise InputError(path, f"{what}: unknown geometry type {kind!r}")


def _ring_array(path: Path, what: str, ring: Any) -> np.ndarray:
    try:
        arr = np.asarray([[float(p[0]), float(p[1])] for p in ring], dtype=float)
    except (TypeError, ValueError, IndexError):
        raise InputError(path, f"{what}: ring is not a list of [x, y] positions") from None
    if len(arr) and np.allclose(arr[0], arr[-1]):
        arr = arr[:-1]
    if len(arr) < 3:
        raise InputError(path, f"{what}: ring has fewer than 3 distinct positions")
    return arr


def _measurement(props: dict[str, Any], key: str) -> Any:
    meas = props.get("measurements")
    if isinstance(meas, dict):
        return meas.get(key)
    if isinstance(meas, list):  # QuPath 0.2: [{"name": ..., "value": ...}]
        for m in meas:
            if isinstance(m, dict) and m.get("name") == key:
                return m.get("value")
    return None


def _classification(value: Any) -> str | None:
    """QuPath's class name: ``{"name": ..., "color": ...}`` (0.2 on) or a bare string."""
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value else None


def _read_geojson(path: Path, shape: tuple[int, int], conv: Conventions) -> Annotation:
    data = read_json(path)
    if not _looks_geojson(data):
        raise InputError(path, "not GeoJSON: expected a FeatureCollection or a list of Features")
    shapes: list[_Shape] = []
    skipped: list[str] = []
    for i, feat in enumerate(_features(path, data)):
        if not isinstance(feat, dict):
            raise InputError(path, f"feature {i} is not an object")
        props = feat.get("properties") or {}
        name = str(props.get("name") or feat.get("id") or f"feature {i}")
        what = f"feature {i} ({name})" if name != f"feature {i}" else name
        # QuPath cells carry the nucleus as a second geometry; that is the instance we want.
        geom = feat.get("nucleusGeometry") or props.get("nucleusGeometry") or feat.get("geometry")
        polys = _polygons(path, what, geom)
        if polys is None:
            kind = geom.get("type") if isinstance(geom, dict) else "no geometry"
            skipped.append(f"{name} ({kind})")
            continue
        rings: list[np.ndarray] = []
        for poly in polys:
            if not isinstance(poly, list) or not poly:
                raise InputError(path, f"{what}: polygon without rings")
            rings.extend(_ring_array(path, what, ring) for ring in poly)
        for ring in rings:
            _check_bounds(path, what, ring, shape)
        # Even-odd filling treats holes (inner rings) as holes, and disjoint parts as parts.
        r0, c0, mask = _rasterise_rings(rings, shape)
        score = props.get("score", _measurement(props, "score"))
        cls = _classification(props.get("classification"))
        shapes.append(
            _Shape(
                r0,
                c0,
                mask,
                name,
                score=_parse_score(path, what, score),
                source=_parse_source(props.get("source"), name),
                cls=cls,
                object_type=str(props["objectType"]) if props.get("objectType") else None,
                kind=conv.kind_of_class(cls),
            )
        )
    _warn_skipped(path, skipped)
    return _paint_marked(path, shapes, shape)


def write_geojson(
    path: str | Path,
    ann: Annotation,
    samples_per_segment: int = 8,
    conventions: Conventions | None = None,
    **fit_kwargs: Any,
) -> None:
    """QuPath-importable FeatureCollection: one "Nucleus" annotation per instance.

    Geometry is the fitted spline sampled densely as a closed ring (QuPath has no spline type),
    clipped to the image; properties carry ``source``, ``score`` (also as a measurement, which
    QuPath displays), a per-source display colour, and the classification and objectType read
    from QuPath (default "Nucleus", "annotation"). Objects are unlocked for editing. Ignored
    areas and regions follow as annotations of class ``Ignore*`` and ``Region*`` (or the
    configured classes), exact pixel outlines with their holes.
    """
    conv = conventions or Conventions()
    path = Path(path)
    h, w = ann.labels.shape
    features = []
    for lab, pts in instance_splines(ann.labels, **fit_kwargs).items():
        src = ann.source_of(lab)
        ring = spline_polygon(pts, samples_per_segment)
        ring = np.clip(ring, [0.0, 0.0], [float(w), float(h)])
        ring = np.round(np.vstack([ring, ring[:1]]), 3)
        name = f"{src}-{lab:04d}"
        props: dict[str, Any] = {
            "objectType": ann.object_types.get(lab, "annotation"),
            "name": name,
            "classification": {"name": ann.classes.get(lab, CLASS_NAME)},
            "color": list(SOURCE_RGB[src]),
            "isLocked": False,
            "source": src,
        }
        if lab in ann.scores:
            props["score"] = float(ann.scores[lab])
            props["measurements"] = {"score": float(ann.scores[lab])}
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_UUID_NS, f"{path.stem}/{name}")),
                "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]},
                "properties": props,
            }
        )
    counts = {IGNORE: 0, REGION: 0}
    for kind, rings in _marked_parts(ann):
        counts[kind] += 1
        name = f"{kind}-{counts[kind]:04d}"
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_UUID_NS, f"{path.stem}/{name}")),
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [np.round(r, 3).tolist() for r in rings],
                },
                "properties": {
                    "objectType": "annotation",
                    "name": name,
                    "classification": {"name": conv.class_name(kind)},
                    "isLocked": False,
                },
            }
        )
    write_json(path, {"type": "FeatureCollection", "features": features})


# ---------------------------------------------------------------------------------------------
# Dispatch


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
