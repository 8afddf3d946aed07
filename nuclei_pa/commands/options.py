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


def add_inference_options(group: argparse._ArgumentParser | argparse._ArgumentGroup) -> None:
    """--test-time-flips, --mask-box-scale and --mask-box-grow (predict, annotate): a trained
    model's inference-only settings, changed without retraining."""
    group.add_argument(
        "--test-time-flips",
        action=argparse.BooleanOptionalAction,
        help="also predict each image's horizontal, vertical and double flips and merge the "
        "four (a nucleus kept where at least two agree): on the real validation images mAP rose "
        "by 0.02-0.03 and AJI by 0.02-0.04, for 3-4× the prediction time (default: the "
        "checkpoint's setting, off unless it was trained with it)",
    )
    group.add_argument(
        "--mask-box-scale",
        type=float,
        metavar="S",
        help="predict masks on boxes grown by S (1-2) about their centre, so a nucleus larger "
        "than its box is not cut off in a straight line; 1 = the box itself. Smoother outlines, "
        "but 0.01-0.05 less mAP on the real validation images (default: the checkpoint's, 1)",
    )
    group.add_argument(
        "--mask-box-grow",
        choices=["cut", "all"],
        help="with --mask-box-scale: grow only the boxes whose mask runs straight along a side "
        "(cut) or every box (all) (default: the checkpoint's, cut)",
    )


def inference_options(args: argparse.Namespace) -> dict[str, object]:
    """The inference settings the options gave, checked by ModelConfig's rules; {} when none
    was given (the checkpoint's own apply). A bad value is an InputError naming its option."""
    from nuclei_pa.errors import ConfigError, InputError

    given: dict[str, object] = {}
    if args.test_time_flips is not None:
        given["test_time_flips"] = args.test_time_flips
    if args.mask_box_scale is not None:
        given["mask_box_scale"] = args.mask_box_scale
    if args.mask_box_grow is not None:
        if args.mask_box_scale is None:
            raise InputError(None, "--mask-box-grow applies with --mask-box-scale; none was given")
        given["mask_box_grow"] = args.mask_box_grow
    if not given:
        return given
    from nuclei_pa.model.config import inference_settings

    try:
        return inference_settings(given)
    except ConfigError as exc:
        option = "--" + exc.key.rsplit(".", 1)[-1].replace("_", "-")
        raise InputError(None, f"{option} {exc.problem}") from exc
