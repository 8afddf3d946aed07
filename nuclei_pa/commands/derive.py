"""``nuclei-pa derive``: make a partially annotated split from a fully annotated one."""

from __future__ import annotations

import argparse
from pathlib import Path

from nuclei_pa.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "derive",
        help="derive a partially annotated split (remove instances or crop)",
        description="Derive a training split as in the paper's Fig. 3. 'remove' keeps a random "
        "FRACTION of each image's instances (DH25: --fraction 0.25) and leaves images unchanged; "
        "'crop' takes a random crop covering FRACTION of each image's area with every instance in "
        "it annotated (DH25crop: --fraction 0.25). Seeded per image name.",
    )
    p.add_argument("method", choices=["remove", "crop"], help="derivation to apply")
    p.add_argument(
        "src", type=Path, help="fully annotated split folder (images/, annotations.json)"
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="output split folder")
    p.add_argument(
        "--fraction",
        type=float,
        default=0.25,
        help="remove: fraction of instances kept; crop: fraction of area kept "
        "(default %(default)s)",
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
    from nuclei_pa.io.dataset import read_split, write_split

    if not 0.0 < args.fraction <= 1.0:  # 0 would write a split with nothing to learn from
        raise InputError(None, f"--fraction must be in (0, 1], got {args.fraction}")
    report = DeriveReport()
    samples = derive(
        read_split(args.src), args.method, args.fraction, args.seed, report, args.min_area
    )
    write_split(
        args.out,
        samples,
        derived_from=str(args.src),
        derivation=args.method,
        fraction=args.fraction,
        seed=args.seed,
    )
    print(f"{args.out}: {report}")
    return 0
