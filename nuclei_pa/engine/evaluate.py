"""Score every checkpoint of a training run on a fully annotated test split: its learning curve.

One process loads the test split once and each checkpoint in turn, which on a CPU is most of
the cost saved compared with one process per checkpoint (interpreter, torch, and model start).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from nuclei_pa.engine.predict import load_model, predict_folder
from nuclei_pa.eval.folders import checkpoint_csv, evaluate, summarise, summary_path, write_csv
from nuclei_pa.io.atomic import atomic_dir


def evaluate_checkpoints(
    checkpoints: Mapping[int, str | Path],
    test_dir: str | Path,
    out_dir: str | Path,
    device: str = "auto",
    progress: bool = True,
) -> pd.DataFrame:
    """Per-image metrics of each checkpoint, written to ``out_dir`` (:func:`checkpoint_csv`, and
    its ``.summary.csv``) all at once, and the learning curve (one row per iteration) returned."""
    test_dir = Path(test_dir)
    rows = []
    with atomic_dir(out_dir) as tmp_out:
        for iteration, path in tqdm(
            sorted(checkpoints.items()), desc="checkpoints", disable=not progress
        ):
            model = load_model(path, device)
            with tempfile.TemporaryDirectory() as pred:
                predict_folder(model, test_dir / "images", pred, device=device, progress=False)
                per_image = evaluate(test_dir, Path(pred) / "labels")
            summary = summarise(per_image)
            csv = checkpoint_csv(tmp_out, iteration)
            write_csv(per_image, csv)
            write_csv(summary, summary_path(csv))
            rows.append({"iteration": int(iteration), **summary.iloc[0].to_dict()})
            del model
    return pd.DataFrame(rows)
