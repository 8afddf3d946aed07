"""How much hand outlining computer-assisted annotation saves: a simulated annotator.

On the embedded synthetic fluorescence data (train split, 26 images as the paper's §III.D), or
on real Kumar H&E images (``--dataset kumar``: each 1000×1000 image cut into ``--tile`` px
tiles, its ImageScope outlines as the truth), the session starts from 25 % of the nuclei
outlined. After each round the simulated annotator does what a person would, in the round's
own ``coco.json``, edited in place:

- keeps every proposal that matches a true nucleus (IoU > 0.5): accepted, free;
- deletes every other proposal (a click each, not counted as outlining);
- outlines ``--per-image`` true nuclei still missing in each image, by hand (the exact mask).

After each round it reports the fraction of true nuclei annotated (matched at IoU > 0.5 by an
annotated instance), the manual outlines so far, and how many outlines finishing by hand from
there to 95 % would take. It ends when 95 % is reached, the session says it is done, or after
``--max-rounds``; the last line compares the outlines used with outlining every nucleus.

    nice -n 19 python benchmarks/bench_annotator.py --iterations 150 --per-image 3
    nice -n 10 python benchmarks/bench_annotator.py --dataset kumar --images 2 --tile 500 \
        --crop-size 256 --iterations 300 --max-rounds 4

Kumar's data is read in place (``../shared/data/kumar-partial`` beside the repository unless
``--data`` says otherwise) and never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.annotate.layout import COCO_FILE, ImageRef, instances_document, round_dir
from nuclei_pa.annotate.review import matches
from nuclei_pa.annotate.session import ProposalSettings, run_round
from nuclei_pa.data.derive import crop_labels, remove_instances
from nuclei_pa.data.synth import generate_split
from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.engine import TrainConfig
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.dataset import Sample, write_split
from nuclei_pa.io.formats import read_annotation
from nuclei_pa.model import ModelConfig

TARGET = 0.95
KUMAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "kumar-partial"


def kumar_tiles(folder: Path, n_images: int, tile: int) -> list[Sample]:
    """The first ``n_images`` Kumar images (by name) cut into ``tile`` px tiles, with their
    outlines as instance labels; nuclei cut by a tile border are clipped, slivers dropped."""
    from nuclei_pa.io.images import read_image
    from nuclei_pa.io.imagescope import read_imagescope

    xmls = sorted((folder / "annotations").glob("*.xml"))[:n_images]
    if not xmls:
        raise SystemExit(f"no Kumar annotations in {folder / 'annotations'} (see --data)")
    samples = []
    for xml in xmls:
        image = read_image(folder / "images" / f"{xml.stem}.tif")
        labels = read_imagescope(xml, image.shape, invalid="skip")
        h, w = labels.shape
        for y in range(0, h - tile + 1, tile):
            for x in range(0, w - tile + 1, tile):
                name = f"{xml.stem}_y{y:04d}_x{x:04d}"
                crop = image[y : y + tile, x : x + tile].copy()
                samples.append(Sample(name, crop, crop_labels(labels, (y, x, tile, tile))))
    return samples


def annotated_count(truth: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> int:
    """True nuclei matched (IoU > 0.5) by an annotated instance, over all images."""
    return sum(len(matches(truth[s], labels[s])) for s in truth)


def correct(
    ann: Annotation, truth: np.ndarray, per_image: int, rng: np.random.Generator
) -> tuple[np.ndarray, int, int, int]:
    """One image's corrections: (labels, accepted, deleted, outlined by hand)."""
    proposed = [i for i in ann.ids if ann.source_of(i) == "proposed"]
    true_hits = {p for p, _ in matches(ann.labels, truth)}
    accepted = [p for p in proposed if p in true_hits]
    deleted = [p for p in proposed if p not in true_hits]
    labels = np.where(np.isin(ann.labels, deleted), 0, ann.labels).astype(np.int32)
    found = {t for _, t in matches(labels, truth)}
    missing = [int(t) for t in np.unique(truth[truth > 0]) if int(t) not in found]
    drawn = rng.choice(missing, size=min(per_image, len(missing)), replace=False)
    for t in drawn:  # the annotator's outline wins the pixels it shares with a neighbour
        labels[truth == t] = labels.max() + 1
    return labels, len(accepted), len(deleted), len(drawn)


def main() -> None:
    args = _parse_args()
    tic = time.perf_counter()
    samples, partial = _write_data(args)
    rows, stop, total = _simulate(args, samples, partial, tic)
    report = _report(args, len(samples), rows, total, stop)
    print()
    print("\n".join(report))
    (args.out / "summary.md").write_text("\n".join(report) + "\n")  # tools/readme_results.py
    print(f"wall time: {time.perf_counter() - tic:.0f} s")
    (args.out / "summary.json").write_text(
        json.dumps({"total": total, "rows": rows, "stop": stop}, indent=1)
    )


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench_annotator"))
    parser.add_argument("--dataset", choices=["synth", "kumar"], default="synth")
    parser.add_argument("--data", type=Path, default=KUMAR, help="kumar: the kumar-partial folder")
    parser.add_argument(
        "--images",
        type=int,
        help="synth: train images (default 26, the paper's); kumar: "
        "1000×1000 images to tile (default 2)",
    )
    parser.add_argument("--tile", type=int, default=500, help="kumar: tile size in px")
    parser.add_argument("--fraction", type=float, default=0.25, help="annotated at the start")
    parser.add_argument("--per-image", type=int, default=3, help="hand outlines per image/round")
    parser.add_argument("--iterations", type=int, default=150, help="training per round")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--crop-size", type=int, default=0, help="patch training, 0 = whole")
    parser.add_argument("--score-threshold", type=float, default=ProposalSettings().score_threshold)
    parser.add_argument("--max-rounds", type=int, default=6)
    parser.add_argument("--min-new", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def _write_data(args: argparse.Namespace) -> tuple[list[Sample], list[Sample]]:
    """The full annotations (data/) and the partial ones the session starts from (partial/)."""
    shutil.rmtree(args.out, ignore_errors=True)
    if args.dataset == "kumar":
        samples = kumar_tiles(args.data, args.images or 2, args.tile)
    else:
        args.images = args.images or 26
        samples = list(generate_split(SynthConfig(n_train=args.images), "train", args.seed))
    write_split(args.out / "data", samples)
    partial = [remove_instances(s, args.fraction, args.seed) for s in samples]
    write_split(args.out / "partial", partial)
    return samples, partial


def _simulate(
    args: argparse.Namespace, samples: list[Sample], partial: list[Sample], tic: float
) -> tuple[list[dict[str, Any]], str, int]:
    """Rounds until 95 % annotated, the session stops, or --max-rounds: (rows, why, nuclei)."""
    truth = {s.name: s.labels for s in samples}
    refs = [
        ImageRef(args.out / "data" / "images" / f"{s.name}.tif", s.labels.shape) for s in samples
    ]
    total = sum(int(s.n_instances) for s in samples)
    manual = sum(int(s.n_instances) for s in partial)
    first = {s.name: s.labels for s in partial}
    rows = [
        {
            "round": 0,
            "new": "",
            "accepted": "",
            "deleted": "",
            "outlined": manual,
            "manual": manual,
            "annotated": annotated_count(truth, first),
        }
    ]
    session = args.out / "session"
    train_cfg = TrainConfig(
        iterations=args.iterations,
        batch_size=args.batch_size,
        crop_size=args.crop_size or None,
        checkpoint_every=args.iterations,
        threads=args.threads,
        num_workers=0,
        seed=args.seed,
    )
    rng = np.random.default_rng(args.seed)
    stop = ""
    for round_no in range(1, args.max_rounds + 1):
        result = run_round(
            args.out / "data" / "images",
            session,
            annotations=args.out / "partial" / "annotations.json" if round_no == 1 else None,
            model_cfg=ModelConfig.preset("slim", variant="pa"),
            train_cfg=train_cfg,
            settings=ProposalSettings(min_new=args.min_new, score_threshold=args.score_threshold),
            progress=False,
        )
        folder = round_dir(session, round_no)
        corrected, accepted, deleted, outlined = {}, 0, 0, 0
        for ref in refs:
            ann = read_annotation(folder / COCO_FILE, ref.shape, image_name=ref.name)
            labels, a, d, o = correct(ann, truth[ref.stem], args.per_image, rng)
            corrected[ref.stem] = labels
            accepted, deleted, outlined = accepted + a, deleted + d, outlined + o
        # the annotator saves their corrections over the round's coco.json
        anns = {s: Annotation.from_labels(v) for s, v in corrected.items()}
        write_json(folder / COCO_FILE, instances_document(refs, anns))
        manual += outlined
        rows.append(
            {
                "round": round_no,
                "new": result.counts["new"],
                "accepted": accepted,
                "deleted": deleted,
                "outlined": outlined,
                "manual": manual,
                "annotated": annotated_count(truth, corrected),
                "seconds": result.counts["seconds"],
            }
        )
        r = rows[-1]
        print(
            f"round {round_no}: {r['new']} proposals, {accepted} accepted, {deleted} deleted, "
            f"{outlined} outlined; {r['annotated']}/{total} annotated "
            f"({time.perf_counter() - tic:.0f} s so far)",
            flush=True,
        )
        if r["annotated"] >= TARGET * total:
            stop = f"reached {TARGET:.0%}"
            break
        if result.done:
            stop = "the session stopped itself (fewer new proposals than --min-new)"
            break
    else:
        stop = f"--max-rounds {args.max_rounds}"

    return rows, stop, total


def _report(
    args: argparse.Namespace, n_samples: int, rows: list[dict[str, Any]], total: int, stop: str
) -> list[str]:
    """The markdown summary: one table row per round, then the cost of reaching 95 %."""
    need = math.ceil(TARGET * total)
    what = (
        f"{n_samples} tiles of {args.tile} px from {args.images} real Kumar images"
        if args.dataset == "kumar"
        else f"{args.images} images"
    )
    patches = f", {args.crop_size} px patches" if args.crop_size else ""
    report = [
        f"`python benchmarks/bench_annotator.py {' '.join(sys.argv[1:])}`: "
        f"{what}, {total} true nuclei, {args.fraction:.0%} outlined at the start; "
        f"{args.iterations} iterations per round (batch {args.batch_size}{patches}), warm start, "
        f"{args.per_image} hand outlines per image and round; stopped: {stop}",
        "",
        "| round | new proposals | accepted | deleted | outlined by hand | manual outlines so far "
        "| annotated | by hand to 95 % from here | round time (min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        finish = r["manual"] + max(0, need - r["annotated"])
        minutes = f"{r['seconds'] / 60:.1f}" if "seconds" in r else ""
        report.append(
            f"| {r['round']} | {r['new']} | {r['accepted']} | {r['deleted']} | {r['outlined']} "
            f"| {r['manual']} | {r['annotated']} ({r['annotated'] / total:.1%}) | {finish} "
            f"| {minutes} |"
        )
    last = rows[-1]
    finish = last["manual"] + max(0, need - last["annotated"])
    reached = last["annotated"] >= need
    best = min(rows, key=lambda r: r["manual"] + max(0, need - r["annotated"]))
    cheapest = best["manual"] + max(0, need - best["annotated"])
    report += [
        "",
        f"95 % annotated ({need} nuclei): "
        + (
            f"reached after {last['round']} rounds"
            if reached
            else f"not reached in {last['round']} rounds; finishing by hand"
        )
        + f" with {finish} manual outlines, {finish / need:.0%} of the {need} that outlining "
        f"by hand needs (every nucleus: {total}). Cheapest: {best['round']} rounds, then "
        f"finishing to 95 % by hand: {cheapest} manual outlines ({cheapest / need:.0%} of {need}).",
    ]
    return report


if __name__ == "__main__":
    main()
