"""Peak memory of ``predict_folder`` on a 1024² and a 4096² image, side by side in one run.

Each size runs in its own subprocess (so one run's peak cannot hide the other's) and reports
``ru_maxrss``. Tiled prediction should keep the 4096² peak within ~1.5× the 1024² one: the model
only sees one tile at a time and instances are held as box-sized crops, so what grows with the
image is just the image itself and its int32 label image.

    python benchmarks/bench_predict_memory.py                 # fake detector (seconds)
    python benchmarks/bench_predict_memory.py --model torchvision --score-threshold 0

``fake`` thresholds each tile and returns every blob as a detection with a full-tile float
mask, capped at 100 per tile like torchvision's ``box_detections_per_img`` — the same output
shapes and per-tile memory as Mask R-CNN, without minutes of CPU inference. ``torchvision`` is
an untrained ``maskrcnn_resnet50_fpn`` (no weights are downloaded).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_image(size: int, spacing: int = 96, seed: int = 0) -> np.ndarray:
    """Grey uint8 image with bright disks on a jittered grid, painted locally (no full grids)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(10, 40, (size, size), dtype=np.uint8)
    for cy in range(spacing // 2, size - 12, spacing):
        for cx in range(spacing // 2, size - 12, spacing):
            r = int(rng.integers(6, 11))
            y, x = cy + int(rng.integers(-20, 21)), cx + int(rng.integers(-20, 21))
            y, x = min(max(y, r), size - r - 1), min(max(x, r), size - r - 1)
            yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
            disk = yy**2 + xx**2 <= r * r
            patch = image[y - r : y + r + 1, x - r : x + r + 1]
            patch[disk] = rng.integers(150, 250)
    return image


def fake_model():
    import torch
    from scipy import ndimage

    class BlobDetector(torch.nn.Module):
        """Bright 8-connected blobs as detections: Mask R-CNN's output format and sizes."""

        def __init__(self, max_detections: int = 100) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))
            self.max_detections = max_detections

        def forward(self, images):
            outputs = []
            for img in images:
                grey = img.mean(0).numpy()
                comp, n = ndimage.label(grey > 0.5, structure=np.ones((3, 3)))
                slices = ndimage.find_objects(comp)[: self.max_detections]
                n = len(slices)
                masks = torch.zeros((n, 1, *grey.shape))
                boxes = torch.zeros((n, 4))
                for k, sl in enumerate(slices):
                    masks[k, 0][sl] = torch.from_numpy((comp[sl] == k + 1).astype(np.float32))
                    boxes[k] = torch.tensor([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
                scores = torch.linspace(0.99, 0.6, n) if n else torch.zeros(0)
                labels = torch.ones(n, dtype=torch.int64)
                outputs.append({"boxes": boxes, "labels": labels, "scores": scores, "masks": masks})
            return outputs

    return BlobDetector()


def torchvision_model():
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2)


def child(args: argparse.Namespace) -> None:
    """Predict one image in this process and print its peak RSS as JSON."""
    import torch

    from nuclei_pa.engine.predict import predict_folder

    torch.set_num_threads(args.threads)
    model = fake_model() if args.model == "fake" else torchvision_model()
    model.eval()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    summary = predict_folder(
        model,
        [args.child],
        args.out,
        score_threshold=args.score_threshold,
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
        device="cpu",
        progress=False,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "peak_mib": peak / 1024,
                "baseline_mib": baseline / 1024,
                "seconds": seconds,
                "instances": summary["instances"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--model", choices=["fake", "torchvision"], default="fake")
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--tile-overlap", type=int, default=128)
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from nuclei_pa.io.images import write_tiff

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"image_{size}.tif"
            write_tiff(path, synthetic_image(size))
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(path),
                "--out",
                str(Path(tmp) / f"out_{size}"),
                "--model",
                args.model,
                "--tile-size",
                str(args.tile_size),
                "--tile-overlap",
                str(args.tile_overlap),
                "--score-threshold",
                str(args.score_threshold),
                "--threads",
                str(args.threads),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"size {size} failed:\n{done.stderr}")
            rows.append((size, json.loads(done.stdout.strip().splitlines()[-1])))

    print(f"model={args.model} tile={args.tile_size} overlap={args.tile_overlap}")
    print(f"{'image':>10} {'peak MiB':>9} {'pre-predict MiB':>16} {'s':>7} {'nuclei':>7}")
    for size, r in rows:
        print(
            f"{size:>5}×{size:<4} {r['peak_mib']:9.0f} {r['baseline_mib']:16.0f} "
            f"{r['seconds']:7.1f} {r['instances']:7d}"
        )
    (small, a), (large, b) = rows[0], rows[-1]
    area = (large / small) ** 2
    ratio = b["peak_mib"] / a["peak_mib"]
    growth = (b["peak_mib"] - b["baseline_mib"]) / max(a["peak_mib"] - a["baseline_mib"], 1e-9)
    print(
        f"peak RSS ratio {large}²/{small}² = {ratio:.2f}× for {area:.0f}× the area (target ≤ 1.5×)"
    )
    print(f"growth above the pre-predict baseline: {growth:.2f}×")


if __name__ == "__main__":
    main()
