"""Merge rules: the annotator's instances always win over the model's proposals."""

from __future__ import annotations

import numpy as np
import pytest

from nuclei_pa.annotate.merge import merge
from tests.test_splines import touching_labels

SHAPE = (64, 64)


def _box(labels: np.ndarray, lab: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    labels[r0:r1, c0:c1] = lab
    return labels


def test_rules_on_hand_made_cases():
    human = np.zeros(SHAPE, dtype=np.int32)
    _box(human, 5, 10, 20, 10, 20)  # 100 px, id 5 (ids need not start at 1)
    proposed = np.zeros(SHAPE, dtype=np.int32)
    _box(proposed, 1, 12, 22, 12, 22)  # the same nucleus, shifted: IoA 0.64 → dropped
    _box(proposed, 2, 19, 29, 30, 40)  # far away → kept untouched
    _box(proposed, 3, 20, 30, 10, 20)  # just below, no shared pixel → kept
    _box(proposed, 4, 9, 19, 19, 29)  # grazes the right edge: IoA 0.09 → kept, clipped
    out = merge(human, proposed, {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6})
    assert (out.labels == 5).sum() == 100 and np.array_equal(out.labels == 5, human == 5)
    assert out.ids == [5, 6, 7, 8]  # proposals renumbered after the largest human id
    assert out.source == {5: "human", 6: "proposed", 7: "proposed", 8: "proposed"}
    assert out.scores == {6: 0.8, 7: 0.7, 8: 0.6}
    assert np.array_equal(out.labels == 6, proposed == 2)
    assert np.array_equal(out.labels == 8, (proposed == 4) & (human == 0))
    assert (out.labels == 8).sum() == 91


def test_threshold_is_the_fraction_of_the_proposal_inside_human_pixels():
    human = _box(np.zeros(SHAPE, dtype=np.int32), 1, 0, 64, 0, 10)
    proposed = _box(np.zeros(SHAPE, dtype=np.int32), 1, 20, 30, 8, 18)  # 20 % inside
    assert merge(human, proposed, overlap_threshold=0.25).ids == [1, 2]
    assert merge(human, proposed, overlap_threshold=0.1).ids == [1]
    assert merge(human, proposed, overlap_threshold=0.0).ids == [1]  # any shared pixel drops
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        merge(human, proposed, overlap_threshold=10)


def test_clipping_keeps_the_largest_piece_and_drops_slivers():
    human = _box(np.zeros(SHAPE, dtype=np.int32), 1, 0, 64, 30, 31)  # a one-pixel-wide wall
    proposed = _box(np.zeros(SHAPE, dtype=np.int32), 7, 10, 20, 22, 32)  # cut 8 | 1 | 1
    out = merge(human, proposed, overlap_threshold=0.2)
    assert out.ids == [1, 2] and (out.labels == 2).sum() == 80
    assert (out.labels[10:20, 31] == 0).all()  # the small piece is not kept
    tiny = _box(np.zeros(SHAPE, dtype=np.int32), 3, 40, 42, 40, 41)  # 2 px < min_area
    assert merge(np.zeros(SHAPE, dtype=np.int32), tiny).ids == []


def test_human_always_wins_on_random_crowds():
    rng = np.random.default_rng(0)
    for _ in range(8):
        human = touching_labels(rng, SHAPE, n=6)
        human[human % 2 == 0] = 0  # a partial annotation: some nuclei only
        proposed = touching_labels(rng, SHAPE, n=10)
        scores = {int(i): float(rng.random()) for i in np.unique(proposed) if i}
        out = merge(human, proposed, scores, overlap_threshold=float(rng.uniform(0, 0.5)))
        hmask = human > 0
        np.testing.assert_array_equal(out.labels[hmask], human[hmask])  # pixel for pixel
        new = out.labels > 0
        assert not (new & ~hmask & (proposed == 0)).any()  # proposals only where predicted
        for lab in out.ids:
            if out.source[lab] == "proposed":
                assert not (hmask & (out.labels == lab)).any()
                assert lab in out.scores
            else:
                assert lab in set(np.unique(human).tolist())
    assert merge(np.zeros(SHAPE, int), np.zeros(SHAPE, int)).ids == []
