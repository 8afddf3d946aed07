"""``nuclei-pa train``: train a baseline or pa Mask R-CNN on any COCO-annotated image set."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from nuclei_pa.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a Mask R-CNN (baseline or with the partial-annotation module)",
        description="Train on a split folder (images/ + annotations.json) or on any images folder "
        "with a COCO instances file. Annotations may be partial: with --variant pa, unlabelled "
        "nuclei are not learned as background. Checkpoints (ckpt_NNNNNN.pt, plus last.pt to "
        "resume from) and train_log.csv go to --out; rerunning the same command after an "
        "interruption resumes from the last checkpoint. Multi-GPU: run it under torchrun.",
    )
    p.add_argument("data", type=Path, nargs="?", help="split folder (images/, annotations.json)")
    p.add_argument(
        "--images", type=Path, help="images folder (with --annotations, instead of DATA)"
    )
    p.add_argument("--annotations", type=Path, help="COCO instances JSON for --images")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder for checkpoints")
    p.add_argument(
        "--variant",
        choices=["baseline", "pa"],
        default="pa",
        help="pa: with the partial-annotation module (default); baseline: plain Mask R-CNN",
    )
    p.add_argument(
        "--preset",
        choices=["slim", "paper"],
        default="slim",
        help="slim: ResNet-18, narrow heads, trains on a CPU (default); paper: ResNeXt-101 "
        "64x4d FPN with ImageNet weights, shorter side 360",
    )
    p.add_argument("--backbone", help="resnet18, resnet34, resnet50, resnet101 or resnext101_64x4d")
    p.add_argument("--init", help="none, imagenet, coco (resnet50 only) or a checkpoint path")
    p.add_argument(
        "--config",
        type=Path,
        help="YAML file with 'model:' and/or 'train:' mappings of ModelConfig/TrainConfig "
        "fields; command-line options override it",
    )
    p.add_argument("--iterations", type=int, help="training iterations (default 1000)")
    p.add_argument(
        "--batch-size", type=int, help="images per iteration, all GPUs together (default 8)"
    )
    p.add_argument("--lr", type=float, help="fixed learning rate (default 0.01)")
    p.add_argument(
        "--checkpoint-every", type=int, help="iterations between checkpoints (default 50)"
    )
    p.add_argument("--device", help="auto (default: CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument(
        "--restart", action="store_true", help="ignore an existing last.pt and start over"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from nuclei_pa.engine import TrainConfig, train
    from nuclei_pa.model import ModelConfig

    if (args.data is None) == (args.images is None):
        raise InputError(None, "give either a split folder DATA or --images with --annotations")
    if args.images is not None and args.annotations is None:
        raise InputError(None, "--images needs --annotations")
    extra: dict = {}
    if args.config is not None:
        if not args.config.is_file():
            raise InputError(args.config, "file not found")
        extra = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(extra, dict) or set(extra) - {"model", "train"}:
            raise InputError(args.config, "expected only 'model:' and 'train:' mappings")
    model_opts = {
        k: v
        for k, v in {"variant": args.variant, "backbone": args.backbone, "init": args.init}.items()
        if v is not None
    }
    train_opts = {
        k: v
        for k, v in {
            "iterations": args.iterations,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "checkpoint_every": args.checkpoint_every,
            "device": args.device,
            "seed": args.seed,
            "threads": args.threads,
        }.items()
        if v is not None
    }
    try:
        model_cfg = ModelConfig.preset(args.preset, **{**extra.get("model", {}), **model_opts})
        train_cfg = TrainConfig.from_dict({**extra.get("train", {}), **train_opts})
    except ValueError as exc:
        raise InputError(args.config, str(exc)) from exc
    data = args.data if args.data is not None else (args.images, args.annotations)
    final = train(
        data, args.out, model_cfg, train_cfg, resume=not args.restart, progress=not args.quiet
    )
    print(f"{final}: {dataclasses.asdict(train_cfg)['iterations']} iterations")
    return 0
