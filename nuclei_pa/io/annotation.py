"""One image's nucleus instances, the form every annotation file is read into and written from.

An int32 instance label image (0 = background) plus optional per-instance ``score`` and
``source`` ("human" annotator or "proposed" by the model), and the sparse marks users write
(issue 24): ``ignore`` (neither nucleus nor background) and ``region`` (fully annotated).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.errors import InputError

__all__ = ["SOURCES", "SOURCE_RGB", "Annotation", "parse_score", "parse_source"]

SOURCES = ("human", "proposed")
# Display colours (RGB): blue-ish for human, orange for proposals — distinct to colour-blind eyes.
SOURCE_RGB = {"human": (0, 170, 255), "proposed": (255, 160, 0)}
_NAME_RE = re.compile(r"^(human|proposed)-\d+", re.IGNORECASE)


@dataclass
class Annotation:
    """Instances of one image: int32 labels, plus score/source for the ids that have them.

    Ids without a ``source`` entry count as human (a plain label image is an annotator's work);
    ``scores`` usually exist only for proposals.
    """

    labels: np.ndarray
    scores: dict[int, float] = field(default_factory=dict)
    source: dict[int, str] = field(default_factory=dict)
    # QuPath's classification name and objectType of the ids read from GeoJSON, written back
    # unchanged (others: "Nucleus", "annotation"), so a round trip keeps what QuPath users set
    classes: dict[int, str] = field(default_factory=dict)
    object_types: dict[int, str] = field(default_factory=dict)
    # bool [H, W] or None: areas marked unknown, and fully annotated regions (issue 24)
    ignore: np.ndarray | None = None
    region: np.ndarray | None = None

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 2:
            raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
        if labels.size and labels.min() < 0:
            raise ValueError("labels must be non-negative")
        self.labels = labels.astype(np.int32, copy=False)
        for name in ("ignore", "region"):
            mask = getattr(self, name)
            if mask is not None:
                mask = np.asarray(mask, dtype=bool)
                if mask.shape != labels.shape:
                    raise ValueError(f"{name} mask {mask.shape} vs labels {labels.shape}")
                setattr(self, name, mask)
        bad = {s for s in self.source.values() if s not in SOURCES}
        if bad:
            raise ValueError(f"source must be one of {SOURCES}, got {sorted(bad)}")

    @classmethod
    def from_labels(
        cls, labels: np.ndarray, source: str = "human", scores: dict[int, float] | None = None
    ) -> Annotation:
        """Every instance of ``labels`` tagged with the same source."""
        labels = np.asarray(labels)
        ids = np.unique(labels)
        return cls(
            labels,
            scores={int(k): float(v) for k, v in (scores or {}).items()},
            source={int(lab): source for lab in ids[ids > 0]},
        )

    @property
    def ids(self) -> list[int]:
        """Positive label ids present, ascending."""
        ids = np.unique(self.labels)
        return [int(i) for i in ids[ids > 0]]

    def source_of(self, lab: int) -> str:
        return self.source.get(int(lab), "human")


def parse_source(value: Any, name: str) -> str | None:
    if isinstance(value, str) and value.lower() in SOURCES:
        return value.lower()
    m = _NAME_RE.match(name or "")
    return m.group(1).lower() if m else None


def parse_score(path: Path, what: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise InputError(path, f"{what}: score {value!r} is not a number") from None
    if not np.isfinite(score):
        raise InputError(path, f"{what}: score {value!r} is not finite")
    return score
