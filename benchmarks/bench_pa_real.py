"""Does the pa module recover what partial labels lose? Learning curves on a real split folder.

Trains, per seed, the baseline on all labels, the baseline on a ``--fraction`` of them (the
``remove`` derivation, seeded) and the pa model on the same fraction (plus, with
``--full-pa``, the pa model on all labels), evaluates every checkpoint on the fully annotated
held-out test images, and prints the learning curves side by side, the issue's targets per seed
and checkpoint, and the pa/baseline cost ratios measured in this one run.

    python benchmarks/bench_pa_real.py results/real-cpu/data/fluo --seeds 0 1 \\
        --iterations 500 --every 100 --out results/bench_pa_real/fluo

``DATA`` holds ``train/`` and ``test/`` split folders (``images/`` + ``annotations.json``, and
``labels/`` for the test set), as the workflow's ``results/<run>/data/<dataset>``, ``nuclei-pa
import`` or ``nuclei-pa synth`` write them; split by image, never tiles of one image on both
sides. Models train in ``--jobs`` processes of one thread each (two on 2 cores). The pa runs
get the full labels as reference, so their ``train_log.csv`` says how many centre boxes sit
on unlabelled nuclei (``pa_on_unlabelled_nucleus``) and how many of those nuclei they find.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from nuclei_pa.data.derive import DeriveReport, derive
from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.engine.predict import load_model, predict_folder
from nuclei_pa.eval.folders import evaluate
from nuclei_pa.io.dataset import read_split, write_split
from nuclei_pa.model import ModelConfig

METRICS = ("map", "recall_50", "precision_50")


def _train_job(job: dict) -> str:
    torch.set_num_threads(1)
    train(
        job["data"],
        job["out"],
        ModelConfig.preset("slim", variant=job["variant"], **job["model"]),
        TrainConfig(**job["train"]),
        progress=False,
        reference=job["reference"],
    )
    return job["out"]


def _evaluate_job(job: dict) -> dict:
    torch.set_num_threads(1)
    out = Path(job["checkpoint"]).with_suffix("")
    predict_folder(load_model(job["checkpoint"], "cpu"), job["images"], out, progress=False)
    per_image = evaluate(job["test"], out / "labels")
    return {**job["key"], **{k: float(per_image[k].mean()) for k in METRICS}}


def _inference_seconds(checkpoints: dict[str, Path], images: Path, rounds: int) -> dict[str, float]:
    """Median seconds per image of each checkpoint, the models taking turns on the same images."""
    torch.set_num_threads(1)
    models = {name: load_model(path, "cpu") for name, path in checkpoints.items()}
    n = len(list(images.iterdir()))
    times: dict[str, list[float]] = {name: [] for name in models}
    for r in range(rounds):
        for name, model in models.items():
            tic = time.perf_counter()
            predict_folder(
                model,
                images,
                Path("/tmp") / f"bench_pa_real_{name}_{r}",
                progress=False,
            )
            times[name].append((time.perf_counter() - tic) / n)
    return {name: float(pd.Series(t).median()) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with train/ and test/ split folders")
    parser.add_argument("--out", type=Path, default=Path("results/bench_pa_real"))
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--every", type=int, default=100, help="checkpoint (and evaluation) step")
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--full-pa", action="store_true", help="also train pa on all labels")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model setting for every model (YAML value), e.g. --set center_threshold=0.9",
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    ModelConfig.preset("slim", **overrides)  # a bad --set fails now, not in a worker
    out, train_full = args.out, args.data / "train"
    train_cfg = {
        "iterations": args.iterations,
        "batch_size": 2,
        "crop_size": args.crop_size,
        "checkpoint_every": args.every,
        "lr": args.lr,
        "threads": 1,
        "num_workers": 0,  # the pool's processes may not start loader workers of their own
    }
    jobs = []
    for seed in args.seeds:
        partial = out / "trainsets" / f"partial_seed{seed}"
        if not (partial / "annotations.json").is_file():
            report = DeriveReport()
            write_split(
                partial, derive(read_split(train_full), "remove", args.fraction, seed, report)
            )
            print(f"seed {seed}: {report}", flush=True)
        runs = [
            ("full-baseline", train_full, "baseline"),
            ("partial-baseline", partial, "baseline"),
            ("partial-pa", partial, "pa"),
        ]
        if args.full_pa:
            runs.append(("full-pa", train_full, "pa"))
        for name, data, variant in runs:
            jobs.append(
                {
                    "name": name,
                    "seed": seed,
                    "data": str(data),
                    "variant": variant,
                    "out": str(out / "runs" / name / f"seed{seed}"),
                    "model": overrides,
                    "train": {**train_cfg, "seed": seed},
                    "reference": str(train_full),
                }
            )
    tic = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs) as pool:
        pool.map(_train_job, jobs, chunksize=1)
        evaluations = [
            {
                "checkpoint": str(ckpt),
                "images": str(args.data / "test" / "images"),
                "test": str(args.data / "test"),
                "key": {"model": job["name"], "seed": job["seed"], "iteration": int(ckpt.stem[5:])},
            }
            for job in jobs
            for ckpt in sorted(Path(job["out"]).glob("ckpt_*.pt"))
        ]
        rows = pool.map(_evaluate_job, evaluations, chunksize=1)
    print(f"trained and evaluated in {(time.perf_counter() - tic) / 60:.1f} min", flush=True)
    curves = pd.DataFrame(rows)
    curves.to_csv(out / "curves.csv", index=False)
    wide = curves.pivot_table(index=["seed", "iteration"], columns="model", values=list(METRICS))
    print("\nlearning curves (mean over test images):")
    print(wide.to_string(float_format=lambda v: f"{v:.3f}"))

    print(
        "\ntargets: pa@partial R@0.5 - baseline@partial >= 0.10; pa@partial mAP / "
        "baseline@full >= 0.9" + ("; pa@full mAP >= baseline@full" if args.full_pa else "")
    )
    checks = []
    for (seed, iteration), row in wide.iterrows():
        check = {
            "seed": seed,
            "iteration": iteration,
            "recall_gain": row[("recall_50", "partial-pa")]
            - row[("recall_50", "partial-baseline")],
            "map_ratio": row[("map", "partial-pa")] / max(row[("map", "full-baseline")], 1e-9),
        }
        if args.full_pa:
            check["full_map_diff"] = row[("map", "full-pa")] - row[("map", "full-baseline")]
        checks.append(check)
    checks = pd.DataFrame(checks)
    print(checks.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    logs = {
        job["name"] + f"/seed{job['seed']}": pd.read_csv(Path(job["out"]) / "train_log.csv")
        for job in jobs
    }
    print("\npa diagnostics (per image, mean over the last 100 iterations):")
    for name, log in logs.items():
        if "pa_center_boxes" in log:
            tail = log.tail(100)
            cols = [c for c in log.columns if c.startswith("pa_")] + ["loss_centerbox"]
            print(name, " ".join(f"{c.removeprefix('pa_')}={tail[c].mean():.3g}" for c in cols))

    seed = args.seeds[0]
    train_ratio = (
        logs[f"partial-pa/seed{seed}"]["seconds"].iloc[1:].median()
        / logs[f"partial-baseline/seed{seed}"]["seconds"].iloc[1:].median()
    )
    last = f"ckpt_{args.iterations:06d}.pt"
    infer = _inference_seconds(
        {
            "baseline": out / "runs" / "partial-baseline" / f"seed{seed}" / last,
            "pa": out / "runs" / "partial-pa" / f"seed{seed}" / last,
        },
        args.data / "test" / "images",
        rounds=3,
    )
    ratios = {
        "train time per iteration, pa/baseline (target <= 1.10)": float(train_ratio),
        "inference time per image, pa/baseline (target <= 1.15)": infer["pa"] / infer["baseline"],
    }
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")
    (out / "summary.json").write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "checks": checks.to_dict("records"),
                "ratios": ratios,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
