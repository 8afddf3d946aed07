"""Where the tissue is: a mask from a low pyramid level, so background tiles are never read.

Glass is bright and grey, stained tissue is coloured, so colour saturation separates them better
than brightness does (pale fat and dark dust fool a brightness threshold). The threshold is Otsu's
on the saturation, clamped to [0.02, 0.1]: a slide that is nearly all tissue has no glass mode
for Otsu to find, and its pale tissue must not be thrown away.

The mask is at most :data:`MAX_SIDE` pixels a side whatever the slide: the low level is read in
strips and box-averaged down, so a 100k² slide costs what a 10k² one does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from nuclei_pa.slide.reader import Plane, Slide

#: The mask is made from the coarsest level whose short side still has at least this many pixels.
MIN_SIDE = 256
#: … and is box-averaged to at most this many pixels a side.
MAX_SIDE = 1024
SATURATION_RANGE = (0.02, 0.1)


@dataclass(frozen=True)
class TissueMask:
    """Boolean tissue mask; ``downsample`` maps its pixels to level 0; ``rgb`` is the image it
    was made from (pyramid ``level`` box-averaged to at most :data:`MAX_SIDE` a side)."""

    mask: np.ndarray
    level: int
    downsample: float
    rgb: np.ndarray

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


def reduced(slide: Slide, level: int, factor: int, strip: int = 64) -> np.ndarray:
    """``level`` box-averaged by ``factor`` (edges cropped), ``strip`` output rows at a time."""
    h, w = slide.sizes[level]
    oh, ow = max(h // factor, 1), max(w // factor, 1)
    out = np.empty((oh, ow, 3), np.uint8)
    for r0 in range(0, oh, strip):
        r1 = min(r0 + strip, oh)
        block = slide.read(level, r0 * factor, min(r1 * factor, h), 0, min(ow * factor, w))
        rows, cols = block.shape[0] // factor, block.shape[1] // factor
        block = block[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor, 3)
        out[r0 : r0 + rows, :cols] = block.mean(axis=(1, 3)).round().astype(np.uint8)
    return out


def tissue_mask(slide: Slide, *, margin: int = 2) -> TissueMask:
    """Tissue mask of a low level, grown by ``margin`` pixels there so no edge nucleus is lost."""
    level = low_level(slide)
    factor = max(1, -(-max(slide.sizes[level]) // MAX_SIDE))
    rgb = reduced(slide, level, factor)
    sat = ndimage.uniform_filter(saturation(rgb), 3)
    thr = threshold_otsu(sat) if sat.max() > sat.min() else SATURATION_RANGE[1]
    mask = sat > float(np.clip(thr, *SATURATION_RANGE))
    mask = ndimage.binary_opening(mask, iterations=1)
    if margin:
        mask = ndimage.binary_dilation(mask, iterations=margin)
    return TissueMask(mask, level, slide.downsamples[level] * factor, rgb)


def thumbnail(slide: Slide, mask: TissueMask) -> np.ndarray:
    """The tissue pixels (N, 3) of the mask's image: what slide-wide statistics are taken from."""
    return mask.rgb[mask.mask] if mask.mask.any() else mask.rgb.reshape(-1, 3)
