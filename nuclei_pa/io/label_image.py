"""Instance label images (TIFF/PNG): -1, or a chosen value, marks pixels that are no nucleus."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.conventions import Conventions
from nuclei_pa.io.images import load_raw, read_labels, write_tiff


def read_label_image(path: Path, shape: tuple[int, int], conv: Conventions) -> Annotation:
    """A label image whose -1 (and ``conv.ignore_value``) pixels are unknown, not nuclei."""
    raw = load_raw(path)
    marked = np.zeros(raw.shape, dtype=bool)
    if raw.ndim == 2 and np.issubdtype(raw.dtype, np.signedinteger):
        marked |= raw == -1
    if conv.ignore_value is not None and raw.ndim == 2:
        value = conv.ignore_value
        ids = np.unique(raw[(raw > 0) & (raw != value)]) if raw.size else raw[:0]
        if (raw == value).any() and ids.size and ids.min() < value < ids.max():
            raise InputError(
                path,
                f"ignore value {value} is also a nucleus id here (ids run {int(ids.min())}.."
                f"{int(ids.max())}); choose a value outside them",
            )
        marked |= raw == value
    if not marked.any():
        return Annotation(read_labels(path, shape))
    if raw.shape != shape:
        raise InputError(path, f"label image shape {raw.shape} differs from its image's {shape}")
    if (raw[~marked] < 0).any():
        raise InputError(path, "label image has negative values other than -1 (ignore)")
    labels = np.where(marked, 0, raw)
    if labels.max() > np.iinfo(np.int32).max:
        raise InputError(path, "label ids exceed the int32 range")
    return Annotation(labels.astype(np.int32), ignore=marked)


def write_label_tiff(path: str | Path, ann: Annotation) -> None:
    """The int32 label image as a compressed TIFF (ids kept exactly); ignored pixels that are
    no nucleus as -1, StarDist's convention. A label image has no place for regions."""
    labels = ann.labels.astype(np.int32, copy=True)
    if ann.ignore is not None:
        labels[ann.ignore & (labels == 0)] = -1
    write_tiff(path, labels)
