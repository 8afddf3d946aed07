"""Figures: metrics against training iteration (paper Fig. 4), examples, the fraction sweep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nuclei_pa.io.atomic import atomic_path

FIGURE4_METRICS = {
    "map": "mAP",
    "aji": "AJI",
    "precision_50": "precision @ IoU 0.5",
    "recall_50": "recall @ IoU 0.5",
    "ncs": "NCS",
}


def figure4(
    curves: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    paths: list[str | Path],
    reference: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """One panel per metric, one line per model; references drawn as horizontal dashed lines.

    A model given several curves (one per seed) is drawn as their mean with a ±1 sd band.
    """
    fig, axes = plt.subplots(1, len(FIGURE4_METRICS), figsize=(4 * len(FIGURE4_METRICS), 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (metric, label) in zip(axes, FIGURE4_METRICS.items(), strict=True):
        for k, (model, curve) in enumerate(curves.items()):
            seeds = [curve] if isinstance(curve, pd.DataFrame) else list(curve)
            stacked = pd.concat(seeds).groupby("iteration")[metric]
            mean, sd = stacked.mean(), stacked.std(ddof=1)
            colour = colours[k % len(colours)]
            style = "-" if model.endswith("-pa") else "--"
            ax.plot(mean.index, mean.values, style, marker="o", ms=3, color=colour, label=model)
            if len(seeds) > 1:
                ax.fill_between(mean.index, mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
        for name, values in (reference or {}).items():
            ax.axhline(values[metric], color="grey", ls=":", lw=1.2, label=name)
        ax.set_title(label)
        ax.set_xlabel("training iteration")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    _save(fig, paths, dpi=120)


def sweep_figure(table: pd.DataFrame, paths: list[str | Path]) -> None:
    """Best mAP and AJI against the fraction of annotations kept, one line per variant."""
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.6))
    for ax, metric in zip(axes, ("mAP", "AJI"), strict=True):
        for variant, rows in table.groupby("variant", sort=False):
            rows = rows.sort_values("fraction")
            x = 100 * rows["fraction"]
            style = "-" if variant == "pa" else "--"
            ax.plot(x, rows[metric], style, marker="o", label=variant)
            if f"{metric} sd" in rows:
                ax.fill_between(
                    x,
                    rows[metric] - rows[f"{metric} sd"],
                    rows[metric] + rows[f"{metric} sd"],
                    alpha=0.15,
                    lw=0,
                )
        ax.set_xlabel("annotations kept for training (%)")
        ax.set_title(f"best {metric}")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    fig.tight_layout()
    _save(fig, paths, dpi=120)


def _save(fig: plt.Figure, paths: str | Path | Sequence[str | Path], **kwargs: Any) -> None:
    for path in [paths] if isinstance(paths, str | Path) else paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, **kwargs)
    plt.close(fig)


def examples_figure(
    image: np.ndarray,
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    paths: str | Path | list[str | Path],
) -> None:
    """One test image: ground truth and each model's prediction as outlines (paper Fig. 3/6)."""
    from skimage.segmentation import find_boundaries

    panels = {"ground truth": truth, **predictions}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    base = image if image.ndim == 3 else np.stack([image] * 3, -1)
    base = base.astype(float) / max(float(base.max()), 1.0)
    for ax, (name, labels) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        shown = base.copy()
        shown[find_boundaries(labels, mode="inner")] = (0.1, 1.0, 0.2)
        ax.imshow(shown)
        ax.set_title(f"{name}\n{len(np.unique(labels)) - 1} nuclei", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    _save(fig, paths, dpi=110, bbox_inches="tight")
