"""``nuclei-pa import``: a folder of your own images and annotations → train/test split folders."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nuclei_pa.errors import ConfigError, InputError

EPILOG = """\
annotations: one COCO JSON for every image, or a folder with one file per image named by the
image's stem: instance label TIFF/PNG, ImageJ/Fiji ROI set (.zip/.roi), QuPath GeoJSON or
Aperio ImageScope XML. The workflow's `folder` dataset kind takes the same settings.

sparse labels: -1 in a signed label image (or --ignore-value) marks pixels that are neither
nucleus nor background; QuPath annotations of class Ignore* / Region* (or --ignore-class /
--region-class) and ImageJ ROIs so named or in --ignore-group / --region-group mark unlabelled
areas and fully annotated regions; --regions names a folder with a second file per image.

examples:
  nuclei-pa import data/images --annotations data/labels -o data/mine --test-fraction 0.3
  nuclei-pa import he/images --annotations he/xml -o data/he --test-glob 'TCGA-E2*' \\
      --metadata he/organs.csv
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import your own images and annotations as train/test split folders",
        description="Read a folder of images with their annotations (any supported format), "
        "split it by image into training and test images, and write OUT/train and OUT/test in "
        "the project's split layout (images/, annotations.json, labels/).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", type=Path, help="folder of the images (searched recursively)")
    p.add_argument("--annotations", type=Path, required=True, help="COCO JSON or a folder")
    p.add_argument("-o", "--out", type=Path, required=True, help="dataset folder to write")
    test = p.add_argument_group("test split (exactly one)")
    test.add_argument("--test-names", nargs="+", metavar="NAME", help="test image stems")
    test.add_argument("--test-glob", metavar="PATTERN", help="shell pattern on image names")
    test.add_argument(
        "--test-fraction", type=float, metavar="F", help="a random fraction of the images"
    )
    test.add_argument("--test-images", type=Path, metavar="DIR", help="a folder of test images")
    test.add_argument(
        "--test-annotations", type=Path, metavar="PATH", help="annotations of --test-images"
    )
    test.add_argument(
        "--all-test",
        action="store_true",
        help="every image is a test image: import a set only to evaluate a model on it",
    )
    test.add_argument("--seed", type=int, default=0, help="seed of --test-fraction (default 0)")
    p.add_argument("--metadata", type=Path, metavar="CSV", help="per-image metadata (column image)")
    p.add_argument("--channel", type=int, metavar="C", help="channel of multichannel images")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="names without an image are logged instead of being errors (a partial copy)",
    )
    p.add_argument(
        "--only-listed", action="store_true", help="skip images the metadata does not list"
    )
    p.add_argument(
        "--invalid-regions",
        choices=["error", "skip"],
        default="error",
        help="ImageScope regions with < 3 vertices or outside the image (default: error)",
    )
    sparse = p.add_argument_group("sparse labels (unknown areas, fully annotated regions)")
    sparse.add_argument("--ignore-value", type=int, metavar="V", help="label value meaning unknown")
    sparse.add_argument("--ignore-class", metavar="NAME", help="class/ROI name prefix: unknown")
    sparse.add_argument("--region-class", metavar="NAME", help="class/ROI name prefix: region")
    sparse.add_argument("--ignore-group", type=int, metavar="G", help="ImageJ ROI group: unknown")
    sparse.add_argument("--region-group", type=int, metavar="G", help="ImageJ ROI group: region")
    sparse.add_argument("--regions", type=Path, metavar="DIR", help="a region file per image")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nuclei_pa.data.folder import FolderSpec, write_folder_dataset
    from nuclei_pa.io.conventions import Conventions

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    test = {
        "names": args.test_names,
        "glob": args.test_glob,
        "fraction": args.test_fraction,
        "images": args.test_images,
        "annotations": args.test_annotations,
        "all": True if args.all_test else None,
        "seed": args.seed,
    }
    try:
        spec = FolderSpec.from_config(
            {
                "images": args.images,
                "annotations": args.annotations,
                "test": {k: v for k, v in test.items() if v is not None},
                "metadata": args.metadata,
                "channel": args.channel,
                "allow_missing": args.allow_missing,
                "only_listed": args.only_listed,
                "invalid_regions": args.invalid_regions,
                "sparse": {
                    k: getattr(args, k) for k in Conventions.KEYS if getattr(args, k) is not None
                },
                "regions": args.regions,
            }
        )
        counts = write_folder_dataset(spec, args.out, source=str(args.images))
    except ConfigError as exc:
        option = "--" + exc.key.removeprefix("sparse.").replace("_", "-").replace(".", "-")
        raise InputError(None, f"{option}: {exc.problem}") from exc
    for split, c in counts.items():
        print(f"{args.out / split}: {c['images']} images, {c['instances']} nuclei")
    return 0
