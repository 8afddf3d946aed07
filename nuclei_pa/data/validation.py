"""The validation split: training images held back to choose with, so test images only report.

Every choice a run makes after training — which checkpoint a table shows, which score threshold
predictions use — is made on these images. They are carved, by image, out of a prepared
dataset's ``train`` split into ``val`` (same layout), once per dataset, so every model of that
dataset (its partial derivations included) trains without them and is chosen on the same ones.
Validation images keep their full annotations: choosing needs the truth, as testing does.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.data.folder import refers_to
from nuclei_pa.errors import ConfigError, InputError
from nuclei_pa.io.dataset import read_split, write_split
from nuclei_pa.io.jsonfile import read_json

SELECTORS = ("fraction", "count", "names")


@dataclass(frozen=True)
class ValidationSplit:
    """Which training images validate: a seeded random fraction or count, or named images."""

    fraction: float | None = None
    count: int | None = None
    names: tuple[str, ...] | None = None
    seed: int = 0

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> ValidationSplit:
        """From plain config data; errors name the key relative to the ``validation`` mapping."""
        if not isinstance(data, Mapping):
            raise ConfigError("", f"expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {*SELECTORS, "seed"}
        if unknown:
            raise ConfigError(sorted(unknown)[0], f"unknown key; known: {', '.join(SELECTORS)}")
        chosen = [k for k in SELECTORS if data.get(k) is not None]
        if len(chosen) != 1:
            raise ConfigError(
                "", f"give exactly one of {', '.join(SELECTORS)}; got {', '.join(chosen) or 'none'}"
            )
        fraction = data.get("fraction")
        if fraction is not None and not 0.0 < float(fraction) < 1.0:
            raise ConfigError("fraction", f"expected a number in (0, 1), got {fraction}")
        count = data.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ConfigError("count", f"expected an integer ≥ 1, got {count!r}")
        names = data.get("names")
        if names is not None and (isinstance(names, str) or not isinstance(names, Sequence)):
            raise ConfigError("names", "expected a list of image names")
        return cls(
            fraction=None if fraction is None else float(fraction),
            count=count,
            names=None if names is None else tuple(str(n) for n in names),
            seed=int(data.get("seed", 0)),
        )

    @property
    def key(self) -> str:
        return next(k for k in SELECTORS if getattr(self, k) is not None)

    def choose(self, train: Sequence[str], test: Sequence[str] = ()) -> list[str]:
        """The validation images among ``train`` (names in the order given).

        Raises :class:`ConfigError` naming the selector when no image would validate, when all
        would (nothing left to train on), or when a named image is a test image or unknown.
        """
        train = list(train)
        if self.names is not None:
            chosen = []
            for name in self.names:
                hits = [s for s in train if refers_to(name, s)]
                if not hits:
                    clash = [s for s in test if refers_to(name, s)]
                    problem = "is a test image" if clash else "names no training image"
                    raise ConfigError("names", f"{name!r} {problem}")
                chosen += [h for h in hits if h not in chosen]
        else:
            n = self.count if self.count is not None else round(self.fraction * len(train))
            order = np.random.default_rng(self.seed).permutation(len(train))
            chosen = [train[i] for i in sorted(order[: min(n, len(train))])]
        if not chosen:
            raise ConfigError(
                self.key, f"leaves no validation image (of {len(train)} training images)"
            )
        if len(chosen) >= len(train):
            raise ConfigError(self.key, f"leaves no training image ({len(train)} in all)")
        return chosen


def split_names(split_dir: str | Path) -> list[str]:
    """Image names of a split folder, from its ``annotations.json`` (no pixel read)."""
    path = Path(split_dir) / "annotations.json"
    if not path.is_file():
        raise InputError(path, "not found: not a dataset split folder")
    return [Path(img["file_name"]).stem for img in read_json(path)["images"]]


def carve_validation(dataset_dir: str | Path, spec: ValidationSplit) -> dict[str, dict[str, int]]:
    """Move the validation images of ``dataset_dir/train`` into ``dataset_dir/val``.

    Both folders are written beside the old ``train`` and swapped in at the end, so an
    interrupted carve leaves the dataset as it was.
    """
    root = Path(dataset_dir)
    train_dir = root / "train"
    test = split_names(root / "test") if (root / "test").exists() else []
    chosen = set(spec.choose(split_names(train_dir), test))
    samples = list(read_split(train_dir))
    info = read_json(train_dir / "annotations.json").get("info", {})
    info = {k: v for k, v in info.items() if k not in ("split", "description")}
    counts = {
        "train": write_split(
            root / "train.new", (s for s in samples if s.name not in chosen), split="train", **info
        ),
        "val": write_split(
            root / "val", (s for s in samples if s.name in chosen), split="val", **info
        ),
    }
    shutil.rmtree(train_dir)
    (root / "train.new").rename(train_dir)
    return counts
