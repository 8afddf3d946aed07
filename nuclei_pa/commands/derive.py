"""``nuclei-pa derive``: make a partially annotated split from a fully annotated one."""

from __future__ import annotations

import argparse
from pathlib import Path

from nuclei_pa.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "derive",
        help="derive a partially annotated split (remove instances, crop, or regions)",
        description="Derive a training split as in the paper's Fig. 3. 'remove' keeps a random "
        "FRACTION of each image's instances (DH25: --fraction 0.25) and leaves images unchanged; "
        "'crop' takes a random crop covering FRACTION of each image's area with every instance in "
        "it annotated (DH25crop: --fraction 0.25); 'regions' keeps the whole image and marks "
        "COUNT random rectangles covering FRACTION of its area as fully annotated regions "
        "(every nucleus meeting one kept whole), plus OUTSIDE_FRACTION of the other nuclei "
        "(--fraction 0.25 --count 4). Seeded per image name. Prints the annotation effort "
        "(1 unit per nucleus, REGION_COST per region; see nuclei_pa.data.effort).",
    )
    p.add_argument("method", choices=["remove", "crop", "regions"], help="derivation to apply")
    p.add_argument(
        "src", type=Path, help="fully annotated split folder (images/, annotations.json)"
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="output split folder")
    p.add_argument(
        "--fraction",
        type=float,
        default=0.25,
        help="remove: fraction of instances kept; crop, regions: fraction of area kept "
        "(default %(default)s)",
    )
    p.add_argument(
        "--count", type=int, default=1, help="regions: regions per image (default %(default)s)"
    )
    p.add_argument(
        "--outside-fraction",
        type=float,
        default=0.0,
        help="regions: fraction of the nuclei outside the regions kept (default %(default)s)",
    )
    p.add_argument(
        "--region-cost",
        type=float,
        default=2.0,
        help="effort of one region boundary, in outlined nuclei (default %(default)s)",
    )
    p.add_argument(
        "--min-area",
        type=int,
        default=10,
        help="crop: drop instances clipped to fewer pixels (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nuclei_pa.data.derive import DeriveReport, derive
    from nuclei_pa.data.effort import Effort
    from nuclei_pa.io.dataset import read_split, write_split

    if not 0.0 < args.fraction <= 1.0:  # 0 would write a split with nothing to learn from
        raise InputError(None, f"--fraction must be in (0, 1], got {args.fraction}")
    if args.count < 1:
        raise InputError(None, f"--count must be ≥ 1, got {args.count}")
    if not 0.0 <= args.outside_fraction <= 1.0:
        raise InputError(None, f"--outside-fraction must be in [0, 1], got {args.outside_fraction}")
    if args.region_cost < 0:
        raise InputError(None, f"--region-cost must be ≥ 0, got {args.region_cost}")
    report, effort = DeriveReport(), Effort()

    def counted():
        for sample in derive(
            read_split(args.src),
            args.method,
            args.fraction,
            args.seed,
            report,
            args.min_area,
            args.count,
            args.outside_fraction,
        ):
            effort.add(sample)
            yield sample

    extra = (
        {"count": args.count, "outside_fraction": args.outside_fraction}
        if args.method == "regions"
        else {}
    )
    write_split(
        args.out,
        counted(),
        derived_from=str(args.src),
        derivation=args.method,
        fraction=args.fraction,
        seed=args.seed,
        **extra,
    )
    print(f"{args.out}: {report}; {effort.describe(args.region_cost)}")
    return 0
