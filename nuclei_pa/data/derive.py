"""The paper's partial-annotation derivations (Fig. 3): remove instances, or crop a fully
annotated sub-region; and, as users really annotate (issue 24), fully annotated ``regions``
inside the whole image. All are seeded per image by name, so a derived image does not change
when other images are added to or removed from the split.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from nuclei_pa.crops import MIN_CROP_AREA, is_sliver
from nuclei_pa.data.effort import parts
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
    # removing nuclei takes the completeness a region promised
    return Sample(
        sample.name, sample.image, relabel_consecutive(labels), dict(sample.meta), sample.ignore
    )


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
    ignore, region = (
        None if m is None else m[y0 : y0 + ch, x0 : x0 + cw].copy()
        for m in (sample.ignore, sample.region)
    )
    return Sample(sample.name, image, labels, meta, ignore, region)


def region_windows(
    shape: tuple[int, int], fraction: float, count: int, rng: np.random.Generator
) -> list[tuple[int, int, int, int]]:
    """``count`` rectangles (top, left, height, width) of the image's aspect ratio, each
    ``fraction / count`` of its area. Each is placed uniformly where it overlaps none placed
    before when such a place is found within 100 draws (so together they cover ``fraction``),
    else anywhere: overlapping regions merge, as a user's would."""
    h, w = shape
    side = np.sqrt(fraction / count)
    rh, rw = min(h, max(1, round(h * side))), min(w, max(1, round(w * side)))
    placed: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        for _try in range(100):
            y0, x0 = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
            if not any(
                y0 < py + ph and py < y0 + rh and x0 < px + pw and px < x0 + rw
                for py, px, ph, pw in placed
            ):
                break
        placed.append((y0, x0, rh, rw))
    return placed


def region_sample(
    sample: Sample,
    area_fraction: float,
    count: int,
    seed: int,
    outside_fraction: float = 0.0,
) -> Sample:
    """Regions as a careful annotator draws them: ``count`` random rectangles covering
    ``area_fraction`` of the image, inside which every nucleus is outlined, and a random
    ``outside_fraction`` of the nuclei elsewhere.

    A nucleus meeting a region is kept whole (an annotator outlines the whole of a nucleus the
    region's edge cuts); the image is unchanged and the regions become ``Sample.region``.
    """
    if not 0.0 < area_fraction <= 1.0:
        raise ValueError(f"area_fraction must be in (0, 1], got {area_fraction}")
    if count < 1:
        raise ValueError(f"count must be ≥ 1, got {count}")
    if not 0.0 <= outside_fraction <= 1.0:
        raise ValueError(f"outside_fraction must be in [0, 1], got {outside_fraction}")
    rng = _rng(seed, sample.name, "regions")
    region = np.zeros(sample.labels.shape, dtype=bool)
    windows = region_windows(sample.labels.shape, area_fraction, count, rng)
    for y0, x0, rh, rw in windows:
        region[y0 : y0 + rh, x0 : x0 + rw] = True
    inside = np.unique(sample.labels[region])
    inside = inside[inside > 0]
    others = np.unique(sample.labels)
    others = others[(others > 0) & ~np.isin(others, inside)]
    k = keep_count(others.size, outside_fraction)
    extra = rng.choice(others, size=k, replace=False) if k else others[:0]
    labels = np.where(np.isin(sample.labels, np.concatenate([inside, extra])), sample.labels, 0)
    meta = {**sample.meta, "regions_yxhw": [list(win) for win in windows]}
    return Sample(
        sample.name, sample.image, relabel_consecutive(labels), meta, sample.ignore, region
    )


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
    regions: int = 0  # fully annotated regions drawn (after overlapping ones merged)

    @property
    def kept_fraction(self) -> float:
        return self.instances_after / self.instances_before if self.instances_before else 1.0

    def __str__(self) -> str:
        text = (
            f"{self.images} images, {self.instances_before} → {self.instances_after} instances "
            f"({100 * self.kept_fraction:.1f} % kept)"
        )
        if self.regions:
            text += f", {self.regions} fully annotated regions"
        return text


def derive(
    samples: Iterable[Sample],
    method: str,
    fraction: float,
    seed: int,
    report: DeriveReport,
    min_area: int = MIN_CROP_AREA,
    count: int = 1,
    outside_fraction: float = 0.0,
) -> Iterator[Sample]:
    """Apply ``remove`` (keep ``fraction`` of instances), ``crop`` (``fraction`` of the area)
    or ``regions`` (``count`` regions covering ``fraction`` of the area, fully annotated, plus
    ``outside_fraction`` of the nuclei elsewhere)."""
    for sample in samples:
        if method == "remove":
            out = remove_instances(sample, fraction, seed)
        elif method == "crop":
            out = crop_sample(sample, fraction, seed, min_area=min_area)
        elif method == "regions":
            out = region_sample(sample, fraction, count, seed, outside_fraction)
        else:
            raise ValueError(
                f"unknown derivation {method!r}; expected 'remove', 'crop' or 'regions'"
            )
        report.images += 1
        report.instances_before += sample.n_instances
        report.instances_after += out.n_instances
        if out.region is not None and method == "regions":
            report.regions += parts(out.region)
        yield out
