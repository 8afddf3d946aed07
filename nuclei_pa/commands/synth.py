"""``nuclei-pa synth``: write the embedded synthetic dataset (train and test splits)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from nuclei_pa.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate the embedded synthetic dataset",
        description="Generate a seeded synthetic nucleus dataset with exact instance masks: "
        "OUT/train and OUT/test, each with images/ (TIFF), annotations.json (COCO, RLE masks) "
        "and labels/ (instance label TIFFs). The same seed gives byte-identical files.",
    )
    p.add_argument(
        "-o", "--out", type=Path, required=True, help="output folder (gets train/ and test/)"
    )
    p.add_argument(
        "--mode",
        choices=["fluorescence", "he"],
        default="fluorescence",
        help="fluorescence: DAPI-like grey images (the paper's DH set); he: RGB H&E "
        "histopathology with organ styles (default: %(default)s)",
    )
    p.add_argument(
        "--n-train", type=int, default=None, help="training images (default 60, as DH100)"
    )
    p.add_argument("--n-test", type=int, default=None, help="test images (default 23, as DH100)")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default 256)")
    p.add_argument(
        "--nuclei-per-image", type=float, default=None, help="mean nuclei per image (default 35)"
    )
    p.add_argument(
        "--train-styles",
        default=None,
        help="H&E only: comma-separated organ styles for the training split",
    )
    p.add_argument(
        "--test-styles",
        default=None,
        help="H&E only: comma-separated organ styles for the test split (may include "
        "styles absent from training)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nuclei_pa.data.synth import synthesize
    from nuclei_pa.data.synth_config import SynthConfig

    overrides = {
        "mode": args.mode,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "size": args.size,
        "nuclei_per_image": args.nuclei_per_image,
        "train_styles": tuple(args.train_styles.split(",")) if args.train_styles else None,
        "test_styles": tuple(args.test_styles.split(",")) if args.test_styles else None,
    }
    try:
        cfg = dataclasses.replace(
            SynthConfig(), **{k: v for k, v in overrides.items() if v is not None}
        )
    except ValueError as exc:
        raise InputError(None, f"{exc}") from exc
    counts = synthesize(cfg, args.out, seed=args.seed)
    for split, c in counts.items():
        print(f"{args.out / split}: {c['images']} images, {c['instances']} nuclei")
    return 0
