"""Vector shapes (ImageJ ROIs, GeoJSON polygons) painted into an :class:`Annotation`.

Geometry convention (shared with :mod:`nuclei_pa.io.splines`): vector coordinates are (x, y)
pixel corners, x right, y down; a pixel belongs to a shape when its centre lies inside, as in
ImageJ and QuPath. Where vector shapes overlap, the smaller one keeps the shared pixels (the rule
:func:`nuclei_pa.io.coco.annotations_to_labels` applies without scores), so a small nucleus is
never swallowed by a large neighbour.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.conventions import IGNORE, REGION, mask_polygons
from nuclei_pa.io.splines import rasterise

BOUNDS_TOLERANCE = 1.0  # px a vertex may lie outside the image (spline overshoot, edge clicks)


@dataclass
class Shape:
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


def check_bounds(path: Path, what: str, pts: np.ndarray, shape: tuple[int, int]) -> None:
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


def rasterise_rings(rings: list[np.ndarray], shape: tuple[int, int]) -> tuple[int, int, np.ndarray]:
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


def _paint(path: Path, shapes: list[Shape | None], shape: tuple[int, int]) -> Annotation:
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


def paint_shapes(path: Path, shapes: list[Shape], shape: tuple[int, int]) -> Annotation:
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


def warn_skipped(path: Path, skipped: list[str]) -> None:
    if skipped:
        warnings.warn(
            f"{path}: skipped {len(skipped)} non-area object(s) (points, lines, text): "
            f"{', '.join(skipped[:5])}{' …' if len(skipped) > 5 else ''}",
            stacklevel=3,
        )


def marked_parts(ann: Annotation) -> list[tuple[str, list[np.ndarray]]]:
    """(kind, rings of one polygon) of every ignored area and region, in that order."""
    out = []
    for kind in (IGNORE, REGION):
        mask = getattr(ann, kind)
        if mask is not None and mask.any():
            out += [(kind, poly) for poly in mask_polygons(mask)]
    return out
