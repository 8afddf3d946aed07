"""Training data: a COCO-annotated image set as (image tensor, Mask R-CNN target) pairs.

Batches are a pure function of (seed, iteration): epoch e visits the images in the order of a
permutation seeded by (seed, e), and flips are drawn from (seed, iteration). Resuming therefore
continues the exact batch sequence with no sampler state to save, and data-parallel processes
agree on every global batch without communicating.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nuclei_pa.engine.tensors import image_to_tensor
from nuclei_pa.errors import InputError
from nuclei_pa.io.coco import decode_segmentation, load_coco
from nuclei_pa.io.images import read_image


@dataclass
class _Item:
    path: Path
    height: int
    width: int
    anns: list


class NucleusDataset:
    """Images and instance annotations of one COCO file (a split folder or any images + JSON)."""

    def __init__(self, images_dir: str | Path, annotations: str | Path) -> None:
        index = load_coco(annotations, images_dir)
        self.items = [
            _Item(
                Path(images_dir) / img["file_name"],
                img["height"],
                img["width"],
                index.anns_by_image.get(img_id, []),
            )
            for img_id, img in sorted(index.images.items())
        ]
        if not self.items:
            raise InputError(annotations, "no images to train on")
        if not any(item.anns for item in self.items):
            raise InputError(annotations, "no annotated nuclei to train on")

    @classmethod
    def from_split(cls, folder: str | Path) -> NucleusDataset:
        folder = Path(folder)
        return cls(folder / "images", folder / "annotations.json")

    def __len__(self) -> int:
        return len(self.items)

    def boxes_xywh(self) -> np.ndarray:
        """Every annotation's box, for the pa module's median anchor size."""
        boxes = [_xywh(a, it.height, it.width) for it in self.items for a in it.anns]
        return np.asarray([b for b in boxes if b[2] >= 1 and b[3] >= 1], dtype=float).reshape(-1, 4)

    def load(
        self, index: int, flip_h: bool = False, flip_v: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        item = self.items[index]
        image = read_image(item.path)
        if image.shape[:2] != (item.height, item.width):
            raise InputError(
                item.path,
                f"image shape {image.shape[:2]} differs from its annotation's "
                f"{(item.height, item.width)}",
            )
        masks = (
            np.stack(
                [decode_segmentation(a["segmentation"], item.height, item.width) for a in item.anns]
            )
            if item.anns
            else np.zeros((0, item.height, item.width), bool)
        )
        keep = [k for k in range(len(masks)) if masks[k].any()]
        masks = masks[keep]
        tensor = image_to_tensor(image)
        if flip_h:
            tensor, masks = tensor.flip(-1), masks[:, :, ::-1]
        if flip_v:
            tensor, masks = tensor.flip(-2), masks[:, ::-1, :]
        boxes = np.zeros((len(masks), 4), np.float32)
        for k, m in enumerate(masks):
            ys, xs = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
            boxes[k] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
        target = {
            "boxes": torch.from_numpy(boxes),
            "labels": torch.ones(len(masks), dtype=torch.int64),
            "masks": torch.from_numpy(np.ascontiguousarray(masks).astype(np.uint8)),
        }
        return tensor, target


def _xywh(ann: dict, height: int, width: int) -> list[float]:
    if "bbox" in ann:
        return [float(v) for v in ann["bbox"]]
    mask = decode_segmentation(ann["segmentation"], height, width)
    ys, xs = np.nonzero(mask)
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]


def batch_plan(
    n_images: int, batch_size: int, iteration: int, seed: int, flips: bool
) -> list[tuple[int, bool, bool]]:
    """(image index, flip horizontally, flip vertically) for each image of one global batch."""
    plan = []
    flip_rng = np.random.default_rng([seed, 1, iteration])
    draws = flip_rng.random((batch_size, 2)) < 0.5
    for k in range(batch_size):
        position = iteration * batch_size + k
        epoch, offset = divmod(position, n_images)
        order = _epoch_order(n_images, seed, epoch)
        plan.append((int(order[offset]), bool(flips and draws[k, 0]), bool(flips and draws[k, 1])))
    return plan


@lru_cache(maxsize=4)
def _epoch_order(n_images: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, 0, epoch]).permutation(n_images)
