"""Are predicted masks wider than the ground truth? Area of matched nuclei, with and without the
paper's 3×3 dilation, at several mask thresholds, on a validation split.

    OMP_NUM_THREADS=1 python benchmarks/bench_mask_width.py BBBC25-pa --results results/real-cpu
    OMP_NUM_THREADS=1 python benchmarks/bench_mask_width.py Kumar25-pa --results results/real-long

Each model is taken at the checkpoint and score threshold its run chose on validation
(``eval/<model>/seed0/chosen.json``; the run's ``inference`` settings are not applied: plain
prediction). For every mask threshold and dilation it prints the validation mAP and AJI (means
over images) and, over predicted nuclei matched one-to-one to a ground-truth nucleus at IoU ≥ 0.5,
the median and mean of predicted area / ground-truth area: 1.0 is the ground truth's width, and a
3×3 dilation adds about one pixel of rim (some 20 % of a 20-px nucleus).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_inference_levers import chosen_run

from nuclei_pa.engine.postprocess import dilate_labels
from nuclei_pa.engine.predict import predict_mask_thresholds
from nuclei_pa.eval.matching import image_metrics, overlap_table

MASK_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def matched_area_ratios(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Predicted / true area of every pair of nuclei overlapping at IoU ≥ 0.5 (the evaluator's
    overlap table)."""
    table = overlap_table(truth, pred)
    keep = table.iou >= 0.5
    return table.pred_area[table.pred_index[keep]] / table.gt_area[table.gt_index[keep]]


def bench(name: str, results: Path, split_name: str) -> pd.DataFrame:
    run = chosen_run(name, results, split_name)
    split, model, score = run.split, run.model, run.score_threshold
    metrics: dict[tuple[float, bool], list[dict]] = {}
    ratios: dict[tuple[float, bool], list[np.ndarray]] = {}
    for image, truth in zip(split.images, split.labels, strict=True):
        predicted = predict_mask_thresholds(
            model, image, MASK_THRESHOLDS, score_threshold=score, dilate=False
        )
        for m, (labels, _) in zip(MASK_THRESHOLDS, predicted, strict=True):
            for dilate in (False, True):
                pred = dilate_labels(labels) if dilate else labels
                metrics.setdefault((m, dilate), []).append(image_metrics(truth, pred).as_dict())
                ratios.setdefault((m, dilate), []).append(matched_area_ratios(truth, pred))
    rows = []
    for (m, dilate), per_image in metrics.items():
        r = np.concatenate(ratios[(m, dilate)])
        rows.append(
            {
                "model": name,
                "mask threshold": m,
                "dilation": "3×3" if dilate else "none",
                "mAP": np.mean([x["map"] for x in per_image]),
                "AJI": np.mean([x["aji"] for x in per_image]),
                "area ratio median": float(np.median(r)) if len(r) else float("nan"),
                "area ratio mean": float(r.mean()) if len(r) else float("nan"),
                "matched": len(r),
            }
        )
    print(
        f"\n{name}: {run.checkpoint.name}, score threshold {score} (chosen.json), "
        f"{run.dataset}/{split_name}: "
        f"{len(split.names)} images, {sum(int(t.max()) for t in split.labels)} nuclei",
        flush=True,
    )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model names, e.g. BBBC25-pa")
    parser.add_argument("--results", type=Path, default=Path("results/real-cpu"))
    parser.add_argument("--split", default="val", help="split folder (default: val)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("command: python benchmarks/bench_mask_width.py " + " ".join(argv or sys.argv[1:]))
    start = time.perf_counter()
    table = pd.concat([bench(m, args.results, args.split) for m in args.models])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\ntotal {time.perf_counter() - start:.0f} s, 1 thread")


if __name__ == "__main__":
    main()
