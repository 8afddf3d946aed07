"""The paper's tables as DataFrames, written as CSV (for machines) and Markdown (for people)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
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

    ``reference`` adds rows for non-trained methods (e.g. the classical Otsu + watershed) whose
    single evaluation stands in for a best checkpoint.
    """
    rows = [best]
    if reference:
        rows.append(
            pd.DataFrame(
                [{"model": name, "iteration": np.nan, **vals} for name, vals in reference.items()]
            )
        )
    df = pd.concat(rows, ignore_index=True)
    df["iteration"] = df["iteration"].astype("Int64")
    return df[["model", "iteration", *TABLE1_COLUMNS]].rename(columns=TABLE1_COLUMNS)


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
    rows.append(pd.DataFrame([{"image": "mean (all)", **table[methods].mean()}]))
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
