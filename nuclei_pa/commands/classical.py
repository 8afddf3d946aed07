"""``nuclei-pa classical``: Otsu + watershed reference segmentation of a folder of images."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classical",
        help="classical Otsu + distance-transform watershed segmentation (a reference)",
        description="Segment every image of IMAGES (a folder of images, or a split folder through "
        "its images/) with Otsu thresholding and a distance-transform watershed, writing instance "
        "label TIFFs to OUT/labels/. H&E images are thresholded on the hematoxylin channel. It is "
        "the classical reference row of the results tables.",
    )
    p.add_argument("images", type=Path, help="folder of images, or a split folder")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (gets labels/)")
    p.add_argument(
        "--sigma", type=float, default=1.0, help="Gaussian smoothing (default %(default)s)"
    )
    p.add_argument(
        "--min-distance",
        type=int,
        default=4,
        help="minimum distance between watershed seeds in px (default %(default)s)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nuclei_pa.classical import otsu_watershed
    from nuclei_pa.io.atomic import atomic_dir
    from nuclei_pa.io.images import list_images, read_image, write_tiff

    folder = args.images / "images" if (args.images / "images").is_dir() else args.images
    paths = list_images(folder)
    with atomic_dir(args.out / "labels") as tmp:
        for path in tqdm(paths, desc="classical", unit="img"):
            labels = otsu_watershed(read_image(path), args.sigma, args.min_distance)
            write_tiff(
                tmp / f"{path.stem}.tif",
                labels.astype("uint16" if labels.max() < 65536 else "uint32"),
            )
    print(f"{args.out / 'labels'}: {len(paths)} label images")
    return 0
