"""The paper's tables as DataFrames, written as CSV (for machines) and Markdown (for people)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nuclei_pa.eval.bootstrap import LEVEL, Interval, compare_means, mean_interval
from nuclei_pa.eval.stats import wilcoxon
from nuclei_pa.io.atomic import atomic_path

TABLE1_COLUMNS = {
    "map": "mAP",
    "aji": "AJI",
    "aji_kumar": "AJI (Kumar)",
    "ncs": "NCS",
    "precision_50": "P@0.5",
    "recall_50": "R@0.5",
}


#: Table 1's column for the paper's protocol: the best checkpoint picked on the test images.
BEST_ON_TEST = "best-on-test mAP (optimistic)"

#: Table 1's metrics shown with their bootstrap interval.
INTERVAL_METRICS = ("map", "aji")
CI = f"{LEVEL:.0%} CI"


def best_intervals(
    best: pd.DataFrame, runs: Mapping[str, Sequence[pd.DataFrame]]
) -> dict[str, dict[str, Interval]]:
    """Each model's :data:`INTERVAL_METRICS` at its best checkpoints (per seed, as in ``best``)
    with a bootstrap interval over test images and seeds (:mod:`nuclei_pa.eval.bootstrap`).

    ``runs`` holds each model's per-image metrics of every checkpoint, one frame per seed
    (:func:`~nuclei_pa.report.curves.read_runs`), in the seed order of ``best``.
    """
    out = {}
    for model, group in best.groupby("model", sort=False):
        at_best = [
            run[run["iteration"] == it].sort_values("image")
            for run, it in zip(runs[model], group["iteration"], strict=True)
        ]
        out[model] = {
            m: mean_interval([f[m].to_numpy(dtype=float) for f in at_best])
            for m in INTERVAL_METRICS
        }
    return out


def table1(
    best: pd.DataFrame,
    reference: Mapping[str, Mapping[str, float]] | None = None,
    intervals: Mapping[str, Mapping[str, Interval]] | None = None,
    curves: Mapping[str, Sequence[pd.DataFrame]] | None = None,
) -> pd.DataFrame:
    """Best mAP per model with the other metrics at that checkpoint (paper Table 1).

    ``best`` has one row per model and seed (:func:`~nuclei_pa.report.curves.collect_best`).
    With one seed a row is that checkpoint; with several, each metric is the mean over seeds,
    followed by a ``<metric> sd`` column, and ``iteration`` lists each seed's best checkpoint.
    ``reference`` adds rows for non-trained methods (e.g. the classical Otsu + watershed) whose
    single evaluation stands in for a best checkpoint. ``intervals`` (:func:`best_intervals`)
    adds a low and high column after mAP and AJI. A ``score_threshold`` column in ``best`` (a
    choice made on validation images, :func:`~nuclei_pa.report.curves.read_choices`) is shown.
    ``curves`` (each model's test learning curves, one per seed) adds the paper's protocol as a
    last column: the best test mAP over checkpoints (mean over seeds), optimistic by design.
    """
    metrics = list(TABLE1_COLUMNS)
    several = best.groupby("model")["seed"].nunique().max() > 1 if len(best) else False
    rows = []
    for model, group in best.groupby("model", sort=False):
        if several:
            row = {"model": model, "seeds": len(group)}
            row["iteration"] = "/".join(str(int(i)) for i in group["iteration"])
            for m in metrics:
                row[m] = group[m].mean()
                row[f"{m} sd"] = group[m].std(ddof=1) if len(group) > 1 else 0.0
        else:
            row = {"model": model, "iteration": int(group["iteration"].iloc[0])}
            row.update({m: float(group[m].iloc[0]) for m in metrics})
        if "score_threshold" in group:
            row["score threshold"] = "/".join(f"{t:g}" for t in group["score_threshold"])
        if curves is not None and model in curves:
            row[BEST_ON_TEST] = float(np.mean([c["map"].max() for c in curves[model]]))
        rows.append(row)
    for row in rows:
        for m, iv in (intervals or {}).get(row["model"], {}).items():
            row[f"{m} low"], row[f"{m} high"] = iv.low, iv.high
    for name, vals in (reference or {}).items():
        rows.append({"model": name, **{m: vals[m] for m in metrics}})
    df = pd.DataFrame(rows)
    if not several:
        df["iteration"] = df["iteration"].astype("Int64")
    renames = {}
    for key, label in TABLE1_COLUMNS.items():
        renames |= {key: label, f"{key} sd": f"{label} sd"}
        renames |= {f"{key} low": f"{label} {CI} low", f"{key} high": f"{label} {CI} high"}
    order = ["model", *(["seeds"] if several else []), "iteration"]
    order += [c for c in ("score threshold",) if c in df.columns]
    suffixes = ("", " sd", " low", " high")
    order += [c for m in metrics for c in (m + x for x in suffixes) if c in df.columns]
    order += [c for c in (BEST_ON_TEST,) if c in df.columns]
    return df[order].rename(columns=renames)


def table2(measurements: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Size and speed per model (paper Table 2) from the measurement rule's JSON records."""
    cols = {
        "parameters": "parameters",
        "train_s_per_iter": "training s/iter",
        "infer_s_per_image": "inference s/image",
        "peak_memory_mb": "peak memory (MB)",
        "device": "device",
    }
    df = pd.DataFrame(
        [{"model": m, **{k: v.get(k) for k in cols}} for m, v in measurements.items()]
    )
    return df.rename(columns=cols)


def per_image_comparison(
    per_image: Mapping[str, pd.DataFrame],
    metric: str = "aji",
    groups: Mapping[str, str] | None = None,
    published: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-image ``metric`` of each method side by side (paper Table 3's body).

    ``per_image`` maps a method to its evaluator CSV; ``published`` is a user CSV with an
    ``image`` column and one column per published method; ``groups`` maps image → group
    (e.g. same organ / unseen organ).
    """
    frames = [df.set_index("image")[metric].rename(name) for name, df in per_image.items()]
    table = pd.concat(frames, axis=1)
    if published is not None:
        pub = published.set_index("image")
        missing = sorted(set(table.index) - set(pub.index))
        if missing:
            raise ValueError(f"published values lack test image(s) {missing}")
        table = table.join(pub[[c for c in pub.columns if c not in table.columns]])
    if groups is not None:
        table.insert(0, "group", [groups.get(i, "") for i in table.index])
    return table.reset_index()


def add_group_means(table: pd.DataFrame) -> pd.DataFrame:
    """Append a mean row per group, an overall mean row, and the overall mean's bootstrap
    interval over images (two rows: low, high)."""
    methods = [c for c in table.columns if c not in ("image", "group")]
    rows = [table]
    if "group" in table.columns:
        for group, sub in table.groupby("group", sort=False):
            rows.append(
                pd.DataFrame([{"image": f"mean ({group})", "group": group, **sub[methods].mean()}])
            )
    overall = {"group": "all"} if "group" in table.columns else {}  # not a blank NaN cell
    rows.append(pd.DataFrame([{"image": "mean (all)", **overall, **table[methods].mean()}]))
    intervals = {m: mean_interval(table[m].to_numpy(dtype=float)) for m in methods}
    for end in ("low", "high"):
        values = {m: getattr(iv, end) for m, iv in intervals.items()}
        rows.append(pd.DataFrame([{"image": f"mean (all) {CI} {end}", **overall, **values}]))
    return pd.concat(rows, ignore_index=True)


def wilcoxon_table(table: pd.DataFrame, ours: str, others: Sequence[str]) -> pd.DataFrame:
    """Paired two-sided Wilcoxon signed-rank test of ``ours`` against each other method, with
    the mean difference and its paired bootstrap interval over images."""
    rows = []
    for other in others:
        res = wilcoxon(table[ours], table[other])
        diff = compare_means(table[ours].to_numpy(float), table[other].to_numpy(float))
        rows.append(
            {
                "method": ours,
                "versus": other,
                "n": res.n,
                "statistic": res.statistic,
                "p_value": res.p_value,
                "median_difference": res.median_difference,
                "mean_difference": diff.estimate,
                f"mean_difference {CI} low": diff.low,
                f"mean_difference {CI} high": diff.high,
            }
        )
    return pd.DataFrame(rows)


def write_table(
    df: pd.DataFrame,
    csv_path: str | Path,
    md_path: str | Path | None = None,
    title: str | None = None,
    footer: str | None = None,
) -> None:
    """CSV and (optionally) Markdown, both atomically; ``footer`` is Markdown appended below."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    if md_path is not None:
        text = (
            (f"## {title}\n\n" if title else "")
            + df.to_markdown(index=False, floatfmt=".4f")
            + "\n"
        )
        if footer:
            text += "\n" + footer.rstrip() + "\n"
        with atomic_path(md_path) as tmp:
            tmp.write_text(text)


def sweep_table(best: pd.DataFrame, runs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """mAP and AJI of each (fraction, variant) of the sweep, mean (and sd) over seeds.

    ``best`` has one row per model and seed at the checkpoint reported
    (:func:`~nuclei_pa.report.curves.read_choices`); ``runs`` maps each model to its
    ``fraction`` and ``variant``.
    """
    rows = []
    for run in runs:
        group = best[best["model"] == run["model"]]
        row = {"fraction": float(run["fraction"]), "variant": run["variant"]}
        for key, label in (("map", "mAP"), ("aji", "AJI"), ("recall_50", "R@0.5")):
            row[label] = group[key].mean()
            if len(group) > 1:
                row[f"{label} sd"] = group[key].std(ddof=1)
        row["model"] = run["model"]
        rows.append(row)
    return (
        pd.DataFrame(rows)
        .sort_values(["fraction", "variant"], ascending=[False, True])
        .reset_index(drop=True)
    )
