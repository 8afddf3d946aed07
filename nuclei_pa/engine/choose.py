"""Choosing on validation images: a run's checkpoint, score threshold, mask threshold and whether
to apply the paper's 3×3 dilation.

Tables report test images at a choice made without them. For each checkpoint the model is run
once per validation image, at the lowest candidate score threshold; its mask probabilities are
read at every candidate mask threshold (:func:`~nuclei_pa.engine.predict.predict_mask_thresholds`)
and each label image made without dilation, then scored with and without it. Every higher score
threshold is then the same label image with its lower-scoring nuclei removed (labels are
numbered by descending score, and a nucleus never takes pixels from a higher-scoring one), so a
whole grid of thresholds costs one model run. The only difference from predicting at the
threshold itself is the model's cap on detections per image, which a lower threshold can fill
with nuclei a higher one would not have kept.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from nuclei_pa.engine.evaluate import PAPER_PROTOCOL, TestSplit
from nuclei_pa.engine.postprocess import dilate_labels
from nuclei_pa.engine.predict import (
    DEFAULTS,
    inference_kwargs,
    load_model,
    predict_mask_thresholds,
)
from nuclei_pa.eval.folders import METRIC_COLUMNS, checkpoint_csv, summarise
from nuclei_pa.eval.matching import image_metrics

#: Score thresholds tried on validation images (the predictor's default is 0.5). 0.9 joined
#: when validation kept choosing 0.8, the grid's former edge (Kumar25-pa at 1600 iterations).
SCORE_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Mask thresholds tried on validation images (the predictor's default is 0.5). While every
#: nucleus was dilated, validation chose high ones (0.8, then 0.9 for every BBBC039 model): they
#: undid the dilation's extra 20 % of area, not a wide mask head (the predictor's DEFAULTS).
MASK_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
#: Whether each nucleus is grown by the paper's 3×3 dilation (Sec. IV), tried both ways.
DILATIONS = (False, True)


@dataclass(frozen=True)
class Choice:
    """What validation chose for one run, and how it scored there."""

    iteration: int
    score_threshold: float
    chosen_on: str  # "validation" | "final checkpoint"
    validation_map: float | None = None
    mask_threshold: float = DEFAULTS["mask_threshold"]
    # True for a choice made before dilation was chosen: it was evaluated with it
    dilate: bool = PAPER_PROTOCOL["dilate"]

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def prediction(self) -> dict[str, Any]:
        """The choice's ``predict_image`` settings (the keys of ``PAPER_PROTOCOL``)."""
        return {k: getattr(self, k) for k in PAPER_PROTOCOL}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Choice:
        """A ``chosen.json``; one written before mask thresholds (or dilation) were chosen has
        none, and was evaluated at the paper's protocol (``PAPER_PROTOCOL``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def above(labels: np.ndarray, scores: Mapping[int, float], threshold: float) -> np.ndarray:
    """The label image with every nucleus scoring under ``threshold`` removed (ids kept)."""
    out = labels.copy()
    low = [k for k, s in scores.items() if s < threshold]
    if low:
        out[np.isin(out, low)] = 0
    return out


def threshold_metrics(
    model: object,
    split: TestSplit,
    thresholds: Sequence[float] = SCORE_THRESHOLDS,
    dilations: Sequence[bool] = (DEFAULTS["dilate"],),
    mask_thresholds: Sequence[float] = (DEFAULTS["mask_threshold"],),
) -> pd.DataFrame:
    """Per-image metrics of ``model`` on a split at every score threshold, mask threshold and
    dilation: one model run per image.

    Columns: ``score_threshold``, ``mask_threshold``, ``dilate``, ``image`` and the evaluator's
    metric columns.
    """
    lowest = min(thresholds)
    rows = []
    for name, image, truth in zip(split.names, split.images, split.labels, strict=True):
        predicted = predict_mask_thresholds(
            model, image, mask_thresholds, score_threshold=lowest, dilate=False
        )
        for m, (labels, scores) in zip(mask_thresholds, predicted, strict=True):
            for t in thresholds:
                kept = above(labels, scores, t)
                for dilate in dilations:
                    pred = dilate_labels(kept) if dilate else kept
                    rows.append(
                        {
                            "score_threshold": float(t),
                            "mask_threshold": float(m),
                            "dilate": bool(dilate),
                            "image": name,
                            **image_metrics(truth, pred).as_dict(),
                        }
                    )
    return pd.DataFrame(rows)


def validation_curve(
    checkpoints: Mapping[int, str | Path],
    val_dir: str | Path,
    device: str = "auto",
    thresholds: Sequence[float] = SCORE_THRESHOLDS,
    progress: bool = True,
    mask_thresholds: Sequence[float] = MASK_THRESHOLDS,
    inference: Mapping[str, Any] | None = None,
    dilations: Sequence[bool] = DILATIONS,
) -> pd.DataFrame:
    """Mean validation metrics of every checkpoint at every score threshold, mask threshold and
    dilation: one row each (the validation images are read and decoded once for all
    checkpoints). ``inference``: each checkpoint's inference settings overridden
    (``load_model``'s)."""
    split = TestSplit.read(val_dir)
    rows = []
    for iteration, path in tqdm(
        sorted(checkpoints.items()), desc="validation", disable=not progress
    ):
        model = load_model(path, device, **inference_kwargs(inference))
        per_image = threshold_metrics(
            model, split, thresholds, dilations=dilations, mask_thresholds=mask_thresholds
        )
        grid = ["score_threshold", "mask_threshold", "dilate"]
        for (t, m, d), group in per_image.groupby(grid, sort=True):
            summary = summarise(group).iloc[0].to_dict()
            rows.append(
                {
                    "iteration": int(iteration),
                    "score_threshold": float(t),
                    "mask_threshold": float(m),
                    "dilate": bool(d),
                    **summary,
                }
            )
    return pd.DataFrame(rows)


def choose(curve: pd.DataFrame, metric: str = "map") -> Choice:
    """The (checkpoint, score threshold, mask threshold, dilation) with the best validation
    ``metric``.

    Ties go to the earliest checkpoint (less training), then to the score threshold, the mask
    threshold and the dilation nearest the predictor's defaults, so a flat curve does not move
    the choice. A curve without a ``mask_threshold`` or ``dilate`` column was predicted as the
    paper's protocol does (``PAPER_PROTOCOL``).
    """
    if curve.empty:
        raise ValueError("no validation evaluations to choose from")
    for key in ("mask_threshold", "dilate"):
        if key not in curve:
            curve = curve.assign(**{key: PAPER_PROTOCOL[key]})
    best = curve[metric].max()
    tied = curve[np.isclose(curve[metric], best, rtol=0, atol=1e-12)].copy()
    tied["distance"] = (tied["score_threshold"] - DEFAULTS["score_threshold"]).abs()
    tied["mask_distance"] = (tied["mask_threshold"] - DEFAULTS["mask_threshold"]).abs()
    tied["not_default_dilation"] = tied["dilate"].astype(bool) != DEFAULTS["dilate"]
    order = [
        "iteration",
        "distance",
        "score_threshold",
        "mask_distance",
        "mask_threshold",
        "not_default_dilation",
    ]
    row = tied.sort_values(order).iloc[0]
    return Choice(
        int(row["iteration"]),
        float(row["score_threshold"]),
        "validation",
        float(best),
        float(row["mask_threshold"]),
        bool(row["dilate"]),
    )


def final_choice(iterations: Sequence[int]) -> Choice:
    """Without validation images nothing is chosen: the last checkpoint, predicted as the
    paper's protocol does (``PAPER_PROTOCOL``, what the run's learning curve measured)."""
    return Choice(int(max(iterations)), chosen_on="final checkpoint", **PAPER_PROTOCOL)


def test_metrics(
    choice: Choice,
    checkpoints: Mapping[int, str | Path],
    test_dir: str | Path,
    evaluated: str | Path | None = None,
    device: str = "auto",
    inference: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Per-image test metrics at the choice (columns ``image`` and the metric columns).

    ``evaluated`` is the run's per-checkpoint test evaluation (``PAPER_PROTOCOL``): when the
    choice is predicted the same way, its file is read instead of predicting again (it must then
    have been evaluated with the same ``inference`` settings, as the workflow's rules are).
    """
    protocol = all(math.isclose(v, PAPER_PROTOCOL[k]) for k, v in choice.prediction().items())
    if evaluated is not None and protocol:
        path = checkpoint_csv(evaluated, choice.iteration)
        if path.is_file():
            return pd.read_csv(path)
    model = load_model(checkpoints[choice.iteration], device, **inference_kwargs(inference))
    per_image = threshold_metrics(
        model,
        TestSplit.read(test_dir),
        [choice.score_threshold],
        dilations=[choice.dilate],
        mask_thresholds=[choice.mask_threshold],
    )
    return per_image[["image", *METRIC_COLUMNS, "n_gt", "n_pred"]]
