"""Predict a whole slide tile row by tile row, stitching seams and streaming nuclei out.

Tiles come from :func:`nuclei_pa.engine.tiling.tile_grid` over the chosen :class:`Plane`, and a
nucleus is kept by the one tile whose core holds its centre and which sees it uncut
(:meth:`~nuclei_pa.engine.tiling.Tile.keeps`) — each nucleus cut by a seam is written exactly
once, as long as the overlap exceeds the largest nucleus. Tiles with no tissue in the low-level
mask are never read. Nothing slide-sized is ever held: one tile's pixels and labels at a time,
the tissue mask of a low level, and the nuclei go to disk as they are found
(:class:`~nuclei_pa.slide.output.NucleusSink`), so memory does not grow with the slide.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from nuclei_pa.engine.tiling import Tile, tile_grid
from nuclei_pa.errors import InputError
from nuclei_pa.slide.output import Nucleus, NucleusSink
from nuclei_pa.slide.predictors import Predictor
from nuclei_pa.slide.reader import Plane, Slide
from nuclei_pa.slide.tissue import TissueMask, thumbnail, tissue_mask


def tile_nuclei(tile: Tile, labels: np.ndarray, scores: dict[int, float]) -> list[Nucleus]:
    """The nuclei of one tile's labels that this tile keeps, in plane coordinates."""
    kept = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        ys, xs = sl
        if not tile.keeps(ys.start, ys.stop, xs.start, xs.stop):
            continue
        mask = labels[sl] == k
        kept.append(Nucleus(tile.y0 + ys.start, tile.x0 + xs.start, mask, scores.get(k, 1.0)))
    return kept


def _fingerprint(
    slide: Slide, plane: Plane, predictor: Predictor, settings: dict[str, Any]
) -> dict[str, Any]:
    st = slide.path.stat()
    describe = getattr(predictor, "describe", None)
    return {
        "slide": str(slide.path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "plane": asdict(plane),
        "predictor": describe() if describe else type(predictor).__name__,
        **settings,
    }


def predict_slide(
    slide_path: str | Path,
    out: str | Path,
    make_predictor: Callable[[np.ndarray], Predictor],
    *,
    mpp: float | None = None,
    level: int | None = None,
    tile_size: int = 1024,
    tile_overlap: int = 128,
    tissue: bool = True,
    restart: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Segment every nucleus of a slide into ``out`` (.geojson) and its .csv sibling.

    ``make_predictor`` receives the slide's tissue pixels (N, 3) from a low level, for any
    slide-wide statistics, and returns the tile predictor; it is called only once the slide and
    the requested resolution have been checked, so a bad slide fails before a model loads.
    ``restart`` ignores an interrupted run's checkpoint. Any :class:`InputError` removes the
    partial outputs; an interruption (Ctrl-C, a kill) keeps them for a rerun to resume.
    Returns counts, timings and throughput.
    """
    from tqdm import tqdm

    if tile_overlap >= tile_size:
        raise InputError(None, f"tile overlap {tile_overlap} must be below tile size {tile_size}")
    with Slide(slide_path) as slide:
        plane = slide.plane(mpp=mpp, level=level)
        mask: TissueMask | None = tissue_mask(slide)
        predictor = make_predictor(thumbnail(slide, mask))
        if not tissue:
            mask = None
        tiles = tile_grid(plane.height, plane.width, tile_size, tile_overlap)
        rows = [list(row) for _, row in groupby(tiles, key=lambda t: t.y0)]
        wanted = [
            [mask is None or mask.covers(plane, t.y0, t.y1, t.x0, t.x1) for t in row]
            for row in rows
        ]
        settings = {"tile_size": tile_size, "tile_overlap": tile_overlap, "tissue": tissue}
        sink = NucleusSink(
            out,
            _fingerprint(slide, plane, predictor, settings),
            downsample=plane.downsample,
            mpp=plane.mpp,
            restart=restart,
        )
        done_before = sum(sum(w) for w in wanted[: sink.rows_done])
        total = sum(sum(w) for w in wanted)
        bar = tqdm(
            total=total,
            initial=done_before,
            desc=f"{slide.path.name}",
            unit="tile",
            disable=not progress,
        )
        if sink.resumed and progress:
            bar.write(f"{slide.path.name}: resuming at tile row {sink.rows_done + 1}/{len(rows)}")
        start = time.perf_counter()
        try:
            for r in range(sink.rows_done, len(rows)):
                for tile, want in zip(rows[r], wanted[r], strict=True):
                    if not want:
                        continue
                    pixels = slide.read_plane(plane, tile.y0, tile.y1, tile.x0, tile.x1)
                    labels, scores = predictor(pixels)
                    del pixels
                    for nucleus in tile_nuclei(tile, labels, scores):
                        sink.add(nucleus)
                    bar.update()
                    bar.set_postfix(nuclei=sink.count, refresh=False)
                sink.commit(r + 1)
            sink.finish()
        except InputError:
            sink.discard()
            raise
        finally:
            sink.close()
            bar.close()
        seconds = time.perf_counter() - start
    predicted = total - done_before
    return {
        "nuclei": sink.count,
        "tiles": len(tiles),
        "tissue_tiles": total,
        "predicted_tiles": predicted,
        "seconds": seconds,
        "tiles_per_s": predicted / seconds if seconds > 0 else float("nan"),
        "area_mm2": None if plane.mpp is None else total_area_mm2(rows, wanted, plane),
        "plane": asdict(plane),
    }


def total_area_mm2(rows: list[list[Tile]], wanted: list[list[bool]], plane: Plane) -> float:
    """Tissue-tile area in mm²: the tiles' cores, which partition the plane."""
    assert plane.mpp is not None
    px = sum(
        (t.cy1 - t.cy0) * (t.cx1 - t.cx0)
        for row, w in zip(rows, wanted, strict=True)
        for t, keep in zip(row, w, strict=True)
        if keep
    )
    return px * (plane.mpp * 1e-3) ** 2
