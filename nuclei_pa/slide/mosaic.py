"""Pyramidal, JPEG-tiled slides assembled from ordinary images, written as scanners write them.

Tests and benchmarks need whole slides built from real tissue; no slide can be downloaded here.
A mosaic of same-sized RGB images (e.g. the 1000 px Kumar crops) sits on a white glass margin
and is written as an Aperio SVS (baseline, thumbnail strip, reduced levels, ``MPP = …`` in the
ImageDescription) or as a generic pyramidal TIFF (levels as SubIFDs, resolution tags in cm, or
none). The baseline is written strip of tiles by strip of tiles, so a 32k² slide never sits in
memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

GLASS = 242  # RGB value of empty glass around the tissue
TILE = 256


def _strips(
    cell: Callable[[int, int], np.ndarray],
    grid: tuple[int, int],
    size: int,
    margin: int,
    factor: int,
) -> Iterator[np.ndarray]:
    """Rows of the mosaic downsampled by ``factor`` (box filter), margin included."""
    rows, cols = grid
    width = (cols * size + 2 * margin) // factor

    def edge(i: int) -> int:  # where image boundary i falls at this level
        return (margin + i * size) // factor

    if edge(0):
        yield np.full((edge(0), width, 3), GLASS, np.uint8)
    for r in range(rows):
        strip = np.full((edge(r + 1) - edge(r), width, 3), GLASS, np.uint8)
        for c in range(cols):
            img = cell(r, c)
            shape = (edge(c + 1) - edge(c), strip.shape[0])
            if factor > 1:
                img = np.asarray(Image.fromarray(img).resize(shape, Image.Resampling.BOX))
            strip[:, edge(c) : edge(c + 1)] = img
        yield strip
    rest = (rows * size + 2 * margin) // factor - edge(rows)
    if rest:
        yield np.full((rest, width, 3), GLASS, np.uint8)


def _tiles(strips: Iterator[np.ndarray], height: int, width: int) -> Iterator[np.ndarray]:
    """TILE² tiles in row-major order from full-width strips of any height (edges padded)."""
    buf = np.zeros((0, width, 3), np.uint8)
    done = 0
    for strip in strips:
        buf = np.concatenate([buf, strip])
        while buf.shape[0] >= TILE or (done + buf.shape[0] >= height and buf.shape[0]):
            band = np.full((TILE, -(-width // TILE) * TILE, 3), GLASS, np.uint8)
            n = min(TILE, buf.shape[0])
            band[:n, :width] = buf[:n]
            buf = buf[n:]
            done += n
            for x in range(0, band.shape[1], TILE):
                yield band[:, x : x + TILE]


def write_mosaic_slide(
    path: str | Path,
    images: Sequence[np.ndarray] | Callable[[int, int], np.ndarray],
    grid: tuple[int, int],
    *,
    margin: int = 512,
    mpp: float | None = 0.25,
    kind: str = "svs",
    levels: int = 3,
    quality: int = 90,
) -> tuple[int, int]:
    """Write a slide of ``grid`` (rows, cols) images on a glass margin; returns (height, width).

    ``images`` is a list used cyclically, or a function (row, col) → image. Every image must be
    RGB uint8 of one square size; levels are 4× reductions (box filter). ``kind``
    "svs" writes Aperio's layout, "tiff" a generic pyramid (SubIFDs). ``mpp`` None writes no
    resolution metadata at all.
    """
    if callable(images):
        cell = images
    else:
        pool = list(images)

        def cell(r: int, c: int) -> np.ndarray:
            return pool[(r * grid[1] + c) % len(pool)]

    size = cell(0, 0).shape[0]
    height = grid[0] * size + 2 * margin
    width = grid[1] * size + 2 * margin
    factors = [4**i for i in range(levels)]
    jpeg = {"compression": "jpeg", "compressionargs": {"level": quality}, "photometric": "rgb"}

    def level(factor: int, **kw: object) -> dict:
        h, w = height // factor, width // factor
        data = _tiles(_strips(cell, grid, size, margin, factor), h, w)
        return dict(data=data, shape=(h, w, 3), dtype=np.uint8, tile=(TILE, TILE), **jpeg, **kw)

    res: dict = {}
    if mpp is not None and kind == "tiff":
        res = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        if kind == "svs":
            desc = f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}]"
            desc += f" ({TILE}x{TILE}) JPEG/RGB Q={quality}|AppMag = 40"
            if mpp is not None:
                desc += f"|MPP = {mpp:.4f}"
            tw.write(**level(1), description=desc, metadata=None)
            thumb = np.concatenate(list(_strips(cell, grid, size, margin, factors[-1])))
            tw.write(thumb, photometric="rgb", subfiletype=0, metadata=None)
            for f in factors[1:]:
                tw.write(**level(f), description=desc, metadata=None)
        elif kind == "tiff":
            tw.write(**level(1), subifds=len(factors) - 1, metadata=None, **res)
            for f in factors[1:]:
                tw.write(**level(f), subfiletype=1, metadata=None, **res)
        else:
            raise ValueError(f"kind must be 'svs' or 'tiff', not {kind!r}")
    return height, width
