"""The on-disk layout of one dataset split, shared by every stage of the project.

```
<split>/images/<name>.tif     the images (grey or RGB)
<split>/annotations.json      COCO instances, RLE masks, file_name = <name>.tif
<split>/labels/<name>.tif     the same instances as a label image (0 = background)
```
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


@dataclass
class Sample:
    """One image with its instance labels; ``meta`` travels into the COCO image entry."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

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
        yield Sample(Path(img["file_name"]).stem, image, labels, meta)
