"""``nuclei-pa train``: train a baseline or pa Mask R-CNN on any COCO-annotated image set."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nuclei_pa.commands.options import (
    add_architecture_options,
    add_crop_size_option,
    crop_size_setting,
)
from nuclei_pa.errors import InputError

if TYPE_CHECKING:  # kept out of the import path: `nuclei-pa --help` must not import torch
    from nuclei_pa.engine.config import TrainConfig
    from nuclei_pa.model import ModelConfig

EPILOG = """\
outputs in --out:
  ckpt_NNNNNN.pt   a checkpoint every --checkpoint-every iterations and at the end: weights,
                   optimiser, RNG state, and the model settings 'nuclei-pa predict --checkpoint'
                   rebuilds the network from
  last.pt          the newest checkpoint (same file)
  train_log.csv    every loss term, gradient norm, seconds and peak memory of every iteration

Interrupted (Ctrl-C, a crash, kill -9), the same command resumes from the newest checkpoint and
ends with the same weights as an uninterrupted run (bitwise on CPU).

settings: built-in defaults < --preset < --config file < command-line options. The config file
is YAML with any ModelConfig / TrainConfig field, flat or under 'model:' / 'train:', e.g.
  model: {preset: slim, backbone: resnet34, warmup_steps: 100}
  train: {iterations: 2000, batch_size: 4}

large images on a CPU: --crop-size 256 trains on 256 px patches (9 in 10 around an annotated
nucleus) instead of whole images; on 1000×1000 H&E, batch 2, 2 threads, an iteration took 0.5 s
and 1.1 GB instead of 18-21 s and 7.5 GB. Resuming keeps the patch sequence exact, as the batches.

several GPUs (data parallel, the batch is split across them):
  torchrun --standalone --nproc_per_node 4 -m nuclei_pa.cli train DATA --out OUT
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a Mask R-CNN, baseline or with the partial-annotation (pa) module",
        description="Train a nucleus detector on a split folder (images/ + annotations.json)\n"
        "or on any images folder with a COCO instances file (--images, --annotations).\n"
        "Annotations may be partial: with --variant pa, nuclei nobody outlined are not\n"
        "learned as background (the paper's method).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_inputs(p)
    _add_model_options(p.add_argument_group("model"))
    _add_training_options(p.add_argument_group("training"))
    p.add_argument(
        "--restart",
        action="store_true",
        help="delete the checkpoints and log already in --out and start over (default: resume)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.set_defaults(run=run)


def _add_inputs(p: argparse.ArgumentParser) -> None:
    """The data to train on, where to write, and the settings file."""
    p.add_argument(
        "data",
        type=Path,
        nargs="?",
        metavar="SPLIT",
        help="split folder with images/ and annotations.json (or give --images and --annotations)",
    )
    p.add_argument("--images", type=Path, metavar="DIR", help="folder of the training images")
    p.add_argument(
        "--annotations",
        type=Path,
        metavar="FILE",
        help="COCO instances JSON describing --images (category: nucleus; RLE or polygon masks)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        metavar="FILE",
        help="the training images' full annotations (COCO file or split folder), when the "
        "training set was derived from them: train_log.csv then also records how many of the pa "
        "model's centre boxes sit on unlabelled nuclei",
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder for checkpoints and log",
    )
    p.add_argument(
        "--config", type=Path, metavar="FILE", help="YAML file of model and training settings"
    )


def _add_model_options(g: argparse._ArgumentGroup) -> None:
    """Which network: variant, preset, backbone, initial weights."""
    g.add_argument(
        "--variant",
        choices=["baseline", "pa"],
        help="pa: Mask R-CNN with the partial-annotation module (default); baseline: plain",
    )
    add_architecture_options(
        g,
        "slim: ResNet-18 FPN with narrow heads, trains on a laptop CPU (default); paper: "
        "the authors' ResNeXt-101 64x4d FPN, from ImageNet weights (GPU; the paper starts from "
        "COCO weights: --init detectron:x101, with Caffe2's image_mean/image_std in --config "
        "as config/paper.yaml sets them)",
        "initial weights: none (random), imagenet (backbone), coco (torchvision's COCO Mask "
        "R-CNN, resnet50 only), detectron:x101 (the paper's Detectron COCO X-101 FPN; or "
        "detectron:PATH_OR_URL of a Detectron Mask R-CNN FPN .pkl; set image_mean/image_std "
        "as config/paper.yaml does) or a checkpoint file to fine-tune from (default: the "
        "preset's)",
    )


def _add_training_options(g: argparse._ArgumentGroup) -> None:
    """How long and how to train, and on what."""
    g.add_argument("--iterations", type=int, metavar="N", help="iterations to train (default 1000)")
    g.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="images per iteration, all processes together; must divide by the number of "
        "GPUs under torchrun (default 8)",
    )
    g.add_argument("--lr", type=float, metavar="LR", help="peak SGD learning rate (default 0.01)")
    g.add_argument(
        "--lr-schedule",
        choices=["cosine", "constant"],
        help="cosine: decays to zero at the last iteration, so the last checkpoints settle "
        "(default); constant: the paper's fixed rate",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="iterations between checkpoints (default 50)",
    )
    g.add_argument(
        "--no-flips",
        dest="flips",
        action="store_false",
        default=None,
        help="no random horizontal/vertical flips (the only augmentation; on by default)",
    )
    add_crop_size_option(g, "default 0")
    g.add_argument(
        "--seed", type=int, metavar="N", help="seed of weights, batch order and flips (default 0)"
    )
    g.add_argument(
        "--device",
        metavar="DEVICE",
        help="auto (CUDA when available, else CPU; the default), cpu, cuda, cuda:1, …",
    )
    g.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)"
    )
    g.add_argument(
        "--workers",
        dest="num_workers",
        type=int,
        metavar="N",
        help="data-loading processes per training process, 0 = load in-process (default 2)",
    )


MODEL_OPTIONS = ("variant", "backbone", "init")
TRAIN_OPTIONS = (
    "iterations",
    "batch_size",
    "lr",
    "lr_schedule",
    "checkpoint_every",
    "flips",
    "seed",
    "device",
    "threads",
    "num_workers",
)


def build_configs(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """(ModelConfig, TrainConfig) from defaults, preset, config file and options, in that order."""
    from nuclei_pa.engine.config import TrainConfig
    from nuclei_pa.engine.settings import read_settings
    from nuclei_pa.model import ModelConfig

    model, train = read_settings(args.config) if args.config is not None else ({}, {})
    model.update({k: getattr(args, k) for k in MODEL_OPTIONS if getattr(args, k) is not None})
    train.update({k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None})
    train.update(crop_size_setting(args.crop_size))
    preset = args.preset or model.pop("preset", "slim")
    model.pop("preset", None)
    model.setdefault("variant", "pa")
    where = args.config  # a bad value came from the file or the command line; name the file
    try:
        model_cfg = ModelConfig.preset(preset, **model)
    except (TypeError, ValueError) as exc:
        raise InputError(where, str(exc)) from exc
    try:
        train_cfg = TrainConfig.from_dict(train)
    except (TypeError, ValueError) as exc:
        raise InputError(where, str(exc)) from exc
    return model_cfg, train_cfg


def run(args: argparse.Namespace) -> int:
    if args.data is not None and (args.images is not None or args.annotations is not None):
        raise InputError(None, "give a split folder or --images with --annotations, not both")
    if args.data is None and (args.images is None or args.annotations is None):
        raise InputError(None, "give a split folder, or both --images and --annotations")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(args.out, "exists and is not a folder (--out takes a folder)")
    model_cfg, train_cfg = build_configs(args)

    from nuclei_pa.engine.train import train

    data = args.data if args.data is not None else (args.images, args.annotations)
    try:
        final = train(
            data,
            args.out,
            model_cfg,
            train_cfg,
            resume=not args.restart,
            progress=not args.quiet,
            reference=args.reference,
        )
    except FloatingPointError as exc:
        print(f"nuclei-pa train: error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:
        print(final)
    return 0
