"""Closed cubic splines through a few control points per nucleus (paper §III.D, Fig. 7).

Predicted masks are handed to annotators as editable curves: each outline becomes a periodic
(closed, C²) cubic spline through a handful of control points, so dragging one point reshapes a
smooth contour instead of a staircase of pixels. The number of points adapts to the outline: it
starts near perimeter/10 and grows, one point where the curve strays furthest from the outline,
until the rasterised spline reproduces the mask (IoU ≥ ``target_iou``). For a given number, the
points are placed by least squares against the whole pixel outline, which smooths its
staircase and needs far fewer points than interpolating outline vertices.

Coordinates are (x, y) with x right and y down in *pixel-corner* convention, as ImageJ and QuPath
use: pixel (row r, col c) covers [c, c+1] × [r, r+1] and its centre is (c + 0.5, r + 0.5). A pixel
belongs to a polygon when its centre lies inside, which is how both tools rasterise ROIs.

The spline parameter is the cumulative square root of the chord lengths (centripetal
parameterisation), as in ImageJ's ``PolygonRoi.fitSpline``: it avoids the cusps and loops that
uniform parameterisation makes when control points are unevenly spaced, and it keeps the curve our
readers rasterise close to the one Fiji draws from the same points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline
from skimage.draw import polygon as draw_polygon
from skimage.measure import find_contours

__all__ = [
    "fit_spline",
    "instance_splines",
    "mask_outline",
    "rasterise",
    "spline_iou",
    "spline_polygon",
]

_MARGIN = 3  # px around a nucleus' box when fitting: room for the spline to overshoot


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Outer contour of the mask's largest region as an open (N, 2) ring of (x, y) corners.

    ``find_contours`` on the zero-padded mask at level 0.5 runs along pixel edges (cutting each
    corner diagonally), so the ring encloses the mask's pixel centres with a 0.5 px margin. Holes
    are ignored: a nucleus outline is one closed curve.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("empty mask has no outline")
    padded = np.pad(mask, 1).astype(np.float32)
    best, best_area = None, -1.0
    for contour in find_contours(padded, 0.5):
        if len(contour) < 4:
            continue
        ring = contour[:-1] if np.allclose(contour[0], contour[-1]) else contour
        area = abs(_signed_area(ring))
        if area > best_area:
            best, best_area = ring, area
    assert best is not None  # a non-empty padded mask always has a closed contour
    # (row, col) in padded pixel-index space → (x, y) corners: subtract the pad, add 0.5.
    return np.column_stack([best[:, 1] - 0.5, best[:, 0] - 0.5])


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _dedupe(points: np.ndarray) -> np.ndarray:
    """Drop consecutive repeats (and a repeated closing point): the parameter must increase."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(np.abs(np.diff(points, axis=0)) > 1e-9, axis=1)
    points = points[keep]
    if len(points) > 1 and np.allclose(points[0], points[-1], atol=1e-9):
        points = points[:-1]
    return points


def _periodic_spline(control_points: np.ndarray) -> tuple[CubicSpline, np.ndarray]:
    """Periodic cubic spline x(t), y(t) through the points, t = cumulative √chord."""
    closed = np.vstack([control_points, control_points[:1]])
    # Floor the steps (as ImageJ does) so coincident points cannot stall the parameter.
    steps = np.maximum(np.sqrt(np.hypot(*np.diff(closed, axis=0).T)), 1e-3)
    t = np.concatenate([[0.0], np.cumsum(steps)])
    return CubicSpline(t, closed, axis=0, bc_type="periodic"), t


def spline_polygon(control_points: np.ndarray, samples_per_segment: int = 8) -> np.ndarray:
    """Sample the closed spline densely: an open (K·s, 2) ring starting at the first point.

    Fewer than three distinct points cannot bound an area; they are returned as they are.
    """
    pts = _dedupe(control_points)
    if len(pts) < 3:
        return pts
    spline, t = _periodic_spline(pts)
    s = max(1, int(samples_per_segment))
    frac = np.arange(s) / s
    tt = (t[:-1, None] + frac[None, :] * np.diff(t)[:, None]).ravel()
    return spline(tt)


def rasterise(polygon: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose centres lie inside the (x, y) corner polygon."""
    shape2 = (int(shape[0]), int(shape[1]))
    out = np.zeros(shape2, dtype=bool)
    poly = np.asarray(polygon, dtype=float)
    if len(poly) < 3:
        return out
    rr, cc = draw_polygon(poly[:, 1] - 0.5, poly[:, 0] - 0.5, shape=shape2)
    out[rr, cc] = True
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def spline_iou(mask: np.ndarray, control_points: np.ndarray, samples_per_segment: int = 8) -> float:
    """IoU between a mask and the rasterised spline through ``control_points``."""
    mask = np.asarray(mask, dtype=bool)
    return _iou(mask, rasterise(spline_polygon(control_points, samples_per_segment), mask.shape))


def _even_indices(n: int, k: int, arclen: np.ndarray) -> np.ndarray:
    """k outline indices spaced evenly along the arc length."""
    targets = np.arange(k) * arclen[-1] / k
    idx = np.searchsorted(arclen[:-1], targets)
    return np.unique(np.clip(idx, 0, n - 1))


def _least_squares_points(
    ring: np.ndarray, arclen: np.ndarray, anchors: np.ndarray, passes: int = 2
) -> np.ndarray:
    """Control points whose interpolating spline best fits every outline vertex.

    For fixed knots the interpolating spline is linear in its control points, S(u) = B(u)·P, so
    the points minimising the squared distance to all outline vertices solve a linear least-squares
    problem. Outline vertex i gets the parameter u_i by interpolating its arc length between the
    anchors' (the outline vertices the points start from). The knots depend on the points
    (centripetal), so the solve is repeated ``passes`` times. Fitting all vertices rather than
    passing through a few averages out the staircase of the pixel outline.
    """
    k = len(anchors)
    points = ring[anchors]
    if k >= len(ring):  # as many points as vertices: interpolation is exact
        return points
    total = arclen[-1]
    s_anchor = np.append(arclen[anchors], arclen[anchors[0]] + total)
    s_vertex = arclen[:-1]
    s_vertex = np.where(s_vertex < s_anchor[0], s_vertex + total, s_vertex)
    unit = np.vstack([np.eye(k), np.eye(k)[:1]])  # cardinal basis, periodic
    for _ in range(passes):
        _, knots = _periodic_spline(points)
        basis = CubicSpline(knots, unit, axis=0, bc_type="periodic")(
            np.interp(s_vertex, s_anchor, knots)
        )
        points = np.linalg.lstsq(basis, ring, rcond=None)[0]
    return points


def fit_spline(
    mask: np.ndarray,
    *,
    target_iou: float = 0.92,
    min_points: int = 4,
    max_points: int = 40,
    spacing: float = 10.0,
    samples_per_segment: int = 8,
) -> np.ndarray:
    """Control points (K, 2) in (x, y) image corners of a closed spline fitting the mask.

    Starts from perimeter/``spacing`` points (clamped to [``min_points``, 32]) anchored evenly
    along the outline, placed by least squares on all outline vertices; while the rasterised
    spline's IoU with the mask is below ``target_iou``, anchors another point at the outline
    vertex furthest from the curve, up to ``max_points``. Only the largest connected region is
    fitted and holes are filled; returns the best fit seen (highest IoU).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        raise ValueError("fit_spline needs a non-empty 2-D mask")
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        mask = lab == 1 + int(np.argmax(sizes))
    # Work in a crop around the nucleus: rasterising a 40×40 window is what keeps this cheap.
    rows, cols = np.nonzero(mask)
    r0, c0 = max(rows.min() - _MARGIN, 0), max(cols.min() - _MARGIN, 0)
    r1 = min(rows.max() + _MARGIN + 1, mask.shape[0])
    c1 = min(cols.max() + _MARGIN + 1, mask.shape[1])
    local = mask[r0:r1, c0:c1]
    offset = np.array([c0, r0], dtype=float)

    ring = mask_outline(local)
    n_ring = len(ring)
    closed = np.vstack([ring, ring[:1]])
    arclen = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    k0 = int(np.clip(round(arclen[-1] / spacing), min_points, min(32, max_points)))
    anchors = _even_indices(n_ring, min(k0, n_ring), arclen)

    best_pts, best_iou = ring[anchors], -1.0
    while True:
        pts = _least_squares_points(ring, arclen, anchors)
        dense = spline_polygon(pts, samples_per_segment)
        iou = _iou(local, rasterise(dense, local.shape))
        if iou > best_iou:
            best_pts, best_iou = pts, iou
        if iou >= target_iou or len(anchors) >= min(max_points, n_ring):
            break
        # Distance of every outline vertex to the sampled curve; refine where it is worst.
        fine = spline_polygon(pts, 4 * samples_per_segment)
        d2 = ((ring[:, None, :] - fine[None, :, :]) ** 2).sum(-1).min(axis=1)
        d2[anchors] = -1.0
        worst = int(np.argmax(d2))
        if d2[worst] <= 0.0:
            break
        anchors = np.sort(np.append(anchors, worst))
    return best_pts + offset


def instance_splines(labels: np.ndarray, **fit_kwargs: Any) -> dict[int, np.ndarray]:
    """Control points of every instance of a label image, keyed by label id (ascending)."""
    labels = np.asarray(labels)
    out: dict[int, np.ndarray] = {}
    slices = ndimage.find_objects(labels.astype(np.int64, copy=False))
    for lab, sl in enumerate(slices, start=1):
        if sl is None:
            continue
        # Pad the window so the outline is never cut by it, then shift back to image coordinates.
        r0, c0 = max(sl[0].start - _MARGIN, 0), max(sl[1].start - _MARGIN, 0)
        r1 = min(sl[0].stop + _MARGIN, labels.shape[0])
        c1 = min(sl[1].stop + _MARGIN, labels.shape[1])
        window = labels[r0:r1, c0:c1] == lab
        pts = fit_spline(window, **fit_kwargs)
        out[lab] = pts + np.array([c0, r0], dtype=float)
    return out
