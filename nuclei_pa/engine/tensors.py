"""Turning images into model input, and choosing the device: shared by training and prediction."""

from __future__ import annotations

import numpy as np
import torch

from nuclei_pa.errors import InputError


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


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, 3) array → float32 [3, H, W] in 0..1, the model's input.

    Integer images are divided by their type's maximum (uint8 /255, uint16 /65535), so a pixel
    maps to the same value whichever tile it is in; grey is replicated to three channels; float
    images are taken as already in 0..1 (clipped).
    """
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        arr = arr.astype(np.float32) / np.float32(info.max)
        if info.min < 0:
            arr = np.clip(arr, 0.0, 1.0)
    else:
        arr = np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim == 2:
        return t.unsqueeze(0).expand(3, -1, -1).contiguous()
    if t.ndim == 3 and t.shape[-1] == 3:
        return t.permute(2, 0, 1).contiguous()
    raise ValueError(f"expected a (H, W) or (H, W, 3) image, got shape {tuple(arr.shape)}")
