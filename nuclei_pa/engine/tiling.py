"""Overlapping tiles for large images, and the rule that stitches them without seams.

Tiles are ``tile_size`` squares (clipped to the image), evenly spaced so that neighbours overlap
by at least ``overlap`` pixels. Each tile also has a *core*: the tile minus half of every overlap
it shares with a neighbour (split at the overlap's middle). The cores partition the image.

A detection from a tile is kept only if

* its box centre (of the thresholded mask) lies in the tile's core, and
* its mask does not touch a tile edge that is not also an image edge (it may be cut there).

If every nucleus spans at most ``overlap`` pixels along each axis (even overlap; one less when
odd), a nucleus whose centre lies in a core lies wholly inside that tile at least half an
overlap from its inner edges, so exactly one tile keeps it, uncut; any other tile's copy is
either cut (touches an inner edge) or has its centre outside that tile's core. **Choose the
overlap larger than the largest nucleus diameter**: a larger nucleus straddling a tile border
can be dropped by both tiles.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    """A window [y0, y1) × [x0, x1) of the image and its core [cy0, cy1) × [cx0, cx1)."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int
    height: int  # of the whole image
    width: int

    def keeps(self, ya: int, yb: int, xa: int, xb: int) -> bool:
        """Whether a detection with tile-local extent [ya, yb) × [xa, xb) belongs to this tile."""
        th, tw = self.y1 - self.y0, self.x1 - self.x0
        if (ya == 0 and self.y0 > 0) or (yb == th and self.y1 < self.height):
            return False
        if (xa == 0 and self.x0 > 0) or (xb == tw and self.x1 < self.width):
            return False
        cy = self.y0 + (ya + yb - 1) / 2
        cx = self.x0 + (xa + xb - 1) / 2
        return self.cy0 <= cy < self.cy1 and self.cx0 <= cx < self.cx1


def axis_windows(length: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, core_start, core_stop) of the windows covering one axis of ``length``."""
    if length <= size:
        return [(0, length, 0, length)]
    count = -(-(length - overlap) // (size - overlap))  # ceil: stride ≤ size − overlap
    starts = [i * (length - size) // (count - 1) for i in range(count)]
    stops = [s + size for s in starts]
    cuts = [0] + [(starts[i + 1] + stops[i]) // 2 for i in range(count - 1)] + [length]
    return [(starts[i], stops[i], cuts[i], cuts[i + 1]) for i in range(count)]


def tile_grid(height: int, width: int, tile_size: int | None, overlap: int) -> list[Tile]:
    """Row-major tiles covering a height×width image; one tile when it fits in ``tile_size``.

    ``tile_size`` None or 0 means never tile.
    """
    if not tile_size:
        tile_size = max(height, width)
    if overlap < 0:
        raise ValueError(f"tile overlap must be ≥ 0, got {overlap}")
    if tile_size <= overlap and max(height, width) > tile_size:
        raise ValueError(f"tile size {tile_size} must exceed the tile overlap {overlap}")
    rows = axis_windows(height, tile_size, overlap)
    cols = axis_windows(width, tile_size, overlap)
    return [
        Tile(y0, y1, x0, x1, cy0, cy1, cx0, cx1, height, width)
        for (y0, y1, cy0, cy1) in rows
        for (x0, x1, cx0, cx1) in cols
    ]
