"""The command line chain a user runs: synth → derive → train → predict → evaluate."""

from __future__ import annotations

import json

import pandas as pd
import tifffile

from nuclei_pa.cli import main
from tests.test_model_pa import TINY


def test_cli_chain(tmp_path, capsys):
    data, ds25, run, pred = tmp_path / "dh", tmp_path / "dh25", tmp_path / "run", tmp_path / "pred"
    assert (
        main(
            [
                "synth",
                "-o",
                str(data),
                "--n-train",
                "4",
                "--n-test",
                "2",
                "--size",
                "96",
                "--nuclei-per-image",
                "12",
            ]
        )
        == 0
    )
    assert main(["derive", "remove", str(data / "train"), "-o", str(ds25)]) == 0
    (tmp_path / "tiny.yaml").write_text("model: " + str(dict(TINY)).replace("'", "") + "\n")
    assert (
        main(
            [
                "train",
                str(ds25),
                "-o",
                str(run),
                "--variant",
                "pa",
                "--iterations",
                "2",
                "--batch-size",
                "2",
                "--checkpoint-every",
                "2",
                "--threads",
                "1",
                "--quiet",
                "--config",
                str(tmp_path / "tiny.yaml"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(run / "ckpt_000002.pt"),
                str(data / "test"),
                "-o",
                str(pred),
                "--score-threshold",
                "0.0",
                "--quiet",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (pred / "labels").iterdir()) == ["img000.tif", "img001.tif"]
    assert tifffile.imread(pred / "labels" / "img000.tif").shape == (96, 96)
    coco = json.loads((pred / "predictions.json").read_text())
    assert {img["file_name"] for img in coco["images"]} == {"img000.tif", "img001.tif"}
    out = tmp_path / "eval.csv"
    assert main(["evaluate", str(data / "test"), str(pred), "-o", str(out), "--quiet"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 2 and df["n_gt"].gt(0).all()
    assert (
        main(
            [
                "evaluate",
                str(data / "test" / "annotations.json"),
                str(pred / "predictions.json"),
                "-o",
                str(tmp_path / "coco.csv"),
                "--quiet",
            ]
        )
        == 0
    )
    assert pd.read_csv(tmp_path / "coco.csv")["n_pred"].tolist() == df["n_pred"].tolist()
