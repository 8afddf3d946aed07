"""Training and evaluation speed now against the code before issue 22, side by side in one run.

    python benchmarks/bench_speed.py [--iterations 8] [--blocks 2] [--test-images 4]

Data: real H&E (``../shared/data/monuseg-train``) and fluorescence (the first 40 images of
``../shared/data/bbbc039``), each split 70/30 into train and test in a temporary folder (test
cut to ``--test-images``), and the demo's synthetic DH set (192 px; its 35 test images).

Training: the slim model, batch 2, 256-px patches, one thread, no loader processes (the demo's
settings). *Before* restores the earlier behaviour through a switch: every patch's image
re-read and its masks re-decoded (``NucleusDataset.keep_decoded = False``); *now* is the
current default (float32); *now+bf16* adds the opt-in ``amp: bf16``, timed where this CPU has
bfloat16 matrix units (``--bf16 auto``; ``yes`` forces it). Blocks of ``--iterations``
alternate between the arms, so whatever else the machine does weighs on all alike; the ratios
are of the median seconds per iteration to *before*'s (``train_log.csv``, data loading
included; each block's first two iterations left out).

Loading: the median seconds per batch of patches once every image has been seen, before
and now (the short blocks above are mostly first visits, which both arms decode alike).

Evaluation: the checkpoints of the last *now* block, scored on ``--test-images`` test images
by the earlier code (per checkpoint: predict into a folder of label images and COCO file, read
them back, score) and by :func:`~nuclei_pa.engine.evaluate.evaluate_checkpoints` (test split
decoded once, scored in memory), alternating; the per-image metrics must agree exactly.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from nuclei_pa.data.folder import FolderSpec, write_folder_dataset
from nuclei_pa.data.synth import synthesize
from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.engine.dataset import NucleusDataset, batch_plan, open_dataset
from nuclei_pa.engine.evaluate import evaluate_checkpoints
from nuclei_pa.engine.predict import load_model, predict_folder
from nuclei_pa.engine.train import uses_bf16
from nuclei_pa.eval.folders import evaluate, read_checkpoint_csvs, write_csv
from nuclei_pa.io.images import read_image
from nuclei_pa.model import ModelConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {
    "H&E (monuseg-train)": ("monuseg-train", None),
    "fluorescence (bbbc039)": ("bbbc039", 40),
    "demo DH (synthetic, 192 px)": ("synth", None),
}
# The demo's DH stand-in (config/config.yaml): its evaluation is the demo's most repeated one.
DEMO_DH = SynthConfig(mode="fluorescence", n_train=60, n_test=35, size=192, nuclei_per_image=35)


def prepare(name: str, limit: int | None, test_images: int | None, root: Path) -> Path:
    """A train/test split folder of shared set ``name`` (its first ``limit`` images) or of the
    demo's synthetic DH in ``root``, the test split cut to ``test_images`` images."""
    out = root / name
    if name == "synth":
        synthesize(DEMO_DH, out)
        return out
    images = SHARED / name / "images"
    if limit is not None:
        sub = root / f"{name}-subset"
        for kind in ("images", "labels"):
            (sub / kind).mkdir(parents=True)
            for path in sorted(images.iterdir())[:limit]:
                (sub / kind / path.name).symlink_to(SHARED / name / kind / path.name)
        images = sub / "images"
    spec = FolderSpec.from_config(
        {
            "images": str(images),
            "annotations": str(images.parent / "labels"),
            "test": {"fraction": 0.3, "seed": 0},
        }
    )
    write_folder_dataset(spec, out)
    for kind in ("images", "labels"):  # evaluation reads test/labels, not annotations.json
        for path in sorted((out / "test" / kind).iterdir())[test_images:]:
            path.unlink()
    return out


def train_block(data: Path, out: Path, args: argparse.Namespace, kind: str, seed: int) -> list:
    """Seconds per iteration of one block of ``kind`` (before, now, now+bf16), its first two
    iterations left out."""
    NucleusDataset.keep_decoded = kind != "before"
    cfg = TrainConfig(
        iterations=args.iterations,
        batch_size=2,
        crop_size=256,
        checkpoint_every=max(args.iterations // 2, 1),
        threads=1,
        num_workers=0,
        seed=seed,
        amp="bf16" if kind == "now+bf16" else "off",
    )
    try:
        train(data / "train", out, ModelConfig.preset("slim"), cfg, progress=False)
    finally:
        NucleusDataset.keep_decoded = True
    return list(pd.read_csv(out / "train_log.csv")["seconds"].iloc[2:])


def loading_seconds(data: Path, keep: bool, batches: int = 30) -> float:
    """Median seconds to load one batch of 2 patches once every image has been seen (a real
    run's steady state: the demo visits each image dozens of times; a short block above
    mostly first visits), with or without decoded pixels and masks kept."""
    NucleusDataset.keep_decoded = keep
    try:
        dataset = open_dataset(data / "train")
        dataset.intensity = ModelConfig.preset("slim").intensity
        crops = dataset.crop_windows(256)
        plans = [batch_plan(len(dataset), 2, i, 0, True, crops) for i in range(batches)]
        for k in range(len(dataset)):  # every image seen once, as after the first epoch
            dataset[(k, False, False, crops.window(k, 0, 0, 0))]
        times = []
        for plan in plans:
            tic = time.perf_counter()
            for entry in plan:
                dataset[entry]
            times.append(time.perf_counter() - tic)
    finally:
        NucleusDataset.keep_decoded = True
    return statistics.median(times)


def evaluate_before(checkpoints: dict[int, Path], test: Path, tmp: Path) -> pd.DataFrame:
    """The earlier evaluate_checkpoints: predictions written to disk per checkpoint, read back."""
    for iteration, path in sorted(checkpoints.items()):
        pred = tmp / f"before{iteration}"
        predict_folder(
            load_model(path, "cpu"), test / "images", pred, dilate=True, progress=False
        )  # the paper's protocol, as evaluate_checkpoints predicts
        write_csv(evaluate(test, pred / "labels"), tmp / f"iter_{iteration:06d}.csv")
    return read_checkpoint_csvs(tmp)


def evaluate_now(checkpoints: dict[int, Path], test: Path, tmp: Path) -> pd.DataFrame:
    evaluate_checkpoints(checkpoints, test, tmp / "now", device="cpu", progress=False)
    return read_checkpoint_csvs(tmp / "now")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=8, help="per training block")
    parser.add_argument("--blocks", type=int, default=2, help="blocks of each, alternating")
    parser.add_argument("--test-images", type=int, default=4)
    parser.add_argument(
        "--bf16", choices=["auto", "yes", "no"], default="auto", help="also time amp: bf16"
    )
    parser.add_argument("--sets", nargs="+", choices=[v[0] for v in SETS.values()])
    args = parser.parse_args()
    torch.set_num_threads(1)
    cores = os.cpu_count()
    bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and uses_bf16("auto", torch.device("cpu")))
    kinds = ["before", "now", "now+bf16"] if bf16 else ["before", "now"]
    print(f"{cores} cores, torch {torch.__version__}; one thread each; arms: {', '.join(kinds)}")
    lzw = SHARED / "kumar-partial" / "images" / "TCGA-50-5931-01Z-00-DX1.tif"
    if lzw.is_file():  # was a timing assertion in tests/test_io_images.py
        read_image(lzw)  # warm the file cache and the codec
        times = []
        for _ in range(5):
            tic = time.perf_counter()
            read_image(lzw)
            times.append(time.perf_counter() - tic)
        print(f"reading a 1000 px LZW H&E TIFF: {statistics.median(times):.3f} s (median of 5)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for label, (name, limit) in SETS.items():
            if args.sets and name not in args.sets:
                continue
            data = prepare(name, limit, args.test_images, tmp)
            n_test = len(list((data / "test" / "labels").iterdir()))
            seconds: dict[str, list[float]] = {k: [] for k in kinds}
            for block in range(args.blocks):
                for kind in seconds:
                    out = tmp / f"{name}-{kind}{block}"
                    seconds[kind] += train_block(data, out, args, kind, seed=block)
            median = {k: statistics.median(v) for k, v in seconds.items()}
            print(
                f"{label}: training s/iteration (medians of {len(seconds['now'])} iterations "
                "each): "
                + ", ".join(
                    f"{k} {v:.3f} (x{median['before'] / v:.2f})" for k, v in median.items()
                ),
                flush=True,
            )
            before, now = loading_seconds(data, False), loading_seconds(data, True)
            print(
                f"{label}: loading a batch of 2 patches once every image was seen: "
                f"before {before:.3f} s, now {now:.3f} s",
                flush=True,
            )
            run = tmp / f"{name}-now{args.blocks - 1}"
            checkpoints = {int(p.stem[5:]): p for p in sorted(run.glob("ckpt_*.pt"))}
            timing: dict[str, list[float]] = {"before": [], "now": []}
            results = {}
            for block in range(args.blocks):
                for kind, fn in (("before", evaluate_before), ("now", evaluate_now)):
                    work = tmp / f"{name}-eval-{kind}{block}"
                    work.mkdir()
                    tic = time.perf_counter()
                    results[kind] = fn(checkpoints, data / "test", work)
                    timing[kind].append(time.perf_counter() - tic)
            same = results["before"].equals(results["now"])
            before, now = (statistics.median(timing[k]) for k in ("before", "now"))
            print(
                f"{label}: evaluation of {len(checkpoints)} checkpoints on "
                f"{n_test} test images {before:.2f} -> {now:.2f} s, speed-up "
                f"x{before / now:.2f}; per-image metrics identical: {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
