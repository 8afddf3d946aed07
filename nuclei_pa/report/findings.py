"""The paper's claims (section III.B), checked one by one with their uncertainty.

Each claim becomes one or more comparisons between models on the same test images, each a ratio
or difference of mean metrics with a 95 % paired-bootstrap interval over test images (and over
seeds when there are several; :mod:`nuclei_pa.eval.bootstrap`). A comparison is PASS when its
whole interval lies on the claim's side of the threshold, FAIL when it lies wholly on the other,
INCONCLUSIVE when it straddles it; a claim fails if any of its comparisons fails and passes only
if all pass.

Thresholds are readings of the paper's words, fixed here before any run; :data:`READINGS` keeps
each next to the sentence it reads, and the report prints both. Intervals are per comparison,
not adjusted for multiplicity: a claim's PASS needs every comparison to pass (an
intersection-union test, so a spurious PASS has at most the 2.5 % one-sided error of one
interval), while one failing comparison fails the claim, so a claim of k comparisons can FAIL
spuriously with chance up to k × 2.5 %; the six claims are verdicts of their own, not a family.

Below :data:`MIN_TEST_IMAGES` test images every verdict is INCONCLUSIVE: a percentile bootstrap
over few images is too narrow (a nominal 95 % interval of a mean covers about 74 % at 3 images,
90 % at 10, 92 % at 20; ``benchmarks/bootstrap_coverage.py``), and 3 images have only 10
distinct resamples.

Models are judged at their *final* checkpoint, not their best one: the best checkpoint on the
test set is the one that got lucky on it (Table 1 still reports it, as the paper does).
Claim 6 reads the whole learning curve, as a contrast with the partial baseline (see
:func:`curve_change`): every model that learns from scratch "rises", so only a rise the partial
baseline does not share can fail to appear.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nuclei_pa.eval.bootstrap import (
    FAIL,
    INCONCLUSIVE,
    LEVEL,
    N_RESAMPLES,
    PASS,
    Interval,
    combine,
    compare_means,
    judge,
    point_mean,
)
from nuclei_pa.io.atomic import atomic_path

# The five models the claims compare, by the part they play (paper names as examples).
ROLES = {
    "full_baseline": "DH100-baseline",
    "partial_baseline": "DH25-baseline",
    "crop_baseline": "DH25crop-baseline",
    "full_pa": "DH100-pa",
    "partial_pa": "DH25-pa",
}
RECALL_DROP = 0.7  # claim 1: partial-baseline recall at most this × full-baseline recall
PRECISION_KEPT = 0.85  # claim 1: "precision not greatly affected": at least this ×
COMPARABLE = 0.9  # claim 3: partial-pa mAP and AJI at least this × full-baseline
NO_DEGRADATION = 0.95  # claim 5: full-pa mAP at least this × full-baseline
EQUAL_TOLERANCE = 0.01  # claim 5: "equal or higher" recall/NCS: at most this much lower
MIN_TEST_IMAGES = 20  # fewer test images: every verdict INCONCLUSIVE (see the module docstring)

#: Each threshold next to the paper's words it reads (section III.B), for the report.
READINGS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (
        (
            "its detection recall is extremely low",
            f"R@0.5 at most {RECALL_DROP}× the full baseline's",
        ),
        (
            "its detection precision [...] is not greatly affected",
            f"P@0.5 at least {PRECISION_KEPT}× the full baseline's",
        ),
    ),
    2: (
        (
            "the baseline model works much better when trained on the cropped but fully "
            "annotated dataset",
            "crop baseline − partial baseline > 0 (mAP, AJI)",
        ),
        (
            "there is still a large performance gap",
            "full baseline − crop baseline > 0 (mAP, AJI); how large is not tested",
        ),
    ),
    3: (
        (
            "shows comparable performance to that of ‘DH100-baseline’",
            f"mAP and AJI at least {COMPARABLE}× the full baseline's",
        ),
    ),
    4: (
        (
            "consistently outperforms ‘DH25crop-baseline’ [...] in terms of both the mAP and AJI",
            "partial pa − crop baseline > 0 (mAP, AJI)",
        ),
    ),
    5: (
        (
            "it does not degrade the performance of the baseline framework",
            f"mAP at least {NO_DEGRADATION}× the full baseline's",
        ),
        (
            "a slightly superior performance in terms of the NCS and recall",
            f"R@0.5 and NCS at least the full baseline's − {EQUAL_TOLERANCE} "
            '("slightly" gives no size, so only "not lower" is tested)',
        ),
    ),
    6: (
        (
            "the recall rate (as well as the NCS) of ‘DH25-pa’ increases as the training "
            "progresses",
            "late − early change of the partial pa model minus that of the partial baseline "
            "> 0 (R@0.5, NCS); early / late = mean over the first / last half of the "
            "checkpoints",
        ),
    ),
}

LABELS = {
    "map": "mAP",
    "aji": "AJI",
    "aji_kumar": "AJI (Kumar)",
    "ncs": "NCS",
    "precision_50": "P@0.5",
    "recall_50": "R@0.5",
}


@dataclass(frozen=True)
class Comparison:
    """One measured quantity of a claim, its interval, the threshold and the verdict."""

    label: str  # e.g. "R@0.5 DH25-baseline / DH100-baseline"
    interval: Interval
    side: str
    threshold: float
    verdict: str
    detail: str = ""  # the compared means, for people
    kind: str = "difference"  # "ratio" prints as 0.93×, anything else as +0.123
    reason: str = ""  # why the verdict is INCONCLUSIVE whatever the interval, e.g. too few images

    def __str__(self) -> str:
        ratio = self.kind == "ratio"
        value = self.interval.format(".2f" if ratio else "+.3f", "×" if ratio else "")
        detail = f"{self.detail}: " if self.detail else ""
        reason = f", {self.reason}" if self.reason else ""
        return (
            f"{self.label}: {detail}{value} ({self.side} {self.threshold:g}: "
            f"{self.verdict}{reason})"
        )


@dataclass(frozen=True)
class Finding:
    """One claim: what the paper says, the comparisons made, and the verdict."""

    claim: int
    statement: str
    test: str
    comparisons: tuple[Comparison, ...]

    @property
    def verdict(self) -> str:
        return combine([c.verdict for c in self.comparisons])

    @property
    def measured(self) -> str:
        return "; ".join(str(c) for c in self.comparisons)


def too_few_images(n_images: int) -> str:
    """The reason a verdict cannot be given on ``n_images`` test images, or "" when it can."""
    if n_images < MIN_TEST_IMAGES:
        return f"too few test images (n={n_images} < {MIN_TEST_IMAGES})"
    return ""


def _comparison(
    label: str,
    interval: Interval,
    side: str,
    threshold: float,
    n_images: int,
    detail: str = "",
    kind: str = "difference",
) -> Comparison:
    """A comparison judged by its interval, unless there are too few test images to judge."""
    reason = too_few_images(n_images)
    verdict = INCONCLUSIVE if reason else judge(interval, side, threshold)
    return Comparison(label, interval, side, threshold, verdict, detail, kind, reason)


def final_per_image(run: pd.DataFrame) -> pd.DataFrame:
    """A run's per-image metrics at its last evaluated checkpoint, rows sorted by image."""
    if run.empty:
        raise ValueError("no evaluated checkpoints")
    last = run[run["iteration"] == run["iteration"].max()]
    return last.sort_values("image").reset_index(drop=True)


class _Runs:
    """Each role's per-image values at the final checkpoint, [seeds, images], images aligned."""

    def __init__(self, runs: Mapping[str, Sequence[pd.DataFrame]], names: Mapping[str, str]):
        self.names = names
        self.final = {role: [final_per_image(r) for r in runs[n]] for role, n in names.items()}
        images = {tuple(f["image"]) for finals in self.final.values() for f in finals}
        if len(images) != 1:
            raise ValueError("the compared models were not evaluated on the same test images")
        self.n_images = len(images.pop())

    def values(self, role: str, metric: str) -> np.ndarray:
        return np.stack([f[metric].to_numpy(dtype=float) for f in self.final[role]])

    def compare(
        self, a: str, b: str, metric: str, kind: str, side: str, threshold: float
    ) -> Comparison:
        va, vb = self.values(a, metric), self.values(b, metric)
        interval = compare_means(va, vb, kind, N_RESAMPLES)
        sign = "/" if kind == "ratio" else "−"
        detail = f"{point_mean(va):.3f} vs {point_mean(vb):.3f}"
        return _comparison(
            f"{LABELS[metric]} {self.names[a]} {sign} {self.names[b]}",
            interval,
            side,
            threshold,
            self.n_images,
            detail,
            kind,
        )


def check_claims(
    runs: Mapping[str, Sequence[pd.DataFrame]], roles: Mapping[str, str] | None = None
) -> list[Finding]:
    """Judge claims 1-6 from each model's per-image evaluations (one frame per seed).

    A run's frame has one row per (checkpoint ``iteration``, test ``image``) with the metrics of
    :data:`~nuclei_pa.eval.folders.METRIC_COLUMNS` (:func:`~nuclei_pa.report.curves.read_run`).
    ``roles`` maps a role of :data:`ROLES` to a model name in ``runs``; missing roles default to
    the paper's names.
    """
    names = {**ROLES, **(roles or {})}
    missing = sorted({n for n in names.values() if n not in runs})
    if missing:
        raise ValueError(f"findings need the evaluations of model(s) {missing}")
    m = _Runs(runs, names)
    fb, pb, cb, fp, pp = (names[r] for r in ROLES)
    out = [
        Finding(
            1,
            "The baseline trained on partial annotations has much lower recall than the one "
            "trained on full annotations, while its precision is not greatly affected.",
            f"R@0.5({pb}) ≤ {RECALL_DROP}× R@0.5({fb}); "
            f"P@0.5({pb}) ≥ {PRECISION_KEPT}× P@0.5({fb})",
            (
                m.compare(
                    "partial_baseline", "full_baseline", "recall_50", "ratio", "<=", RECALL_DROP
                ),
                m.compare(
                    "partial_baseline",
                    "full_baseline",
                    "precision_50",
                    "ratio",
                    ">=",
                    PRECISION_KEPT,
                ),
            ),
        ),
        Finding(
            2,
            "The baseline trained on fully annotated crops is better than the one trained on "
            "partial annotations, but below the one trained on full annotations.",
            f"mAP and AJI: {pb} < {cb} < {fb}",
            tuple(
                m.compare(a, b, metric, "difference", ">", 0.0)
                for metric in ("map", "aji")
                for a, b in (
                    ("crop_baseline", "partial_baseline"),
                    ("full_baseline", "crop_baseline"),
                )
            ),
        ),
        Finding(
            3,
            "The pa model trained on partial annotations performs comparably to the baseline "
            "trained on full annotations.",
            f"mAP and AJI of {pp} ≥ {COMPARABLE}× those of {fb}",
            tuple(
                m.compare("partial_pa", "full_baseline", metric, "ratio", ">=", COMPARABLE)
                for metric in ("map", "aji")
            ),
        ),
        Finding(
            4,
            "The pa model trained on partial annotations beats the baseline trained on fully "
            "annotated crops in both mAP and AJI.",
            f"mAP and AJI of {pp} > those of {cb}",
            tuple(
                m.compare("partial_pa", "crop_baseline", metric, "difference", ">", 0.0)
                for metric in ("map", "aji")
            ),
        ),
        Finding(
            5,
            "The pa module does not degrade the baseline on full annotations, with equal or "
            "higher recall and NCS.",
            f"mAP({fp}) ≥ {NO_DEGRADATION}× mAP({fb}); R@0.5 and NCS ≥ {fb}'s − {EQUAL_TOLERANCE}",
            (
                m.compare("full_pa", "full_baseline", "map", "ratio", ">=", NO_DEGRADATION),
                *(
                    m.compare(
                        "full_pa", "full_baseline", metric, "difference", ">=", -EQUAL_TOLERANCE
                    )
                    for metric in ("recall_50", "ncs")
                ),
            ),
        ),
        Finding(
            6,
            "The recall (as well as the NCS) of the pa model trained on partial annotations "
            "rises as training progresses, unlike the partial baseline's.",
            f"late − early change of R@0.5 and of NCS: {pp}'s − {pb}'s > 0 (early, late: mean "
            "over the first, last half of the checkpoints)",
            tuple(
                rising_contrast(runs[pp], runs[pb], pp, pb, metric, m.n_images)
                for metric in ("recall_50", "ncs")
            ),
        ),
    ]
    return out


def by_iteration(runs: Sequence[pd.DataFrame], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations every seed evaluated, ``metric`` [seeds, iterations, images])."""
    common = sorted(set.intersection(*(set(r["iteration"]) for r in runs)))
    if not common:
        raise ValueError("the seeds share no evaluated checkpoint")
    stacks = []
    for run in runs:
        table = run.pivot(index="iteration", columns="image", values=metric)
        stacks.append(table.loc[common].sort_index(axis=1).to_numpy(dtype=float))
    return np.asarray(common), np.stack(stacks)


def early_late(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(early, late) per seed and image, from values [seeds, iterations, images].

    Early is the mean over the first half of the checkpoints, late over the last half (the
    middle one of an odd count in neither): a trend over the whole curve, as the paper reads its
    Figure 4, that no single noisy evaluation decides. NaN with fewer than 2 checkpoints.
    """
    half = values.shape[1] // 2
    if half == 0:
        nan = np.full((values.shape[0], values.shape[2]), np.nan)
        return nan, nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an image NaN at every checkpoint
        return np.nanmean(values[:, :half], axis=1), np.nanmean(values[:, -half:], axis=1)


def curve_change(values: np.ndarray) -> np.ndarray:
    """Late − early (:func:`early_late`) per seed and image."""
    early, late = early_late(values)
    return late - early


def rising_contrast(
    pa_runs: Sequence[pd.DataFrame],
    baseline_runs: Sequence[pd.DataFrame],
    pa: str,
    baseline: str,
    metric: str,
    n_images: int,
) -> Comparison:
    """Claim 6 for one metric: the pa model's late − early change minus the baseline's, paired
    over test images (each image's change of one model against its change of the other) and
    resampled as every other comparison. Training from scratch, any model that learns rises
    early on; the contrast asks whether pa keeps finding nuclei the baseline learns to miss."""
    (it_pa, v_pa), (it_b, v_b) = by_iteration(pa_runs, metric), by_iteration(baseline_runs, metric)
    d_pa, d_b = curve_change(v_pa), curve_change(v_b)
    interval = compare_means(d_pa, d_b, "difference", N_RESAMPLES)  # NaN: < 2 checkpoints

    def course(name: str, iterations: np.ndarray, values: np.ndarray) -> str:
        if len(iterations) < 2:
            return f"{name} one checkpoint"
        early, late = (point_mean(v) for v in early_late(values))
        return f"{name} {early:.3f} → {late:.3f}"

    detail = f"{course(pa, it_pa, v_pa)} vs {course(baseline, it_b, v_b)}"
    return _comparison(
        f"{LABELS[metric]} late − early, {pa} − {baseline}", interval, ">", 0.0, n_images, detail
    )


def findings_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    """One row per compared quantity (machines, the reproducibility benchmark)."""
    return pd.DataFrame(
        [
            {
                "claim": f.claim,
                "result": f.verdict,
                "quantity": c.label,
                "estimate": c.interval.estimate,
                "ci_low": c.interval.low,
                "ci_high": c.interval.high,
                "side": c.side,
                "threshold": c.threshold,
                "verdict": c.verdict,
                "reason": c.reason,
                "test": f.test,
                "statement": f.statement,
                "paper": " / ".join(f'"{q}" → {reading}' for q, reading in READINGS[f.claim]),
            }
            for f in findings
            for c in f.comparisons
        ]
    )


def verdict_counts(findings: Sequence[Finding]) -> str:
    """E.g. "4 PASS, 2 INCONCLUSIVE, 0 FAIL"."""
    verdicts = [f.verdict for f in findings]
    return ", ".join(f"{verdicts.count(v)} {v}" for v in (PASS, INCONCLUSIVE, FAIL))


def findings_markdown(
    findings: Sequence[Finding], seeds: Sequence[int], roles: Mapping[str, str] | None = None
) -> str:
    """The report people read: a summary line, the claims' table, then the claims in words."""
    names = {**ROLES, **(roles or {})}
    seed_text = (
        f"seed {seeds[0]}; intervals resample the test images"
        if len(seeds) == 1
        else f"{len(seeds)} seeds ({', '.join(map(str, seeds))}); numbers are means over "
        "seeds and intervals resample the test images and the seeds"
    )
    reasons = sorted({c.reason for f in findings for c in f.comparisons if c.reason})
    caveat = f" Every verdict is INCONCLUSIVE: {'; '.join(reasons)}." if reasons else ""
    lines = [
        "# Findings: the paper's claims (section III.B) on this run",
        "",
        f"Of {len(findings)} claims: {verdict_counts(findings)}; {seed_text}.{caveat} Each "
        f"compared quantity is shown with its {LEVEL:.0%} paired-bootstrap interval "
        f"({N_RESAMPLES} resamples): PASS when the whole interval is on the claim's side of its "
        "threshold, FAIL when it is wholly on the other side, INCONCLUSIVE when it straddles "
        f"it, or when there are fewer than {MIN_TEST_IMAGES} test images. Models are taken at "
        "their final checkpoint (Table 1 shows the validation-chosen one); claim 6 "
        "compares learning curves. Models: "
        + ", ".join(f"{role.replace('_', ' ')} = {name}" for role, name in names.items())
        + ".",
        "",
        "| claim | result | test | measured: estimate [95 % interval] (threshold: verdict) |",
        "|---|---|---|---|",
    ]
    for f in findings:
        lines.append(f"| {f.claim} | {f.verdict} | {f.test} | {f.measured} |")
    lines += ["", "## Claims", ""]
    for f in findings:
        lines.append(f"{f.claim}. {f.statement} — **{f.verdict}**")
    lines += ["", "## The paper's words and the thresholds that read them", ""]
    for f in findings:
        for quote, reading in READINGS[f.claim]:
            lines.append(f'- claim {f.claim}: "{quote}" → {reading}')
    lines += [
        "",
        "## How to read the verdicts together",
        "",
        f"- Intervals are {LEVEL:.0%} per comparison, not adjusted for multiplicity. A claim "
        "passes only if all its comparisons pass, so a spurious PASS is as unlikely as for one "
        "comparison (2.5 %, one-sided); one failing comparison fails it, so a claim of k "
        "comparisons fails spuriously with chance up to k × 2.5 %. Each claim is a verdict of "
        "its own.",
        f"- Fewer than {MIN_TEST_IMAGES} test images: every verdict is INCONCLUSIVE (a "
        "percentile bootstrap over few images gives intervals that are too narrow: a nominal "
        "95 % interval covers about 74 % of the time at 3 images, 90 % at 10, 92 % at 20: "
        "benchmarks/bootstrap_coverage.py).",
        "- Claim 6: training from scratch, every model that learns gains recall early on, so "
        "the partial pa model's rise is compared with the partial baseline's; a rise both "
        "share does not count.",
    ]
    return "\n".join(lines) + "\n"


def write_findings(
    findings: Sequence[Finding],
    md_path: str | Path,
    csv_path: str | Path,
    seeds: Sequence[int],
    roles: Mapping[str, str] | None = None,
) -> None:
    with atomic_path(csv_path) as tmp:
        findings_frame(findings).to_csv(tmp, index=False)
    with atomic_path(md_path) as tmp:
        tmp.write_text(findings_markdown(findings, seeds, roles))
