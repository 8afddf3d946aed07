"""Image and label-image I/O with validation, so bad files fail early with a named problem.

This is the one place images are read. TIFFs are interpreted by the axes tifffile reports for
their first series ('YX', 'YXS', 'SYX', 'CYX', 'ZCYX', 'TCZYX', ...), not by guessing from
sizes: 'S' are the samples of a pixel (colour when the file says RGB/YCbCr), 'C' separately
stored channels (fluorescence), 'Q' pages of unknown meaning (a stack). Singleton axes other
than Y and X are dropped. Compressed TIFFs (LZW, JPEG, zstd, ...) are decoded by imagecodecs.
"""

from __future__ import annotations

import operator
import re
from pathlib import Path

import numpy as np
import tifffile

from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_path

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

# TIFF photometric interpretations whose samples are the colour of one pixel; other multi-sample
# TIFFs (MINISBLACK with extra samples, ...) hold channels.
_COLOUR_PHOTOMETRIC = (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)

# tifffile's messages for a codec it cannot load, e.g. "<COMPRESSION.LZW: 5> requires the
# 'imagecodecs' package", and for a compression nobody decodes.
_MISSING_CODEC = re.compile(r"<(COMPRESSION|PREDICTOR)\.(\w+): \d+> requires the 'imagecodecs'")
_UNSUPPORTED = re.compile(
    r"<COMPRESSION\.(\w+): \d+> not (?:supported|implemented)|(\d+) is not a known COMPRESSION"
)


def _codec_error(path: Path, exc: BaseException) -> InputError | None:
    """The error naming the codec a file needs, if ``exc`` (or its cause) is a missing codec.

    Without this, a missing package looks like a corrupt file and users delete good data.
    """
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen)
        missing = _MISSING_CODEC.search(text)
        if missing:
            kind = "codec" if missing.group(1) == "COMPRESSION" else "predictor"
            return _missing_codec(path, f"{missing.group(2)} {kind}")
        if isinstance(seen, ImportError) and path.suffix.lower() in (".tif", ".tiff"):
            # tifffile's own fallback codecs import lazily (zstd from Python ≥ 3.14's stdlib)
            return _missing_codec(path, f"{_compression_name(path)} codec", f" ({seen})")
        unsupported = _UNSUPPORTED.search(text)
        if unsupported:
            name = unsupported.group(1) or unsupported.group(2)
            return InputError(
                path, f"TIFF compression {name} cannot be decoded; re-save the image as LZW or zlib"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _missing_codec(path: Path, what: str, detail: str = "") -> InputError:
    # tifffile falls back to its own pure-Python module when imagecodecs is not importable.
    backend = getattr(tifffile.tifffile, "imagecodecs", None)
    if backend is None or getattr(backend, "__name__", "").endswith("_imagecodecs"):
        return InputError(
            path,
            f"needs the {what} from the 'imagecodecs' package, which is not installed{detail}: "
            "pip install imagecodecs",
        )
    version = getattr(backend, "__version__", "?")
    return InputError(
        path,
        f"needs the {what} from the 'imagecodecs' package, but the installed imagecodecs "
        f"{version} was built without it{detail}: reinstall imagecodecs with all codecs "
        "(the PyPI wheels and conda-forge have them)",
    )


def _compression_name(path: Path) -> str:
    """The TIFF compression of a file's first image, e.g. 'ZSTD', for error messages."""
    try:
        with tifffile.TiffFile(path) as tif:
            value = tif.series[0].keyframe.compression
        return tifffile.COMPRESSION(value).name
    except Exception:
        return "compression"


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        arr = series.asarray()
        axes = series.axes
        photometric = getattr(series.keyframe, "photometric", None)
    if "S" in axes and photometric not in _COLOUR_PHOTOMETRIC:
        axes = axes.replace("S", "C")  # e.g. grey + extra samples: channels, not colour
    return arr, axes


def _read_other(path: Path) -> tuple[np.ndarray, str]:
    import skimage.io

    arr = np.asarray(skimage.io.imread(path))
    # PIL/imageio give (H, W) or (H, W, samples), frames first for animations.
    axes = "YX" if arr.ndim == 2 else "Q" * (arr.ndim - 3) + "YXS"
    return arr, axes


def _normalise(arr: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """Drop singleton non-YX axes, put colour samples last (interleaved), use native byte order."""
    if len(axes) != arr.ndim:  # defensive: unknown layout, let shape checks reject it
        axes = "Q" * arr.ndim
    keep = [i for i, a in enumerate(axes) if arr.shape[i] != 1 or a in "YX"]
    if len(keep) != arr.ndim:
        arr = arr.reshape([arr.shape[i] for i in keep])
        axes = "".join(axes[i] for i in keep)
    if "S" in axes and not axes.endswith("S"):  # planar RGB → interleaved
        i = axes.index("S")
        arr = np.ascontiguousarray(np.moveaxis(arr, i, -1))
        axes = axes[:i] + axes[i + 1 :] + "S"
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr, axes


def _load(path: Path) -> tuple[np.ndarray, str]:
    """The first image of a file with its axes letters, or an InputError saying why not."""
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            arr, axes = _read_tiff(path)
        else:
            arr, axes = _read_other(path)
    except InputError:
        raise
    except Exception as exc:  # tifffile/PIL raise many types for truncated or corrupt files
        codec = _codec_error(path, exc)
        if codec is not None:
            raise codec from exc
        raise InputError(
            path, f"unreadable or truncated image ({type(exc).__name__}: {exc})"
        ) from exc
    return _normalise(arr, axes)


def _select_channel(path: Path, arr: np.ndarray, axes: str, channel: int) -> tuple[np.ndarray, str]:
    """One channel of the C axis (else of the colour samples); a grey image is channel 0."""
    try:
        channel = operator.index(channel)
    except TypeError:
        raise InputError(path, f"channel must be an integer, got {channel!r}") from None
    letter = "C" if "C" in axes else "S" if "S" in axes else None
    n = 1 if letter is None else arr.shape[axes.index(letter)]
    if not 0 <= channel < n:
        raise InputError(
            path,
            f"channel {channel} is out of range: the image has {n} channel"
            f"{'s' if n > 1 else ''} (choose 0 to {n - 1}; axes {axes}, shape {arr.shape})",
        )
    if letter is None:
        return arr, axes
    i = axes.index(letter)
    return np.ascontiguousarray(np.take(arr, channel, axis=i)), axes[:i] + axes[i + 1 :]


def load_raw(path: str | Path, *, channel: int | None = None) -> np.ndarray:
    """The image array as stored (planar RGB made interleaved, singleton axes dropped).

    No shape checks, so converters can repair what they know how to (e.g. drop alpha).
    ``channel`` selects one channel of a multichannel image (see :func:`read_image`).
    """
    path = Path(path)
    arr, axes = _load(path)
    if channel is not None:
        arr, _ = _select_channel(path, arr, axes, channel)
    return arr


def read_image(path: str | Path, *, channel: int | None = None) -> np.ndarray:
    """Read a 2-D grey (H, W) or RGB (H, W, 3) image; reject stacks, RGBA and empty images.

    A multichannel image (e.g. fluorescence stored as C = 2..N channels, not RGB) is refused
    unless ``channel`` picks one, so a model never silently sees the wrong stain; with it the
    result is (H, W). Of an RGB image, ``channel`` picks one colour (e.g. DAPI saved as blue).
    """
    path = Path(path)
    arr, axes = _load(path)
    if channel is not None:
        arr, axes = _select_channel(path, arr, axes, channel)
    elif axes in ("CYX", "YXC") or (axes == "YXS" and arr.shape[-1] not in (3, 4)):
        n = arr.shape[axes.index("C" if "C" in axes else "S")]
        raise InputError(
            path,
            f"multichannel image with {n} channels (axes {axes}, shape {arr.shape}), not grey "
            f"or RGB: choose one with the channel option (0 to {n - 1})",
        )
    if axes == "YX" or (axes == "YXS" and arr.shape[-1] == 3):
        pass
    elif axes == "YXS" and arr.shape[-1] == 4:
        raise InputError(path, f"RGBA image of shape {arr.shape}; save it as RGB or grey")
    else:
        hint = (
            "; if its pages are channels, save it with axes metadata (e.g. OME-TIFF 'CYX')"
            if axes.startswith("Q")
            else ""
        )
        raise InputError(
            path,
            f"{arr.ndim}-D array of shape {arr.shape} (axes {axes}) where a 2-D grey or RGB "
            f"image was expected{hint}",
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(path, f"empty image of shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(path, f"unsupported pixel type {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:  # a model would turn them into NaN losses or silently wrong detections
            raise InputError(
                path,
                f"float image with {bad} NaN or infinite pixel(s); replace them (e.g. with 0) "
                "before training, predicting or annotating",
            )
    return arr


def read_labels(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an instance label image (0 = background, any positive ids, not necessarily consecutive).

    ``shape`` is the (H, W) of the matching image; a mismatch is an error, not a silent crop.
    """
    path = Path(path)
    arr, _ = _load(path)
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
