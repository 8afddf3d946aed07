"""``nuclei-pa evaluate``: the paper's metrics per image, and their mean."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score predictions against ground truth (mAP, AJI, NCS, P/R@0.5)",
        description="Compare predicted instances with ground truth image by image. GT and PRED "
        "are folders of instance label images (0 = background, any positive ids) matched by file "
        "name — a split folder is used through its labels/ — or COCO JSON files (a results list "
        "for PRED needs GT as COCO). Metrics: map (Kaggle DSB 2018, IoU > 0.50:0.05:0.95), aji "
        "(paper eq. 3, one-to-one pairing), aji_kumar (Kumar et al. 2017, reuse allowed), ncs "
        "(eq. 4), precision_50 and recall_50 (IoU > 0.5). Writes one row per image to OUT and the "
        "mean over images to OUT's name with .summary.csv.",
    )
    p.add_argument("gt", type=Path, help="ground truth: label folder, split folder or COCO .json")
    p.add_argument("pred", type=Path, help="predictions: label folder, split folder or COCO .json")
    p.add_argument("-o", "--out", type=Path, required=True, help="per-image CSV to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary print")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nuclei_pa.eval.folders import evaluate, summarise, summary_path, write_csv

    per_image = evaluate(args.gt, args.pred, progress=not args.quiet)
    summary = summarise(per_image)
    write_csv(per_image, args.out)
    write_csv(summary, summary_path(args.out))
    if not args.quiet:
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0
