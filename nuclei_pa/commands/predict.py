"""``nuclei-pa predict``: segment images — and whole slides — with a trained checkpoint.

Slides go through the same command rather than a subcommand of their own: a user with a
checkpoint runs ``nuclei-pa predict`` on whatever they have, with the same thresholds; a slide
(by suffix, or a TIFF holding a pyramid) just gets slide outputs, OUT/<name>.geojson for QuPath
and OUT/<name>.csv, streamed and resumable (:mod:`nuclei_pa.slide`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nuclei_pa.commands.options import (
    add_detection_thresholds,
    add_inference_options,
    inference_options,
)
from nuclei_pa.errors import InputError

# Kept literal (not imported from the engine) so `nuclei-pa --help` does not import torch;
# tests check they equal nuclei_pa.engine.predict.DEFAULTS.
DEFAULTS = {
    "score_threshold": 0.5,
    "mask_threshold": 0.5,
    "min_area": 10,
    "dilate": False,
    "tile_size": 1024,
    "tile_overlap": 128,
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images with a trained checkpoint (label TIFFs + COCO predictions)",
        description="Detect and segment the nuclei of every image with a checkpoint written by "
        "'nuclei-pa train'. Writes OUT/labels/<name>.tif (instance label images, 0 = background, "
        "label 1 = highest score) and OUT/predictions.json (a COCO document with RLE masks and "
        "scores, readable by 'nuclei-pa evaluate' and pycocotools). Overlapping masks are "
        "resolved by score (--dilate adds the paper's 3×3 dilation of each nucleus; off by "
        "default: it made masks 20 % wider than the ground truth on real validation images). "
        "Images larger than --tile-size are predicted in overlapping "
        "tiles stitched without duplicated or cut nuclei. Whole slides (.svs, .ndpi, .scn, .bif, "
        ".ome.tif, pyramidal .tif) are read tile by tile at --mpp or --level, background skipped, "
        "and written as OUT/<name>.geojson (QuPath detections, score as a measurement) and "
        "OUT/<name>.csv (centroid in level-0 pixels and µm, area in µm², score) as they go; "
        "a killed run resumes where it stopped when rerun with the same settings. "
        "--test-time-flips and --mask-box-scale change how a trained model predicts, without "
        "retraining.",
    )
    p.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="IMAGES",
        help="image files (.tif/.tiff/.png/.jpg), folders of images (a split folder is "
        "used through its images/) and/or whole slides; outputs are named by file stem",
    )
    p.add_argument(
        "--checkpoint", type=Path, required=True, help="model checkpoint (.pt) from nuclei-pa train"
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        help="output folder (gets labels/ and predictions.json)",
    )
    add_detection_thresholds(
        p,
        DEFAULTS,
        "keep detections with score ≥ this",
        "drop a nucleus left with fewer pixels than this after overlaps are resolved",
    )
    p.add_argument(
        "--dilate",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS["dilate"],
        help="grow each nucleus by a 3×3 square into background, the paper's post-processing "
        "(default: off)",
    )
    p.add_argument(
        "--tile-size",
        type=int,
        default=DEFAULTS["tile_size"],
        help="predict images larger than this in tiles of this many pixels square, so memory "
        "does not grow with the image; 0 = never tile (default %(default)s)",
    )
    p.add_argument(
        "--tile-overlap",
        type=int,
        default=DEFAULTS["tile_overlap"],
        help="overlap of neighbouring tiles in pixels; must exceed the largest nucleus "
        "diameter, or nuclei on tile borders can be lost (default %(default)s)",
    )
    add_inference_options(p.add_argument_group("inference (no retraining)"))
    p.add_argument(
        "--device",
        default="auto",
        help="torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:1, … "
        "(default %(default)s)",
    )
    slides = p.add_argument_group("whole slides")
    res = slides.add_mutually_exclusive_group()
    res.add_argument(
        "--mpp",
        type=float,
        help="predict slides at this many µm per pixel (the level nearest it, resampled; the "
        "slide must carry its resolution); default: the full resolution",
    )
    res.add_argument("--level", type=int, help="predict slides at this pyramid level (0 = full)")
    slides.add_argument(
        "--no-tissue-mask",
        dest="tissue",
        action="store_false",
        help="predict every tile, not only those with tissue in a low-level saturation mask",
    )
    slides.add_argument(
        "--restart",
        action="store_true",
        help="ignore an interrupted run's checkpoint and start the slide afresh",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    p.set_defaults(run=run)


def detection_params(args: argparse.Namespace) -> dict[str, float | int | bool]:
    """Which detections and pixels are kept: the same for images and slides."""
    return {
        "score_threshold": args.score_threshold,
        "mask_threshold": args.mask_threshold,
        "min_area": args.min_area,
        "dilate": args.dilate,
    }


def run(args: argparse.Namespace) -> int:
    for name in ("score_threshold", "mask_threshold"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise InputError(None, f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
    if args.min_area < 1:
        raise InputError(None, f"--min-area must be ≥ 1, got {args.min_area}")
    if args.tile_size < 0 or args.tile_overlap < 0:
        raise InputError(None, "--tile-size and --tile-overlap must be ≥ 0")
    if args.tile_size and args.tile_overlap >= args.tile_size:
        raise InputError(
            None, f"--tile-overlap {args.tile_overlap} must be below --tile-size {args.tile_size}"
        )
    inference = inference_options(args)

    from nuclei_pa.slide.reader import is_slide

    slides = [p for p in args.images if is_slide(p)]
    images = [p for p in args.images if p not in slides]
    if slides:
        run_slides(args, slides, inference)
    elif args.mpp is not None or args.level is not None:
        raise InputError(None, "--mpp and --level apply to whole slides; none was given")
    if not images:
        return 0

    from nuclei_pa.engine.predict import predict_folder

    summary = predict_folder(
        args.checkpoint,
        images,
        args.out,
        **detection_params(args),
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
        device=args.device,
        progress=not args.quiet,
        inference=inference,
    )
    if not args.quiet:
        print(f"{args.out}: {summary['instances']} nuclei in {summary['images']} images")
    return 0


def run_slides(
    args: argparse.Namespace, slides: list[Path], inference: dict[str, object] | None = None
) -> None:
    """Every slide into OUT/<stem>.geojson + .csv; all are checked before the model loads.
    ``inference``: the checkpoint's inference settings overridden (``load_model``'s)."""
    from nuclei_pa.slide.reader import Slide

    if not args.tile_size:
        raise InputError(None, "--tile-size must be > 0 for whole slides")
    from nuclei_pa.engine.predict import check_unique_stems

    check_unique_stems(slides)
    for path in slides:
        with Slide(path) as slide:  # bad slide, level or µm/px: fail before loading a model
            slide.plane(mpp=args.mpp, level=args.level)

    from nuclei_pa.engine import predict as engine
    from nuclei_pa.slide.predictors import ModelPredictor
    from nuclei_pa.slide.stream import predict_slide

    model = engine.load_model(args.checkpoint, args.device, **engine.inference_kwargs(inference))
    params = detection_params(args)
    for path in slides:
        out = args.out / f"{path.stem}.geojson"
        summary = predict_slide(
            path,
            out,
            lambda pixels: ModelPredictor(model, pixels, **params),
            mpp=args.mpp,
            level=args.level,
            tile_size=args.tile_size,
            tile_overlap=args.tile_overlap,
            tissue=args.tissue,
            restart=args.restart,
            progress=not args.quiet,
        )
        if not args.quiet:
            print(
                f"{out}: {summary['nuclei']} nuclei, {summary['tissue_tiles']} of "
                f"{summary['tiles']} tiles with tissue, {summary['tiles_per_s']:.2f} tiles/s"
            )
