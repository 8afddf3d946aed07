"""COCO instance annotations: validated loading, RLE encoding, label image ⇄ annotation conversion.

COCO is the exchange format of the project (datasets, predictions); label TIFFs are what the
metrics consume. Both directions live here so every module converts the same way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import Annotation, parse_score, parse_source
from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.jsonfile import read_json

NUCLEUS_CATEGORY = {"id": 1, "name": "nucleus", "supercategory": "cell"}


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Binary (H, W) mask → compressed RLE with a JSON-serialisable ``counts`` string."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """RLE (compressed or not) or polygon list → boolean (H, W) mask."""
    if isinstance(seg, list):
        rles = mask_utils.frPyObjects(seg, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = dict(seg)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(bool)


def encode_box_mask(mask: np.ndarray, y0: int, x0: int, height: int, width: int) -> dict[str, Any]:
    """Compressed COCO RLE of a box-cropped mask placed at (y0, x0) in a height×width image.

    Equal to pycocotools' encoding of the full-image mask, computed from the box alone (the
    image-sized mask is never built).
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    padded = np.zeros((w, h + 2), dtype=np.int8)  # column-major order, one zero above and below
    padded[:, 1:-1] = mask.T
    step = np.diff(padded, axis=1)
    start_col, start_row = np.nonzero(step == 1)
    end_col, end_row = np.nonzero(step == -1)
    starts = (x0 + start_col).astype(np.int64) * height + y0 + start_row
    ends = (x0 + end_col).astype(np.int64) * height + y0 + end_row
    if starts.size > 1:  # a run down to the image's last row continues at the next column's top
        keep = ends[:-1] != starts[1:]
        starts = np.concatenate([starts[:1], starts[1:][keep]])
        ends = np.concatenate([ends[:-1][keep], ends[-1:]])
    bounds = np.empty(2 * starts.size + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, height * width
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    counts = np.diff(bounds)
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]
    rle = mask_utils.frPyObjects(
        {"size": [height, width], "counts": [int(c) for c in counts]}, height, width
    )
    return {"size": [int(height), int(width)], "counts": rle["counts"].decode("ascii")}


def labels_to_annotations(
    labels: np.ndarray, image_id: int, first_id: int = 1, scores: dict[int, float] | None = None
) -> list[dict[str, Any]]:
    """One COCO annotation (RLE) per positive label, in ascending label order (deterministic ids).

    Time and memory grow with the instances' boxes, not with image area times their number.
    """
    from scipy import ndimage

    height, width = labels.shape
    anns = []
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        local = labels[sl] == lab
        y0, x0 = sl[0].start, sl[1].start
        ann = {
            "id": first_id + len(anns),
            "image_id": image_id,
            "category_id": 1,
            "segmentation": encode_box_mask(local, y0, x0, height, width),
            "area": int(np.count_nonzero(local)),
            "bbox": [int(x0), int(y0), int(sl[1].stop - x0), int(sl[0].stop - y0)],
            "iscrowd": 0,
        }
        if scores is not None:
            ann["score"] = float(scores[lab])
        anns.append(ann)
    return anns


def annotations_to_labels(anns: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Paint annotations into a label image (label k+1 for the k-th annotation).

    Overlaps are resolved the way predictions are pasted: higher ``score`` wins; without scores
    the smaller instance wins, so a small nucleus is never swallowed by a large neighbour.
    """
    labels = np.zeros((height, width), dtype=np.int32)
    if not anns:
        return labels
    masks = [decode_segmentation(a["segmentation"], height, width) for a in anns]
    if all("score" in a for a in anns):
        order = sorted(range(len(anns)), key=lambda i: anns[i]["score"])
    else:
        order = sorted(range(len(anns)), key=lambda i: -int(masks[i].sum()))
    for i in order:  # later paints win
        labels[masks[i]] = i + 1
    return labels


@dataclass
class CocoIndex:
    """A validated COCO file: images by id and their annotations."""

    path: Path
    data: dict[str, Any]
    images: dict[int, dict[str, Any]] = field(default_factory=dict)
    anns_by_image: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def image_by_name(self) -> dict[str, dict[str, Any]]:
        return {img["file_name"]: img for img in self.images.values()}

    def labels(self, image_id: int) -> np.ndarray:
        img = self.images[image_id]
        return annotations_to_labels(
            self.anns_by_image.get(image_id, []), img["height"], img["width"]
        )


def _check_polygon(path: Path, ann_id: Any, seg: list, height: int, width: int) -> None:
    for poly in seg:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            raise InputError(path, f"annotation {ann_id}: polygon needs ≥ 3 (x, y) points")
        xy = np.asarray(poly, dtype=float).reshape(-1, 2)
        if (
            xy[:, 0].min() < 0
            or xy[:, 1].min() < 0
            or xy[:, 0].max() > width
            or xy[:, 1].max() > height
        ):
            raise InputError(
                path, f"annotation {ann_id}: polygon out of bounds of its {width}×{height} image"
            )
        x, y = xy[:, 0], xy[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        if area <= 0:
            raise InputError(path, f"annotation {ann_id}: polygon has zero area")


def load_coco(path: str | Path, images_dir: str | Path | None = None) -> CocoIndex:
    """Load and validate a COCO instances file.

    Checks: parseable JSON with ``images``/``annotations``; unique image and annotation ids;
    annotations pointing at known images; polygons inside their image with non-zero area; and,
    when ``images_dir`` is given, that every listed image file exists.
    """
    path = Path(path)
    data = read_json(path)
    if isinstance(data, list):  # a bare results list: wrap it, images unknown
        raise InputError(
            path, "a COCO results list needs its dataset file; pass the full COCO file"
        )
    if not isinstance(data, dict) or "images" not in data:
        raise InputError(path, "not a COCO instances file (no 'images' list)")
    index = CocoIndex(path=path, data=data)
    for img in data["images"]:
        for key in ("id", "file_name", "height", "width"):
            if key not in img:
                raise InputError(path, f"image entry {img.get('id', '?')} lacks '{key}'")
        if img["id"] in index.images:
            raise InputError(path, f"duplicate image id {img['id']}")
        index.images[img["id"]] = img
    names = [img["file_name"] for img in data["images"]]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise InputError(path, f"duplicate image file_name {dup!r}")
    seen: set[Any] = set()
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in data.get("annotations", []):
        ann_id = ann.get("id")
        if ann_id is None:
            raise InputError(path, "an annotation lacks 'id'")
        if ann_id in seen:
            raise InputError(path, f"duplicate annotation id {ann_id}")
        seen.add(ann_id)
        img = index.images.get(ann.get("image_id"))
        if img is None:
            raise InputError(
                path, f"annotation {ann_id} refers to missing image id {ann.get('image_id')}"
            )
        seg = ann.get("segmentation")
        if seg is None:
            raise InputError(path, f"annotation {ann_id} has no segmentation")
        if isinstance(seg, list):
            _check_polygon(path, ann_id, seg, img["height"], img["width"])
        elif isinstance(seg, dict):
            if list(seg.get("size", [])) != [img["height"], img["width"]]:
                raise InputError(
                    path,
                    f"annotation {ann_id}: RLE size {seg.get('size')} differs from its image's "
                    f"{[img['height'], img['width']]}",
                )
        else:
            raise InputError(path, f"annotation {ann_id}: unsupported segmentation type")
        by_image[img["id"]].append(ann)
    index.anns_by_image = dict(by_image)
    if images_dir is not None:
        images_dir = Path(images_dir)
        for img in data["images"]:
            if not (images_dir / img["file_name"]).is_file():
                raise InputError(path, f"image {img['file_name']!r} not found in {images_dir}")
    return index


def coco_document(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], **info: Any
) -> dict:
    """A complete COCO instances document with the single nucleus category."""
    return {
        "info": {"description": "nuclei-pa dataset", **info},
        "images": images,
        "annotations": annotations,
        "categories": [NUCLEUS_CATEGORY],
    }


def read_coco_annotation(path: Path, shape: tuple[int, int], image_name: str | None) -> Annotation:
    index = load_coco(path)
    images = list(index.images.values())
    if image_name is not None:
        stem = Path(image_name).stem
        matches = [img for img in images if Path(img["file_name"]).stem == stem]
        if not matches:
            raise InputError(path, f"no image named {stem!r} (by file name stem)")
        if len(matches) > 1:
            raise InputError(path, f"several images have the file name stem {stem!r}")
        img = matches[0]
    elif len(images) == 1:
        img = images[0]
    else:
        raise InputError(path, f"{len(images)} images listed; say which one (image_name)")
    if (img["height"], img["width"]) != shape:
        raise InputError(
            path,
            f"image {img['file_name']!r} is {img['height']}×{img['width']} (H×W) here but the "
            f"image is {shape[0]}×{shape[1]}",
        )
    anns = index.anns_by_image.get(img["id"], [])
    ann = Annotation(index.labels(img["id"]))
    visible = set(ann.ids)
    for k, a in enumerate(anns):  # annotations_to_labels paints the k-th as label k + 1
        if k + 1 not in visible:
            continue
        score = parse_score(path, f"annotation {a.get('id')}", a.get("score"))
        if score is not None:
            ann.scores[k + 1] = score
        src = parse_source(a.get("source"), "")
        if src is not None:
            ann.source[k + 1] = src
    return ann


def write_coco(path: str | Path, ann: Annotation, image_name: str | None = None) -> None:
    """COCO instances JSON of one image, masks as exact RLE, with ``score``/``source`` per
    instance (extra keys other COCO tools ignore). ``image_name`` defaults to ``<stem>.tif``."""
    path = Path(path)
    h, w = ann.labels.shape
    image = {"id": 1, "file_name": image_name or f"{path.stem}.tif", "height": h, "width": w}
    anns = labels_to_annotations(ann.labels, image_id=1)
    for a, lab in zip(anns, ann.ids, strict=True):
        a["source"] = ann.source_of(lab)
        if lab in ann.scores:
            a["score"] = float(ann.scores[lab])
    write_json(path, coco_document([image], anns, source="nuclei-pa annotate"))
