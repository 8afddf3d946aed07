"""Image and label-image I/O with validation, so bad files fail early with a named problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_path

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def load_raw(path: str | Path) -> np.ndarray:
    """The image array as stored (planar RGB made interleaved), without shape checks."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                arr = series.asarray()
                axes = series.axes
                if arr.ndim == 3 and axes.startswith("S") and arr.shape[0] in (3, 4):
                    arr = np.moveaxis(arr, 0, -1)  # planar RGB(A) → interleaved
            return arr
        import skimage.io

        return np.asarray(skimage.io.imread(path))
    except InputError:
        raise
    except Exception as exc:  # tifffile/PIL raise many types for truncated or corrupt files
        raise InputError(
            path, f"unreadable or truncated image ({type(exc).__name__}: {exc})"
        ) from exc


def read_image(path: str | Path) -> np.ndarray:
    """Read a 2-D grey (H, W) or RGB (H, W, 3) image; reject stacks, RGBA and empty images."""
    path = Path(path)
    arr = load_raw(path)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3):
        pass
    elif arr.ndim == 3 and arr.shape[-1] == 4:
        raise InputError(path, f"RGBA image of shape {arr.shape}; save it as RGB or grey")
    else:
        raise InputError(
            path,
            f"{arr.ndim}-D array of shape {arr.shape} where a 2-D grey or RGB image was expected",
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(path, f"empty image of shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(path, f"unsupported pixel type {arr.dtype}")
    return arr


def read_labels(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an instance label image (0 = background, any positive ids, not necessarily consecutive).

    ``shape`` is the (H, W) of the matching image; a mismatch is an error, not a silent crop.
    """
    path = Path(path)
    arr = load_raw(path)
    if arr.ndim != 2:
        raise InputError(path, f"label image must be 2-D, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(path, "label image has non-integer values")
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
        raise InputError(path, f"unsupported label type {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise InputError(path, "label image has negative values")
    if shape is not None and tuple(arr.shape) != tuple(shape[:2]):
        raise InputError(
            path, f"label image shape {arr.shape} differs from its image's {shape[:2]}"
        )
    return arr.astype(np.int32, copy=False)


def write_tiff(path: str | Path, array: np.ndarray, *, compress: bool = True) -> None:
    """Write a TIFF atomically and deterministically (no timestamps), RGB stored interleaved."""
    array = np.ascontiguousarray(array)
    photometric = "rgb" if array.ndim == 3 and array.shape[-1] == 3 else "minisblack"
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            array,
            photometric=photometric,
            compression="zlib" if compress else None,
            metadata=None,
        )


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder, sorted by name (the matching key between images and labels)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "folder not found")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
