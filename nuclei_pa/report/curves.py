"""Metrics against training iteration, and the best checkpoint of a model (by mAP, as the paper)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from nuclei_pa.eval.folders import METRIC_COLUMNS, read_checkpoint_csvs


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


def collect_best(curves: Mapping[str, Sequence[pd.DataFrame]], metric: str = "map") -> pd.DataFrame:
    """Table 1's body: each model's best checkpoint with every metric, one row per seed."""
    rows = []
    for model, seed_curves in curves.items():
        for seed, curve in enumerate(seed_curves):
            best = best_checkpoint(curve, metric)
            rows.append(
                {
                    "model": model,
                    "seed": seed,
                    "iteration": int(best["iteration"]),
                    **{m: float(best[m]) for m in METRIC_COLUMNS},
                }
            )
    return pd.DataFrame(rows)


def read_curves(
    models: Sequence[str], paths: Sequence[str | Path], n_seeds: int = 1
) -> dict[str, list[pd.DataFrame]]:
    """Learning-curve CSVs by model name, in the given order (the order of legends and rows).

    ``paths`` holds ``n_seeds`` curves per model, model after model (the workflow's order).
    """
    return _by_model(models, paths, n_seeds, pd.read_csv)


def read_runs(
    models: Sequence[str], folders: Sequence[str | Path], n_seeds: int = 1
) -> dict[str, list[pd.DataFrame]]:
    """Every checkpoint's per-image metrics (:func:`~nuclei_pa.eval.folders.read_checkpoint_csvs`)
    by model name, from evaluation folders ordered as in :func:`read_curves`."""
    return _by_model(models, folders, n_seeds, read_checkpoint_csvs)


def _by_model(
    models: Sequence[str],
    paths: Sequence[str | Path],
    n_seeds: int,
    read: Callable[[str | Path], pd.DataFrame],
) -> dict[str, list[pd.DataFrame]]:
    if len(paths) != len(models) * n_seeds:
        raise ValueError(f"expected {n_seeds} file(s) for each of {len(models)} models")
    return {
        m: [read(p) for p in paths[k * n_seeds : (k + 1) * n_seeds]] for k, m in enumerate(models)
    }


def first_seed(curves: Mapping[str, Sequence[pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The first seed's curve of each model (figures that show one trained network)."""
    return {m: c[0] for m, c in curves.items()}


def read_reference(name: str, summary_paths: list[str | Path]) -> dict[str, dict[str, float]]:
    """A non-trained method's single evaluation summary (zero or one file) as a reference row."""
    if not summary_paths:
        return {}
    return {name: pd.read_csv(summary_paths[0]).iloc[0].to_dict()}


def mean_over_seeds(per_image: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-image metrics averaged over seeds (each seed at its own best checkpoint)."""
    if len(per_image) == 1:
        return per_image[0]
    return pd.concat(per_image).groupby("image", as_index=False, sort=False).mean(numeric_only=True)


def read_choices(
    models: Sequence[str],
    chosen: Sequence[str | Path],
    tests: Sequence[str | Path],
    n_seeds: int = 1,
) -> tuple[pd.DataFrame, dict[str, list[pd.DataFrame]]]:
    """What the tables report: each run's choice (``chosen.json``) with its test metrics
    (``chosen_test.csv``), ordered as in :func:`read_curves`.

    Returns one row per model and seed (``model``, ``seed``, ``iteration``, ``score_threshold``,
    ``chosen_on`` and the mean of every metric over test images: the frame
    :func:`~nuclei_pa.report.tables.table1` takes) and each run's per-image metrics with an
    ``iteration`` column (what :func:`~nuclei_pa.report.tables.best_intervals` resamples).
    """
    from nuclei_pa.io.jsonfile import read_json

    choices = _by_model(models, chosen, n_seeds, read_json)
    per_image = _by_model(models, tests, n_seeds, pd.read_csv)
    rows, runs = [], {}
    for model in models:
        runs[model] = []
        for seed, (c, frame) in enumerate(zip(choices[model], per_image[model], strict=True)):
            rows.append(
                {
                    "model": model,
                    "seed": seed,
                    "iteration": int(c["iteration"]),
                    "score_threshold": float(c["score_threshold"]),
                    "chosen_on": str(c["chosen_on"]),
                    **{m: float(frame[m].mean()) for m in METRIC_COLUMNS},
                }
            )
            runs[model].append(frame.assign(iteration=int(c["iteration"])))
    return pd.DataFrame(rows), runs
