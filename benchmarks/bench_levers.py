"""Which training lever helps? Already-trained runs of one model, scored side by side on
*validation* images (never test images), as ``choose_checkpoint`` scores them.

Issue 20 asks that every lever (augmentations, longer schedules, pretrained starts) be measured
on validation and kept only if it helps. The runs are trained elsewhere — the workflow, with a
model's ``train:`` overrides (``config/levers-cpu.yaml``) — so this script only reads their
checkpoints; it prints and writes (``--out``/summary.md) each run's validation metrics per
checkpoint at the default thresholds and its best (checkpoint, score threshold) on validation.

    python benchmarks/bench_levers.py results/real-cpu/data/kumar/val \\
        --run plain=results/real-cpu/models/Kumar25-pa/seed0/checkpoints \\
        --run augmented=results/levers/models/Kumar25-pa-aug/seed0/checkpoints \\
        --out results/bench_levers/kumar25-pa
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from nuclei_pa.engine.checkpoint import list_checkpoints
from nuclei_pa.engine.choose import validation_curve
from nuclei_pa.io.atomic import write_text

DEFAULT_SCORE = 0.5


def _run(spec: str) -> tuple[str, Path]:
    name, sep, folder = spec.partition("=")
    if not sep or not name or not Path(folder).is_dir():
        raise SystemExit(f"--run {spec!r}: expected NAME=CHECKPOINTS_FOLDER (an existing folder)")
    return name, Path(folder)


def summary(curve: pd.DataFrame, command: str, minutes: float) -> str:
    """The markdown summary: metrics per checkpoint at the default score threshold, and each
    run's best (checkpoint, threshold) on validation mAP (ties: the earlier checkpoint)."""
    at_default = curve[curve["score_threshold"] == DEFAULT_SCORE]
    wide = at_default.pivot(index="iteration", columns="run", values=["map", "aji", "recall_50"])
    wide.columns = [f"{metric} {run}" for metric, run in wide.columns]
    ordered = curve.sort_values(["run", "iteration", "score_threshold"])
    best = ordered.loc[ordered.groupby("run", sort=False)["map"].idxmax()]
    columns = ["run", "iteration", "score_threshold", "map", "aji", "recall_50", "n_images"]
    return "\n\n".join(
        [
            f"`{command}` ({minutes:.1f} min).",
            f"Validation metrics at score threshold {DEFAULT_SCORE}, per checkpoint:",
            wide.round(3).to_markdown(),
            "Best (checkpoint, score threshold) on validation mAP, per run:",
            best[columns].round(3).to_markdown(index=False),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("val", type=Path, help="a validation split folder (DATA/val)")
    parser.add_argument("--run", action="append", required=True, type=_run, metavar="NAME=DIR")
    parser.add_argument("--out", type=Path, default=Path("results/bench_levers"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    curves = []
    for name, folder in args.run:
        checkpoints = list_checkpoints(folder)
        if not checkpoints:
            raise SystemExit(f"{folder}: no checkpoints")
        curve = validation_curve(
            checkpoints, args.val, "cpu", mask_thresholds=(0.5,), dilations=(True,)
        )  # the paper's post-processing, as the README's block was measured
        curves.append(curve.assign(run=name))
    curve = pd.concat(curves, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    curve.to_csv(args.out / "validation.csv", index=False)
    command = f"python benchmarks/bench_levers.py {' '.join(sys.argv[1:])}"
    text = summary(curve, command, (time.perf_counter() - started) / 60)
    write_text(args.out / "summary.md", text + "\n")
    print(text)


if __name__ == "__main__":
    main()
