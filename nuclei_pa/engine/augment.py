"""Training augmentations beyond the paper's flips: 90° turns, scale, intensity and H&E stain.

The paper trains with random flips only. Peers who reach published numbers on few images also
turn patches by quarter turns, rescale them, and jitter their intensity and (on H&E) their stain
(issue 20); at CPU size, with 13 Kumar training images, such variety is the cheapest data there
is. Every augmentation is off by default, so the paper's trajectory is unchanged unless asked.

Each patch gets its own draw, a pure function of the integer the batch plan gives it
(:func:`nuclei_pa.engine.dataset.batch_plan`), so a resumed run sees the same patches. All five
random numbers are always drawn, in one order, so turning one augmentation on does not change
what the others draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import hed_from_rgb, rgb_from_hed
from torch import Tensor

# Optical density of the faintest pixel: keeps log(0) out of the stain space.
_MIN_INTENSITY = 1.0 / 255.0


@dataclass(frozen=True)
class Augment:
    """How strongly to augment (the ``train`` settings of the same names; 0/False: off).

    ``scale``: each patch is resized by a factor drawn log-uniformly from
    [1 / (1 + scale), 1 + scale]; ``intensity``: gamma and contrast change by a factor up to
    e^±intensity and brightness by up to ±intensity / 2; ``stain``: each H&E stain's amount is
    multiplied by 1 ± stain and shifted by ± stain × its mean (colour images only).
    """

    rot90: bool = False
    scale: float = 0.0
    intensity: float = 0.0
    stain: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.rot90 or self.scale or self.intensity or self.stain)

    def draw(self, seed: int) -> Draw:
        """The concrete transform of the patch whose plan entry carries ``seed``."""
        rng = np.random.default_rng([5, seed])
        turns, u_scale, u_int, u_stain = (
            int(rng.integers(4)),
            rng.random(),
            rng.uniform(-1.0, 1.0, 3),
            rng.uniform(-1.0, 1.0, (2, 3)),
        )
        log_scale = math.log1p(self.scale) * (2.0 * u_scale - 1.0)
        return Draw(
            quarter_turns=turns if self.rot90 else 0,
            scale=math.exp(log_scale) if self.scale else 1.0,
            gamma=math.exp(self.intensity * u_int[0]),
            contrast=math.exp(self.intensity * u_int[1]),
            brightness=self.intensity * u_int[2] / 2.0,
            stain_gain=tuple(1.0 + self.stain * u_stain[0]),
            stain_shift=tuple(self.stain * u_stain[1]),
        )


@dataclass(frozen=True)
class Draw:
    """One patch's augmentation: applied in the order turn, resize, intensity, stain."""

    quarter_turns: int = 0
    scale: float = 1.0
    gamma: float = 1.0
    contrast: float = 1.0
    brightness: float = 0.0
    stain_gain: tuple[float, ...] = (1.0, 1.0, 1.0)
    stain_shift: tuple[float, ...] = (0.0, 0.0, 0.0)

    def apply(
        self, image: Tensor, masks: np.ndarray, extra: dict[str, np.ndarray]
    ) -> tuple[Tensor, np.ndarray, dict[str, np.ndarray]]:
        """``image`` ([3, H, W] in 0..1), instance ``masks`` ([N, H, W]) and the ignore/region
        masks ``extra`` ({key: [H, W]}) transformed alike; instances the resize empties are
        dropped."""
        if self.quarter_turns:
            k = self.quarter_turns
            image = torch.rot90(image, k, dims=(-2, -1))
            masks = np.rot90(masks, k, axes=(-2, -1))
            extra = {key: np.rot90(m, k) for key, m in extra.items()}
        if self.scale != 1.0:
            size = _scaled(image.shape[-2], image.shape[-1], self.scale)
            image = F.interpolate(
                image[None], size=size, mode="bilinear", align_corners=False, antialias=True
            )[0].clamp_(0.0, 1.0)
            masks = _resize_masks(masks, size)
            masks = masks[masks.any(axis=(1, 2))] if len(masks) else masks
            extra = {key: _resize_masks(m[None], size)[0] for key, m in extra.items()}
        if (self.gamma, self.contrast, self.brightness) != (1.0, 1.0, 0.0):
            image = self._intensity(image)
        stains_change = self.stain_gain != (1.0,) * 3 or self.stain_shift != (0.0,) * 3
        if stains_change and _is_colour(image):  # the cheap test first: most patches skip both
            image = self._stain(image)
        return image.contiguous(), masks, extra

    def boxes(self, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
        """xyxy ``boxes`` of a ``height`` × ``width`` patch, where they fall after the turn and
        resize (the pa diagnostics' full-label boxes)."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        for _ in range(self.quarter_turns):  # one counter-clockwise quarter turn, as np.rot90
            x0, y0, x1, y1 = boxes.T
            boxes = np.stack([y0, width - x1, y1, width - x0], 1)
            height, width = width, height
        if self.scale != 1.0:
            out_h, out_w = _scaled(height, width, self.scale)
            boxes = boxes * np.array([out_w / width, out_h / height] * 2, dtype=np.float32)
        return np.ascontiguousarray(boxes, dtype=np.float32)

    def _intensity(self, image: Tensor) -> Tensor:
        image = image.clamp(min=0.0) ** self.gamma
        mean = image.mean()
        return ((image - mean) * self.contrast + mean + self.brightness).clamp_(0.0, 1.0)

    def _stain(self, image: Tensor) -> Tensor:
        """Colour deconvolution (Ruifrok & Johnston's H&E-DAB vectors), each stain's amount
        scaled and shifted, and back to RGB."""
        rgb = image.permute(1, 2, 0).clamp(min=_MIN_INTENSITY)
        density = -torch.log(rgb)
        stains = density @ torch.as_tensor(hed_from_rgb, dtype=rgb.dtype)
        mean = stains.reshape(-1, 3).mean(0).abs()
        gain = torch.as_tensor(self.stain_gain, dtype=rgb.dtype)
        shift = torch.as_tensor(self.stain_shift, dtype=rgb.dtype) * mean
        density = (stains * gain + shift) @ torch.as_tensor(rgb_from_hed, dtype=rgb.dtype)
        return torch.exp(-density).clamp_(0.0, 1.0).permute(2, 0, 1)


def _scaled(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(round(height * scale), 1), max(round(width * scale), 1)


def _resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[N, H, W] binary masks resized to ``size`` by nearest neighbour."""
    if masks.shape[0] == 0:
        return np.zeros((0, *size), dtype=bool)
    t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.uint8))[None]
    return F.interpolate(t, size=size, mode="nearest-exact")[0].numpy().astype(bool)


def _is_colour(image: Tensor) -> bool:
    """A grey image is replicated into three equal channels; only colour has stains."""
    return not (torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))
