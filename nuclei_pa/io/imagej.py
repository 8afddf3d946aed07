"""ImageJ / Fiji ROI sets (``.zip``/``.roi``): read any area ROI, write spline-fit polygons."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from roifile import ROI_OPTIONS, ROI_SUBTYPE, ROI_TYPE, ImagejRoi

from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import SOURCE_RGB, Annotation, parse_score, parse_source
from nuclei_pa.io.atomic import atomic_path
from nuclei_pa.io.conventions import IGNORE, REGION, Conventions
from nuclei_pa.io.shapes import (
    Shape,
    check_bounds,
    marked_parts,
    paint_shapes,
    rasterise_rings,
    warn_skipped,
)
from nuclei_pa.io.splines import instance_splines, spline_polygon

_AREA_ROI_TYPES = (
    ROI_TYPE.POLYGON,
    ROI_TYPE.FREEHAND,
    ROI_TYPE.TRACED,
    ROI_TYPE.RECT,
    ROI_TYPE.OVAL,
)


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
) -> Shape | None:
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
        check_bounds(path, f"ROI {label!r}", ring, shape)
    if roi.options & ROI_OPTIONS.SPLINE_FIT and not roi.composite:
        # ImageJ stores the control points of spline-fit polygons; draw the curve through them.
        rings = [spline_polygon(rings[0])]
    r0, c0, mask = rasterise_rings(rings, shape)
    props = roi.properties if roi.props else {}
    return Shape(
        r0,
        c0,
        mask,
        label,
        score=parse_score(path, f"ROI {label!r}", props.get("score")),
        source=parse_source(props.get("source"), roi.name or label),
        kind=conv.kind_of_roi(roi.name or label, int(roi.group)),
    )


def read_imagej(path: Path, shape: tuple[int, int], conv: Conventions) -> Annotation:
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
    shapes: list[Shape] = []
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
    warn_skipped(path, skipped)
    return paint_shapes(path, shapes, shape)


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
    for kind, rings in marked_parts(ann):
        counts[kind] += 1
        prefix = conv.ignore_class if kind == IGNORE else conv.region_class
        rois.append(_marked_roi(rings, f"{prefix}-{counts[kind]:04d}", conv.group(kind)))
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for roi in rois:
            zf.writestr(f"{roi.name}.roi", roi.tobytes())
