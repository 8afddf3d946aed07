"""Inference-time levers of trained models, side by side on a *validation* split.

Levers (nuclei_pa.engine.predict / .tta, ``ModelConfig.test_time_flips``, ``mask_box_scale``
and ``mask_box_grow``): the plain prediction, test-time flips, the mask head on every box
grown 1.1× and 1.2× ("all") or only on the boxes that cut their mask grown 1.2× ("cut"), and
flips with either; then, on the plain prediction, the mask threshold
(0.4, 0.6 against 0.5) and the box NMS IoU (0.4, 0.6 against the model's 0.5). Each model is
taken at the checkpoint and score threshold its run chose on validation
(``eval/<model>/seed0/chosen.json``) and scored on every image of its dataset's validation
split as the evaluation rule scores (``image_metrics`` per image, the mean over images).

    OMP_NUM_THREADS=1 python benchmarks/bench_inference_levers.py \\
        BBBC25-pa BBBC100-baseline Kumar25-pa Kumar100-baseline --results results/real-cpu

Columns: mAP, AJI, R@0.5, the straight-edge share (below) and seconds per image as a ratio to
the plain prediction (one thread; the mask-threshold rows re-threshold the plain run's cached
model outputs, so they cost what the plain one does).

**Straight-edge share**: of the predicted nuclei not touching the image border, the share whose
mask runs straight along a side of its own bounding box for at least ``max(6 px, half that
side)`` — a mask cut off where its box ended. A round nucleus touches its box along a few
pixels only. The same share of the ground truth (nuclei that are flat where they touch a
neighbour) is printed as the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from nuclei_pa.engine.evaluate import TestSplit
from nuclei_pa.engine.predict import load_model, predict_image
from nuclei_pa.eval.folders import summarise
from nuclei_pa.eval.matching import image_metrics
from nuclei_pa.io.jsonfile import read_json

#: Model name prefix → workflow dataset folder.
DATASETS = {"BBBC": "bbbc", "Kumar": "kumar", "F": "fluo"}

#: (row name, predict_image overrides, settings of the model's R-CNN heads)
SETTINGS: list[tuple[str, dict, dict]] = [
    ("plain", {}, {}),
    ("flips", {"test_time_flips": True}, {}),
    ("box 1.1 all", {"mask_box_scale": 1.1}, {"mask_box_grow": "all"}),
    ("box 1.2 all", {"mask_box_scale": 1.2}, {"mask_box_grow": "all"}),
    ("box 1.2 cut", {"mask_box_scale": 1.2}, {"mask_box_grow": "cut"}),
    (
        "flips+box 1.2 all",
        {"test_time_flips": True, "mask_box_scale": 1.2},
        {"mask_box_grow": "all"},
    ),
    (
        "flips+box 1.2 cut",
        {"test_time_flips": True, "mask_box_scale": 1.2},
        {"mask_box_grow": "cut"},
    ),
    ("mask thr 0.4", {"mask_threshold": 0.4}, {}),
    ("mask thr 0.6", {"mask_threshold": 0.6}, {}),
    ("nms 0.4", {}, {"nms_thresh": 0.4}),
    ("nms 0.6", {}, {"nms_thresh": 0.6}),
]
#: Rows that reuse the plain run's model outputs (only the mask threshold differs).
CACHED = ("mask thr 0.4", "mask thr 0.6")


def straight_edges(labels: np.ndarray, min_run: int = 6, min_fraction: float = 0.5) -> tuple:
    """(nuclei away from the image border, those with a straight run along a side of their box
    of ≥ max(``min_run``, ``min_fraction`` × that side))."""
    height, width = labels.shape
    considered = flagged = 0
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        if sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == height or sl[1].stop == width:
            continue
        mask = labels[sl] == k
        considered += 1
        h, w = mask.shape
        sides = ((mask[0], w), (mask[-1], w), (mask[:, 0], h), (mask[:, -1], h))
        if any(_longest_run(edge) >= max(min_run, min_fraction * n) for edge, n in sides):
            flagged += 1
    return considered, flagged


def _longest_run(line: np.ndarray) -> int:
    padded = np.concatenate([[False], line, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return int((changes[1::2] - changes[::2]).max(initial=0))


def _caching(model: torch.nn.Module) -> dict:
    """Memoise ``model``'s outputs by input and by every setting that changes them."""
    cache: dict = {}
    forward = model.forward

    def cached(images, targets=None):
        heads = model.roi_heads
        key = (
            tuple(hashlib.sha1(x.cpu().numpy().tobytes()).hexdigest() for x in images),
            heads.score_thresh,
            heads.nms_thresh,
            heads.mask_box_scale,
            heads.mask_box_grow,
            model.transform.paste_masks,
        )
        if key not in cache:
            cache[key] = forward(images, targets)
        return cache[key]

    model.forward = cached
    return cache


@contextlib.contextmanager
def _heads(model: torch.nn.Module, settings: dict) -> Iterator[None]:
    """The model's R-CNN heads with ``settings`` for the block."""
    heads = model.roi_heads
    before = {k: getattr(heads, k) for k in settings}
    for k, v in settings.items():
        setattr(heads, k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            setattr(heads, k, v)


def _summary(rows: list[dict], edges: list[tuple[int, int]], seconds: float) -> dict:
    summary = summarise(pd.DataFrame(rows)).iloc[0]
    considered, flagged = map(sum, zip(*edges, strict=True))
    return {
        "mAP": summary["map"],
        "AJI": summary["aji"],
        "R@0.5": summary["recall_50"],
        "straight": flagged / max(considered, 1),
        "n_pred": int(summary["n_pred"]),
        "s/img": seconds / len(rows),
    }


@dataclass(frozen=True)
class ChosenRun:
    """A workflow model at the checkpoint and score threshold its validation images chose."""

    dataset: str
    checkpoint: Path
    score_threshold: float
    split: TestSplit
    model: torch.nn.Module


def chosen_run(name: str, results: Path, split_name: str, data: str | None = None) -> ChosenRun:
    """``name``'s chosen checkpoint (``eval/<name>/seed0/chosen.json``) loaded on the CPU, and
    its dataset's split ``split_name`` (the dataset from the name's prefix unless ``data``)."""
    dataset = data or next(v for k, v in DATASETS.items() if name.startswith(k))
    chosen = read_json(results / "eval" / name / "seed0" / "chosen.json")
    ckpt = (
        results / "models" / name / "seed0" / "checkpoints" / f"ckpt_{chosen['iteration']:06d}.pt"
    )
    split = TestSplit.read(results / "data" / dataset / split_name)
    score = float(chosen["score_threshold"])
    return ChosenRun(dataset, ckpt, score, split, load_model(ckpt, "cpu"))


def bench_model(
    name: str,
    results: Path,
    split_name: str,
    data: str | None,
    settings: list[tuple[str, dict, dict]] = SETTINGS,
    mask_threshold: float = 0.5,
    dilate: bool = True,
) -> pd.DataFrame:
    run = chosen_run(name, results, split_name, data)
    split, model, score = run.split, run.model, run.score_threshold
    predict_image(model, split.images[0], score_threshold=score)  # warm-up, untimed
    cache = _caching(model)
    truth_c, truth_f = map(sum, zip(*(straight_edges(t) for t in split.labels), strict=True))
    print(
        f"\n{name}: {run.checkpoint.name}, score threshold {score} (chosen.json), "
        f"{run.dataset}/{split_name}: "
        f"{len(split.names)} images, {sum(int(t.max()) for t in split.labels)} nuclei; "
        f"ground truth straight-edge share {truth_f / max(truth_c, 1):.3f}",
        flush=True,
    )
    # image by image, every setting on each in turn: a change in the machine's load slows
    # every setting alike, so the time ratios hold on a shared machine
    metrics = {label: [] for label, _, _ in settings}
    edges = {label: [] for label, _, _ in settings}
    seconds = dict.fromkeys(metrics, 0.0)
    for image, truth in zip(split.images, split.labels, strict=True):
        cache.clear()  # only this image's outputs are reused
        for label, overrides, heads in settings:
            with _heads(model, heads):
                start = time.perf_counter()
                labels, _ = predict_image(
                    model,
                    image,
                    score_threshold=score,
                    device=None,
                    **{"mask_threshold": mask_threshold, "dilate": dilate, **overrides},
                )
                seconds[label] += time.perf_counter() - start
            metrics[label].append(image_metrics(truth, labels).as_dict())
            edges[label].append(straight_edges(labels))
    rows = []
    for label, _, _ in settings:
        row = _summary(metrics[label], edges[label], seconds[label])
        rows.append({"model": name, "setting": label, **row})
        print(
            f"  {label:<18} mAP {row['mAP']:.4f}  AJI {row['AJI']:.4f}  R@0.5 {row['R@0.5']:.4f}"
            f"  straight {row['straight']:.3f}  n_pred {row['n_pred']}  {row['s/img']:.2f} s/img",
            file=sys.stderr,
            flush=True,
        )
    frame = pd.DataFrame(rows)
    plain = frame.loc[frame["setting"] == "plain", "s/img"]
    frame["time"] = frame["s/img"] / plain.iloc[0] if len(plain) else float("nan")
    frame.loc[frame["setting"].isin(CACHED), "time"] = 1.0
    return frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model names, e.g. BBBC25-pa")
    parser.add_argument("--results", type=Path, default=Path("results/real-cpu"))
    parser.add_argument("--split", default="val", help="split folder (default: val)")
    parser.add_argument("--data", help="dataset folder for every model (default: by name)")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    parser.add_argument(
        "--settings", nargs="+", help="only these rows (names as printed; default: all)"
    )
    parser.add_argument(
        "--mask-threshold",
        type=float,
        default=0.5,
        help="mask threshold of every row but the mask-threshold ones (default: 0.5)",
    )
    parser.add_argument(
        "--dilate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the paper's 3×3 dilation on every row (default: on, as the README's blocks were "
        "measured; the predictor's own default is off)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("command: python benchmarks/bench_inference_levers.py " + " ".join(argv or sys.argv[1:]))
    start = time.perf_counter()
    settings = SETTINGS
    if args.settings:
        unknown = set(args.settings) - {label for label, _, _ in SETTINGS}
        if unknown:
            parser.error(f"unknown setting {sorted(unknown)[0]!r}")
        settings = [row for row in SETTINGS if row[0] in args.settings]
    frames = [
        bench_model(
            m, args.results, args.split, args.data, settings, args.mask_threshold, args.dilate
        )
        for m in args.models
    ]
    table = pd.concat(frames, ignore_index=True)
    table["plain s/img"] = table.groupby("model")["s/img"].transform("first")
    show = table[["model", "setting", "mAP", "AJI", "R@0.5", "straight", "n_pred", "time"]]
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print()
        print(show.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print("\nplain seconds per image:")
        print(table.groupby("model", sort=False)["plain s/img"].first().round(2).to_string())
    print(f"\ntotal {time.perf_counter() - start:.0f} s, 1 thread")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
