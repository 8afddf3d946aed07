"""The sparse-label experiment at equal annotation effort (issue 24): which way of spending an
annotator's time gives the best model per unit of effort.

Each *arm* is a way of annotating the training images ("25 % of the nuclei at random",
"regions covering part of the area", a mix), configured as ``report.effort.arms``: an arm label
and its models, pa and baseline, one per dataset. A model's effort is its training set's, in
:mod:`nuclei_pa.data.effort`'s units (1 per outlined nucleus, ``region_cost`` per region
boundary), as the derivation recorded it in the split's ``annotations.json``.

For every model the table gives the test mAP and AJI at its validation-chosen checkpoint and
score threshold (:func:`~nuclei_pa.report.curves.read_choices`) with a 95 % bootstrap interval
over test images (and seeds), the same metrics per 1000 effort units, and the difference of the
per-effort metric from the reference arm's model of the same dataset and variant, with a paired
bootstrap interval over the same test images. :func:`effort_reading` states, for every dataset
and variant, which arm gives the most per unit and whether its interval says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nuclei_pa.data.effort import REGION_COST, effort_of
from nuclei_pa.eval.bootstrap import Interval, compare_means, mean_interval
from nuclei_pa.io.atomic import atomic_path

__all__ = [
    "PER",
    "effort_figure",
    "effort_markdown",
    "effort_reading",
    "effort_table",
    "trainset_effort",
    "write_effort",
]

#: The per-effort columns are per this many effort units.
PER = 1000
METRICS = {"map": "mAP", "aji": "AJI"}


def trainset_effort(folder: str | Path, region_cost: float = REGION_COST) -> dict[str, float]:
    """A training set's effort: ``units`` (at ``region_cost`` per region), ``nuclei``, ``regions``.

    A derived split (``trainsets/<name>/seed<N>``) records its effort in the ``info`` of its
    ``annotations.json``; a dataset folder used as it is (its ``train`` split) is counted here.
    """
    folder = Path(folder)
    doc = folder / "annotations.json"
    info = json.loads(doc.read_text()).get("info", {}) if doc.is_file() else {}
    if "effort_units" in info:
        regions = int(info.get("effort_regions", 0))
        units = float(info["effort_units"]) + (region_cost - REGION_COST) * regions
        return {"units": units, "nuclei": int(info["effort_nuclei"]), "regions": regions}
    from nuclei_pa.io.dataset import read_split

    split = folder / "train" if (folder / "train" / "annotations.json").is_file() else folder
    effort = effort_of(read_split(split))
    return {
        "units": effort.units(region_cost),
        "nuclei": effort.nuclei,
        "regions": effort.regions,
    }


def _per_image(runs: Sequence[pd.DataFrame], metric: str, scale: Sequence[float]) -> list:
    """Each seed's per-image values of ``metric`` (images in name order), times its ``scale``."""
    return [
        run.sort_values("image")[metric].to_numpy(dtype=float) * s
        for run, s in zip(runs, scale, strict=True)
    ]


def effort_table(
    arms: Mapping[str, Sequence[str]],
    models: Mapping[str, Mapping[str, str]],
    chosen: pd.DataFrame,
    runs: Mapping[str, Sequence[pd.DataFrame]],
    efforts: Mapping[str, Sequence[Mapping[str, float]]],
    reference: str | None = None,
) -> pd.DataFrame:
    """One row per model (dataset by dataset, variant by variant, the arms in their order):
    arm, dataset, variant, effort, mAP and AJI with their intervals, both
    per :data:`PER` effort units, and the per-effort difference from the reference arm.

    ``models`` gives each model's ``dataset`` (the one it is tested on) and ``variant``;
    ``chosen`` and ``runs`` are :func:`~nuclei_pa.report.curves.read_choices`'s (one row and
    one per-image frame per seed); ``efforts`` each model's :func:`trainset_effort` per seed, in
    the same seed order. ``reference`` (default: the first arm) is the arm compared with; the
    difference is left empty where the reference arm has no model of that dataset and variant.
    """
    reference = reference or next(iter(arms))
    by_key = {
        (arm, models[m]["dataset"], models[m]["variant"]): m for arm, ms in arms.items() for m in ms
    }
    rows = []
    for (arm, dataset, variant), model in by_key.items():
        seeds = chosen[chosen["model"] == model]
        units = [float(e["units"]) for e in efforts[model]]
        scale = [PER / u if u > 0 else float("nan") for u in units]
        row: dict[str, object] = {
            "arm": arm,
            "dataset": dataset,
            "variant": variant,
            "model": model,
            "effort units": float(np.mean(units)),
            "nuclei": float(np.mean([e["nuclei"] for e in efforts[model]])),
            "regions": float(np.mean([e["regions"] for e in efforts[model]])),
            "iteration": "/".join(str(int(i)) for i in seeds["iteration"]),
            "score threshold": "/".join(f"{t:g}" for t in seeds["score_threshold"]),
        }
        ref = by_key.get((reference, dataset, variant))
        for key, label in METRICS.items():
            iv = mean_interval(_per_image(runs[model], key, [1.0] * len(units)))
            per = mean_interval(_per_image(runs[model], key, scale))
            row |= {label: iv.estimate, f"{label} low": iv.low, f"{label} high": iv.high}
            row |= {
                f"{label} per {PER} units": per.estimate,
                f"{label} per {PER} units low": per.low,
                f"{label} per {PER} units high": per.high,
            }
            diff = Interval(float("nan"), float("nan"), float("nan"))
            if ref is not None and ref != model:
                ref_units = [float(e["units"]) for e in efforts[ref]]
                diff = compare_means(
                    _per_image(runs[model], key, scale),
                    _per_image(runs[ref], key, [PER / u for u in ref_units]),
                )
            elif ref == model:
                diff = Interval(0.0, 0.0, 0.0)
            row |= {
                f"Δ {label} per {PER} units": diff.estimate,
                f"Δ {label} per {PER} units low": diff.low,
                f"Δ {label} per {PER} units high": diff.high,
            }
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {c: list(dict.fromkeys(table[c])) for c in ("dataset", "variant", "arm")}
    table = table.sort_values(
        list(order), key=lambda col: col.map(order[col.name].index), kind="stable"
    ).reset_index(drop=True)  # dataset by dataset, variant by variant: the arms side by side
    table.attrs["reference"] = reference
    return table


def _fmt(row: pd.Series, label: str, spec: str = ".3f", sign: bool = False) -> str:
    est, low, high = row[label], row[f"{label} low"], row[f"{label} high"]
    if not np.isfinite(est):
        return "—"
    s = "+" if sign else ""
    return f"{est:{s}{spec}} [{low:{s}{spec}}, {high:{s}{spec}}]"


def _delta(row: pd.Series, label: str, reference: str) -> str:
    """A Markdown cell: the per-effort difference from the reference arm, or that it is it."""
    if row["arm"] == reference:
        return "(reference)"
    return _fmt(row, f"Δ {label} per {PER} units", sign=True)


def effort_reading(table: pd.DataFrame) -> list[str]:
    """One sentence per dataset and variant: the arm with the highest mAP per effort unit, and
    whether the paired interval of its difference from the reference arm excludes zero."""
    reference = table.attrs.get("reference") or (table["arm"].iloc[0] if len(table) else "")
    per, delta = f"mAP per {PER} units", f"Δ mAP per {PER} units"
    lines = []
    for (dataset, variant), group in table.groupby(["dataset", "variant"], sort=False):
        best = group.loc[group[per].idxmax()]
        text = (
            f"{dataset}, {variant}: most mAP per effort unit from '{best['arm']}' "
            f"({best[per]:.3f} per {PER} units; mAP {_fmt(best, 'mAP')})"
        )
        for _, row in group.iterrows():
            if row["arm"] == reference or not np.isfinite(row[delta]):
                continue
            low, high = row[f"{delta} low"], row[f"{delta} high"]
            verdict = "excludes 0" if low > 0 or high < 0 else "includes 0"
            text += f"; '{row['arm']}' − '{reference}': {_fmt(row, delta, sign=True)} ({verdict})"
        lines.append(text)
    return lines


def effort_markdown(table: pd.DataFrame, region_cost: float = REGION_COST) -> str:
    """The table for people: one interval per cell, the reading below it."""
    reference = table.attrs.get("reference", "")
    per = f"per {PER} units"
    rows = [r for _, r in table.iterrows()]
    shown = pd.DataFrame(
        {
            "arm": table["arm"],
            "dataset": table["dataset"],
            "variant": table["variant"],
            "effort units": table["effort units"].map(lambda v: f"{v:.0f}"),
            "nuclei + regions": [
                f"{n:.0f} + {r:.0f}" for n, r in zip(table["nuclei"], table["regions"], strict=True)
            ],
            "mAP [95 % CI]": [_fmt(r, "mAP") for r in rows],
            "AJI [95 % CI]": [_fmt(r, "AJI") for r in rows],
            f"mAP {per}": table[f"mAP {per}"].map(lambda v: f"{v:.3f}"),
            f"Δ mAP {per} vs '{reference}'": [_delta(r, "mAP", reference) for r in rows],
            f"AJI {per}": table[f"AJI {per}"].map(lambda v: f"{v:.3f}"),
            f"Δ AJI {per} vs '{reference}'": [_delta(r, "AJI", reference) for r in rows],
        }
    )
    text = (
        "## Annotation effort: test mAP and AJI per arm at equal effort\n\n"
        + shown.to_markdown(index=False, disable_numparse=True)
        + "\n\n"
        + f"Effort: 1 unit per outlined nucleus, {region_cost:g} per fully annotated region "
        "(nuclei_pa.data.effort), as each training set's derivation recorded it. Every model at "
        "the checkpoint, score and mask thresholds and dilation its validation images chose; "
        "intervals are 95 % bootstrap intervals over test images (and seeds); Δ is the "
        f"per-effort metric minus the reference arm's ('{reference}') of the same dataset and "
        "variant, paired over the same test images.\n\n"
        + "".join(f"- {line}\n" for line in effort_reading(table))
    )
    return text


def effort_figure(table: pd.DataFrame, paths: str | Path | Sequence[str | Path]) -> None:
    """mAP and AJI per arm (rows: metric, columns: dataset), pa and baseline side by side, with
    their 95 % intervals; each arm's effort under its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nuclei_pa.report.figures import _save

    datasets = list(dict.fromkeys(table["dataset"]))
    variants = list(dict.fromkeys(table["variant"]))
    fig, axes = plt.subplots(
        2, len(datasets), figsize=(4.2 * len(datasets), 6.0), squeeze=False, sharey="row"
    )
    width = 0.8 / max(len(variants), 1)
    for col, dataset in enumerate(datasets):
        rows = table[table["dataset"] == dataset]
        arms = list(dict.fromkeys(rows["arm"]))
        x = np.arange(len(arms))
        for r, label in enumerate(METRICS.values()):
            ax = axes[r][col]
            for k, variant in enumerate(variants):
                sub = rows[rows["variant"] == variant].set_index("arm").reindex(arms)
                est = sub[label].to_numpy(dtype=float)
                err = np.vstack([est - sub[f"{label} low"], sub[f"{label} high"] - est])
                ax.bar(
                    x + (k - (len(variants) - 1) / 2) * width,
                    est,
                    width,
                    yerr=np.nan_to_num(err),
                    capsize=3,
                    label=variant,
                    hatch="" if variant == "pa" else "//",
                    alpha=0.85,
                )
            units = rows.groupby("arm", sort=False)["effort units"].mean().reindex(arms)
            ax.set_xticks(x, [f"{a}\n{u:.0f} units" for a, u in units.items()], fontsize=8)
            ax.set_title(f"{dataset}: test {label}")
            ax.set_ylim(0, 1)
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(frameon=False)
    fig.tight_layout()
    _save(fig, paths, dpi=120)


def write_effort(
    table: pd.DataFrame,
    csv_path: str | Path,
    md_path: str | Path,
    figure_paths: str | Path | Sequence[str | Path],
    region_cost: float = REGION_COST,
) -> None:
    """The table as CSV (numbers) and Markdown (intervals in cells, the reading), and the
    figure, each written atomically."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(md_path) as tmp:
        tmp.write_text(effort_markdown(table, region_cost))
    effort_figure(table, figure_paths)
