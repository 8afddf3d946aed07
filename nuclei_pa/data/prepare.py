"""A public dataset fetched and converted to the project's split folders."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from nuclei_pa.data.convert import convert
from nuclei_pa.data.convert_tnbc import tnbc_breast_split
from nuclei_pa.data.sources import source
from nuclei_pa.errors import InputError
from nuclei_pa.io.download import fetch_files


def fetch(
    name: str, cache_dir: str | Path = "resources", data_root: str | Path | None = None
) -> Path:
    """The folder of dataset ``name``'s raw (extracted) files, downloading them if needed.

    With ``data_root`` nothing is downloaded: that folder (the extracted dataset, in any layout
    the converter can search) is returned after checking it exists. A file placed by hand at
    ``<cache_dir>/<name>/<filename>`` is used (and checked) instead of downloading it.
    """
    src = source(name)
    if data_root is not None:
        root = Path(data_root)
        if not root.is_dir():
            raise InputError(root, f"data_root for {name!r} is not a folder")
        return root
    return fetch_files(src.files, Path(cache_dir) / name, name)


def prepare(
    name: str,
    out_dir: str | Path,
    cache_dir: str | Path = "resources",
    data_root: str | Path | None = None,
    **options: Any,
) -> dict[str, dict[str, int]]:
    """Fetch dataset ``name`` and convert it to ``out_dir/train`` and ``out_dir/test``."""
    raw = fetch(name, cache_dir, data_root)
    return convert(name, raw, out_dir, **options)


def prepare_breast_split(
    name: str,
    kumar_dir: str | Path,
    out_dir: str | Path,
    cache_dir: str | Path = "resources",
    data_root: str | Path | None = None,
    **options: Any,
) -> dict[str, dict[str, int]]:
    """Dataset ``name`` (TNBC) prepared into a scratch folder under ``cache_dir``, then split by
    breast with the Kumar breast images of ``kumar_dir`` (see
    :func:`~nuclei_pa.data.convert_tnbc.tnbc_breast_split`) into ``out_dir``."""
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        prepare(name, tmp, cache_dir, data_root, **options)
        return tnbc_breast_split(tmp, kumar_dir, out_dir)


__all__ = ["fetch", "prepare", "prepare_breast_split"]
