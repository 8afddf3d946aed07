"""Whole-slide reading through ``tiffslide``, at any resolution the pyramid can give.

Why tiffslide rather than openslide-python + openslide-bin (both install from PyPI): it is pure
Python on tifffile (+ zarr), which this project already depends on for its images, so it brings
no native library; it reads Aperio SVS, Hamamatsu NDPI, generic pyramidal TIFF and OME-TIFF,
Leica SCN and Ventana BIF. Its gap is MIRAX (.mrxs), which is not TIFF; that is refused by name.
tiffslide finds the pyramid and the resolution; the tiles a region touches are then read and
decoded here, one by one through tifffile, so a missing tile (byte count 0, which zarr would
silently fill with black) or a corrupt one is reported by its level and position, and nothing
is cached or decoded in background threads.

A :class:`Plane` is the image the model sees: the slide at the requested µm/px (or pyramid
level), taken from the finest level that is not finer than needed and resampled from there.
Every pixel of a plane is a function of its plane coordinates alone (the resampling never
depends on which region is read), so overlapping tiles see identical pixels where they overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from nuclei_pa.errors import InputError

#: Formats recognised as slides by their suffix (TIFFs are slides when they hold a pyramid).
SLIDE_SUFFIXES = (".svs", ".ndpi", ".scn", ".bif", ".mrxs", ".vms", ".vmu")
#: Relative difference under which a level counts as being at the requested resolution.
SNAP = 0.01


@dataclass(frozen=True)
class Plane:
    """The slide at one resolution: ``level`` read and scaled by ``1 / scale``.

    ``downsample`` maps plane pixels to level-0 pixels; ``mpp`` is µm per plane pixel (None when
    the slide does not say).
    """

    level: int
    scale: float  # level pixels per plane pixel (≥ 1)
    downsample: float  # level-0 pixels per plane pixel
    height: int
    width: int
    mpp: float | None


def is_slide(path: str | Path) -> bool:
    """Whether ``path`` is a whole-slide image: a slide suffix, OME-TIFF, or a TIFF pyramid."""
    p = Path(path)
    name = p.name.lower()
    if p.suffix.lower() in SLIDE_SUFFIXES or name.endswith((".ome.tif", ".ome.tiff")):
        return True
    if p.suffix.lower() not in (".tif", ".tiff") or not p.is_file():
        return False
    import tifffile

    try:
        with tifffile.TiffFile(p) as tf:
            return tf.is_svs or tf.is_ndpi or len(tf.series[0].levels) > 1
    except Exception:  # not readable as TIFF: left to the image reader to report
        return False


class Slide:
    """An open slide: level sizes, downsamples, µm/px, and region reads that fail cleanly."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "slide not found")
        if self.path.suffix.lower() in (".mrxs", ".vms", ".vmu"):
            raise InputError(self.path, "MIRAX/VMS slides are not TIFF; convert them to OME-TIFF")
        import tiffslide

        try:
            self._slide = tiffslide.TiffSlide(self.path)
            dims = self._slide.level_dimensions
            self.downsamples = tuple(float(d) for d in self._slide.level_downsamples)
            props = self._slide.properties
            series = self._slide.ts_tifffile.series[props.get("tiffslide.series-index", 0)]
            self._pages = [series.levels[i].keyframe for i in range(len(dims))]
        except Exception as exc:  # tifffile/zarr raise many types for a file that is no slide
            raise InputError(
                self.path, f"not a readable slide ({type(exc).__name__}: {exc})"
            ) from None
        self.sizes = tuple((int(h), int(w)) for w, h in dims)  # (height, width) per level
        for i, page in enumerate(self._pages):
            if page.shaped[-1] not in (3, 4) or page.planarconfig != 1 or page.shaped[1] != 1:
                raise InputError(
                    self.path, f"level {i} is not interleaved RGB (shape {page.shape})"
                )
        mpp = props.get("tiffslide.mpp-x")
        self.mpp = float(mpp) if mpp else None

    def close(self) -> None:
        self._slide.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, level: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """RGB uint8 pixels [y0, y1) × [x0, x1) of ``level`` (clipped to it by the caller)."""
        page = self._pages[level]
        th, tw = page.chunks[:2]
        cols = -(-page.imagewidth // tw)  # tiles (or 1 strip) per row
        args: dict = {"_fullsize": page.is_tiled}
        if page.compression in (6, 7, 34892, 33007):  # JPEG: tables live outside the tiles
            args |= {"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
        out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        fh = self._slide.ts_tifffile.filehandle
        for ty in range(y0 // th, (y1 - 1) // th + 1):
            for tx in range(x0 // tw, (x1 - 1) // tw + 1):
                index = ty * cols + tx
                where = f"level {level} tile {index} (row {ty}, column {tx})"
                try:
                    offset, count = page.dataoffsets[index], page.databytecounts[index]
                except IndexError:
                    raise InputError(self.path, f"{where} is missing") from None
                if not count:
                    raise InputError(self.path, f"{where} is missing (0 bytes)")
                try:
                    with fh.lock:
                        fh.seek(offset)
                        data = fh.read(count)
                    tile, _, _ = page.decode(data, index, **args)
                except Exception as exc:  # codecs raise their own types
                    raise InputError(
                        self.path, f"{where} is unreadable ({type(exc).__name__}: {exc})"
                    ) from None
                if tile is None or len(data) < count:
                    raise InputError(self.path, f"{where} is truncated")
                tile = tile.reshape(tile.shape[-3:])  # (length, width, samples)
                ty0, tx0 = ty * th, tx * tw
                ya, yb = max(y0, ty0), min(y1, ty0 + tile.shape[0])
                xa, xb = max(x0, tx0), min(x1, tx0 + tile.shape[1])
                out[ya - y0 : yb - y0, xa - x0 : xb - x0] = tile[
                    ya - ty0 : yb - ty0, xa - tx0 : xb - tx0, :3
                ]
        return out

    def plane(self, *, mpp: float | None = None, level: int | None = None) -> Plane:
        """The plane at ``mpp`` µm/px or at pyramid ``level`` (neither: level 0)."""
        if mpp is not None and level is not None:
            raise InputError(None, "give either --mpp or --level, not both")
        if level is not None:
            if not 0 <= level < len(self.sizes):
                raise InputError(
                    self.path, f"has no level {level} (levels 0–{len(self.sizes) - 1})"
                )
            target = self.downsamples[level]
        elif mpp is not None:
            if self.mpp is None:
                raise InputError(self.path, "has no resolution metadata (µm/px); use --level")
            if not math.isfinite(mpp) or mpp < self.mpp * (1 - SNAP):
                raise InputError(
                    self.path, f"cannot give {mpp} µm/px: its finest level is {self.mpp:.4g} µm/px"
                )
            target = mpp / self.mpp
        else:
            target = 1.0
        h0, w0 = self.sizes[0]
        height, width = round(h0 / target), round(w0 / target)
        if min(height, width) < 16:
            raise InputError(self.path, f"{mpp} µm/px leaves a {width}×{height} px image")
        # finest level not finer than needed → downsample from it, never upsample
        best = max(i for i, d in enumerate(self.downsamples) if d <= target * (1 + SNAP))
        scale = target / self.downsamples[best]
        if abs(scale - 1) < SNAP:
            scale = 1.0
            height, width = self.sizes[best]
        plane_mpp = None if self.mpp is None else self.mpp * target
        return Plane(best, scale, target, height, width, plane_mpp)

    def read_plane(self, plane: Plane, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """RGB uint8 pixels [y0, y1) × [x0, x1) of ``plane``.

        Resampling: Gaussian anti-aliasing (σ = (scale − 1) / 2 level pixels) then bilinear
        sampling at the plane pixel's centre — each output pixel depends on its coordinates
        only, not on the region asked for.
        """
        if plane.scale == 1.0:
            return self.read(plane.level, y0, y1, x0, x1)
        s = plane.scale
        sigma = (s - 1) / 2
        pad = math.ceil(3 * sigma) + 2
        lh, lw = self.sizes[plane.level]
        ly0, ly1 = max(int((y0 + 0.5) * s - 0.5) - pad, 0), min(int((y1 + 0.5) * s) + pad, lh)
        lx0, lx1 = max(int((x0 + 0.5) * s - 0.5) - pad, 0), min(int((x1 + 0.5) * s) + pad, lw)
        src = self.read(plane.level, ly0, ly1, lx0, lx1).astype(np.float32)
        if sigma > 0:
            src = ndimage.gaussian_filter(src, (sigma, sigma, 0), mode="nearest")
        ys = (np.arange(y0, y1) + 0.5) * s - 0.5 - ly0
        xs = (np.arange(x0, x1) + 0.5) * s - 0.5 - lx0
        out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        grid = np.meshgrid(ys, xs, indexing="ij")
        for c in range(3):
            out[..., c] = np.clip(
                ndimage.map_coordinates(src[..., c], grid, order=1, mode="nearest") + 0.5, 0, 255
            )
        return out
