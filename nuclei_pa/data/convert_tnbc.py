"""TNBC (Naylor et al. 2018) → our split folders, and the paper's TNBC + Kumar-breast split.

The Zenodo zip holds ``Slide_XX/<name>.png`` images and ``GT_XX/<name>.png`` binary masks, XX
the patient. Masks are semantic (nucleus / background), so instances are their connected
components (8-connectivity, i.e. pixels touching by a corner join): **nuclei drawn touching
without a background gap merge into one instance**, a limitation of the published masks that no
converter can undo. Images are RGB; an alpha channel is dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from skimage.measure import label as connected_components
from skimage.segmentation import relabel_sequential

from nuclei_pa.data.convert_common import IMAGE_SUFFIXES, load_image
from nuclei_pa.data.convert_kumar import KUMAR_IMAGES, TRAIN, tcga_case
from nuclei_pa.errors import InputError
from nuclei_pa.io.dataset import Sample, read_split, write_split

log = logging.getLogger(__name__)

TNBC_IMAGES = 50
# The paper's TNBC experiment (after Naylor et al.): train on the 50 TNBC images plus 4 Kumar
# breast images, test on 2 Kumar breast images. We take Kumar's 4 breast *training* images and
# its 2 breast *test* images, so no Kumar test image is trained on in either experiment.
KUMAR_BREAST_TRAIN = tuple(c for c, (o, g) in KUMAR_IMAGES.items() if o == "breast" and g == TRAIN)
KUMAR_BREAST_TEST = tuple(c for c, (o, g) in KUMAR_IMAGES.items() if o == "breast" and g != TRAIN)


def tnbc_mask_to_labels(mask: np.ndarray, min_area: int = 0, connectivity: int = 2) -> np.ndarray:
    """Binary mask (any non-zero pixel is nucleus; RGB(A) masks: any colour channel) → labels.

    ``connectivity`` 2 joins corner-touching pixels (fewer spurious fragments of thin outlines),
    1 only edge-touching ones; components smaller than ``min_area`` pixels are dropped.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., : min(mask.shape[-1], 3)].any(axis=-1)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (or 2-D with channels), got shape {mask.shape}")
    labels = connected_components(mask > 0, connectivity=connectivity).astype(np.int32)
    if min_area > 1:
        small = np.flatnonzero(np.bincount(labels.ravel()) < min_area)
        labels[np.isin(labels, small[small > 0])] = 0
        labels = relabel_sequential(labels)[0].astype(np.int32)
    return labels


def tnbc_pairs(raw_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, image, mask) for every ``Slide_XX/<name>`` with its ``GT_XX/<name>``, sorted."""
    raw_dir = Path(raw_dir)
    pairs = []
    slide_dirs = sorted(p for p in raw_dir.rglob("Slide_*") if p.is_dir())
    if not slide_dirs:
        raise InputError(raw_dir, "no Slide_XX/ folders found (TNBC_NucleiSegmentation layout)")
    for slide_dir in slide_dirs:
        patient = slide_dir.name.removeprefix("Slide_")
        gt_dir = slide_dir.with_name(f"GT_{patient}")
        if not gt_dir.is_dir():
            raise InputError(slide_dir, f"its mask folder {gt_dir.name}/ is missing")
        for image_path in sorted(slide_dir.iterdir()):
            if image_path.suffix.lower() not in IMAGE_SUFFIXES or image_path.name.startswith("."):
                continue
            masks = [gt_dir / f"{image_path.stem}{s}" for s in (image_path.suffix, ".png")]
            mask_path = next((m for m in masks if m.is_file()), None)
            if mask_path is None:
                raise InputError(image_path, f"no mask {image_path.name} in {gt_dir}")
            pairs.append((image_path.stem, image_path, mask_path))
    names = [n for n, _, _ in pairs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(raw_dir, f"image names used by several patients: {dup}")
    if len(pairs) != TNBC_IMAGES:
        log.warning(
            "%s: %d TNBC images found, the dataset has %d", raw_dir, len(pairs), TNBC_IMAGES
        )
    return pairs


def tnbc_samples(raw_dir: str | Path, min_area: int = 0) -> Iterator[Sample]:
    """The TNBC images with their instance labels, read lazily in name order."""
    for name, image_path, mask_path in tnbc_pairs(raw_dir):
        image = load_image(image_path)
        mask = load_image(mask_path)
        if mask.shape[:2] != image.shape[:2]:
            raise InputError(mask_path, f"mask {mask.shape[:2]} vs image {image.shape[:2]}")
        patient = re.sub(r"^Slide_", "", image_path.parent.name)
        meta = {"patient": patient, "organ": "breast"}
        yield Sample(name, image, tnbc_mask_to_labels(mask, min_area), meta)


def tnbc_breast_split(
    tnbc_dir: str | Path, kumar_dir: str | Path, out_dir: str | Path
) -> dict[str, dict[str, int]]:
    """The paper's TNBC experiment from converted datasets: 50 TNBC + 4 Kumar breast images to
    train, 2 Kumar breast images to test (``tnbc_dir``, ``kumar_dir``: our dataset folders)."""
    tnbc_dir, kumar_dir, out_dir = Path(tnbc_dir), Path(kumar_dir), Path(out_dir)

    def pick(split: str, cases: tuple[str, ...]) -> list[Sample]:
        chosen = [s for s in read_split(kumar_dir / split) if tcga_case(s.name) in cases]
        found = {tcga_case(s.name) for s in chosen}
        if found != set(cases):
            raise InputError(
                kumar_dir / split,
                f"Kumar breast images {sorted(set(cases) - found)} missing; convert kumar first",
            )
        return chosen

    kumar_train = pick("train", KUMAR_BREAST_TRAIN)
    kumar_test = pick("test", KUMAR_BREAST_TEST)
    info = {"source": "tnbc+kumar", "recipe": "nuclei_pa.data.convert.tnbc_breast_split"}

    def train() -> Iterator[Sample]:
        yield from read_split(tnbc_dir / "train")
        yield from kumar_train

    return {
        "train": write_split(out_dir / "train", train(), split="train", **info),
        "test": write_split(out_dir / "test", kumar_test, split="test", **info),
    }
