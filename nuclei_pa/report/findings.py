"""The paper's claims (section III.B), checked one by one with their uncertainty.

Each claim becomes one or more comparisons between models on the same test images, each a ratio
or difference of mean metrics with a 95 % paired-bootstrap interval over test images (and over
seeds when there are several; :mod:`nuclei_pa.eval.bootstrap`). A comparison is PASS when its
whole interval lies on the claim's side of the threshold, FAIL when it lies wholly on the other,
INCONCLUSIVE when it straddles it; a claim fails if any of its comparisons fails and passes only
if all pass. The thresholds turn the paper's words into numbers ("much lower recall" = at most
0.7×, "comparable" = at least 0.9×, "does not degrade" = at least 0.95×, "equal or higher" = no
more than :data:`EQUAL_TOLERANCE` below) and are fixed here, before any run.

Models are judged at their *final* checkpoint, not their best one: the best checkpoint on the
test set is the one that got lucky on it (Table 1 still reports it, as the paper does).
Claim 6 reads the whole learning curve, resampled the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

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
    percentile_interval,
    point_mean,
    point_means,
    resample_means,
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
RISING_RHO = 0.5  # claim 6: Spearman correlation of recall with iteration at least this

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

    def __str__(self) -> str:
        ratio = self.kind == "ratio"
        value = self.interval.format(".2f" if ratio else "+.3f", "×" if ratio else "")
        detail = f"{self.detail}: " if self.detail else ""
        return f"{self.label}: {detail}{value} ({self.side} {self.threshold:g}: {self.verdict})"


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

    def values(self, role: str, metric: str) -> np.ndarray:
        return np.stack([f[metric].to_numpy(dtype=float) for f in self.final[role]])

    def compare(
        self, a: str, b: str, metric: str, kind: str, side: str, threshold: float
    ) -> Comparison:
        va, vb = self.values(a, metric), self.values(b, metric)
        interval = compare_means(va, vb, kind, N_RESAMPLES)
        sign = "/" if kind == "ratio" else "−"
        detail = f"{point_mean(va):.3f} vs {point_mean(vb):.3f}"
        return Comparison(
            f"{LABELS[metric]} {self.names[a]} {sign} {self.names[b]}",
            interval,
            side,
            threshold,
            judge(interval, side, threshold),
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
            "The recall of the pa model trained on partial annotations rises as training "
            "progresses.",
            f"R@0.5 of {pp} (mean over images and seeds) against iteration: last − first > 0 "
            f"and Spearman ρ ≥ {RISING_RHO}",
            rising_recall(runs[pp], pp),
        ),
    ]
    return out


def recall_by_iteration(runs: Sequence[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray]:
    """(iterations every seed evaluated, R@0.5 [seeds, iterations, images])."""
    common = sorted(set.intersection(*(set(r["iteration"]) for r in runs)))
    if not common:
        raise ValueError("the seeds share no evaluated checkpoint")
    stacks = []
    for run in runs:
        table = run.pivot(index="iteration", columns="image", values="recall_50")
        stacks.append(table.loc[common].sort_index(axis=1).to_numpy(dtype=float))
    return np.asarray(common), np.stack(stacks)


def rising_recall(runs: Sequence[pd.DataFrame], name: str) -> tuple[Comparison, Comparison]:
    """Claim 6's two quantities, the mean recall curve resampled as in the other claims:
    images with replacement (the same draw at every checkpoint), seeds with replacement."""
    iterations, recall = recall_by_iteration(runs)
    curves = resample_means([recall], N_RESAMPLES)[0]  # [resamples, iterations]
    observed = point_means(recall)  # [iterations]
    rho = _spearman_rows(np.vstack([observed, curves]), iterations)
    rho_iv = percentile_interval(float(rho[0]), rho[1:])
    gain_iv = percentile_interval(float(observed[-1] - observed[0]), curves[:, -1] - curves[:, 0])
    points = ", ".join(f"{int(i)}: {r:.3f}" for i, r in zip(iterations, observed, strict=True))
    return (
        Comparison(
            f"R@0.5 {name} last − first checkpoint",
            gain_iv,
            ">",
            0.0,
            judge(gain_iv, ">", 0.0),
            f"by iteration {points}",
        ),
        Comparison(
            f"Spearman ρ of R@0.5 {name} with iteration",
            rho_iv,
            ">=",
            RISING_RHO,
            judge(rho_iv, ">=", RISING_RHO),
            kind="value",
        ),
    )


def _spearman_rows(curves: np.ndarray, iterations: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row with ``iterations`` (distinct, so ranked 1..n); a flat row has
    ρ 0. Rounded so an exact rational value (e.g. 0.5 from 5 ranks) is not judged by
    floating-point noise."""
    n = curves.shape[1]
    if n < 2:
        return np.zeros(len(curves))
    x = rankdata(iterations) - (n + 1) / 2
    y = rankdata(curves, axis=1) - (n + 1) / 2
    denom = np.sqrt((x**2).sum() * (y**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, (y * x).sum(axis=1) / np.where(denom > 0, denom, 1), 0.0)
    return np.round(rho, 9)


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
                "test": f.test,
                "statement": f.statement,
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
    lines = [
        "# Findings: the paper's claims (section III.B) on this run",
        "",
        f"Of {len(findings)} claims: {verdict_counts(findings)}; {seed_text}. Each compared "
        f"quantity is shown with its {LEVEL:.0%} paired-bootstrap interval ({N_RESAMPLES} "
        "resamples): PASS when the whole interval is on the claim's side of its threshold, FAIL "
        "when it is wholly on the other side, INCONCLUSIVE when it straddles it. Models are "
        "taken at their final checkpoint (Table 1 shows the best-mAP one, as the paper), claim "
        "6 reads the whole learning curve. Models: "
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
