"""The pa module's cost against the baseline's, measured side by side on one machine at rest.

    python benchmarks/bench_pa_cost.py DATA RUN     # RUN: a bench_pa_real.py output folder

Training: the same number of iterations of partial-pa and partial-baseline (the slim preset,
patches, batch 2, one thread, the bench's settings and the model settings it recorded), run in
alternating blocks so that anything else the machine does weighs on both alike; the ratio of the
median seconds per iteration. Inference: the full-label pa and baseline checkpoints of RUN taking
turns on the test images (bench_pa_real.py's own timing), the ratio of the median seconds per
image. Targets: training at most 1.10×, inference at most 1.15×.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pa_real import _inference_seconds

from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.model import ModelConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the split folder bench_pa_real.py ran on")
    parser.add_argument("run", type=Path, help="its output folder")
    parser.add_argument("--iterations", type=int, default=20, help="per block")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    summary = json.loads((args.run / "summary.json").read_text())["args"]
    overrides = {}
    for item in ast.literal_eval(summary["set"]):  # the bench's --set, "key=YAML value"
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    partial = args.run / "trainsets" / f"partial_seed{args.seed}"
    seconds: dict[str, list[float]] = {"baseline": [], "pa": []}
    with tempfile.TemporaryDirectory() as tmp:
        for block in range(args.blocks):
            for variant in seconds:
                cfg = TrainConfig(
                    iterations=args.iterations,
                    batch_size=2,
                    crop_size=int(summary["crop_size"]),
                    checkpoint_every=args.iterations,
                    lr=float(summary["lr"]),
                    threads=1,
                    num_workers=0,
                    seed=args.seed + block,
                )
                out = Path(tmp) / f"{variant}{block}"
                model = ModelConfig.preset("slim", variant=variant, **overrides)
                train(partial, out, model, cfg, progress=False)
                log = pd.read_csv(out / "train_log.csv")
                seconds[variant] += list(log["seconds"].iloc[2:])  # the first steps warm up
        last = f"ckpt_{int(summary['iterations']):06d}.pt"
        infer = _inference_seconds(
            {v: args.run / "runs" / f"full-{v}" / f"seed{args.seed}" / last for v in seconds},
            args.data / "test" / "images",
            Path(tmp) / "timing",
            rounds=3,
        )
    train_ratio = pd.Series(seconds["pa"]).median() / pd.Series(seconds["baseline"]).median()
    text = (
        f"`python benchmarks/bench_pa_cost.py {args.data} {args.run}`, on a machine doing "
        f"nothing else: train time per iteration, pa/baseline {train_ratio:.2f} (target <= "
        f"1.10; {len(seconds['pa'])} iterations each, in {args.blocks} alternating blocks); "
        f"inference time per image, full-pa/full-baseline {infer['pa'] / infer['baseline']:.2f} "
        f"(target <= 1.15; {infer['baseline']:.2f} s per image for the baseline)."
    )
    (args.run / "cost.md").write_text(text + "\n")  # bench_pa_real's summary, completed
    print(text)


if __name__ == "__main__":
    main()
