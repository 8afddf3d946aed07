"""Where the tissue is: a mask from a low pyramid level, so background tiles are never read.

Glass is bright and grey, stained tissue is coloured, so colour saturation separates them better
than brightness does (pale fat and dark dust fool a brightness threshold). The threshold is Otsu's
on the saturation, clamped to [0.02, 0.1]: a slide that is nearly all tissue has no glass mode
for Otsu to find, and its pale tissue must not be thrown away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from nuclei_pa.slide.reader import Plane, Slide

#: The mask is made from the coarsest level whose short side still has at least this many pixels.
MIN_SIDE = 256
SATURATION_RANGE = (0.02, 0.1)


@dataclass(frozen=True)
class TissueMask:
    """Boolean tissue mask of pyramid level ``level``; ``downsample`` maps it to level 0."""

    mask: np.ndarray
    level: int
    downsample: float

    def covers(self, plane: Plane, y0: int, y1: int, x0: int, x1: int) -> bool:
        """Whether the plane window [y0, y1) × [x0, x1) contains any tissue."""
        f = plane.downsample / self.downsample
        h, w = self.mask.shape
        ya, yb = min(int(y0 * f), h - 1), min(int(np.ceil(y1 * f)), h)
        xa, xb = min(int(x0 * f), w - 1), min(int(np.ceil(x1 * f)), w)
        return bool(self.mask[ya : max(yb, ya + 1), xa : max(xb, xa + 1)].any())


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation in [0, 1] of an RGB uint8 image."""
    arr = rgb.astype(np.float32)
    hi, lo = arr.max(axis=-1), arr.min(axis=-1)
    return np.where(hi > 0, (hi - lo) / np.maximum(hi, 1), 0.0)


def low_level(slide: Slide) -> int:
    """The coarsest level whose short side has at least :data:`MIN_SIDE` pixels (else level 0)."""
    fit = [i for i, (h, w) in enumerate(slide.sizes) if min(h, w) >= MIN_SIDE]
    return max(fit) if fit else 0


def tissue_mask(slide: Slide, *, margin: int = 2) -> TissueMask:
    """Tissue mask of a low level, grown by ``margin`` pixels there so no edge nucleus is lost."""
    level = low_level(slide)
    h, w = slide.sizes[level]
    sat = ndimage.uniform_filter(saturation(slide.read(level, 0, h, 0, w)), 3)
    thr = threshold_otsu(sat) if sat.max() > sat.min() else SATURATION_RANGE[1]
    mask = sat > float(np.clip(thr, *SATURATION_RANGE))
    mask = ndimage.binary_opening(mask, iterations=1)
    if margin:
        mask = ndimage.binary_dilation(mask, iterations=margin)
    return TissueMask(mask, level, slide.downsamples[level])


def thumbnail(slide: Slide, mask: TissueMask) -> np.ndarray:
    """The tissue pixels (N, 3) of the mask's level: what slide-wide statistics are taken from."""
    h, w = slide.sizes[mask.level]
    rgb = slide.read(mask.level, 0, h, 0, w)
    return rgb[mask.mask] if mask.mask.any() else rgb.reshape(-1, 3)
