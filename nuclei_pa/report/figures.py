"""Figures: metrics against training iteration (paper Fig. 4)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

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
    curves: Mapping[str, pd.DataFrame],
    paths: list[str | Path],
    reference: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """One panel per metric, one line per model; references drawn as horizontal dashed lines."""
    fig, axes = plt.subplots(1, len(FIGURE4_METRICS), figsize=(4 * len(FIGURE4_METRICS), 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (metric, label) in zip(axes, FIGURE4_METRICS.items(), strict=True):
        for k, (model, curve) in enumerate(curves.items()):
            style = "-" if model.endswith("-pa") else "--"
            ax.plot(
                curve["iteration"],
                curve[metric],
                style,
                marker="o",
                ms=3,
                color=colours[k % len(colours)],
                label=model,
            )
        for name, values in (reference or {}).items():
            ax.axhline(values[metric], color="grey", ls=":", lw=1.2, label=name)
        ax.set_title(label)
        ax.set_xlabel("training iteration")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
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
    for path in [paths] if isinstance(paths, str | Path) else paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
