"""Equal-effort arms for the sparse-label experiment (issue 24, item 3): what each way of
annotating costs on real label images, before any training.

    python benchmarks/effort_arms.py                       # BBBC039 and Kumar (MoNuSeg train)
    python benchmarks/effort_arms.py --out results/effort  # also effort.md / effort.csv

For every image set it derives, seeded as the workflow does, the paper's arm ("25 % of nuclei
at random", ``derive remove``), regions covering 25 % of the area (``derive regions``, 1 and 4
per image), and the region fraction at which regions cost the *same* effort as the paper's arm
(found by bisection), and a mix at equal effort (2 regions per image and a random 12.5 % of
the nuclei outside them). Effort is :mod:`nuclei_pa.data.effort`'s: 1 unit per outlined nucleus,
``--region-cost`` (default 2) per region boundary. It prints one row per arm: nuclei labelled,
regions, effort units, and the share of the full annotation's nuclei each arm labels.

This is accounting only: no model is trained. The configurations it prints are the trainsets
of the experiment (see the report of issue 24).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nuclei_pa.data.derive import region_sample, remove_instances
from nuclei_pa.data.effort import REGION_COST, Effort
from nuclei_pa.io.dataset import Sample
from nuclei_pa.io.images import read_labels

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"BBBC039": DATA / "bbbc039" / "labels", "Kumar": DATA / "monuseg-train" / "labels"}


def load(folder: Path) -> list[Sample]:
    out = []
    for path in sorted(folder.glob("*.tif")):
        labels = read_labels(path)
        out.append(Sample(path.stem, np.zeros((1, 1), dtype=np.uint8), labels))
    return out


def effort(samples: list[Sample], arm: Callable[[Sample], Sample]) -> Effort:
    total = Effort()
    for s in samples:
        total.add(arm(s))
    return total


def equal_effort_fraction(
    samples: list[Sample], target: float, count: int, seed: int, cost: float, outside: float = 0.0
) -> float:
    """The region area fraction whose effort matches ``target`` units (bisection, ±0.002)."""
    lo, hi = 0.0, 0.5
    for _ in range(8):
        mid = (lo + hi) / 2
        arm = effort(samples, lambda s, f=mid: region_sample(s, f, count, seed, outside))
        lo, hi = (mid, hi) if arm.units(cost) < target else (lo, mid)
    return round((lo + hi) / 2, 3)


def arms_table(name: str, samples: list[Sample], seed: int, cost: float) -> pd.DataFrame:
    total = sum(s.n_instances for s in samples)
    paper = effort(samples, lambda s: remove_instances(s, 0.25, seed))
    f4 = equal_effort_fraction(samples, paper.units(cost), 4, seed, cost)
    fm = equal_effort_fraction(samples, paper.units(cost), 2, seed, cost, 0.125)
    arms = {
        "25 % of nuclei at random (remove 0.25)": paper,
        "regions: 25 % of area, 1 per image": effort(
            samples, lambda s: region_sample(s, 0.25, 1, seed)
        ),
        "regions: 25 % of area, 4 per image": effort(
            samples, lambda s: region_sample(s, 0.25, 4, seed)
        ),
        f"regions at equal effort: {f4:g} of area, 4 per image": effort(
            samples, lambda s: region_sample(s, f4, 4, seed)
        ),
        f"mix at equal effort: {fm:g} of area in 2 regions + 12.5 % outside": effort(
            samples, lambda s: region_sample(s, fm, 2, seed, 0.125)
        ),
    }
    rows = [
        {
            "set": name,
            "images": len(samples),
            "arm": arm,
            "nuclei": e.nuclei,
            "regions": e.regions,
            "effort units": e.units(cost),
            "share of all nuclei": round(e.nuclei / total, 3),
        }
        for arm, e in arms.items()
    ]
    return pd.DataFrame(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--region-cost", type=float, default=REGION_COST)
    p.add_argument("--out", type=Path, help="folder for effort.md and effort.csv")
    args = p.parse_args()
    tables = []
    for name, folder in SETS.items():
        if not folder.is_dir():
            print(f"{name}: {folder} not found, skipped")
            continue
        tables.append(arms_table(name, load(folder), args.seed, args.region_cost))
    table = pd.concat(tables, ignore_index=True)
    text = (
        f"Annotation effort per arm (seed {args.seed}; 1 unit per outlined nucleus, "
        f"{args.region_cost:g} per region boundary):\n\n" + table.to_markdown(index=False) + "\n"
    )
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "effort.md").write_text(text)
        table.to_csv(args.out / "effort.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
