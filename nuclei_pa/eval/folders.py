"""Evaluate a set of predictions against ground truth, image by image.

Ground truth and predictions are label-image folders matched by file stem (a split folder is
accepted for its ``labels/``), or COCO files (a prediction results list is resolved through the
ground-truth COCO file's image ids).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from nuclei_pa.errors import InputError
from nuclei_pa.eval.matching import image_metrics
from nuclei_pa.io.atomic import atomic_path
from nuclei_pa.io.coco import annotations_to_labels, decode_segmentation, load_coco
from nuclei_pa.io.images import list_images, read_labels

METRIC_COLUMNS = ["map", "aji", "aji_kumar", "ncs", "precision_50", "recall_50"]
COLUMNS = ["image", *METRIC_COLUMNS, "n_gt", "n_pred"]


class LabelSource:
    """Lazy access to label images by name, whatever the on-disk form."""

    def __init__(self, path: str | Path, reference: LabelSource | None = None) -> None:
        self.path = Path(path)
        self._files: dict[str, Path] = {}
        self._coco = None
        self._results: dict[int, list] | None = None
        self._ref = reference
        if self.path.is_dir():
            folder = self.path / "labels" if (self.path / "labels").is_dir() else self.path
            self._files = {p.stem: p for p in list_images(folder)}
            if not self._files:
                raise InputError(folder, "no label images (.tif/.png) found")
        elif self.path.is_file() and self.path.suffix.lower() == ".json":
            try:
                raw = json.loads(self.path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(self.path, f"not valid JSON ({exc})") from exc
            if isinstance(raw, list):
                if reference is None or reference._coco is None:
                    raise InputError(
                        self.path, "a COCO results list needs ground truth given as a COCO file"
                    )
                self._results = {}
                for det in raw:
                    if det.get("image_id") not in reference._coco.images:
                        raise InputError(
                            self.path, f"result for unknown image id {det.get('image_id')}"
                        )
                    self._results.setdefault(det["image_id"], []).append(det)
            else:
                self._coco = load_coco(self.path)
        elif not self.path.exists():
            raise InputError(self.path, "not found")
        else:
            raise InputError(self.path, "expected a folder of label images or a COCO .json file")

    def names(self) -> list[str]:
        if self._files:
            return sorted(self._files)
        coco = self._coco if self._coco is not None else self._ref._coco  # type: ignore[union-attr]
        return sorted(Path(img["file_name"]).stem for img in coco.images.values())

    def get(self, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        if self._files:
            if name not in self._files:
                raise InputError(self.path, f"no label image for {name!r}")
            return read_labels(self._files[name], shape)
        coco = self._coco if self._coco is not None else self._ref._coco  # type: ignore[union-attr]
        by_stem = {Path(img["file_name"]).stem: img for img in coco.images.values()}
        if name not in by_stem:
            raise InputError(self.path, f"no image named {name!r}")
        img = by_stem[name]
        h, w = img["height"], img["width"]
        if shape is not None and (h, w) != tuple(shape):
            raise InputError(
                self.path, f"{name}: size {(h, w)} differs from ground truth {tuple(shape)}"
            )
        if self._results is not None:
            anns = self._results.get(img["id"], [])
        else:
            anns = coco.anns_by_image.get(img["id"], [])
        for ann in anns:
            decode_segmentation(ann["segmentation"], h, w)  # validates size early
        return annotations_to_labels(anns, h, w)


def iter_pairs(gt: str | Path, pred: str | Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (name, gt_labels, pred_labels) for every ground-truth image, one pair in memory."""
    gt_src = LabelSource(gt)
    pred_src = LabelSource(pred, reference=gt_src)
    gt_names = gt_src.names()
    pred_names = set(pred_src.names())
    missing = [n for n in gt_names if n not in pred_names]
    if missing:
        raise InputError(
            Path(pred),
            f"no prediction for {len(missing)} ground-truth image(s), e.g. {missing[0]!r}",
        )
    extra = pred_names - set(gt_names)
    if extra:
        print(f"note: {len(extra)} prediction(s) without ground truth ignored", file=sys.stderr)
    for name in gt_names:
        g = gt_src.get(name)
        yield name, g, pred_src.get(name, g.shape)


def evaluate(gt: str | Path, pred: str | Path, progress: bool = False) -> pd.DataFrame:
    """Per-image metrics table with the columns of :data:`COLUMNS`."""
    rows = []
    pairs = iter_pairs(gt, pred)
    if progress:
        from tqdm import tqdm

        pairs = tqdm(pairs, desc="evaluate", unit="img", file=sys.stderr)
    for name, g, p in pairs:
        rows.append({"image": name, **image_metrics(g, p).as_dict()})
    return pd.DataFrame(rows, columns=COLUMNS)


def summarise(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric over images (the paper's per-dataset numbers), with counts summed."""
    row = {c: per_image[c].mean() for c in METRIC_COLUMNS}
    row.update(
        n_images=len(per_image),
        n_gt=int(per_image["n_gt"].sum()),
        n_pred=int(per_image["n_pred"].sum()),
    )
    return pd.DataFrame([row])


def checkpoint_csv(folder: str | Path, iteration: int) -> Path:
    """Where a run's evaluation folder keeps checkpoint ``iteration``'s per-image metrics."""
    return Path(folder) / f"iter_{int(iteration):06d}.csv"


def read_checkpoint_csvs(folder: str | Path) -> pd.DataFrame:
    """Every checkpoint's per-image metrics of one run's evaluation folder, as one table with an
    ``iteration`` column (rows by iteration, then image)."""
    frames = []
    for path in sorted(Path(folder).glob("iter_*.csv")):
        if path.name.endswith(".summary.csv"):
            continue
        frame = pd.read_csv(path)
        frame.insert(0, "iteration", int(path.stem.removeprefix("iter_")))
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"{folder}: no per-checkpoint evaluations (iter_*.csv)")
    return pd.concat(frames, ignore_index=True)


def summary_path(per_image_csv: str | Path) -> Path:
    p = Path(per_image_csv)
    return p.with_name(f"{p.stem}.summary.csv")


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
