"""COCO instance files + images → samples; the authors' DH100 layout → our split folders.

The authors' code (maskrcnn-benchmark's ``paths_catalog.py``) lays DH100 out as
``DH100/{train,val,test}2019/`` images with ``DH100/annotations/instances_{split}2019.json``.
We search for ``annotations/instances_train2019.json`` under the raw folder, so the zip's top
folder name does not matter.

Reading is lenient where external files commonly differ from strict COCO and strict where the
data would be wrong: polygons reaching past the image are clipped by the rasteriser, empty masks
and ``iscrowd`` regions are skipped (with a log line); unknown image ids, duplicate ids or names,
missing images and size mismatches are errors. Overlaps resolve as everywhere in the project
(:func:`nuclei_pa.io.coco.annotations_to_labels`: the smaller instance on top).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from nuclei_pa.data.convert_common import load_image, single_channel
from nuclei_pa.errors import InputError
from nuclei_pa.io.coco import annotations_to_labels, decode_segmentation
from nuclei_pa.io.dataset import Sample
from nuclei_pa.io.jsonfile import read_json

log = logging.getLogger(__name__)

ValMode = Literal["separate", "train", "drop"]


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(path, "not a COCO instances file (no 'images' list)")
    return data


def coco_to_samples(
    coco_json: str | Path, images_dir: str | Path, grey: bool = False
) -> Iterator[Sample]:
    """The images of a COCO instances file with their label images, in image-id order.

    ``grey`` reduces RGB images holding a single channel's data to (H, W) (see
    :func:`~nuclei_pa.data.convert_common.single_channel`). All entries are checked before the
    first image is read.
    """
    path, images_dir = Path(coco_json), Path(images_dir)
    data = _read_json(path)
    images: dict[Any, dict[str, Any]] = {}
    for img in data["images"]:
        for key in ("id", "file_name", "height", "width"):
            if key not in img:
                raise InputError(path, f"image entry {img.get('id', '?')} lacks '{key}'")
        if img["id"] in images:
            raise InputError(path, f"duplicate image id {img['id']}")
        if not (images_dir / img["file_name"]).is_file():
            raise InputError(path, f"image {img['file_name']!r} not found in {images_dir}")
        images[img["id"]] = img
    stems = [Path(img["file_name"]).stem for img in images.values()]
    if len(set(stems)) != len(stems):
        raise InputError(
            path, f"image names not unique: {sorted(s for s in set(stems) if stems.count(s) > 1)}"
        )
    anns: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    seen: set[Any] = set()
    for ann in data.get("annotations", []):
        ann_id = ann.get("id")
        if ann_id in seen:
            raise InputError(path, f"duplicate annotation id {ann_id}")
        seen.add(ann_id)
        if ann.get("image_id") not in images:
            raise InputError(
                path, f"annotation {ann_id} refers to missing image {ann.get('image_id')}"
            )
        if "segmentation" not in ann:
            raise InputError(path, f"annotation {ann_id} has no segmentation")
        anns[ann["image_id"]].append(ann)

    for image_id in sorted(images):
        img = images[image_id]
        h, w = int(img["height"]), int(img["width"])
        image = load_image(images_dir / img["file_name"])
        if image.shape[:2] != (h, w):
            raise InputError(
                images_dir / img["file_name"],
                f"image shape {image.shape[:2]} differs from {path.name}'s {(h, w)}",
            )
        if grey:
            image = single_channel(image)
        kept, skipped = [], 0
        for ann in anns.get(image_id, []):
            if ann.get("iscrowd", 0):
                skipped += 1
                continue
            try:
                mask = decode_segmentation(ann["segmentation"], h, w)
            except Exception as exc:  # pycocotools raises bare Exception/TypeError on bad input
                raise InputError(path, f"annotation {ann.get('id')}: undecodable ({exc})") from exc
            if mask.shape != (h, w):
                raise InputError(
                    path, f"annotation {ann.get('id')}: mask size {mask.shape} ≠ {(h, w)}"
                )
            if mask.any():
                kept.append(ann)
            else:
                skipped += 1
        if skipped:
            log.info(
                "%s: %s: %d empty or crowd annotations skipped", path, img["file_name"], skipped
            )
        labels = annotations_to_labels(kept, h, w)
        meta = {"original_name": img["file_name"]}
        yield Sample(Path(img["file_name"]).stem, image, labels, meta)


def find_dh100_root(raw_dir: str | Path) -> Path:
    """The folder holding ``annotations/instances_train2019.json`` (the authors' DH100/)."""
    raw_dir = Path(raw_dir)
    hits = sorted(
        p.parent.parent
        for p in raw_dir.rglob("instances_train2019.json")
        if p.parent.name == "annotations"
    )
    if not hits:
        raise InputError(
            raw_dir,
            "no annotations/instances_train2019.json found; expected the authors' layout "
            "DH100/{train,val,test}2019/ with "
            "DH100/annotations/instances_{train,val,test}2019.json",
        )
    if len(hits) > 1:
        raise InputError(
            raw_dir, f"several DH100 copies: {[str(h) for h in hits]}; point data_root at one"
        )
    return hits[0]


def dh100_samples(raw_dir: str | Path, val: ValMode = "separate") -> dict[str, Iterator[Sample]]:
    """DH100's splits: train2019 → train, test2019 → test, val2019 (if any) per ``val``.

    ``separate`` keeps val2019 as its own ``val`` split so ``train`` stays the paper's 60 images;
    ``train`` appends it to the training split; ``drop`` ignores it.
    """
    if val not in ("separate", "train", "drop"):
        raise ValueError(f"val must be 'separate', 'train' or 'drop', not {val!r}")
    root = find_dh100_root(raw_dir)

    def part(split: str) -> Iterator[Sample]:
        for s in coco_to_samples(
            root / "annotations" / f"instances_{split}2019.json", root / f"{split}2019", grey=True
        ):
            s.meta["source_split"] = f"{split}2019"
            yield s

    has_val = (root / "annotations" / "instances_val2019.json").is_file()
    if not (root / "annotations" / "instances_test2019.json").is_file():
        raise InputError(root / "annotations", "instances_test2019.json missing")
    splits: dict[str, Iterator[Sample]] = {"train": part("train"), "test": part("test")}
    if has_val and val == "separate":
        splits["val"] = part("val")
    elif has_val and val == "train":
        train = splits["train"]

        def merged() -> Iterator[Sample]:
            yield from train
            yield from part("val")

        splits["train"] = merged()
    return splits
