"""Command-line options shared by several subcommands, defined once so their help agrees.

Kept free of torch imports: `nuclei-pa --help` must stay fast.
"""

from __future__ import annotations

import argparse

BACKBONE_CHOICES = ["resnet18", "resnet34", "resnet50", "resnet101", "resnext101_64x4d"]


def add_architecture_options(
    group: argparse._ArgumentGroup, preset_help: str, init_help: str
) -> None:
    """--preset, --backbone and --init (train, annotate)."""
    group.add_argument("--preset", choices=["slim", "paper"], help=preset_help)
    group.add_argument(
        "--backbone",
        choices=BACKBONE_CHOICES,
        help="ResNet backbone under the FPN (default: the preset's)",
    )
    group.add_argument("--init", metavar="WEIGHTS", help=init_help)


def add_detection_thresholds(
    group: argparse._ArgumentParser | argparse._ArgumentGroup,
    defaults: dict[str, float | int],
    score_help: str,
    min_area_help: str,
) -> None:
    """--score-threshold, --mask-threshold and --min-area (predict, annotate)."""
    group.add_argument(
        "--score-threshold",
        type=float,
        default=defaults["score_threshold"],
        help=f"{score_help} (default %(default)s)",
    )
    group.add_argument(
        "--mask-threshold",
        type=float,
        default=defaults["mask_threshold"],
        help="a pixel belongs to a detection when its mask probability is > this "
        "(default %(default)s)",
    )
    group.add_argument(
        "--min-area",
        type=int,
        default=defaults["min_area"],
        help=f"{min_area_help} (default %(default)s)",
    )


def crop_size(text: str) -> int:
    """argparse type of --crop-size: a whole number ≥ 0 (0: whole images)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0 (0: whole images), got {value}")
    return value


def add_crop_size_option(group: argparse._ArgumentGroup, default_help: str) -> None:
    """--crop-size (train, annotate): patch training, which makes large images CPU-sized."""
    group.add_argument(
        "--crop-size",
        type=crop_size,
        metavar="N",
        help="train on random N×N patches, 9 in 10 placed around an annotated nucleus (an "
        "image smaller than N is used whole in that dimension); 0 = whole images, as the "
        f"paper ({default_help})",
    )


def crop_size_setting(value: int | None) -> dict[str, int | None]:
    """The TrainConfig entry of a --crop-size value: {} when not given, None for 0 (whole)."""
    if value is None:
        return {}
    return {"crop_size": value or None}
