"""The paper's tables as DataFrames, written as CSV (for machines) and Markdown (for people)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

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


def table1(
    best: pd.DataFrame, reference: Mapping[str, Mapping[str, float]] | None = None
) -> pd.DataFrame:
    """Best mAP per model with the other metrics at that checkpoint (paper Table 1).

    ``best`` has one row per model and seed (:func:`~nuclei_pa.report.curves.collect_best`).
    With one seed a row is that checkpoint; with several, each metric is the mean over seeds,
    followed by a ``<metric> sd`` column, and ``iteration`` lists each seed's best checkpoint.
    ``reference`` adds rows for non-trained methods (e.g. the classical Otsu + watershed) whose
    single evaluation stands in for a best checkpoint.
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
        rows.append(row)
    for name, vals in (reference or {}).items():
        rows.append({"model": name, **{m: vals[m] for m in metrics}})
    df = pd.DataFrame(rows)
    if not several:
        df["iteration"] = df["iteration"].astype("Int64")
    renames = {**TABLE1_COLUMNS, **{f"{k} sd": f"{v} sd" for k, v in TABLE1_COLUMNS.items()}}
    order = ["model", *(["seeds"] if several else []), "iteration"]
    order += [c for m in metrics for c in (m, f"{m} sd") if c in df.columns]
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
    """Append a mean row per group and an overall mean row."""
    methods = [c for c in table.columns if c not in ("image", "group")]
    rows = [table]
    if "group" in table.columns:
        for group, sub in table.groupby("group", sort=False):
            rows.append(
                pd.DataFrame([{"image": f"mean ({group})", "group": group, **sub[methods].mean()}])
            )
    overall = {"group": "all"} if "group" in table.columns else {}  # not a blank NaN cell
    rows.append(pd.DataFrame([{"image": "mean (all)", **overall, **table[methods].mean()}]))
    return pd.concat(rows, ignore_index=True)


def wilcoxon_table(table: pd.DataFrame, ours: str, others: Sequence[str]) -> pd.DataFrame:
    """Paired two-sided Wilcoxon signed-rank test of ``ours`` against each other method."""
    rows = []
    for other in others:
        res = wilcoxon(table[ours], table[other])
        rows.append(
            {
                "method": ours,
                "versus": other,
                "n": res.n,
                "statistic": res.statistic,
                "p_value": res.p_value,
                "median_difference": res.median_difference,
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
    """Best mAP and AJI of each (fraction, variant) of the sweep, mean (and sd) over seeds.

    ``best`` is :func:`~nuclei_pa.report.curves.collect_best` of the sweep's models; ``runs``
    maps each model to its ``fraction`` and ``variant``.
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
