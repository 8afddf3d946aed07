"""The paper's claims (section III.B), checked one by one against the learning curves.

Each claim becomes a measured comparison with a PASS/FAIL verdict. The thresholds turn the
paper's words into numbers ("much lower recall" = at most 0.7×, "comparable" = at least 0.9×,
"does not degrade" = at least 0.95×, "equal or higher" = no more than :data:`EQUAL_TOLERANCE`
below); they are fixed here, before any run, so a report cannot be tuned to pass. With several
seeds a claim is judged on the mean over seeds, and every number is shown with its spread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from nuclei_pa.eval.folders import METRIC_COLUMNS
from nuclei_pa.io.atomic import atomic_path
from nuclei_pa.report.curves import best_checkpoint

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
    "ncs": "NCS",
    "precision_50": "P@0.5",
    "recall_50": "R@0.5",
}


@dataclass(frozen=True)
class Finding:
    """One claim: what the paper says, the comparison made, the numbers, and the verdict."""

    claim: int
    statement: str
    test: str
    measured: str
    passed: bool


class Stat:
    """A metric over seeds: its mean, which claims are judged on, and its spread."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = np.asarray(values, dtype=float)
        self.mean = float(self.values.mean())
        self.sd = float(self.values.std(ddof=1)) if len(self.values) > 1 else 0.0

    def __str__(self) -> str:
        if len(self.values) == 1:
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} ± {self.sd:.3f}"


def best_per_seed(curves: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Each seed's best-mAP checkpoint (one row per seed), as Table 1 picks it."""
    return pd.DataFrame([best_checkpoint(c) for c in curves]).reset_index(drop=True)


def check_claims(
    curves: Mapping[str, Sequence[pd.DataFrame]], roles: Mapping[str, str] | None = None
) -> list[Finding]:
    """Judge claims 1-6 from each model's learning curves (one per seed).

    ``roles`` maps a role of :data:`ROLES` to a model name in ``curves``; missing roles default
    to the paper's names.
    """
    names = {**ROLES, **(roles or {})}
    missing = sorted({n for n in names.values() if n not in curves})
    if missing:
        raise ValueError(f"findings need the learning curves of model(s) {missing}")
    best = {role: best_per_seed(curves[name]) for role, name in names.items()}

    def stat(role: str, metric: str) -> Stat:
        return Stat(best[role][metric])

    def compare(
        role_a: str,
        role_b: str,
        metrics: Sequence[str],
        holds: Callable[[float, float], bool],
        as_ratio: bool = False,
    ) -> tuple[list[str], bool]:
        """``role_a`` against ``role_b`` on each metric (means), shown as a ratio or difference."""
        parts, ok = [], True
        for metric in metrics:
            a, b = stat(role_a, metric), stat(role_b, metric)
            gap = _ratio(a, b) if as_ratio else f"{a.mean - b.mean:+.3f}"
            parts.append(f"{LABELS[metric]} {a} vs {b} ({gap})")
            ok = ok and holds(a.mean, b.mean)
        return parts, ok

    fb, pb, cb = names["full_baseline"], names["partial_baseline"], names["crop_baseline"]
    fp, pp = names["full_pa"], names["partial_pa"]
    out = []

    r_pb, r_fb = stat("partial_baseline", "recall_50"), stat("full_baseline", "recall_50")
    p_pb, p_fb = stat("partial_baseline", "precision_50"), stat("full_baseline", "precision_50")
    out.append(
        Finding(
            1,
            "The baseline trained on partial annotations has much lower recall than the one "
            "trained on full annotations, while its precision is not greatly affected.",
            f"R@0.5({pb}) ≤ {RECALL_DROP}× R@0.5({fb}); "
            f"P@0.5({pb}) ≥ {PRECISION_KEPT}× P@0.5({fb})",
            f"R@0.5 {r_pb} vs {r_fb} ({_ratio(r_pb, r_fb)}); "
            f"P@0.5 {p_pb} vs {p_fb} ({_ratio(p_pb, p_fb)})",
            r_pb.mean <= RECALL_DROP * r_fb.mean and p_pb.mean >= PRECISION_KEPT * p_fb.mean,
        )
    )

    parts, ok = [], True
    for metric in ("map", "aji"):
        lo, mid, hi = (
            stat(r, metric) for r in ("partial_baseline", "crop_baseline", "full_baseline")
        )
        parts.append(f"{LABELS[metric]} {lo} < {mid} < {hi}")
        ok &= lo.mean < mid.mean < hi.mean
    out.append(
        Finding(
            2,
            "The baseline trained on fully annotated crops is better than the one trained on "
            "partial annotations, but below the one trained on full annotations.",
            f"mAP and AJI: {pb} < {cb} < {fb}",
            "; ".join(parts),
            ok,
        )
    )

    parts, ok = compare(
        "partial_pa", "full_baseline", ("map", "aji"), lambda a, b: a >= COMPARABLE * b, True
    )
    out.append(
        Finding(
            3,
            "The pa model trained on partial annotations performs comparably to the baseline "
            "trained on full annotations.",
            f"mAP and AJI of {pp} ≥ {COMPARABLE}× those of {fb}",
            "; ".join(parts),
            ok,
        )
    )

    parts, ok = compare("partial_pa", "crop_baseline", ("map", "aji"), lambda a, b: a > b)
    out.append(
        Finding(
            4,
            "The pa model trained on partial annotations beats the baseline trained on fully "
            "annotated crops in both mAP and AJI.",
            f"mAP and AJI of {pp} > those of {cb}",
            "; ".join(parts),
            ok,
        )
    )

    parts, ok = compare(
        "full_pa", "full_baseline", ("map",), lambda a, b: a >= NO_DEGRADATION * b, True
    )
    more, also = compare(
        "full_pa", "full_baseline", ("recall_50", "ncs"), lambda a, b: a >= b - EQUAL_TOLERANCE
    )
    parts, ok = parts + more, ok and also
    out.append(
        Finding(
            5,
            "The pa module does not degrade the baseline on full annotations, with equal or "
            "higher recall and NCS.",
            f"mAP({fp}) ≥ {NO_DEGRADATION}× mAP({fb}); R@0.5 and NCS ≥ {fb}'s − {EQUAL_TOLERANCE}",
            "; ".join(parts),
            ok,
        )
    )

    curve = mean_curve(curves[pp])
    rho = _spearman(curve["iteration"], curve["recall_50"])
    first, last = curve["recall_50"].iloc[0], curve["recall_50"].iloc[-1]
    points = ", ".join(
        f"{int(i)}: {r:.3f}" for i, r in zip(curve["iteration"], curve["recall_50"], strict=True)
    )
    out.append(
        Finding(
            6,
            "The recall of the pa model trained on partial annotations rises as training "
            "progresses.",
            f"R@0.5 of {pp} (mean over seeds) against iteration: last > first and Spearman "
            f"ρ ≥ {RISING_RHO}",
            f"R@0.5 by iteration {points}; ρ = {rho:.2f}",
            bool(last > first and rho >= RISING_RHO),
        )
    )
    return out


def mean_curve(curves: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Metrics averaged over seeds at each iteration every seed evaluated."""
    stacked = pd.concat(curves, ignore_index=True)
    counts = stacked.groupby("iteration")["map"].transform("size")
    common = stacked[counts == len(curves)]
    return common.groupby("iteration", as_index=False)[METRIC_COLUMNS].mean()


def _ratio(a: Stat, b: Stat) -> str:
    return f"{a.mean / b.mean:.2f}×" if b.mean > 0 else "n/a"


def _spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's ρ, rounded so that an exact rational value (e.g. 0.5 from 5 ranks) is not
    judged by floating-point noise (scipy gives 0.49999999999999994 for it)."""
    if len(x) < 2 or y.nunique() < 2:
        return 0.0
    return round(float(spearmanr(x, y).statistic), 9)


def findings_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim": f.claim,
                "statement": f.statement,
                "test": f.test,
                "measured": f.measured,
                "result": "PASS" if f.passed else "FAIL",
            }
            for f in findings
        ]
    )


def findings_markdown(
    findings: Sequence[Finding], seeds: Sequence[int], roles: Mapping[str, str] | None = None
) -> str:
    """The report people read: a summary line, then one section per claim."""
    names = {**ROLES, **(roles or {})}
    passed = sum(f.passed for f in findings)
    seed_text = (
        f"seed {seeds[0]}"
        if len(seeds) == 1
        else f"{len(seeds)} seeds ({', '.join(map(str, seeds))}); numbers are mean ± sd over "
        "seeds and claims are judged on the mean"
    )
    lines = [
        "# Findings: the paper's claims (section III.B) on this run",
        "",
        f"{passed} of {len(findings)} claims hold; {seed_text}. Each model is taken at its "
        "best-mAP checkpoint (as Table 1), except claim 6, which reads the whole learning "
        "curve. Models: "
        + ", ".join(f"{role.replace('_', ' ')} = {name}" for role, name in names.items())
        + ".",
        "",
        "| claim | result | test | measured |",
        "|---|---|---|---|",
    ]
    for f in findings:
        lines.append(f"| {f.claim} | {'PASS' if f.passed else 'FAIL'} | {f.test} | {f.measured} |")
    lines += ["", "## Claims", ""]
    for f in findings:
        lines.append(f"{f.claim}. {f.statement} — **{'PASS' if f.passed else 'FAIL'}**")
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
