"""Tile geometry: windows cover the image with enough overlap, cores partition it, and the
keep rule assigns every nucleus no wider than the overlap to exactly one tile, uncut."""

from __future__ import annotations

import itertools

import pytest

from nuclei_pa.engine.tiling import Tile, axis_windows, tile_grid


@pytest.mark.parametrize(
    ("length", "size", "overlap"),
    [(600, 256, 64), (4096, 1024, 128), (257, 256, 64), (1000, 100, 33), (300, 256, 0)],
)
def test_axis_windows_cover_and_cores_partition(length, size, overlap):
    wins = axis_windows(length, size, overlap)
    assert wins[0][0] == 0 and wins[-1][1] == length
    assert all(stop - start == size for start, stop, _, _ in wins)
    for (_, e0, _, ce0), (s1, _, cs1, _) in itertools.pairwise(wins):
        assert e0 - s1 >= overlap  # actual overlap never below the requested one
        assert ce0 == cs1  # cores are contiguous...
        assert cs1 - s1 >= overlap // 2 and e0 - ce0 >= overlap // 2  # ...split mid-overlap
    assert wins[0][2] == 0 and wins[-1][3] == length


def test_small_images_are_one_tile():
    assert axis_windows(256, 256, 64) == [(0, 256, 0, 256)]
    (tile,) = tile_grid(200, 256, 256, 64)
    assert (tile.y0, tile.y1, tile.x0, tile.x1) == (0, 200, 0, 256)
    assert len(tile_grid(5000, 3000, None, 128)) == 1
    assert len(tile_grid(5000, 3000, 0, 128)) == 1
    assert len(tile_grid(600, 300, 256, 64)) == 3 * 2


def test_invalid_tiling_is_refused():
    with pytest.raises(ValueError, match="exceed"):
        tile_grid(600, 600, 64, 64)
    with pytest.raises(ValueError, match="≥ 0"):
        tile_grid(600, 600, 256, -1)


@pytest.mark.parametrize(("size", "overlap"), [(64, 16), (50, 15)])
def test_every_small_nucleus_is_kept_exactly_once_and_whole(size, overlap):
    length = 230
    max_extent = 2 * (overlap // 2)
    rows = tile_grid(length, 1, size, overlap)
    for extent in range(1, max_extent + 1):
        for a in range(0, length - extent + 1):
            b = a + extent  # the nucleus spans rows [a, b)
            keepers = []
            for t in rows:
                ya, yb = max(a, t.y0) - t.y0, min(b, t.y1) - t.y0
                if ya < yb and t.keeps(ya, yb, 0, 1):
                    keepers.append(t)
            assert len(keepers) == 1, (extent, a, keepers)
            assert keepers[0].y0 <= a and b <= keepers[0].y1  # the kept copy is not cut


def test_keep_rule_in_two_dimensions():
    t = Tile(100, 200, 100, 200, 120, 180, 120, 180, height=300, width=300)
    assert t.keeps(40, 60, 40, 60)  # centre (150, 150): core
    assert not t.keeps(0, 10, 40, 60)  # touches the inner top edge
    assert not t.keeps(40, 60, 90, 100)  # touches the inner right edge
    assert not t.keeps(5, 15, 40, 60)  # centre row 110: overlap, the neighbour's
    edge = Tile(0, 100, 0, 100, 0, 80, 0, 80, height=300, width=300)
    assert edge.keeps(0, 10, 0, 10)  # touching the image edge is fine
