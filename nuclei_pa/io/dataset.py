"""The on-disk layout of one dataset split, shared by every stage of the project.

```
<split>/images/<name>.tif     the images (grey or RGB)
<split>/annotations.json      COCO instances, RLE masks, file_name = <name>.tif
<split>/labels/<name>.tif     the same instances as a label image (0 = background)
<split>/ignore/<name>.tif     optional: 1 where the annotator said "unknown" (issue 24)
<split>/regions/<name>.tif    optional: 1 where every nucleus is outlined (issue 24)
```

The two optional masks are how sparse labels as users write them (-1 in a label image, a QuPath
``Ignore*`` or ``Region*`` annotation, an ImageJ ROI group) travel through every stage: one
representation, whatever the input format. A split without them is as before: no pixel
ignored, and no region known to be complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_dir, write_json
from nuclei_pa.io.coco import coco_document, labels_to_annotations, load_coco
from nuclei_pa.io.images import read_image, read_labels, write_tiff

#: Sub-folders of a split holding the optional masks (see the module docstring).
IGNORE_DIR = "ignore"
REGIONS_DIR = "regions"


@dataclass
class Sample:
    """One image with its instance labels; ``meta`` travels into the COCO image entry.

    ``ignore`` (bool [H, W]) marks pixels that are neither nucleus nor background; where it
    meets a labelled nucleus, the nucleus wins. ``region`` (bool [H, W]) marks where every
    nucleus is outlined: negatives there are real, elsewhere the labels may be partial.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    ignore: np.ndarray | None = None
    region: np.ndarray | None = None

    @property
    def n_instances(self) -> int:
        ids = np.unique(self.labels)
        return int((ids > 0).sum())


def write_split(folder: str | Path, samples: Iterable[Sample], **info: Any) -> dict[str, int]:
    """Write samples as a split folder, atomically (the folder appears complete or not at all)."""
    folder = Path(folder)
    images, annotations = [], []
    with atomic_dir(folder) as tmp:
        for image_id, s in enumerate(samples, start=1):
            if s.labels.shape != s.image.shape[:2]:
                raise ValueError(f"{s.name}: labels {s.labels.shape} vs image {s.image.shape[:2]}")
            file_name = f"{s.name}.tif"
            write_tiff(tmp / "images" / file_name, s.image)
            write_tiff(
                tmp / "labels" / file_name,
                s.labels.astype(np.uint16 if s.labels.max() < 65536 else np.uint32),
            )
            for sub, mask in ((IGNORE_DIR, s.ignore), (REGIONS_DIR, s.region)):
                if mask is None:
                    continue
                if mask.shape != s.labels.shape:
                    raise ValueError(f"{s.name}: {sub} mask {mask.shape} vs {s.labels.shape}")
                write_tiff(tmp / sub / file_name, np.asarray(mask, dtype=bool).astype(np.uint8))
            h, w = s.labels.shape
            images.append(
                {"id": image_id, "file_name": file_name, "height": h, "width": w, **s.meta}
            )
            annotations += labels_to_annotations(s.labels, image_id, first_id=len(annotations) + 1)
        write_json(tmp / "annotations.json", coco_document(images, annotations, **info))
    return {"images": len(images), "instances": len(annotations)}


def read_split(folder: str | Path) -> Iterator[Sample]:
    """Iterate a split folder's samples in image-id order, validating each file."""
    folder = Path(folder)
    index = load_coco(folder / "annotations.json", images_dir=folder / "images")
    for image_id in sorted(index.images):
        img = index.images[image_id]
        image = read_image(folder / "images" / img["file_name"])
        if image.shape[:2] != (img["height"], img["width"]):
            raise InputError(
                folder / "images" / img["file_name"],
                f"image shape {image.shape[:2]} differs from annotations.json's "
                f"{(img['height'], img['width'])}",
            )
        label_path = folder / "labels" / img["file_name"]
        labels = (
            read_labels(label_path, image.shape) if label_path.exists() else index.labels(image_id)
        )
        meta = {k: v for k, v in img.items() if k not in ("id", "file_name", "height", "width")}
        ignore, region = (
            read_mask(folder / sub / img["file_name"], image.shape[:2])
            for sub in (IGNORE_DIR, REGIONS_DIR)
        )
        yield Sample(Path(img["file_name"]).stem, image, labels, meta, ignore, region)


def read_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray | None:
    """An optional ignore or region mask of the split layout (bool), None when absent."""
    path = Path(path)
    if not path.is_file():
        return None
    mask = read_labels(path, shape)
    if mask.size and mask.max() > 1:
        raise InputError(path, f"mask holds the value {int(mask.max())}; expected 0 and 1 only")
    return mask.astype(bool)
