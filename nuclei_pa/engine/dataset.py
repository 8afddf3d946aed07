"""Training data: a COCO-annotated image set as (image tensor, Mask R-CNN target) pairs.

Sampling is counter-based: global batch ``i`` is a pure function of ``(seed, i)``. Epoch ``e``
visits the images in a permutation seeded by ``(seed, e)`` and batch ``i``'s flips are drawn
from a generator seeded by ``(seed, i)``. The sampler's whole state is therefore the next
iteration: a resumed run continues the exact batch sequence, and data-parallel processes agree
on every global batch without communicating (each takes its own shard of it).

Images are normalised as in prediction (:func:`~nuclei_pa.engine.tensors.image_to_tensor`):
integers divided by their type's maximum (uint8 /255, uint16 /65535), grey replicated to three
channels; with the model's ``intensity: percentile``, each channel then stretched between the
*whole* image's percentiles (never a crop's: a crop of background would be stretched into
"nuclei"), the same levels prediction uses for every tile.

Patch training (``crop_size``) extends each plan entry with a crop window, drawn from a generator
seeded by ``(seed, iteration, position in the global batch)``, so it stays a pure function of the
counter too. With probability :data:`NUCLEUS_BIAS` the window is placed around an annotated
nucleus chosen uniformly among the image's (its centre anywhere in the window's middle half),
otherwise uniformly: partial annotations can be sparse, and a uniform crop of a large image
would often hold no annotated nucleus at all, an iteration spent learning nothing but (for the
baseline) background. The other tenth keeps every part of the image in play. Nuclei cut by the
window are clipped, and clipped slivers dropped, as the ``crop`` derivation does
(:func:`nuclei_pa.crops.is_sliver`). Images smaller than the crop in a dimension are used
whole in that dimension (no padding: torchvision pads a batch itself).

Augmentations beyond flips (:mod:`.augment`: quarter turns, scale, intensity, stain; off unless
asked) add one more item to each entry: the seed of that patch's draw, from a generator seeded
by ``(seed, iteration, position)``. A plan without them is exactly the plan from before.

A split folder's optional ignore and region masks (``ignore/``, ``regions/``:
:mod:`nuclei_pa.io.dataset`) ride along in the target as ``ignore`` and ``region`` (uint8
[H, W]), cropped and flipped with the image; labelled nuclei win over ignored pixels. Images
without them get neither key: the model then trains exactly as before.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from nuclei_pa.crops import MIN_CROP_AREA, is_sliver
from nuclei_pa.engine.augment import Augment, Draw
from nuclei_pa.engine.tensors import image_to_tensor, intensity_levels
from nuclei_pa.errors import InputError
from nuclei_pa.io.coco import decode_segmentation, load_coco
from nuclei_pa.io.dataset import IGNORE_DIR, REGIONS_DIR, read_mask
from nuclei_pa.io.images import read_image
from nuclei_pa.model.detector import REFERENCE_KEY
from nuclei_pa.model.ignore import IGNORE_KEY, REGION_KEY

# A crop of an image: (top row, left column, height, width), in pixels.
Window = tuple[int, int, int, int]
# (image index, flip horizontally, flip vertically[, crop window or None[, augmentation seed]]):
# one entry of a batch plan.
PlanEntry = (
    tuple[int, bool, bool]
    | tuple[int, bool, bool, Window | None]
    | tuple[int, bool, bool, Window | None, int]
)
Target = dict[str, Tensor]

# Chance that a patch is placed around an annotated nucleus rather than anywhere (see above).
NUCLEUS_BIAS = 0.9
# Decoded pixels kept in memory per dataset (per loader process): training revisits every image
# hundreds of times, and re-reading it and re-decoding its masks was a sixth of a CPU iteration.
# Images beyond the budget are read again each time; masks are kept cut to their own boxes.
CACHE_BYTES = 2 * 2**30


@dataclass(frozen=True)
class _Item:
    path: Path
    height: int
    width: int
    anns: tuple[dict[str, Any], ...]
    ignore: Path | None = None  # the split's optional masks (see the module docstring)
    region: Path | None = None


class NucleusDataset(Dataset):
    """Images and nucleus instances of one COCO file (a split folder, or any folder + JSON).

    ``dataset[i]`` is image ``i`` unflipped; ``dataset[(i, flip_h, flip_v)]`` flips image,
    masks and boxes together; ``dataset[(i, flip_h, flip_v, (y0, x0, h, w))]`` crops them to
    that window first. Targets hold ``boxes`` (float [N, 4] xyxy, derived from the
    masks so they follow every flip exactly), ``labels`` (int64 ones) and ``masks`` (uint8
    [N, H, W]); instances whose mask is empty are dropped (torchvision rejects zero-size boxes).
    An image without annotations gives empty targets, which torchvision trains on as all
    background.
    """

    #: Keep decoded pixels and masks (False: decode them per patch, as before; benchmarks).
    keep_decoded: bool = True

    def __init__(
        self,
        images_dir: str | Path,
        annotations: str | Path,
        reference: str | Path | None = None,
        sparse_dir: str | Path | None = None,
    ) -> None:
        images_dir, annotations = Path(images_dir), Path(annotations)
        if not images_dir.is_dir():
            raise InputError(images_dir, "images folder not found")
        index = load_coco(annotations, images_dir)
        self.annotations = annotations
        self._boxes: dict[int, np.ndarray] = {}
        #: How images become input: the model's ``ModelConfig.intensity``, set by the trainer.
        self.intensity = "fixed"
        #: What a plan entry's augmentation seed draws (:class:`Augment`), set by the trainer.
        self.augment = Augment()
        self._levels: dict[tuple[int, str], np.ndarray | None] = {}
        self._reference: list[np.ndarray] | None = None
        self._pixels: dict[int, np.ndarray] = {}
        self._cut_masks: dict[int, dict[int, tuple[int, int, np.ndarray]]] = {}
        self._cached_bytes = 0
        self.items = [
            _Item(
                images_dir / img["file_name"],
                int(img["height"]),
                int(img["width"]),
                tuple(index.anns_by_image.get(img_id, [])),
                *_mask_paths(sparse_dir, img["file_name"]),
            )
            for img_id, img in sorted(index.images.items())
        ]
        if not self.items:
            raise InputError(annotations, "lists no images to train on")
        if not any(item.anns for item in self.items):
            raise InputError(annotations, "has no annotated nuclei to train on")
        for item in self.items:  # fail now, not at some iteration hours into training
            shape = read_image(item.path).shape[:2]
            if shape != (item.height, item.width):
                raise InputError(
                    item.path,
                    f"image is {shape[0]}×{shape[1]} but {annotations.name} says "
                    f"{item.height}×{item.width}",
                )
        if reference is not None:
            self._reference = _reference_boxes(Path(reference), self.items)

    @classmethod
    def from_split(cls, folder: str | Path, reference: str | Path | None = None) -> NucleusDataset:
        """A split folder: ``images/`` and ``annotations.json``."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(folder, "training folder not found")
        if not (folder / "annotations.json").is_file():
            raise InputError(
                folder / "annotations.json", "file not found (expected a split folder)"
            )
        return cls(folder / "images", folder / "annotations.json", reference, folder)

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        """SHA-256 of the annotations file, so a resume can tell the data changed under it."""
        digest = hashlib.sha256(self.annotations.read_bytes())
        for item in self.items:  # an ignore or region mask changed is other data too
            for path in (item.ignore, item.region):
                if path is not None:
                    digest.update(path.name.encode() + path.read_bytes())
        return digest.hexdigest()

    def boxes_xywh(self) -> np.ndarray:
        """Every non-degenerate annotation box (COCO x, y, w, h): the pa module's anchor size."""
        arr = np.concatenate([self._xywh(k) for k in range(len(self))])
        return arr[(arr[:, 2] >= 1) & (arr[:, 3] >= 1)]

    def instance_boxes(self, index: int) -> np.ndarray:
        """Image ``index``'s annotation boxes, float xyxy [N, 4] in annotation order.

        From the COCO ``bbox`` where given (no mask decoded), else from the mask; a crop decodes
        only the instances whose box meets its window.
        """
        return _xyxy(self._xywh(index))

    def _xywh(self, index: int) -> np.ndarray:
        """Image ``index``'s annotation boxes as COCO (x, y, w, h), computed once."""
        if index not in self._boxes:
            item = self.items[index]
            boxes = [_xywh(a, item.height, item.width) for a in item.anns]
            self._boxes[index] = np.asarray(boxes, dtype=float).reshape(-1, 4)
        return self._boxes[index]

    def crop_windows(self, size: int) -> CropWindows:
        """Where patches of ``size`` px come from: every image's shape and annotated nuclei."""
        centres = []
        for k in range(len(self)):
            boxes = self.instance_boxes(k)
            boxes = boxes[(boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)]
            centres.append((boxes[:, [1, 0]] + boxes[:, [3, 2]]) / 2)  # (y, x)
        shapes = tuple((it.height, it.width) for it in self.items)
        return CropWindows(size, shapes, tuple(centres))

    def __getitem__(self, key: int | PlanEntry) -> tuple[Tensor, Target]:
        if isinstance(key, int):
            return self.load(key)
        window = key[3] if len(key) > 3 else None
        draw = self.augment.draw(int(key[4])) if len(key) > 4 else None
        return self.load(int(key[0]), bool(key[1]), bool(key[2]), window, draw)

    def load(
        self,
        index: int,
        flip_h: bool = False,
        flip_v: bool = False,
        window: Window | None = None,
        draw: Draw | None = None,
    ) -> tuple[Tensor, Target]:
        """Image ``index`` and its target, cropped to ``window`` (if given), flipped, then
        augmented by ``draw`` (:mod:`.augment`)."""
        whole = self._image(index)
        levels = self._intensity_levels(index, whole)
        if window is not None:
            y0, x0, h, w = (int(v) for v in window)
            image = image_to_tensor(whole[y0 : y0 + h, x0 : x0 + w], levels)
            masks = self._window_masks(index, (y0, x0, h, w))
        else:
            image = image_to_tensor(whole, levels)
            masks = self._window_masks(index, (0, 0, *whole.shape[:2]), whole=True)
        extra = self._sparse_masks(self.items[index], window)
        if flip_h:
            image, masks = image.flip(-1), masks[:, :, ::-1]
            extra = {k: m[:, ::-1] for k, m in extra.items()}
        if flip_v:
            image, masks = image.flip(-2), masks[:, ::-1, :]
            extra = {k: m[::-1] for k, m in extra.items()}
        patch_shape = image.shape[-2:]
        if draw is not None:
            image, masks, extra = draw.apply(image, masks, extra)
        if IGNORE_KEY in extra:  # a labelled nucleus is no unknown
            extra[IGNORE_KEY] = extra[IGNORE_KEY] & ~masks.any(axis=0)
        masks = np.ascontiguousarray(masks, dtype=np.uint8)
        target = {
            "boxes": torch.from_numpy(mask_boxes(masks)),
            "labels": torch.ones(len(masks), dtype=torch.int64),
            "masks": torch.from_numpy(masks),
        }
        for key, mask in extra.items():
            target[key] = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))
        if self._reference is not None:
            boxes = _place_boxes(self._reference[index], window, flip_h, flip_v, *patch_shape)
            if draw is not None:
                boxes = draw.boxes(boxes, *patch_shape)
            target[REFERENCE_KEY] = torch.from_numpy(boxes)
        return image, target

    def _image(self, index: int) -> np.ndarray:
        """Image ``index``'s pixels, read once while the cache has room (:data:`CACHE_BYTES`)."""
        if index in self._pixels:
            return self._pixels[index]
        pixels = read_image(self.items[index].path)
        if self.keep_decoded and self._cached_bytes + pixels.nbytes <= CACHE_BYTES:
            self._pixels[index] = pixels
            self._cached_bytes += pixels.nbytes
        return pixels

    def _instance_mask(self, index: int, k: int) -> tuple[int, int, np.ndarray]:
        """Annotation ``k`` of image ``index`` as (top, left, its mask cut to its pixels' box),
        decoded the first time a window needs it (an empty mask is 0 × 0)."""
        cut = self._cut_masks.setdefault(index, {})
        if k not in cut:
            item = self.items[index]
            full = decode_segmentation(item.anns[k]["segmentation"], item.height, item.width)
            rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
            if len(rows) == 0:
                cut[k] = (0, 0, np.zeros((0, 0), dtype=bool))
            else:
                box = full[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
                cut[k] = (int(rows[0]), int(cols[0]), np.ascontiguousarray(box))
        return cut[k] if self.keep_decoded else cut.pop(k)

    def _window_masks(self, index: int, window: Window, whole: bool = False) -> np.ndarray:
        """Masks of the instances in ``window``, clipped to it; empty ones dropped, and slivers
        too unless ``whole`` (the window is the whole image: every instance, uncut)."""
        y0, x0, h, w = window
        boxes = self.instance_boxes(index)
        # 1 px of slack: a polygon's stored box and its rasterised mask may disagree by a pixel
        meets = whole | (
            (boxes[:, 0] < x0 + w + 1)
            & (boxes[:, 2] > x0 - 1)
            & (boxes[:, 1] < y0 + h + 1)
            & (boxes[:, 3] > y0 - 1)
        )
        cut = [self._instance_mask(index, int(k)) for k in np.flatnonzero(meets)]
        masks = np.zeros((len(cut), h, w), dtype=bool)
        for k, (top, left, m) in enumerate(cut):
            ya, yb = max(top, y0), min(top + m.shape[0], y0 + h)
            xa, xb = max(left, x0), min(left + m.shape[1], x0 + w)
            if ya < yb and xa < xb:
                masks[k, ya - y0 : yb - y0, xa - x0 : xb - x0] = m[
                    ya - top : yb - top, xa - left : xb - left
                ]
        areas = masks.sum(axis=(1, 2))
        keep = areas > 0 if whole else (areas > 0) & ~is_sliver(areas)
        return masks[keep]

    @staticmethod
    def _sparse_masks(item: _Item, window: Window | None) -> dict[str, np.ndarray]:
        """The image's ignore and region masks present, cut to ``window``."""
        out = {}
        for key, path in ((IGNORE_KEY, item.ignore), (REGION_KEY, item.region)):
            if path is None:
                continue
            mask = read_mask(path, (item.height, item.width))
            if window is not None:
                y0, x0, h, w = window
                mask = mask[y0 : y0 + h, x0 : x0 + w]
            out[key] = mask
        return out

    def _intensity_levels(self, index: int, image: np.ndarray) -> np.ndarray | None:
        """The whole image's :func:`intensity_levels`, computed once per image and mode."""
        key = (index, self.intensity)
        if key not in self._levels:
            self._levels[key] = intensity_levels(image, self.intensity)
        return self._levels[key]


def _mask_paths(folder: str | Path | None, file_name: str) -> tuple[Path | None, Path | None]:
    """The ignore and region masks of image ``file_name`` (``<stem>.tif`` in ``ignore/`` and
    ``regions/`` of ``folder``), each None when absent."""
    if folder is None:
        return None, None
    name = f"{Path(file_name).stem}.tif"
    paths = (Path(folder) / sub / name for sub in (IGNORE_DIR, REGIONS_DIR))
    return tuple(p if p.is_file() else None for p in paths)  # type: ignore[return-value]


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (float32 [N, 4], exclusive max) of non-empty masks [N, H, W]."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for k, m in enumerate(masks):
        ys = np.flatnonzero(m.any(axis=1))
        xs = np.flatnonzero(m.any(axis=0))
        boxes[k] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def _xywh(ann: dict[str, Any], height: int, width: int) -> list[float]:
    if "bbox" in ann:
        return [float(v) for v in ann["bbox"]]
    ys, xs = np.nonzero(decode_segmentation(ann["segmentation"], height, width))
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)]


def _reference_boxes(path: Path, items: list[_Item]) -> list[np.ndarray]:
    """Each training image's full-annotation boxes (xyxy) from the COCO file ``path``, which
    must list every training image by file name at the same size."""
    index = load_coco(path)
    by_name = {img["file_name"]: (img_id, img) for img_id, img in index.images.items()}
    boxes = []
    for item in items:
        if item.path.name not in by_name:
            raise InputError(path, f"does not list training image {item.path.name}")
        img_id, img = by_name[item.path.name]
        if (int(img["height"]), int(img["width"])) != (item.height, item.width):
            raise InputError(path, f"gives {item.path.name} another size than the training set")
        xywh = np.asarray(
            [_xywh(a, item.height, item.width) for a in index.anns_by_image.get(img_id, [])],
            dtype=np.float32,
        ).reshape(-1, 4)
        boxes.append(_xyxy(xywh[(xywh[:, 2] >= 1) & (xywh[:, 3] >= 1)]))
    return boxes


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _place_boxes(
    boxes: np.ndarray,
    window: Window | None,
    flip_h: bool,
    flip_v: bool,
    height: int,
    width: int,
) -> np.ndarray:
    """Image boxes (xyxy) as they fall in a ``height`` × ``width`` crop at ``window`` (clipped,
    slivers dropped), then flipped as the crop is: where the full labels lie in a patch."""
    if window is not None:
        y0, x0 = window[0], window[1]
        boxes = np.clip(boxes - [x0, y0, x0, y0], 0, [width, height, width, height])
        sides = boxes[:, 2:] - boxes[:, :2]
        boxes = boxes[(sides.min(axis=1) >= 1) & (sides.prod(axis=1) >= MIN_CROP_AREA)]
    if flip_h:
        boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    if flip_v:
        boxes = np.stack([boxes[:, 0], height - boxes[:, 3], boxes[:, 2], height - boxes[:, 1]], 1)
    return np.ascontiguousarray(boxes, dtype=np.float32)


def open_dataset(
    data: str | Path | tuple[str | Path, str | Path], reference: str | Path | None = None
) -> NucleusDataset:
    """A split folder (``images/`` + ``annotations.json``) or an (images folder, COCO file) pair;
    ``reference``: the same images' full annotations (a COCO file or split folder), for the pa
    diagnostics only."""
    if reference is not None and Path(reference).is_dir():
        reference = Path(reference) / "annotations.json"
    if isinstance(data, tuple | list):
        images_dir, annotations = data  # masks, if any, beside the COCO file, as in a split
        return NucleusDataset(images_dir, annotations, reference, Path(annotations).parent)
    return NucleusDataset.from_split(data, reference)


@dataclass(frozen=True, eq=False)
class CropWindows:
    """Patch placement for one dataset: crop ``size``, each image's (height, width) and the
    (y, x) centres of its annotated nuclei. :meth:`window` is a pure function of its arguments.
    """

    size: int
    shapes: tuple[tuple[int, int], ...]
    centres: tuple[np.ndarray, ...]
    bias: float = NUCLEUS_BIAS

    def window(self, index: int, seed: int, iteration: int, position: int) -> Window:
        """The crop of image ``index`` at ``position`` of the global batch of ``iteration``."""
        height, width = self.shapes[index]
        h, w = min(self.size, height), min(self.size, width)
        u = np.random.default_rng([seed, 2, iteration, position]).random(4)
        centres = self.centres[index]
        if len(centres) and u[0] < self.bias:
            cy, cx = centres[min(int(u[1] * len(centres)), len(centres) - 1)]
            # the nucleus centre lands uniformly in the middle half of the window
            y0 = math.floor(cy - h * (0.25 + 0.5 * u[2]))
            x0 = math.floor(cx - w * (0.25 + 0.5 * u[3]))
        else:
            y0, x0 = int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1))
        return (min(max(y0, 0), height - h), min(max(x0, 0), width - w), h, w)


def batch_plan(
    n_images: int,
    batch_size: int,
    iteration: int,
    seed: int,
    flips: bool,
    crops: CropWindows | None = None,
    augment: bool = False,
) -> list[PlanEntry]:
    """The global batch of 0-based ``iteration``: (image, flip h, flip v[, window[, seed]]) per
    image; with ``augment`` each entry ends with the seed of its augmentation draw."""
    draws = np.random.default_rng([seed, 1, iteration]).random((batch_size, 2)) < 0.5
    plan: list[PlanEntry] = []
    for k in range(batch_size):
        epoch, offset = divmod(iteration * batch_size + k, n_images)
        index = int(_epoch_order(n_images, seed, epoch)[offset])
        entry = (index, bool(flips and draws[k, 0]), bool(flips and draws[k, 1]))
        if crops is not None or augment:
            entry = (*entry, crops.window(index, seed, iteration, k) if crops else None)
        if augment:
            entry = (*entry, _augment_seed(seed, iteration, k))
        plan.append(entry)
    return plan


def _augment_seed(seed: int, iteration: int, position: int) -> int:
    return int(np.random.default_rng([seed, 4, iteration, position]).integers(2**63))


@lru_cache(maxsize=8)
def _epoch_order(n_images: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, 0, epoch]).permutation(n_images)


class InfiniteBatchSampler(Sampler[list[PlanEntry]]):
    """This process's shard of every global batch from ``start`` (0-based) on, forever.

    With ``world_size`` processes, process ``rank`` takes entries ``rank, rank + world_size, …``
    of each global batch; ``batch_size`` must divide evenly so every process does equal work
    and gradient averaging weighs every image alike. With ``crops`` each entry also names its
    patch (:class:`CropWindows`).
    """

    def __init__(
        self,
        n_images: int,
        batch_size: int,
        seed: int,
        flips: bool,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        crops: CropWindows | None = None,
        augment: bool = False,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"batch size {batch_size} does not split evenly across {world_size} processes"
            )
        self.n_images, self.batch_size, self.seed, self.flips = n_images, batch_size, seed, flips
        self.start, self.rank, self.world_size = start, rank, world_size
        self.crops, self.augment = crops, augment

    def __iter__(self) -> Iterator[list[PlanEntry]]:
        iteration = self.start
        while True:
            plan = batch_plan(
                self.n_images,
                self.batch_size,
                iteration,
                self.seed,
                self.flips,
                self.crops,
                self.augment,
            )
            yield plan[self.rank :: self.world_size]
            iteration += 1

    def state_dict(self, next_iteration: int) -> dict[str, int]:
        """All a checkpoint needs to continue this sequence: its seed and where it is."""
        return {"seed": self.seed, "next_iteration": next_iteration}


def collate(batch: list[tuple[Tensor, Target]]) -> tuple[list[Tensor], list[Target]]:
    """Images stay a list: torchvision batches (pads) them itself."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
