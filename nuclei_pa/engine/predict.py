"""Prediction: a trained model applied to whole images, tile by tile, into instance label images.

Memory stays roughly flat as images grow: the model only ever sees one tile; each detection is
cut down to its box as soon as the tile's output arrives (see :mod:`.postprocess`); the only
image-sized arrays are the input image and the int32 label image. Tiles are stitched without
duplicated or cut nuclei by the core rule of :mod:`.tiling` — keep ``tile_overlap`` above the
largest nucleus diameter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.models.detection.roi_heads import expand_boxes

from nuclei_pa.engine.postprocess import (
    Instance,
    dilate_labels,
    paste_instances,
)
from nuclei_pa.engine.tensors import image_to_tensor, intensity_levels, resolve_device
from nuclei_pa.engine.tiling import Tile, tile_grid
from nuclei_pa.engine.tta import FLIPS, Window, merge_views, trim, unflip
from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_dir, write_json
from nuclei_pa.io.coco import coco_document, labels_to_annotations
from nuclei_pa.io.images import list_images, read_image, write_tiff
from nuclei_pa.io.torchfile import load_torch_file

#: ``dilate``: the paper's 3×3 dilation of every nucleus (Sec. IV) is off by default. Measured on
#: the real validation splits (BBBC039, 25 images; Kumar, 3), masks at threshold 0.5 without it
#: have the ground truth's area (matched nuclei: median ratio 1.03 and 1.00) and it adds 20 %
#: (1.22, 1.21), costing validation mAP (.567 → .456 on BBBC039, .223 → .205 on Kumar;
#: benchmarks/bench_mask_width.py). The workflow still chooses it on validation
#: (``nuclei_pa.engine.choose``).
DEFAULTS: dict[str, Any] = {
    "score_threshold": 0.5,
    "mask_threshold": 0.5,
    "min_area": 10,
    "dilate": False,
    "tile_size": 1024,
    "tile_overlap": 128,
}


def load_model(
    checkpoint: str | Path,
    device: str | torch.device | None = "auto",
    *,
    inference: Mapping[str, Any] | None = None,
) -> torch.nn.Module:
    """Rebuild a trained model from a ``nuclei-pa train`` checkpoint, in eval mode on ``device``.

    ``inference`` overrides the checkpoint's inference-only settings
    (:data:`~nuclei_pa.model.config.INFERENCE_KEYS`: ``test_time_flips``, ``mask_box_scale``,
    ``mask_box_grow``), e.g. to predict with test-time flips from a model trained without them;
    a key that is not one of them, or a bad value, is a ValueError naming it. Every problem with
    the file becomes an :class:`InputError` naming it.
    """
    from nuclei_pa.model.config import INFERENCE_KEYS

    unknown = sorted(set(inference or {}) - set(INFERENCE_KEYS))
    if unknown:
        raise ValueError(
            f"{unknown[0]!r} is not an inference setting; those are {', '.join(INFERENCE_KEYS)}"
        )
    path = Path(checkpoint)
    ckpt = load_torch_file(path)
    if not isinstance(ckpt, dict) or "model_config" not in ckpt:
        raise InputError(path, "checkpoint has no 'model_config' (not written by nuclei-pa train?)")
    if "model" not in ckpt:
        raise InputError(path, "checkpoint has no 'model' weights")
    from nuclei_pa.model import ModelConfig, build_model

    try:
        cfg = ModelConfig.from_saved(ckpt["model_config"])
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(path, f"invalid model_config: {exc}") from exc
    if inference:
        cfg = ModelConfig.from_dict({**cfg.to_dict(), **inference})
    try:
        model = build_model(cfg)
    except InputError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(path, f"invalid model_config: {exc}") from exc
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, KeyError) as exc:
        raise InputError(path, f"weights do not fit its model_config: {exc}") from exc
    return model.to(resolve_device(device)).eval()


def inference_kwargs(inference: Mapping[str, Any] | None) -> dict[str, Any]:
    """``load_model``'s keyword for ``inference`` settings: none when there are none, so a
    caller without any loads exactly as before."""
    return {"inference": dict(inference)} if inference else {}


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def paste_mask(
    mask: torch.Tensor, box: torch.Tensor, height: int, width: int
) -> tuple[int, int, torch.Tensor] | None:
    """One M×M mask-head output pasted as torchvision's ``paste_masks_in_image`` does (padded by
    a pixel, box grown to match, bilinear resize), but returned as its window of the
    ``height`` × ``width`` image only: (top, left, probabilities), None when off the image."""
    m = mask.shape[-1]
    padded = torch.nn.functional.pad(mask.reshape(1, 1, m, -1), (1, 1, 1, 1))
    x0, y0, x1, y1 = expand_boxes(box.reshape(1, 4), (m + 2) / m).to(torch.int64)[0].tolist()
    w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
    resized = torch.nn.functional.interpolate(
        padded, size=(h, w), mode="bilinear", align_corners=False
    )[0, 0]
    ya, yb, xa, xb = max(y0, 0), min(y1 + 1, height), max(x0, 0), min(x1 + 1, width)
    if ya >= yb or xa >= xb:
        return None
    return ya, xa, resized[ya - y0 : yb - y0, xa - x0 : xb - x0]


def _windows(
    output: dict[str, torch.Tensor], height: int, width: int, score_threshold: float
) -> Iterator[Window]:
    """Each detection of one tile's model output scoring ≥ ``score_threshold`` as its mask
    probabilities in a window of the ``height`` × ``width`` tile.

    Masks come either pasted to tile size (torchvision's output: the window is the whole tile)
    or as the mask head's M×M probabilities with their boxes
    (:class:`~nuclei_pa.model.detector.NativeSizeTransform` with ``paste_masks`` off), pasted
    here into their boxes alone; both give the same pixels. A mask made for a grown box (the
    model's ``mask_box_scale``) is pasted into that box (``mask_boxes``).
    """
    scores = output["scores"].detach()
    masks = output["masks"].detach()
    if masks.ndim == 4:  # [N, 1, H, W] as torchvision returns them
        masks = masks[:, 0]
    boxes = output.get("mask_boxes", output["boxes"])
    pasted = masks.shape[-2:] == (height, width)
    for i in torch.nonzero(scores >= score_threshold).flatten().tolist():
        if pasted:
            yield Window(0, 0, masks[i], float(scores[i]))
            continue
        placed = paste_mask(masks[i], boxes[i].detach(), height, width)
        if placed is not None:
            yield Window(*placed, float(scores[i]))


def _kept_instance(window: Window, tile: Tile, mask_threshold: float) -> Instance | None:
    """``window`` thresholded and cropped to its mask, if ``tile`` keeps it (see
    :meth:`~nuclei_pa.engine.tiling.Tile.keeps`), as an instance of the whole image."""
    fg = window.prob > mask_threshold
    rows = torch.nonzero(fg.any(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(fg.any(dim=0)).flatten()
    ya, yb = int(rows[0]), int(rows[-1]) + 1
    xa, xb = int(cols[0]), int(cols[-1]) + 1
    top, left = window.top, window.left
    if not tile.keeps(top + ya, top + yb, left + xa, left + xb):
        return None
    # a copy, not a view: a view would keep the whole tile-sized mask alive
    local = fg[ya:yb, xa:xb].cpu().numpy().copy()
    return Instance(tile.y0 + top + ya, tile.x0 + left + xa, local, window.score)


def _kept(windows: Iterable[Window], tile: Tile, mask_threshold: float) -> Iterator[Instance]:
    for window in windows:
        instance = _kept_instance(window, tile, mask_threshold)
        if instance is not None:
            yield instance


def _tile_instances(
    output: dict[str, torch.Tensor],
    tile: Tile,
    score_threshold: float,
    mask_threshold: float,
) -> Iterator[Instance]:
    """The detections of one tile's model output that this tile keeps, cropped to their masks."""
    th, tw = tile.y1 - tile.y0, tile.x1 - tile.x0
    return _kept(_windows(output, th, tw, score_threshold), tile, mask_threshold)


def _flipped_views(
    model: torch.nn.Module, x: torch.Tensor, score_threshold: float
) -> list[list[Window]]:
    """The detections of the tile ``x`` and of its flips (:mod:`.tta`), each view's mapped back
    to the tile. Only one view's output is alive at a time; what is kept of each detection is
    its probabilities over its own box-sized window, so memory stays that of one tile."""
    th, tw = x.shape[-2:]
    views = []
    for dims in FLIPS:
        output = model([x.flip(dims) if dims else x])[0]
        views.append(
            [unflip(trim(w), dims, th, tw) for w in _windows(output, th, tw, score_threshold)]
        )
        del output
    return views


@contextlib.contextmanager
def _temporarily(obj: Any, name: str, value: Any) -> Iterator[None]:
    """``obj.name = value`` for the block, the old value back after it."""
    before = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, before)


def _masks_unpasted(model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """Have the model return unpasted masks (see :func:`_tile_instances`) while predicting."""
    transform = getattr(model, "transform", None)
    if getattr(transform, "paste_masks", None) is None:
        return contextlib.nullcontext()
    return _temporarily(transform, "paste_masks", False)


def _score_floor(
    model: torch.nn.Module, score_threshold: float
) -> contextlib.AbstractContextManager:
    """Drop detections under ``score_threshold`` inside the model, before its mask head.

    They would be discarded afterwards anyway; pasting hundreds of low-score 28×28 masks back
    to image size is most of the CPU inference time of an undertrained model. NMS only lets a
    higher score suppress a lower one, so the detections kept are the same.
    """
    heads = getattr(model, "roi_heads", None)
    before = getattr(heads, "score_thresh", None)
    if before is None or score_threshold <= before:
        return contextlib.nullcontext()
    # torchvision keeps scores strictly above its threshold, we keep those at ours: the float32
    # just below it keeps exactly the same set (scores are float32)
    floor = float(np.nextafter(np.float32(score_threshold), np.float32(-np.inf)))
    return _temporarily(heads, "score_thresh", floor)


def _mask_box_scale(
    model: torch.nn.Module, scale: float | None
) -> contextlib.AbstractContextManager:
    """The model's mask head on boxes grown by ``scale`` for the block (None: its own)."""
    heads = getattr(model, "roi_heads", None)
    if scale is None or scale == getattr(heads, "mask_box_scale", 1.0):
        return contextlib.nullcontext()
    if not hasattr(heads, "mask_box_scale"):
        raise ValueError(f"mask_box_scale {scale} needs a nuclei-pa model (PARoIHeads)")
    from nuclei_pa.model.config import MASK_BOX_SCALES

    low, high = MASK_BOX_SCALES
    if not low <= scale <= high:
        raise ValueError(f"mask_box_scale must be between {low} and {high}, got {scale}")
    return _temporarily(heads, "mask_box_scale", float(scale))


def predict_image(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    score_threshold: float = DEFAULTS["score_threshold"],
    mask_threshold: float = DEFAULTS["mask_threshold"],
    min_area: int = DEFAULTS["min_area"],
    dilate: bool = DEFAULTS["dilate"],
    tile_size: int | None = DEFAULTS["tile_size"],
    tile_overlap: int = DEFAULTS["tile_overlap"],
    device: str | torch.device | None = None,
    levels: np.ndarray | str | None = "own",
    test_time_flips: bool | None = None,
    mask_box_scale: float | None = None,
) -> tuple[np.ndarray, dict[int, float]]:
    """Instance labels (int32, 0 = background, 1 = best score) of one image, and each label's score.

    Detections with score ≥ ``score_threshold`` are kept; mask pixels with probability
    > ``mask_threshold`` are foreground. ``tile_size`` None/0 predicts in one piece; images no
    larger than ``tile_size`` always do. ``device`` None uses the model's own device. The model
    is run in eval mode and put back in its previous mode afterwards. ``levels`` "own" takes the
    intensity levels of this image (the model's ``intensity`` mode); a part of a larger image (a
    slide's tile) passes the whole image's instead (``intensity_levels`` of it).
    ``test_time_flips`` (merge the image's flips, :mod:`.tta`) and ``mask_box_scale`` (the mask
    head on grown boxes): None takes the model's own (its ``ModelConfig``).
    """
    (result,) = predict_mask_thresholds(
        model,
        image,
        [mask_threshold],
        score_threshold=score_threshold,
        min_area=min_area,
        dilate=dilate,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        device=device,
        levels=levels,
        test_time_flips=test_time_flips,
        mask_box_scale=mask_box_scale,
    )
    return result


def predict_mask_thresholds(
    model: torch.nn.Module,
    image: np.ndarray,
    mask_thresholds: Sequence[float],
    *,
    score_threshold: float = DEFAULTS["score_threshold"],
    min_area: int = DEFAULTS["min_area"],
    dilate: bool = DEFAULTS["dilate"],
    tile_size: int | None = DEFAULTS["tile_size"],
    tile_overlap: int = DEFAULTS["tile_overlap"],
    device: str | torch.device | None = None,
    levels: np.ndarray | str | None = "own",
    test_time_flips: bool | None = None,
    mask_box_scale: float | None = None,
) -> list[tuple[np.ndarray, dict[int, float]]]:
    """:func:`predict_image` at each of ``mask_thresholds``, the model run once: each
    detection's probabilities are kept (box-sized) until every threshold has read them."""
    if not mask_thresholds:
        raise ValueError("no mask threshold given")
    dev = _model_device(model) if device is None else resolve_device(device)
    if test_time_flips is None:
        test_time_flips = bool(getattr(model, "test_time_flips", False))
    height, width = image.shape[:2]
    tiles = tile_grid(height, width, tile_size, tile_overlap)
    if isinstance(levels, str):
        levels = intensity_levels(image, getattr(model, "intensity", "fixed"))
    was_training = model.training
    model.eval()
    instances: list[list[Instance]] = [[] for _ in mask_thresholds]
    try:
        with (
            torch.inference_mode(),
            _score_floor(model, score_threshold),
            _masks_unpasted(model),
            _mask_box_scale(model, mask_box_scale),
        ):
            for tile in tiles:
                x = image_to_tensor(image[tile.y0 : tile.y1, tile.x0 : tile.x1], levels).to(dev)
                th, tw = tile.y1 - tile.y0, tile.x1 - tile.x0
                if test_time_flips:
                    views = _flipped_views(model, x, score_threshold)
                    del x
                    for found, t in zip(instances, mask_thresholds, strict=True):
                        found += _kept(merge_views(views, t), tile, t)
                    del views
                    continue
                output = model([x])[0]
                del x
                windows: Iterable[Window] = _windows(output, th, tw, score_threshold)
                if len(mask_thresholds) > 1:  # read more than once: box-sized copies
                    windows = [trim(w) for w in windows]
                for found, t in zip(instances, mask_thresholds, strict=True):
                    found += _kept(windows, tile, t)
                del output, windows
    finally:
        model.train(was_training)
    results = []
    while instances:
        labels, scores = paste_instances(instances.pop(0), (height, width), min_area=min_area)
        if dilate:
            dilate_labels(labels, inplace=True)
        results.append((labels, scores))
    return results


def resolve_images(images: str | Path | Sequence[str | Path]) -> list[Path]:
    """Image files from a folder (a split folder through its images/), files, or both.

    Output names come from file stems, so two inputs with the same stem are an error.
    """
    items = [images] if isinstance(images, str | Path) else list(images)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            folder = p / "images" if (p / "images").is_dir() else p
            found = list_images(folder)
            if not found:
                raise InputError(folder, "no images (.tif/.tiff/.png/.jpg) found")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(p, "image or folder not found")
    if not paths:
        raise InputError(None, "no images given")
    check_unique_stems(paths)
    return paths


def check_unique_stems(paths: Sequence[Path]) -> None:
    """Outputs are named by file stem: two inputs with one stem would overwrite each other."""
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise InputError(p, f"same name as {seen[p.stem]}; outputs are named by file stem")
        seen[p.stem] = p


def predict_folder(
    checkpoint: str | Path | torch.nn.Module,
    images: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    score_threshold: float = DEFAULTS["score_threshold"],
    mask_threshold: float = DEFAULTS["mask_threshold"],
    min_area: int = DEFAULTS["min_area"],
    dilate: bool = DEFAULTS["dilate"],
    tile_size: int | None = DEFAULTS["tile_size"],
    tile_overlap: int = DEFAULTS["tile_overlap"],
    device: str | torch.device | None = "auto",
    progress: bool = True,
    test_time_flips: bool | None = None,
    mask_box_scale: float | None = None,
    inference: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Predict every image; write ``out_dir/labels/<stem>.tif`` and ``out_dir/predictions.json``.

    ``checkpoint`` is a checkpoint path or an already loaded model (tests, benchmarks, training).
    ``predictions.json`` is a full COCO document (images, RLE annotations with ``score``, the
    nucleus category) that ``nuclei-pa evaluate`` and pycocotools read. ``labels/`` is replaced
    as a whole and the JSON written, each atomically, only once every image has succeeded.
    ``test_time_flips`` and ``mask_box_scale`` as in :func:`predict_image` (None: the model's).
    ``inference``: the checkpoint's inference settings overridden, as :func:`load_model`'s.
    Returns the numbers of images and instances.
    """
    from tqdm import tqdm

    paths = resolve_images(images)
    out_dir = Path(out_dir)
    if isinstance(checkpoint, torch.nn.Module):
        model = checkpoint.to(resolve_device(device))
        source = type(checkpoint).__name__
    else:
        model = load_model(checkpoint, device, **inference_kwargs(inference))
        source = str(checkpoint)
    params = {
        "score_threshold": score_threshold,
        "mask_threshold": mask_threshold,
        "min_area": min_area,
        "dilate": dilate,
        "tile_size": tile_size,
        "tile_overlap": tile_overlap,
        "test_time_flips": (
            bool(getattr(model, "test_time_flips", False))
            if test_time_flips is None
            else test_time_flips
        ),
        "mask_box_scale": (
            float(getattr(getattr(model, "roi_heads", None), "mask_box_scale", 1.0))
            if mask_box_scale is None
            else mask_box_scale
        ),
    }
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir / "labels") as tmp:
        bar = tqdm(paths, desc="predict", unit="img", disable=not progress)
        for image_id, path in enumerate(bar, start=1):
            image = read_image(path)
            labels, scores = predict_image(model, image, device=None, **params)
            del image
            write_tiff(
                tmp / f"{path.stem}.tif",
                labels.astype(np.uint16 if labels.max(initial=0) < 65536 else np.uint32),
            )
            height, width = labels.shape
            coco_images.append(
                {"id": image_id, "file_name": path.name, "height": height, "width": width}
            )
            annotations += labels_to_annotations(
                labels, image_id, first_id=len(annotations) + 1, scores=scores
            )
            del labels
        doc = coco_document(
            coco_images,
            annotations,
            description="nuclei-pa predictions",
            checkpoint=source,
            **params,
        )
        write_json(out_dir / "predictions.json", doc)
    return {"images": len(coco_images), "instances": len(annotations)}
