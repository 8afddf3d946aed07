"""Metrics against training iteration, and the best checkpoint of a model (by mAP, as the paper)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from nuclei_pa.eval.folders import METRIC_COLUMNS


def learning_curve(summaries: Mapping[int, str | Path]) -> pd.DataFrame:
    """One row per checkpoint iteration from the evaluator's ``*.summary.csv`` files."""
    rows = []
    for iteration, path in sorted(summaries.items()):
        row = pd.read_csv(path).iloc[0].to_dict()
        rows.append({"iteration": int(iteration), **row})
    return pd.DataFrame(rows)


def best_checkpoint(curve: pd.DataFrame, metric: str = "map") -> pd.Series:
    """The row with the highest ``metric``; ties go to the earliest iteration (less training)."""
    if curve.empty:
        raise ValueError("no evaluated checkpoints")
    best = curve[metric].max()
    return curve[curve[metric] == best].sort_values("iteration").iloc[0]


def collect_best(curves: Mapping[str, pd.DataFrame], metric: str = "map") -> pd.DataFrame:
    """Table 1's body: each model's best checkpoint with every metric."""
    rows = []
    for model, curve in curves.items():
        best = best_checkpoint(curve, metric)
        rows.append(
            {
                "model": model,
                "iteration": int(best["iteration"]),
                **{m: float(best[m]) for m in METRIC_COLUMNS},
            }
        )
    return pd.DataFrame(rows)


def read_curves(models: list[str], paths: list[str | Path]) -> dict[str, pd.DataFrame]:
    """Learning-curve CSVs by model name, in the given order (the order of legends and rows)."""
    return {m: pd.read_csv(p) for m, p in zip(models, paths, strict=True)}


def read_reference(name: str, summary_paths: list[str | Path]) -> dict[str, dict[str, float]]:
    """A non-trained method's single evaluation summary (zero or one file) as a reference row."""
    if not summary_paths:
        return {}
    return {name: pd.read_csv(summary_paths[0]).iloc[0].to_dict()}
