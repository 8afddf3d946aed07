"""Helpers shared by the dataset converters: finding files in unknown layouts, reading images."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nuclei_pa.errors import InputError
from nuclei_pa.io.images import load_raw

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def load_image(path: str | Path, channel: int | None = None) -> np.ndarray:
    """Read an image as (H, W) or (H, W, 3), dropping an alpha channel.

    Public datasets often ship RGBA PNGs or TIFFs with an opaque alpha; our split format takes
    grey or RGB only, and the alpha carries nothing. ``channel`` picks one channel of a
    multichannel (fluorescence) image.
    """
    path = Path(path)
    arr = load_raw(path, channel=channel)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)) or 0 in arr.shape:
        raise InputError(path, f"expected a 2-D grey or RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def single_channel(image: np.ndarray) -> np.ndarray:
    """An RGB image that holds one channel's worth of data → that channel (H, W).

    Fluorescence (DAPI) images are often saved as RGB, either grey (R = G = B) or false-coloured
    (only blue non-zero); keeping three copies would only triple memory. Others pass unchanged.
    """
    if image.ndim != 3:
        return image
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
        image[..., 0], image[..., 2]
    ):
        return np.ascontiguousarray(image[..., 0])
    used = [c for c in range(3) if image[..., c].any()]
    if len(used) == 1:
        return np.ascontiguousarray(image[..., used[0]])
    return image


def index_by_stem(root: Path, suffixes: Iterable[str], where: str = "dataset") -> dict[str, Path]:
    """Files under ``root`` (recursively) with one of ``suffixes``, keyed by file stem.

    Two files with the same stem are ambiguous (e.g. original and colour-normalised copies): an
    error naming both, so the user can point ``data_root`` at the intended sub-folder.
    """
    suffixes = tuple(s.lower() for s in suffixes)
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in suffixes or not path.is_file() or path.name.startswith("."):
            continue
        if path.stem in found:
            raise InputError(
                root,
                f"two {where} files named {path.stem!r}: {found[path.stem]} and {path}; point "
                "data_root at the folder holding only the intended copy",
            )
        found[path.stem] = path
    return found
