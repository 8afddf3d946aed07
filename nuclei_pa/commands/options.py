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
