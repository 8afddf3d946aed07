"""Raw public datasets → the project's dataset folder (``<out>/train``, ``<out>/test``).

One converter per source of :data:`nuclei_pa.data.sources.REGISTRY`; each reads the raw files
(downloaded or under a user's ``data_root``; files are searched, so wrapper folders do not
matter), applies the paper's split and writes the splits with
:func:`~nuclei_pa.io.dataset.write_split`. The per-format rules live in their modules:

- ``dh100``: :mod:`nuclei_pa.data.convert_coco` (COCO polygons/RLE + images; DAPI kept grey).
- ``kumar``: the ``folder`` kind (:mod:`nuclei_pa.data.folder`) with Kumar's split table
  (:mod:`nuclei_pa.data.convert_kumar`; organ and group of every image in its metadata, for
  Table 3).
- ``tnbc``: :mod:`nuclei_pa.data.convert_tnbc` (binary masks → connected components). Its test
  split is empty: the paper tests TNBC-trained models on Kumar breast images, built by
  :func:`tnbc_breast_split` from converted ``tnbc`` and ``kumar`` folders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nuclei_pa.data.convert_coco import coco_to_samples, dh100_samples
from nuclei_pa.data.convert_kumar import KUMAR_IMAGES, kumar_spec
from nuclei_pa.data.convert_tnbc import tnbc_breast_split, tnbc_mask_to_labels, tnbc_samples
from nuclei_pa.data.folder import FolderSpec, write_folder_dataset
from nuclei_pa.data.sources import source
from nuclei_pa.errors import ConfigError, InputError
from nuclei_pa.io.dataset import Sample, write_split

__all__ = [
    "CONVERTERS",
    "KUMAR_IMAGES",
    "coco_to_samples",
    "convert",
    "tnbc_breast_split",
    "tnbc_mask_to_labels",
]


def _unique(samples: Iterator[Sample], where: Path) -> Iterator[Sample]:
    """Guard against two samples sharing a name (they would overwrite each other's files)."""
    names: set[str] = set()
    for s in samples:
        if s.name in names:
            raise InputError(where, f"two images named {s.name!r} in one split")
        names.add(s.name)
        yield s


def _dh100(raw_dir: Path, **options: Any) -> dict[str, Iterator[Sample]]:
    return dh100_samples(raw_dir, **options)


def _kumar(raw_dir: Path, **options: Any) -> FolderSpec:
    return kumar_spec(raw_dir, **options)


def _tnbc(raw_dir: Path, **options: Any) -> dict[str, Iterator[Sample]]:
    return {"train": tnbc_samples(raw_dir, **options), "test": iter(())}


# converter name → function(raw_dir, **options) -> {split: samples}, or a folder dataset
CONVERTERS: dict[str, Callable[..., dict[str, Iterator[Sample]] | FolderSpec]] = {
    "dh100": _dh100,
    "kumar": _kumar,
    "tnbc": _tnbc,
}


def convert(
    name: str, raw_dir: str | Path, out_dir: str | Path, **options: Any
) -> dict[str, dict[str, int]]:
    """Convert dataset ``name``'s raw files into ``out_dir/<split>``; {split: counts}.

    ``options`` go to the converter: dh100 ``val`` ('separate' | 'train' | 'drop'); kumar
    ``require_all`` (default True); tnbc ``min_area`` (default 0: keep every component).
    """
    src = source(name)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise InputError(raw_dir, f"raw folder of {name!r} not found")
    splits = CONVERTERS[src.converter](raw_dir, **options)
    info = {"source": name, "citation": src.citation, "licence": src.licence}
    if isinstance(splits, FolderSpec):
        try:
            return write_folder_dataset(splits, out_dir, **info)
        except ConfigError as exc:  # the split table's split, not a user's key
            raise InputError(raw_dir, exc.problem) from exc
    return {
        split: write_split(out_dir / split, _unique(samples, raw_dir), split=split, **info)
        for split, samples in splits.items()
    }
