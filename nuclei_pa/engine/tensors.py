"""Turning images into model input, and choosing the device: shared by training and prediction."""

from __future__ import annotations

import numpy as np
import torch

from nuclei_pa.errors import InputError
from nuclei_pa.model.config import INTENSITY_MODES


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; a named device must exist on this machine."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(None, f"unknown device {device!r} (try auto, cpu, cuda, cuda:1)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, f"device {device!r} requested but CUDA is not available")
    return dev


#: Percentiles of a whole image that ``percentile`` maps to 0 and 1, per channel.
PERCENTILES = (1.0, 99.8)
#: Pixels sampled (on a regular grid) to estimate the percentiles of a large image.
LEVEL_SAMPLES = 1 << 20


def intensity_levels(image: np.ndarray, mode: str = "fixed") -> np.ndarray | None:
    """Per-channel (low, high) values that ``mode`` maps to 0 and 1, from the *whole* image.

    ``fixed`` (None): the type's range (uint8 /255, uint16 /65535). ``percentile``: the image's
    own 1st and 99.8th percentiles per channel, so a dim fluorescence image or a pale H&E stain
    reaches the model at the contrast of a bright one. Computed once per image, never per tile or
    crop: a tile of background would otherwise be stretched into "nuclei". A channel with no
    spread keeps the type's range.
    """
    if mode not in INTENSITY_MODES:
        raise ValueError(f"intensity must be one of {INTENSITY_MODES}, not {mode!r}")
    if mode == "fixed":
        return None
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected a (H, W) or (H, W, 3) image, got shape {tuple(arr.shape)}")
    step = max(1, int(np.sqrt(arr.shape[0] * arr.shape[1] / LEVEL_SAMPLES)))
    sample = _unit(arr[::step, ::step]).reshape(-1, 1 if arr.ndim == 2 else arr.shape[-1])
    levels = np.percentile(sample, PERCENTILES, axis=0).astype(np.float32)  # [2, C]
    flat = levels[1] - levels[0] < 1e-6
    levels[:, flat] = np.array([[0.0], [1.0]], dtype=np.float32)
    return levels


def _unit(arr: np.ndarray) -> np.ndarray:
    """The type's range → float32 0..1 (integers by their type's maximum, floats clipped)."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        out = arr.astype(np.float32) / np.float32(info.max)
        return np.clip(out, 0.0, 1.0) if info.min < 0 else out
    return np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)


def image_to_tensor(image: np.ndarray, levels: np.ndarray | None = None) -> torch.Tensor:
    """(H, W) or (H, W, 3) array → float32 [3, H, W] in 0..1, the model's input.

    Integer images are divided by their type's maximum (uint8 /255, uint16 /65535), so a pixel
    maps to the same value whichever tile it is in; grey is replicated to three channels; float
    images are taken as already in 0..1 (clipped). ``levels`` (:func:`intensity_levels` of the
    whole image this array was cut from) then stretches each channel's (low, high) to (0, 1).
    """
    arr = _unit(np.asarray(image))
    if levels is not None:
        low, high = levels[0], levels[1]
        arr = np.clip((arr - low) / (high - low), 0.0, 1.0, dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim == 2:
        return t.unsqueeze(0).expand(3, -1, -1).contiguous()
    if t.ndim == 3 and t.shape[-1] == 3:
        return t.permute(2, 0, 1).contiguous()
    raise ValueError(f"expected a (H, W) or (H, W, 3) image, got shape {tuple(arr.shape)}")
