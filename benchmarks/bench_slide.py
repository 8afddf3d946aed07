"""Whole-slide prediction: peak memory against slide size, throughput, and seam agreement.

Slides are built from the real Kumar images (1000 px, 0.25 µm/px) repeated on a grid, written
as JPEG-tiled Aperio SVS pyramids (:mod:`nuclei_pa.slide.mosaic`) in a temporary folder:

- **memory**: an 8k² and a 32k² slide (8 × 8 and 32 × 32 images) each predicted in a fresh
  process, at ``--mem-level`` (default 1, i.e. 1 µm/px, so the 32k² slide's 8k² plane fits the
  time budget on 2 cores), with the classical predictor; peak RSS (``ru_maxrss``) of each
  process, and their ratio (target ≤ 1.2, and < 2 GB);
- **throughput**: the 8k² slide at full resolution (0.25 µm/px) with the classical predictor:
  tiles/s and s per mm² of tissue;
- **model**: a trained checkpoint (``--checkpoint``; default the real-data run's Kumar model if
  present) on ``--model-tiles`` tiles of the 8k² slide: tiles/s and s per mm², CPU or GPU;
- **seams**: a 3 × 3 slide predicted in 512 px tiles against one whole-image prediction of it
  (same classical predictor): fraction of instances matched at IoU 0.5, duplicates.

Peers, for comparison (their hardware, their models): HoVer-Net ≈ 2 h per 40× slide, HoverFast
≈ 6 min per slide on a GPU (arXiv 2405.14028), HoVer-NeXt 1.8 s per mm² at 0.5 µm/px.

    OMP_NUM_THREADS=1 python benchmarks/bench_slide.py    # about 5 minutes on 2 shared cores
    OMP_NUM_THREADS=1 python benchmarks/bench_slide.py --skip throughput model seams  # memory
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KUMAR = ROOT.parent / "shared" / "data" / "monuseg-train" / "images"
CHECKPOINT = ROOT / "results/real-cpu/models/Kumar25-pa/seed0/checkpoints/ckpt_000400.pt"


def kumar_images(n: int = 30) -> list[np.ndarray]:
    from skimage.io import imread

    return [imread(p)[..., :3] for p in sorted(KUMAR.glob("*.png"))[:n]]


def build(path: Path, side: int, images: list[np.ndarray]) -> float:
    from nuclei_pa.slide.mosaic import write_mosaic_slide

    start = time.perf_counter()
    write_mosaic_slide(path, images, (side, side), margin=512, mpp=0.25, levels=3)
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    """Predict one slide with the classical predictor; print the summary and peak RSS."""
    import torch

    torch.set_num_threads(1)
    from nuclei_pa.slide.predictors import ClassicalPredictor
    from nuclei_pa.slide.stream import predict_slide

    summary = predict_slide(
        args.slide,
        Path(args.out),
        ClassicalPredictor.for_pixels,
        level=args.level,
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
        progress=False,
    )
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(summary))


def run_child(slide: Path, out: Path, level: int, tile_size: int, overlap: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--slide",
        str(slide),
        "--out",
        str(out),
        "--level",
        str(level),
        "--tile-size",
        str(tile_size),
        "--tile-overlap",
        str(overlap),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def model_throughput(slide: Path, checkpoint: Path, tiles: int, device: str) -> dict:
    """A trained model on the first ``tiles`` tissue tiles (1024 px) at 0.25 µm/px."""
    import torch

    from nuclei_pa.engine.predict import load_model
    from nuclei_pa.engine.tiling import tile_grid
    from nuclei_pa.slide.predictors import ModelPredictor
    from nuclei_pa.slide.reader import Slide
    from nuclei_pa.slide.stream import tile_nuclei
    from nuclei_pa.slide.tissue import thumbnail, tissue_mask

    model = load_model(checkpoint, device)
    with Slide(slide) as s:
        mask = tissue_mask(s)
        predictor = ModelPredictor(model, thumbnail(s, mask))
        plane = s.plane(level=0)
        grid = tile_grid(plane.height, plane.width, 1024, 128)
        chosen = [t for t in grid if mask.covers(plane, t.y0, t.y1, t.x0, t.x1)][:tiles]
        nuclei, core_px = 0, 0
        predictor(s.read_plane(plane, *_window(chosen[0])))  # warm-up, not timed
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        for t in chosen:
            labels, scores = predictor(s.read_plane(plane, *_window(t)))
            nuclei += len(tile_nuclei(t, labels, scores))
            core_px += (t.cy1 - t.cy0) * (t.cx1 - t.cx0)
        seconds = time.perf_counter() - start
    mm2 = core_px * (0.25e-3) ** 2
    return {"tiles": len(chosen), "seconds": seconds, "nuclei": nuclei, "mm2": mm2}


def _window(t) -> tuple[int, int, int, int]:
    return t.y0, t.y1, t.x0, t.x1


def seam_agreement(folder: Path, images: list[np.ndarray]) -> dict:
    from nuclei_pa.eval.matching import iou_matrix
    from nuclei_pa.io.formats import read_annotation
    from nuclei_pa.slide.mosaic import write_mosaic_slide
    from nuclei_pa.slide.predictors import ClassicalPredictor
    from nuclei_pa.slide.reader import Slide
    from nuclei_pa.slide.stream import predict_slide
    from nuclei_pa.slide.tissue import thumbnail, tissue_mask

    path = folder / "seams.svs"
    height, width = write_mosaic_slide(path, images[:9], (3, 3), margin=256)
    out = folder / "seams.geojson"
    summary = predict_slide(
        path, out, ClassicalPredictor.for_pixels, tile_size=512, tile_overlap=128, progress=False
    )
    with Slide(path) as s:
        predictor = ClassicalPredictor.for_pixels(thumbnail(s, tissue_mask(s)))
        whole, _ = predictor(s.read(0, 0, height, 0, width))
    stitched = read_annotation(out, whole.shape).labels
    iou = iou_matrix(whole, stitched).tocoo()
    good = iou.data >= 0.5
    rows = collections.Counter(iou.row[good].tolist())
    return {
        "tiles": summary["tiles"],
        "whole": int(whole.max()),
        "stitched": int(stitched.max()),
        "whole_matched": len(rows) / max(int(whole.max()), 1),
        "stitched_matched": len(set(iou.col[good].tolist())) / max(int(stitched.max()), 1),
        "duplicated": sum(v - 1 for v in rows.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--slide", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--level", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tile-size", type=int, default=1024, help="tile size (default 1024)")
    parser.add_argument("--tile-overlap", type=int, default=128, help="overlap (default 128)")
    parser.add_argument("--mem-level", type=int, default=1, help="level for the memory runs")
    parser.add_argument("--small", type=int, default=8, help="small slide: N × N images")
    parser.add_argument("--large", type=int, default=32, help="large slide: N × N images")
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--model-tiles", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip", nargs="*", default=[], help="parts to skip: memory throughput "
                        "model seams")  # fmt: skip
    parser.add_argument(
        "--summary", type=Path, help="also write what is printed to this markdown file"
    )
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str) -> None:
        print(text)
        lines.append(text)

    if args.child:
        child(args)
        return
    images = kumar_images()
    cores = len(os.sched_getaffinity(0))
    say(f"bench_slide: {len(images)} Kumar images, {cores} cores, OMP_NUM_THREADS=1")
    with tempfile.TemporaryDirectory(prefix="bench_slide.") as tmp:
        folder = Path(tmp)
        small = folder / "small.svs"
        t = build(small, args.small, images)
        side = args.small * 1000 + 1024
        say(f"built {side}² slide in {t:.1f} s ({small.stat().st_size / 2**20:.0f} MiB)")
        if "memory" not in args.skip:
            large = folder / "large.svs"
            t = build(large, args.large, images)
            side_l = args.large * 1000 + 1024
            say(f"built {side_l}² slide in {t:.1f} s ({large.stat().st_size / 2**20:.0f} MiB)")
            lv = args.mem_level
            a = run_child(small, folder / "a.geojson", lv, args.tile_size, args.tile_overlap)
            b = run_child(large, folder / "b.geojson", lv, args.tile_size, args.tile_overlap)
            for name, r, s in (("small", a, side), ("large", b, side_l)):
                say(
                    f"memory {name} {s}² slide, level {lv}: {r['tissue_tiles']} tiles, "
                    f"{r['nuclei']} nuclei, {r['tiles_per_s']:.2f} tiles/s, "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB"
                )
            ratio = b["peak_rss_mb"] / a["peak_rss_mb"]
            say(f"memory ratio large/small: {ratio:.3f} (target ≤ 1.2; both < 2048 MB)")
        if "throughput" not in args.skip:
            r = run_child(small, folder / "c.geojson", 0, args.tile_size, args.tile_overlap)
            say(
                f"classical, {side}² slide at 0.25 µm/px: {r['tissue_tiles']} tiles, "
                f"{r['nuclei']} nuclei, {r['tiles_per_s']:.2f} tiles/s, "
                f"{r['seconds'] / r['area_mm2']:.2f} s/mm² (streaming included), "
                f"peak RSS {r['peak_rss_mb']:.0f} MB"
            )
        if "model" not in args.skip:
            if args.checkpoint.is_file():
                m = model_throughput(small, args.checkpoint, args.model_tiles, args.device)
                import torch

                dev = "GPU" if torch.cuda.is_available() and args.device != "cpu" else "CPU"
                say(
                    f"model ({args.checkpoint.name}, {dev}), 1024 px tiles at 0.25 µm/px: "
                    f"{m['tiles'] / m['seconds']:.3f} tiles/s, {m['seconds'] / m['mm2']:.1f} "
                    f"s/mm², {m['nuclei']} nuclei in {m['tiles']} tiles"
                )
            else:
                say(f"model: no checkpoint at {args.checkpoint}; skipped")
        if "seams" not in args.skip:
            s = seam_agreement(folder, images)
            say(
                f"seams, 3 × 3 slide in {s['tiles']} tiles of 512 px: {s['stitched']} nuclei "
                f"stitched vs {s['whole']} whole-image; matched at IoU 0.5: "
                f"{s['whole_matched']:.4f} of whole, {s['stitched_matched']:.4f} of stitched; "
                f"duplicated: {s['duplicated']}"
            )
    say("peers: HoVer-Net ~2 h/slide; HoverFast ~6 min/slide (GPU); HoVer-NeXt 1.8 s/mm²")
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/bench_slide.py " + " ".join(sys.argv[1:])
        args.summary.write_text(f"`{command}`:\n\n```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
