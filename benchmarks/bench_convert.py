"""Time converting real ImageScope XML outlines (Kumar et al.'s 1000×1000 H&E images) to labels.

    python benchmarks/bench_convert.py [--data ../shared/data/kumar-partial] [--budget 2]

For each XML file: the time to read and rasterise it (best of ``--repeat`` runs, so a busy
machine does not inflate it), its regions and the instances it gives, and the ratio of that time
to the per-image budget (≤ 1 meets it). The image is read once beforehand for its shape only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nuclei_pa.io.images import read_image
from nuclei_pa.io.imagescope import read_imagescope, read_regions

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "kumar-partial"
    )
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per image (default 2)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    xmls = sorted(args.data.rglob("*.xml"))
    if not xmls:
        raise SystemExit(f"{args.data}: no ImageScope XML files found")
    print(f"{'file':<30} {'regions':>8} {'nuclei':>7} {'seconds':>8} {'÷ budget':>9}")
    worst = 0.0
    for xml in xmls:
        image = next(p for p in xml.parent.parent.rglob(f"{xml.stem}.*") if p.suffix != ".xml")
        shape = read_image(image).shape
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            labels = read_imagescope(xml, shape, invalid="skip")
            times.append(time.perf_counter() - t0)
        best = min(times)
        worst = max(worst, best)
        n = len(read_regions(xml))
        print(
            f"{xml.stem:<30} {n:>8} {int(labels.max()):>7} {best:>8.2f} {best / args.budget:>9.2f}"
        )
    print(f"slowest: {worst:.2f} s = {worst / args.budget:.2f}× the {args.budget:g} s budget")


if __name__ == "__main__":
    main()
