"""Whole-slide reading through ``tiffslide``, at any resolution the pyramid can give.

Why tiffslide rather than openslide-python + openslide-bin (both install from PyPI): it is pure
Python on tifffile + zarr, which this project already depends on for its images, so it brings no
native library; it reads Aperio SVS, Hamamatsu NDPI, generic pyramidal TIFF and OME-TIFF, Leica
SCN and Ventana BIF; and its levels are zarr arrays read tile by tile, nothing cached beyond the
tiles a region touches. Its gap is MIRAX (.mrxs), which is not TIFF; that is refused by name.

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
            self._levels = [self._slide.zarr_group[str(i)] for i in range(len(dims))]
        except Exception as exc:  # tifffile/zarr raise many types for a file that is no slide
            raise InputError(
                self.path, f"not a readable slide ({type(exc).__name__}: {exc})"
            ) from None
        self.sizes = tuple((int(h), int(w)) for w, h in dims)  # (height, width) per level
        if self._levels[0].ndim != 3 or self._levels[0].shape[-1] not in (3, 4):
            raise InputError(self.path, f"not an RGB slide (level 0 shape {self._levels[0].shape})")
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
        try:
            arr = np.asarray(self._levels[level][y0:y1, x0:x1])
        except Exception as exc:
            raise InputError(
                self.path,
                f"cannot read level {level} region y {y0}:{y1}, x {x0}:{x1} "
                f"(missing or corrupt tile? {type(exc).__name__}: {exc})",
            ) from None
        return np.ascontiguousarray(arr[..., :3])

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
