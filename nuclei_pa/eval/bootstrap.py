"""Confidence intervals by a paired bootstrap over test images (and seeds, when several).

A model's quality is a mean over test images, and which images happen to be in the test set moves
it as much as anything a model change does. Resampling *images* (never nuclei: the nuclei of one
image share its staining, focus and density, so they are not independent) shows how much. Two
models compared on the same test set are resampled with the same image draw, so an image that is
hard for both does not widen the interval of their difference. Different seeds of a model are
independent training runs: each model's seeds are resampled on their own.

Percentile intervals are too narrow over few images (3 images have 10 distinct resamples; a
nominal 95 % interval of a mean covers about 74 % at 3 images, 92 % at 20:
``benchmarks/bootstrap_coverage.py``), so the findings give no verdict below
:data:`nuclei_pa.report.findings.MIN_TEST_IMAGES` test images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "LEVEL",
    "N_RESAMPLES",
    "PASS",
    "Interval",
    "combine",
    "compare_means",
    "judge",
    "mean_interval",
    "percentile_interval",
    "point_mean",
    "point_means",
    "resample_means",
]

N_RESAMPLES = 2000
LEVEL = 0.95  # two-sided: the 2.5th and 97.5th percentiles of the replicates
PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
SIDES = (">=", ">", "<=", "<")


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float

    def format(self, spec: str = ".3f", suffix: str = "") -> str:
        return (
            f"{self.estimate:{spec}}{suffix} [{self.low:{spec}}, {self.high:{spec}}]"
            if np.isfinite(self.estimate)
            else "n/a"
        )

    def __str__(self) -> str:
        return self.format()


def _as_runs(values: np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
    """Per-image values as [seeds, ..., images] (a single run may be given as 1-D)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim < 2 or min(arr.shape) < 1:
        raise ValueError(f"expected per-image values [seeds, images], got shape {arr.shape}")
    return arr


def _means(arr: np.ndarray) -> np.ndarray:
    """NaN-ignoring mean over the last axis; all-NaN rows give NaN without a warning."""
    count = np.sum(~np.isnan(arr), axis=-1)
    total = np.nansum(arr, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def point_means(values: np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
    """The estimate itself: mean over seeds of each seed's mean over images, for every entry
    of the axes between seeds and images (e.g. one per checkpoint of a learning curve)."""
    return _means(_as_runs(values)).mean(axis=0)


def point_mean(values: np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> float:
    """:func:`point_means` of per-image values [seeds, images]: one number."""
    return float(point_means(values))


def resample_means(
    per_image: Sequence[np.ndarray | Sequence[float] | Sequence[Sequence[float]]],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap replicates of each model's mean, [models, n_resamples, ...].

    ``per_image[k]`` is model k's values [seeds, ..., images] (1-D for one seed), the images in
    the same order for every model; axes in between (e.g. checkpoints) are carried along, every
    one resampled with the same draw. Each replicate draws the images with replacement, the same
    draw for every model (paired), and each model's seeds with replacement, separately per
    model. Images whose value is NaN (a metric undefined there) are left out of that mean.
    """
    runs = [_as_runs(v) for v in per_image]
    n_images = {r.shape[-1] for r in runs}
    if len(n_images) != 1:
        raise ValueError(f"paired models need the same test images, got {sorted(n_images)} images")
    rng = np.random.default_rng(seed)
    n = n_images.pop()
    images = rng.integers(0, n, size=(n_resamples, n))
    out = []
    for run in runs:
        by_seed = np.moveaxis(_means(np.take(run, images, axis=-1)), -1, 1)  # [seeds, R, ...]
        seeds = rng.integers(0, run.shape[0], size=(n_resamples, run.shape[0]))
        out.append(by_seed[seeds, np.arange(n_resamples)[:, None]].mean(axis=1))
    return np.stack(out)


def percentile_interval(estimate: float, replicates: np.ndarray, level: float = LEVEL) -> Interval:
    """``estimate`` with the central ``level`` of its (finite) bootstrap ``replicates``."""
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(estimate) or finite.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


def mean_interval(
    values: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """One model's mean over test images (and seeds) with its bootstrap interval."""
    return percentile_interval(point_mean(values), resample_means([values], n_resamples, seed)[0])


def compare_means(
    a: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    b: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    kind: str = "difference",
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Model a's mean against model b's on the same test images: ``difference`` (a − b) or
    ``ratio`` (a / b; NaN where b's mean is 0), with its paired bootstrap interval."""
    if kind not in ("difference", "ratio"):
        raise ValueError(f"kind must be 'difference' or 'ratio', not {kind!r}")
    ma, mb = point_mean(a), point_mean(b)
    ra, rb = resample_means([a, b], n_resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "difference":
            return percentile_interval(ma - mb, ra - rb)
        estimate = ma / mb if mb != 0 else float("nan")
        return percentile_interval(
            estimate, np.where(rb != 0, ra / np.where(rb != 0, rb, 1), np.nan)
        )


def judge(interval: Interval, side: str, threshold: float) -> str:
    """PASS when the whole interval satisfies ``value <side> threshold``, FAIL when none of it
    does, INCONCLUSIVE when it straddles the threshold (or is undefined)."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, not {side!r}")
    if not (np.isfinite(interval.low) and np.isfinite(interval.high)):
        return INCONCLUSIVE
    holds = {
        ">=": lambda v: v >= threshold,
        ">": lambda v: v > threshold,
        "<=": lambda v: v <= threshold,
        "<": lambda v: v < threshold,
    }[side]
    low_ok, high_ok = holds(interval.low), holds(interval.high)
    if low_ok and high_ok:
        return PASS
    if not low_ok and not high_ok:
        return FAIL
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A claim made of several comparisons: FAIL if any fails, PASS if all pass."""
    if FAIL in verdicts:
        return FAIL
    return PASS if all(v == PASS for v in verdicts) else INCONCLUSIVE
