"""The paper's partial-annotation derivations (Fig. 3): remove instances, or crop a fully
annotated sub-region. Both are seeded per image by name, so a derived image does not change when
other images are added to or removed from the split.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from nuclei_pa.io.dataset import Sample


def _rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    key = zlib.crc32(f"{purpose}:{name}".encode())
    return np.random.default_rng(np.random.SeedSequence([seed, key]))


def relabel_consecutive(labels: np.ndarray) -> np.ndarray:
    """Map the positive ids of a label image to 1..n in ascending order."""
    ids, inverse = np.unique(labels, return_inverse=True)
    offset = 0 if ids[0] == 0 else 1
    return (inverse.reshape(labels.shape) + offset).astype(np.int32)


def keep_count(n_instances: int, keep_fraction: float) -> int:
    """How many of an image's instances survive: round-half-up of n·fraction.

    Rounding per image keeps the split's total within ±0.5 per image of the exact fraction
    (the paper's DH25 keeps 525 of 2120 nuclei, 24.8 %).
    """
    return int(np.floor(n_instances * keep_fraction + 0.5))


def remove_instances(sample: Sample, keep_fraction: float, seed: int) -> Sample:
    """Keep a random ``keep_fraction`` of the image's instances; the image itself is unchanged."""
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1], got {keep_fraction}")
    ids = np.unique(sample.labels)
    ids = ids[ids > 0]
    k = keep_count(ids.size, keep_fraction)
    kept = _rng(seed, sample.name, "remove").choice(ids, size=k, replace=False) if k else ids[:0]
    labels = np.where(np.isin(sample.labels, kept), sample.labels, 0)
    return Sample(sample.name, sample.image, relabel_consecutive(labels), dict(sample.meta))


# Pixels a nucleus cut by a crop border must keep to stay annotated (crop derivation, patches).
MIN_CROP_AREA = 10


def is_sliver(areas: np.ndarray, min_area: int = MIN_CROP_AREA) -> np.ndarray:
    """Which instances of a crop to drop, given their pixel counts in it: present but under
    ``min_area``, since nobody would annotate a nucleus they cannot see. Shared by the ``crop``
    derivation and patch training (:mod:`nuclei_pa.engine.data`) so both cut nuclei alike."""
    areas = np.asarray(areas)
    return (areas > 0) & (areas < min_area)


def crop_sample(
    sample: Sample, area_fraction: float, seed: int, min_area: int = MIN_CROP_AREA
) -> Sample:
    """A random crop covering ``area_fraction`` of the image (same aspect ratio), fully annotated.

    Instances cut by the crop border are clipped; clipped slivers under ``min_area`` pixels are
    dropped, since nobody would annotate a nucleus they cannot see.
    """
    if not 0.0 < area_fraction <= 1.0:
        raise ValueError(f"area_fraction must be in (0, 1], got {area_fraction}")
    h, w = sample.labels.shape
    side = np.sqrt(area_fraction)
    ch, cw = max(1, round(h * side)), max(1, round(w * side))
    rng = _rng(seed, sample.name, "crop")
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    labels = crop_labels(sample.labels, (y0, x0, ch, cw), min_area)
    image = sample.image[y0 : y0 + ch, x0 : x0 + cw].copy()
    meta = {**sample.meta, "crop_yx": [y0, x0]}
    return Sample(sample.name, image, labels, meta)


def crop_labels(
    labels: np.ndarray, window: tuple[int, int, int, int], min_area: int = MIN_CROP_AREA
) -> np.ndarray:
    """``labels`` cut to ``window`` (top, left, height, width): instances cut by its border
    clipped, slivers under ``min_area`` px dropped, the rest numbered 1..n."""
    y0, x0, h, w = window
    labels = labels[y0 : y0 + h, x0 : x0 + w].copy()
    if labels.any():
        small = np.flatnonzero(is_sliver(np.bincount(labels.ravel()), min_area))
        small = small[small > 0]
        if small.size:
            labels[np.isin(labels, small)] = 0
    return relabel_consecutive(labels)


@dataclass
class DeriveReport:
    """Counts as the paper reports them (images, instances before/after)."""

    images: int = 0
    instances_before: int = 0
    instances_after: int = 0

    @property
    def kept_fraction(self) -> float:
        return self.instances_after / self.instances_before if self.instances_before else 1.0

    def __str__(self) -> str:
        return (
            f"{self.images} images, {self.instances_before} → {self.instances_after} instances "
            f"({100 * self.kept_fraction:.1f} % kept)"
        )


def derive(
    samples: Iterable[Sample],
    method: str,
    fraction: float,
    seed: int,
    report: DeriveReport,
    min_area: int = MIN_CROP_AREA,
) -> Iterator[Sample]:
    """Apply ``remove`` (keep ``fraction`` of instances) or ``crop`` (``fraction`` of the area)."""
    for sample in samples:
        if method == "remove":
            out = remove_instances(sample, fraction, seed)
        elif method == "crop":
            out = crop_sample(sample, fraction, seed, min_area=min_area)
        else:
            raise ValueError(f"unknown derivation {method!r}; expected 'remove' or 'crop'")
        report.images += 1
        report.instances_before += sample.n_instances
        report.instances_after += out.n_instances
        yield out
