"""The paper's derivations: exact fractions, seeds, crops."""

from __future__ import annotations

import numpy as np
import pytest

from nuclei_pa.data.derive import DeriveReport, crop_sample, derive, keep_count, remove_instances
from tests.conftest import grid_sample


def test_keep_count_rounds_per_image():
    assert [keep_count(n, 0.25) for n in (0, 1, 2, 3, 4, 35, 36)] == [0, 0, 1, 1, 1, 9, 9]
    assert keep_count(10, 0.1) == 1 and keep_count(10, 1.0) == 10 and keep_count(10, 0.0) == 0


@pytest.mark.parametrize("fraction", [1.0, 0.75, 0.5, 0.25, 0.1])
def test_remove_keeps_exact_fraction_of_each_image(fraction):
    s = grid_sample("a", n_side=6)  # 36 nuclei
    out = remove_instances(s, fraction, seed=0)
    assert out.n_instances == keep_count(36, fraction)
    assert np.array_equal(out.image, s.image)
    kept = out.labels > 0
    # every kept instance is an original instance, unchanged pixel for pixel
    for lab in np.unique(out.labels[kept]):
        orig = np.unique(s.labels[out.labels == lab])
        assert len(orig) == 1 and np.array_equal(s.labels == orig[0], out.labels == lab)


def test_remove_is_seeded_and_per_image():
    s = grid_sample("a", n_side=6)
    a = remove_instances(s, 0.25, seed=0).labels
    assert np.array_equal(a, remove_instances(s, 0.25, seed=0).labels)
    assert not np.array_equal(a > 0, remove_instances(s, 0.25, seed=1).labels > 0)
    other = grid_sample("b", n_side=6)
    assert not np.array_equal(a > 0, remove_instances(other, 0.25, seed=0).labels > 0)


def test_crop_covers_a_quarter_and_keeps_everything_inside():
    s = grid_sample("a", n_side=4, size=64, radius=5)
    out = crop_sample(s, 0.25, seed=3, min_area=10)
    assert out.image.shape == (32, 32) == out.labels.shape
    y0, x0 = out.meta["crop_yx"]
    window = s.labels[y0 : y0 + 32, x0 : x0 + 32]
    assert np.array_equal(out.image, s.image[y0 : y0 + 32, x0 : x0 + 32])
    counts = np.bincount(window.ravel())
    expected = sum(1 for lab in range(1, len(counts)) if counts[lab] >= 10)
    assert out.n_instances == expected
    assert set(np.unique(out.labels)) == set(range(expected + 1))


def test_crop_drops_slivers():
    labels = np.zeros((8, 8), np.int32)
    labels[0:8, 3:5] = 1  # a 2-px-wide nucleus; a 4×4 crop sees 0, 4 or 8 of its pixels
    s = grid_sample("x")
    s.labels, s.image = labels, np.zeros((8, 8), np.uint8)
    seen = set()
    for seed in range(30):
        out = crop_sample(s, 0.25, seed=seed, min_area=5)
        y0, x0 = out.meta["crop_yx"]
        visible = int((labels[y0 : y0 + 4, x0 : x0 + 4] > 0).sum())
        assert out.n_instances == (1 if visible >= 5 else 0)
        seen.add(visible)
    assert {4, 8} <= seen  # both the sliver and the kept case occurred


def test_derive_reports_counts():
    report = DeriveReport()
    samples = [grid_sample(f"i{k}", n_side=4) for k in range(4)]
    out = list(derive(samples, "remove", 0.25, 0, report))
    assert (report.images, report.instances_before, report.instances_after) == (4, 64, 16)
    assert len(out) == 4 and "25.0 %" in str(report)
    with pytest.raises(ValueError, match="unknown derivation"):
        list(derive(samples, "shuffle", 0.25, 0, DeriveReport()))
