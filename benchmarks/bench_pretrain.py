"""Does pretraining on the project's own synthetic nuclei give real models a better start?

A lever of the real-scale issue, measured on *validation* images only (never test images): the
same model trained on a real training set from random weights and from a checkpoint trained
on synthetic nuclei of the same modality (no download: ``nuclei-pa synth`` makes them), both
for the same iterations with the same seed; every checkpoint of both is scored on the
validation split at the score thresholds the workflow's ``choose_checkpoint`` tries.

    python benchmarks/bench_pretrain.py results/real-cpu/data/bbbc \\
        --train results/real-cpu/trainsets/BBBC25/seed0 --mode fluorescence \\
        --iterations 400 --every 100 --out results/bench_pretrain/bbbc25-pa

``DATA`` is a workflow dataset folder with a ``val/`` split (``datasets.<name>.validation``);
``--train`` the split to fine-tune on (default ``DATA/train``; a 25 % derivation for the
partial models). ``--scratch`` reuses an already trained from-scratch run of the same settings
(e.g. the workflow's ``models/<model>/seed0/checkpoints``) instead of training it again. Runs
train two at a time, one thread each; a run already finished in ``--out`` is kept (training
resumes it), and training minutes are summed from each run's ``train_log.csv``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from nuclei_pa.data.synth import synthesize
from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.engine.choose import validation_curve
from nuclei_pa.model import ModelConfig


def _train(job: dict) -> tuple[str, float]:
    """Train (a finished run is kept: ``train`` resumes it) and return its training seconds,
    summed from its ``train_log.csv``, so a rerun reports the time the run took, not zero."""
    torch.set_num_threads(1)
    train(
        job["data"],
        job["out"],
        ModelConfig.preset("slim", variant=job["variant"], init=job["init"]),
        TrainConfig(**job["train"]),
        progress=False,
    )
    return job["out"], float(pd.read_csv(Path(job["out"]) / "train_log.csv")["seconds"].sum())


def _curve(job: dict) -> pd.DataFrame:
    torch.set_num_threads(1)
    folder = Path(job["checkpoints"])
    checkpoints = {it: folder / f"ckpt_{it:06d}.pt" for it in job["iterations"]}
    curve = validation_curve(checkpoints, job["val"], "cpu", progress=False)
    return curve.assign(start=job["start"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="dataset folder with train/ and val/")
    parser.add_argument("--train", type=Path, help="split to train on (default DATA/train)")
    parser.add_argument("--mode", choices=["fluorescence", "he"], required=True)
    parser.add_argument("--variant", choices=["baseline", "pa"], default="pa")
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--pretrain-iterations", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", type=Path, help="checkpoints of a from-scratch run to reuse")
    parser.add_argument("--out", type=Path, default=Path("results/bench_pretrain"))
    args = parser.parse_args()
    out, started = args.out, time.perf_counter()
    train_split = args.train or args.data / "train"
    common = {
        "batch_size": 2,
        "crop_size": 256,
        "seed": args.seed,
        "threads": 1,
        "num_workers": 0,
        "lr": 0.01,
    }  # config/real-cpu.yaml's training settings
    synth_dir = out / f"synth-{args.mode}"
    if not (synth_dir / "train").is_dir():
        synthesize(SynthConfig(mode=args.mode), synth_dir, seed=args.seed)
    pretrain = {
        "data": str(synth_dir / "train"),
        "out": str(out / "pretrain"),
        "variant": args.variant,
        "init": "none",
        "train": {
            **common,
            "iterations": args.pretrain_iterations,
            "checkpoint_every": args.pretrain_iterations,
        },
    }
    finetune_train = {**common, "iterations": args.iterations, "checkpoint_every": args.every}
    scratch = {
        "data": str(train_split),
        "out": str(out / "scratch"),
        "variant": args.variant,
        "init": "none",
        "train": finetune_train,
    }
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        jobs = [pretrain] if args.scratch else [pretrain, scratch]
        times = dict(pool.map(_train, jobs))
        final = Path(pretrain["out"]) / f"ckpt_{args.pretrain_iterations:06d}.pt"
        finetuned = {**scratch, "out": str(out / "from-synthetic"), "init": str(final)}
        times.update(dict(pool.map(_train, [finetuned])))
        iterations = list(range(args.every, args.iterations + 1, args.every))
        scratch_dir = args.scratch or Path(scratch["out"])
        curves = pool.map(
            _curve,
            [
                {
                    "checkpoints": str(scratch_dir),
                    "iterations": iterations,
                    "val": str(args.data / "val"),
                    "start": "random",
                },
                {
                    "checkpoints": finetuned["out"],
                    "iterations": iterations,
                    "val": str(args.data / "val"),
                    "start": f"synthetic {args.mode}",
                },
            ],
        )
    curve = pd.concat(curves, ignore_index=True)
    curve.to_csv(out / "validation.csv", index=False)
    # the paper's protocol: score and mask threshold 0.5, dilated (the grid also has the rest)
    at_default = curve[
        (curve["score_threshold"] == 0.5) & (curve["mask_threshold"] == 0.5) & curve["dilate"]
    ]
    wide = at_default.pivot(index="iteration", columns="start", values=["map", "aji", "recall_50"])
    best = curve.loc[curve.groupby("start")["map"].idxmax()]
    text = "\n\n".join(
        [
            f"`python benchmarks/bench_pretrain.py {' '.join(sys.argv[1:])}` "
            f"({args.variant}, seed {args.seed}; pretraining {args.pretrain_iterations} "
            f"iterations on {SynthConfig().n_train} synthetic {args.mode} images; "
            f"this invocation {(time.perf_counter() - started) / 60:.1f} min on 2 cores; "
            "training minutes below).",
            "Validation metrics as the paper predicts (score and mask threshold 0.5, 3×3 "
            "dilation), per checkpoint:",
            wide.round(3).to_markdown(),
            "Best (checkpoint, thresholds) on validation per start:",
            best[
                [
                    "start",
                    "iteration",
                    "score_threshold",
                    "mask_threshold",
                    "dilate",
                    "map",
                    "aji",
                    "recall_50",
                ]
            ]
            .round(3)
            .to_markdown(index=False),
            "Training minutes: "
            + ", ".join(f"{Path(k).name} {v / 60:.1f}" for k, v in times.items()),
        ]
    )
    (out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
