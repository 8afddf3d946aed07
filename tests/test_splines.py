"""Spline outlines (paper Fig. 7): few control points, yet the rasterised curve is the mask."""

from __future__ import annotations

import numpy as np
import pytest

from nuclei_pa.io.splines import (
    fit_spline,
    instance_splines,
    mask_outline,
    rasterise,
    spline_iou,
    spline_polygon,
)


def star_mask(rng: np.random.Generator, shape=(48, 48), centre=None, radius=None) -> np.ndarray:
    """Irregular star-convex blob: a radius with a few random harmonics, like a real nucleus."""
    r0 = rng.uniform(5, 15) if radius is None else radius
    cy, cx = centre if centre is not None else (shape[0] / 2, shape[1] / 2)
    cy, cx = cy + rng.uniform(-0.5, 0.5), cx + rng.uniform(-0.5, 0.5)
    th = np.linspace(0, 2 * np.pi, 721)
    r = np.full_like(th, r0)
    for k in range(2, 2 + int(rng.integers(2, 6))):
        r += r0 * rng.uniform(0, 0.12) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    ang = np.arctan2(yy - cy, xx - cx) % (2 * np.pi)
    return np.hypot(yy - cy, xx - cx) <= np.interp(ang, th, r)


def ellipse_mask(rng: np.random.Generator, shape=(48, 48)) -> np.ndarray:
    a, b = rng.uniform(5, 15), rng.uniform(3, 9)
    t = rng.uniform(0, np.pi)
    yy, xx = (
        np.mgrid[: shape[0], : shape[1]] - np.array([shape[0] / 2, shape[1] / 2])[:, None, None]
    )
    u = xx * np.cos(t) + yy * np.sin(t)
    v = -xx * np.sin(t) + yy * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def touching_labels(rng: np.random.Generator, shape=(96, 96), n: int = 12) -> np.ndarray:
    """Crowded blobs painted in turn, later ones cutting into earlier ones (touching nuclei).

    Each label keeps only its largest piece, as in real label images where a nucleus is one
    region; labels are consecutive.
    """
    from scipy import ndimage

    labels = np.zeros(shape, dtype=np.int32)
    for k in range(1, n + 1):
        c = rng.uniform(12, shape[0] - 12, size=2)
        labels[star_mask(rng, shape, centre=c, radius=rng.uniform(5, 11))] = k
    out = np.zeros_like(labels)
    nxt = 1
    for k in range(1, n + 1):
        parts, m = ndimage.label(labels == k)
        if m == 0:
            continue
        big = parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
        if big.sum() >= 10:
            out[big] = nxt
            nxt += 1
    return out


def test_rasterise_uses_pixel_centres_in_corner_coordinates():
    square = np.array([[1.0, 2.0], [4.0, 2.0], [4.0, 4.0], [1.0, 4.0]])  # x 1..4, y 2..4
    mask = rasterise(square, (6, 6))
    expected = np.zeros((6, 6), dtype=bool)
    expected[2:4, 1:4] = True
    np.testing.assert_array_equal(mask, expected)


def test_outline_hugs_pixel_edges():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:5, 3:7] = True
    ring = mask_outline(mask)
    assert ring[:, 0].min() == pytest.approx(3.0) and ring[:, 0].max() == pytest.approx(7.0)
    assert ring[:, 1].min() == pytest.approx(2.0) and ring[:, 1].max() == pytest.approx(5.0)
    np.testing.assert_array_equal(rasterise(ring, mask.shape), mask)


def test_spline_is_closed_and_interpolates_its_control_points():
    a = np.linspace(0, 2 * np.pi, 7, endpoint=False)
    ctrl = np.column_stack([20 + 8 * np.cos(a), 20 + 5 * np.sin(a)])
    dense = spline_polygon(ctrl, samples_per_segment=10)
    assert dense.shape == (70, 2)
    np.testing.assert_allclose(dense[::10], ctrl, atol=1e-9)
    # Smooth closure: the last sample is as close to the first as neighbours are to each other.
    step = np.hypot(*np.diff(dense, axis=0).T)
    assert np.hypot(*(dense[0] - dense[-1])) < 2 * step.max()


def test_spline_of_a_circle_reproduces_a_disk():
    yy, xx = np.mgrid[:40, :40]
    disk = (yy + 0.5 - 20) ** 2 + (xx + 0.5 - 20) ** 2 <= 10**2
    a = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ctrl = np.column_stack([20 + 10 * np.cos(a), 20 + 10 * np.sin(a)])
    assert spline_iou(disk, ctrl) > 0.97


def test_tiny_and_border_masks_fit():
    for h, w in [(1, 1), (1, 2), (2, 2), (3, 3), (1, 20)]:
        mask = np.zeros((30, 30), dtype=bool)
        mask[10 : 10 + h, 10 : 10 + w] = True
        pts = fit_spline(mask)
        assert len(pts) >= 3
        assert spline_iou(mask, pts) >= 0.92
    mask = np.zeros((30, 30), dtype=bool)
    mask[:6, :8] = True  # touches the image corner
    pts = fit_spline(mask)
    assert pts.min() >= 0.0 and spline_iou(mask, pts) >= 0.92


def test_control_points_adapt_to_the_outline():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:48, :48]
    small_disk = (yy - 24) ** 2 + (xx - 24) ** 2 <= 6**2
    big_star = star_mask(rng, radius=15)
    k_small, k_big = len(fit_spline(small_disk)), len(fit_spline(big_star))
    assert 4 <= k_small < k_big <= 40
    # A tighter target needs at least as many points.
    assert len(fit_spline(big_star, target_iou=0.97)) >= k_big


def test_mean_iou_on_realistic_nucleus_masks():
    rng = np.random.default_rng(0)
    ious, counts = [], []
    for _ in range(60):
        for mask in (star_mask(rng), ellipse_mask(rng)):
            pts = fit_spline(mask)
            ious.append(spline_iou(mask, pts))
            counts.append(len(pts))
    for _ in range(4):
        labels = touching_labels(rng)
        for lab, pts in instance_splines(labels).items():
            ious.append(spline_iou(labels == lab, pts))
            counts.append(len(pts))
    ious = np.asarray(ious)
    assert len(ious) > 150
    assert ious.mean() >= 0.9, ious.mean()
    assert np.quantile(ious, 0.05) >= 0.85
    assert min(counts) >= 4 and max(counts) <= 40


def test_mean_iou_on_synthetic_images():
    from nuclei_pa.data.synth import generate_image
    from nuclei_pa.data.synth_config import SynthConfig

    ious = []
    for seed in range(3):
        _, labels = generate_image(SynthConfig(), np.random.default_rng(seed))
        splines = instance_splines(labels)
        assert set(splines) == set(np.unique(labels[labels > 0]).tolist())
        ious += [spline_iou(labels == lab, pts) for lab, pts in splines.items()]
    assert np.mean(ious) >= 0.9, np.mean(ious)
