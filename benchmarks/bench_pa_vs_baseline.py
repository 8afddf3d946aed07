"""Train the baseline and the pa model side by side on the embedded default and compare them.

Prints, from one run on the same machine: pa/baseline training time per iteration, inference
time per image, parameter counts and peak memory, and — the paper's central effect — each
model's metrics on the fully annotated test split after training on 25 % of the annotations.

    python benchmarks/bench_pa_vs_baseline.py --iterations 300 --out results/bench_pa
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from nuclei_pa.data.derive import DeriveReport, derive
from nuclei_pa.data.synth import synthesize
from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.engine.predict import load_model, predict_folder
from nuclei_pa.eval.folders import evaluate
from nuclei_pa.io.dataset import read_split, write_split
from nuclei_pa.model import ModelConfig, count_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench_pa"))
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument(
        "--fraction", type=float, default=0.25, help="annotations kept for training"
    )
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--evaluations", type=int, default=3, help="checkpoints evaluated per model"
    )
    args = parser.parse_args()
    data = args.out / "data"
    if not (data / "test").is_dir():
        synthesize(SynthConfig(), data, seed=args.seed)
    partial = args.out / f"train_{int(args.fraction * 100)}"
    if not partial.is_dir():
        report = DeriveReport()
        write_split(
            partial, derive(read_split(data / "train"), "remove", args.fraction, args.seed, report)
        )
        print(f"training set: {report}")
    rows = []
    for variant in ("baseline", "pa"):
        run = args.out / variant
        cfg = TrainConfig(
            iterations=args.iterations,
            batch_size=args.batch_size,
            lr=args.lr,
            checkpoint_every=max(1, args.iterations // args.evaluations),
            seed=args.seed,
            threads=args.threads,
        )
        final = train(partial, run, ModelConfig.preset("slim", variant=variant), cfg)
        log = pd.read_csv(run / "train_log.csv")
        for ckpt in sorted(run.glob("ckpt_*.pt"))[:-1]:  # the learning curve before the end
            predict_folder(
                load_model(ckpt, "cpu"),
                data / "test" / "images",
                run / "pred_curve",
                dilate=True,  # the paper's post-processing, as the README's block was measured
                progress=False,
            )
            m = evaluate(data / "test", run / "pred_curve" / "labels").mean(numeric_only=True)
            print(
                f"{variant} {ckpt.stem}: mAP {m['map']:.3f}  recall@0.5 {m['recall_50']:.3f}  "
                f"precision@0.5 {m['precision_50']:.3f}",
                flush=True,
            )
        model = load_model(final, "cpu")
        tic = time.perf_counter()
        predict_folder(model, data / "test" / "images", run / "pred", dilate=True, progress=False)
        infer = (time.perf_counter() - tic) / len(list((data / "test" / "images").iterdir()))
        metrics = evaluate(data / "test", run / "pred" / "labels").mean(numeric_only=True)
        print(
            f"{variant} {final.stem}: mAP {metrics['map']:.3f}  "
            f"recall@0.5 {metrics['recall_50']:.3f}  "
            f"precision@0.5 {metrics['precision_50']:.3f}",
            flush=True,
        )
        rows.append(
            {
                "variant": variant,
                "parameters": count_parameters(model),
                "train_s_per_iter": float(log["seconds"].iloc[1:].median()),
                "infer_s_per_image": infer,
                "peak_memory_mb": float(log["peak_memory_mb"].max()),
                **{
                    k: float(metrics[k]) for k in ("map", "aji", "ncs", "precision_50", "recall_50")
                },
                "n_pred_per_image": float(metrics["n_pred"]),
            }
        )
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    table = pd.DataFrame(rows).set_index("variant")
    print(table.T.to_string(float_format=lambda v: f"{v:.4g}"))
    base, pa = table.loc["baseline"], table.loc["pa"]
    ratios = {
        "train time per iteration, pa/baseline (target <= 1.10)": pa.train_s_per_iter
        / base.train_s_per_iter,
        "inference time per image, pa/baseline (target <= 1.15)": pa.infer_s_per_image
        / base.infer_s_per_image,
        "parameters added by pa (target < 2 %)": pa.parameters / base.parameters - 1,
        "peak memory, pa/baseline": pa.peak_memory_mb / base.peak_memory_mb,
        "recall@0.5, pa/baseline": pa.recall_50 / max(base.recall_50, 1e-9),
    }
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")
    (args.out / "summary.json").write_text(json.dumps({"table": rows, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
