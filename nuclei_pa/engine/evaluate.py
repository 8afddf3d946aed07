"""Score every checkpoint of a training run on a fully annotated test split: its learning curve.

The test split is read and decoded once (images, their intensity levels and ground-truth labels
kept in memory), and each checkpoint's predictions are scored in memory as they come: no label
image or COCO file is written and read back per checkpoint. Every checkpoint is predicted as the
paper's protocol does (:data:`PAPER_PROTOCOL`): the metrics are those of ``nuclei-pa predict
--dilate`` followed by ``nuclei-pa evaluate`` on the same images, exactly.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from nuclei_pa.engine.predict import inference_kwargs, load_model, predict_image, resolve_images
from nuclei_pa.errors import InputError
from nuclei_pa.eval.folders import (
    COLUMNS,
    LabelSource,
    checkpoint_csv,
    summarise,
    summary_path,
    write_csv,
)
from nuclei_pa.eval.matching import image_metrics
from nuclei_pa.io.atomic import atomic_dir
from nuclei_pa.io.images import read_image

#: How a run's learning curve is measured, as in the paper (Sec. IV): every checkpoint at score and
#: mask threshold 0.5, each nucleus then dilated by a 3×3 square. Figure 4, the findings and the
#: best-on-test column follow it; the tables report what validation chose instead
#: (:mod:`nuclei_pa.engine.choose`), dilation included, which the predictor leaves off by default.
PAPER_PROTOCOL: dict[str, Any] = {"score_threshold": 0.5, "mask_threshold": 0.5, "dilate": True}


@dataclass(frozen=True)
class TestSplit:
    """A test split's images and ground-truth labels, by name, decoded once."""

    __test__ = False  # not a pytest class, whatever its name

    names: tuple[str, ...]
    images: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]

    @classmethod
    def read(cls, test_dir: str | Path) -> TestSplit:
        """``test_dir/images`` and the label images of ``test_dir/labels``, every ground-truth
        image with its image (an image without ground truth is left out)."""
        test_dir = Path(test_dir)
        gt = LabelSource(test_dir)
        paths = {p.stem: p for p in resolve_images(test_dir / "images")}
        names = gt.names()
        missing = [n for n in names if n not in paths]
        if missing:
            raise InputError(
                test_dir / "images",
                f"no image for {len(missing)} ground-truth label image(s), e.g. {missing[0]!r}",
            )
        extra = len(paths) - len(names)
        if extra:
            print(f"note: {extra} test image(s) without ground truth left out", file=sys.stderr)
        images = tuple(read_image(paths[n]) for n in names)
        labels = tuple(gt.get(n, im.shape[:2]) for n, im in zip(names, images, strict=True))
        return cls(tuple(names), images, labels)

    def score(self, model: torch.nn.Module) -> pd.DataFrame:
        """Per-image metrics (:data:`~nuclei_pa.eval.folders.COLUMNS`) of ``model``'s
        predictions made as :data:`PAPER_PROTOCOL` says."""
        rows = []
        for name, image, truth in zip(self.names, self.images, self.labels, strict=True):
            pred, _ = predict_image(model, image, device=None, **PAPER_PROTOCOL)
            rows.append({"image": name, **image_metrics(truth, pred).as_dict()})
        return pd.DataFrame(rows, columns=COLUMNS)


def evaluate_checkpoints(
    checkpoints: Mapping[int, str | Path],
    test_dir: str | Path,
    out_dir: str | Path,
    device: str = "auto",
    progress: bool = True,
    *,
    test: TestSplit | None = None,
    inference: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Per-image metrics of each checkpoint, written to ``out_dir`` (:func:`checkpoint_csv`, and
    its ``.summary.csv``) all at once, and the learning curve (one row per iteration) returned.

    ``test``: the split already read (:meth:`TestSplit.read` of ``test_dir``), for a caller
    scoring several runs on one split. ``inference``: each checkpoint's inference settings
    overridden (:func:`~nuclei_pa.engine.predict.load_model`)."""
    test = TestSplit.read(test_dir) if test is None else test
    rows = []
    with atomic_dir(out_dir) as tmp_out:
        for iteration, path in tqdm(
            sorted(checkpoints.items()), desc="checkpoints", disable=not progress
        ):
            model = load_model(path, device, **inference_kwargs(inference))
            per_image = test.score(model)
            summary = summarise(per_image)
            csv = checkpoint_csv(tmp_out, iteration)
            write_csv(per_image, csv)
            write_csv(summary, summary_path(csv))
            rows.append({"iteration": int(iteration), **summary.iloc[0].to_dict()})
            del model
    return pd.DataFrame(rows)
