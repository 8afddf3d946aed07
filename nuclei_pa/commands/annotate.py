"""``nuclei-pa annotate``: computer-assisted annotation in rounds (paper §III.D, Fig. 7)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nuclei_pa.commands.options import (
    add_architecture_options,
    add_crop_size_option,
    add_detection_thresholds,
    add_inference_options,
    crop_size_setting,
    inference_options,
)
from nuclei_pa.commands.predict import DEFAULTS as PREDICT_DEFAULTS
from nuclei_pa.errors import InputError

if TYPE_CHECKING:  # kept out of the import path: `nuclei-pa --help` must not import torch
    from nuclei_pa.engine.config import TrainConfig
    from nuclei_pa.model import ModelConfig

# Literal (not imported from nuclei_pa.annotate.session, which imports torch); tests check
# they equal the library's (GPU_ROUND, CPU_ROUND, ROUND_ITERATIONS).
GPU_DEFAULTS = {"iterations": 200, "batch_size": 8, "crop_size": 512}
CPU_DEFAULTS = {"iterations": 300, "batch_size": 2, "crop_size": 256}
ITERATIONS = GPU_DEFAULTS["iterations"]


def _machine(name: str, d: dict[str, int]) -> str:
    return (
        f"{name}: batch {d['batch_size']}, {d['crop_size']} px patches (smaller images whole), "
        f"{d['iterations']} iterations"
    )


MIN_NEW = 1
OVERLAP = 0.1

EPILOG = f"""\
how a session goes:
  1. outline a few nuclei in every image (any tool; the formats below), then
       nuclei-pa annotate IMAGES --annotations PARTIAL -o OUT
  2. open OUT/round_01 in Fiji (rois/), QuPath (geojson/), napari (labels/) or any COCO tool
     (coco.json). Delete wrong proposals, fix outlines, outline what the model missed; save
     in place, one format per image (untouched files need no saving).
  3. run the same command without --annotations: round 2 reads your corrections, trains from
     round 1's model and proposes again. Repeat until it says the annotation is complete.

PARTIAL (and a later round's --annotations) may be a COCO instances JSON listing every image,
a folder with one file per image named by the image's stem (ImageJ ROI set .zip/.roi, QuPath
.geojson, COCO .json, or a label image .tif/.png), a single file for a single image, or a
round folder. Every instance in it counts as annotated: kept exactly, learned from.

folder layout:
  OUT/round_NN/rois/<stem>.zip          Fiji ROI set of spline-fit polygons (human-0001,
                                        proposed-0042, ...); score and source as properties
  OUT/round_NN/geojson/<stem>.geojson   QuPath annotations, source (human/proposed) and score
  OUT/round_NN/coco.json                every image in one COCO document (RLE, source, score)
  OUT/round_NN/labels/<stem>.tif        int32 instance labels
  OUT/round_NN/overlays/<stem>.png      outlines: human blue, proposals orange
  OUT/round_NN/model/                   the round's checkpoints and train_log.csv
  OUT/round_NN/round.json               settings, counts, inputs, digests of the review files
  OUT/round_NN/state/                   exact masks for the next round (do not edit)
  OUT/rounds.csv, OUT/rounds.png        one row per round: annotated, outlined, accepted,
                                        rejected, proposed, new, score quantiles, status
  OUT/DONE                              written when a round shows fewer than --min-new new
                                        proposals; the session then stops by itself

Spline outlines you leave untouched are restored to their exact masks; proposals you delete
are not proposed again. A round interrupted during training resumes where it stopped.

training defaults depend on the machine (--device, auto: CUDA when available), so that a round
of ~10 images of up to ~700 px takes minutes on a laptop; options or --config override each:
  {_machine("GPU", GPU_DEFAULTS)}
  {_machine("CPU", CPU_DEFAULTS)}
The round prints the ones it chose; progress shows the time left for training and prediction.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="annotate images in rounds: train on partial annotations, propose, correct, repeat",
        description="Computer-assisted annotation (the paper's §III.D). Each round trains a pa\n"
        "model on the annotated nuclei of the very images being annotated, predicts those\n"
        "images, keeps every annotated nucleus exactly, adds each detection that overlaps none\n"
        "as a scored proposal, and writes the result as Fiji ROI sets, QuPath GeoJSON, COCO\n"
        "and label TIFFs for you to correct.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_inputs(p)
    _add_proposal_options(p.add_argument_group("proposals"))
    _add_model_options(
        p.add_argument_group("model (round 1; later rounds continue the previous round's)")
    )
    _add_training_options(p.add_argument_group("training (every round)"))
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def _add_inputs(p: argparse.ArgumentParser) -> None:
    """The images, the annotations, the session folder and which round."""
    p.add_argument(
        "images",
        type=Path,
        metavar="IMAGES",
        help="folder of the images to annotate (a split folder is used through its images/)",
    )
    p.add_argument(
        "--annotations",
        type=Path,
        metavar="PATH",
        help="round 1: the partial annotations (required); later rounds: your corrected "
        "annotations (default: the previous round's folder, edited in place)",
    )
    p.add_argument(
        "-o", "--out", type=Path, required=True, metavar="DIR", help="session folder (see below)"
    )
    p.add_argument(
        "--round",
        dest="round_no",
        type=int,
        metavar="N",
        help="round to run (default: the one after the last complete round; a finished session "
        "runs no more rounds unless asked for one)",
    )
    p.add_argument(
        "--min-new",
        type=int,
        default=MIN_NEW,
        metavar="K",
        help="the session is done when a round shows fewer than K new proposals "
        "(default %(default)s)",
    )


def _add_proposal_options(g: argparse._ArgumentGroup) -> None:
    """Which detections become proposals."""
    add_detection_thresholds(
        g,
        PREDICT_DEFAULTS,
        "propose detections with score ≥ this",
        "drop detections with fewer pixels",
    )
    g.add_argument(
        "--overlap",
        type=float,
        default=OVERLAP,
        help="drop a proposal when more than this fraction of it lies on annotated nuclei "
        "(default %(default)s)",
    )
    g.add_argument(
        "--tile-size",
        type=int,
        default=PREDICT_DEFAULTS["tile_size"],
        help="predict larger images in tiles of this size, 0 = never (default %(default)s)",
    )
    add_inference_options(g)


def _add_model_options(g: argparse._ArgumentGroup) -> None:
    """Round 1's network; later rounds continue the previous round's."""
    g.add_argument(
        "--config", type=Path, metavar="FILE", help="YAML of model and training settings"
    )
    add_architecture_options(
        g,
        "slim: ResNet-18 FPN for a CPU (default); paper: ResNeXt-101 FPN (GPU)",
        "round 1's initial weights: none, imagenet, coco, detectron:… or a checkpoint (default: "
        "the preset's)",
    )


def _add_training_options(g: argparse._ArgumentGroup) -> None:
    """Training in every round; defaults depend on the machine."""
    g.add_argument(
        "--iterations",
        type=int,
        metavar="N",
        help=f"iterations per round (default {ITERATIONS} on a GPU, as the paper; "
        f"{CPU_DEFAULTS['iterations']} on a CPU)",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"images (patches) per iteration (default {GPU_DEFAULTS['batch_size']} on a GPU, "
        f"{CPU_DEFAULTS['batch_size']} on a CPU)",
    )
    add_crop_size_option(
        g,
        f"default {GPU_DEFAULTS['crop_size']} on a GPU, {CPU_DEFAULTS['crop_size']} on a CPU",
    )
    g.add_argument("--lr", type=float, metavar="LR", help="SGD learning rate (default 0.01)")
    g.add_argument(
        "--checkpoint-every", type=int, metavar="N", help="iterations between checkpoints (50)"
    )
    g.add_argument("--seed", type=int, metavar="N", help="training seed (default 0)")
    g.add_argument("--device", metavar="DEVICE", help="auto (the default), cpu, cuda, cuda:1, … ")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    g.add_argument(
        "--workers",
        dest="num_workers",
        type=int,
        metavar="N",
        help="data-loading processes, 0 = in-process (default 2)",
    )


MODEL_OPTIONS = ("backbone", "init")
TRAIN_OPTIONS = (
    "iterations",
    "batch_size",
    "lr",
    "checkpoint_every",
    "seed",
    "device",
    "threads",
    "num_workers",
)


def build_configs(
    args: argparse.Namespace,
) -> tuple[ModelConfig | None, TrainConfig, dict[str, Any]]:
    """Round settings from defaults < machine defaults < --config file < options.

    Returns (model, training, the machine-dependent defaults taken, i.e. not set by the file or
    an option; see :func:`~nuclei_pa.annotate.session.round_defaults`). The model is None when
    nothing about it was asked for (round 1 then takes the slim pa preset, later rounds the
    previous round's model without checking).
    """
    from nuclei_pa.annotate.session import round_defaults
    from nuclei_pa.engine.config import TrainConfig
    from nuclei_pa.engine.settings import read_settings
    from nuclei_pa.model import ModelConfig

    model, train = read_settings(args.config) if args.config is not None else ({}, {})
    model.update({k: getattr(args, k) for k in MODEL_OPTIONS if getattr(args, k) is not None})
    train.update({k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None})
    train.update(crop_size_setting(args.crop_size))
    chosen = {
        k: v for k, v in round_defaults(train.get("device", "auto")).items() if k not in train
    }
    train.update(chosen)
    preset = args.preset or model.pop("preset", None)
    model.pop("preset", None)
    model_cfg = None
    if preset is not None or model:
        try:
            model_cfg = ModelConfig.preset(preset or "slim", **{"variant": "pa", **model})
        except (TypeError, ValueError) as exc:
            raise InputError(args.config, str(exc)) from exc
    try:
        train_cfg = TrainConfig.from_dict(train)
    except (TypeError, ValueError) as exc:
        raise InputError(args.config, str(exc)) from exc
    return model_cfg, train_cfg, chosen


def run(args: argparse.Namespace) -> int:
    for name in ("score_threshold", "mask_threshold", "overlap"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise InputError(None, f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
    if args.min_area < 1 or args.min_new < 0 or args.tile_size < 0:
        raise InputError(None, "--min-area must be ≥ 1, --min-new and --tile-size ≥ 0")
    if args.round_no is not None and args.round_no < 1:
        raise InputError(None, f"--round counts from 1, got {args.round_no}")
    inference = inference_options(args)
    model_cfg, train_cfg, chosen = build_configs(args)

    from nuclei_pa.annotate.session import (
        ProposalSettings,
        describe_defaults,
        run_round,
        session_status,
    )

    last, done = session_status(args.out)
    round_no = args.round_no if args.round_no is not None else last + 1
    if args.round_no is None and done is not None:
        print(f"{done}\n(pass --round {last + 1} to run another round anyway)")
        return 0
    if args.init is not None and round_no > 1:
        raise InputError(
            None, f"--init applies to round 1; round {round_no} starts from round {round_no - 1}"
        )
    settings = ProposalSettings(
        score_threshold=args.score_threshold,
        mask_threshold=args.mask_threshold,
        min_area=args.min_area,
        tile_size=args.tile_size,
        # the default overlap, or less for tiles too small to hold it
        tile_overlap=min(PREDICT_DEFAULTS["tile_overlap"], max(args.tile_size - 1, 0)),
        overlap=args.overlap,
        min_new=args.min_new,
        **inference,
    )
    if chosen:
        print(describe_defaults(train_cfg.device, chosen), flush=True)
    result = run_round(
        args.images,
        args.out,
        annotations=args.annotations,
        round_no=round_no,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        settings=settings,
        progress=not args.quiet,
    )
    _summary(result.counts, sys.stdout)
    print(result.message)
    return 0


def _summary(c: dict[str, Any], stream: Any) -> None:
    print(
        f"round {c['round']}: {c['human']} nuclei annotated in {c['images']} images "
        f"({c['outlined']} outlined by hand, {c['accepted']} accepted proposals; "
        f"{c['rejected']} rejected); {c['new']} new proposals"
        + (f" ({c['suppressed']} repeats of rejected ones hidden)" if c["suppressed"] else ""),
        file=stream,
    )
