"""The command line as a user runs it: outputs, exit codes, and no partial files on error."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nuclei_pa.cli import main
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.images import write_tiff

COLUMNS = ["image", "map", "aji", "aji_kumar", "ncs", "precision_50", "recall_50", "n_gt", "n_pred"]


def test_every_command_has_help(capsys):
    for cmd in ("synth", "derive", "classical", "evaluate"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: nuclei-pa " + cmd in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "nuclei_pa.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "evaluate" in out.stdout


def test_evaluate_perfect_prediction(tiny_split, tmp_path, capsys):
    out = tmp_path / "eval" / "per_image.csv"
    assert (
        main(["evaluate", str(tiny_split), str(tiny_split / "labels"), "-o", str(out), "--quiet"])
        == 0
    )
    df = pd.read_csv(out)
    assert list(df.columns) == COLUMNS
    assert len(df) == 3 and (df["n_gt"] == 16).all()
    for col in COLUMNS[1:7]:
        assert df[col].tolist() == [1.0, 1.0, 1.0], col
    summary = pd.read_csv(tmp_path / "eval" / "per_image.summary.csv")
    assert summary.loc[0, "map"] == 1.0 and summary.loc[0, "n_images"] == 3


def test_evaluate_half_missing_prediction(tiny_split, tmp_path):
    pred = tmp_path / "pred"
    for s in read_split(tiny_split):
        labels = np.where(s.labels <= 8, s.labels, 0)  # 8 of 16 nuclei found, exactly
        write_tiff(pred / f"{s.name}.tif", labels.astype(np.uint16))
    out = tmp_path / "per_image.csv"
    assert main(["evaluate", str(tiny_split), str(pred), "-o", str(out), "--quiet"]) == 0
    df = pd.read_csv(out)
    assert np.allclose(df["recall_50"], 0.5) and np.allclose(df["precision_50"], 1.0)
    assert np.allclose(df["map"], 0.5)  # TP=8, FN=8 at every threshold
    assert (df["n_pred"] == 8).all()


def test_evaluate_coco_gt_and_results_list(tiny_split, tmp_path):
    coco = json.loads((tiny_split / "annotations.json").read_text())
    results = [
        {k: a[k] for k in ("image_id", "category_id", "segmentation", "bbox")} | {"score": 0.9}
        for a in coco["annotations"]
        if a["image_id"] != 2
    ]
    (tmp_path / "results.json").write_text(json.dumps(results))
    out = tmp_path / "coco.csv"
    gt = tiny_split / "annotations.json"
    assert (
        main(["evaluate", str(gt), str(tmp_path / "results.json"), "-o", str(out), "--quiet"]) == 0
    )
    df = pd.read_csv(out).set_index("image")
    assert df.loc["img000", "map"] == 1.0 and df.loc["img001", "n_pred"] == 0
    assert df.loc["img001", "recall_50"] == 0.0


def test_evaluate_missing_prediction_fails_cleanly(tiny_split, tmp_path, capsys):
    pred = tmp_path / "pred"
    write_tiff(pred / "img000.tif", np.zeros((64, 64), np.uint16))
    out = tmp_path / "res" / "per_image.csv"
    assert main(["evaluate", str(tiny_split), str(pred), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no prediction for 2 ground-truth image(s)" in err and str(pred) in err
    assert not out.exists() and not (tmp_path / "res").exists()


def test_evaluate_truncated_prediction_fails_cleanly(tiny_split, tmp_path, capsys):
    pred = tmp_path / "pred"
    for s in read_split(tiny_split):
        write_tiff(pred / f"{s.name}.tif", s.labels.astype(np.uint16), compress=False)
    bad = pred / "img002.tif"
    bad.write_bytes(bad.read_bytes()[:200])
    out = tmp_path / "per_image.csv"
    assert main(["evaluate", str(tiny_split), str(pred), "-o", str(out), "--quiet"]) == 2
    assert "img002.tif" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_shape_mismatch(tiny_split, tmp_path, capsys):
    pred = tmp_path / "pred"
    for s in read_split(tiny_split):
        write_tiff(pred / f"{s.name}.tif", np.zeros((60, 64), np.uint16))
    assert main(["evaluate", str(tiny_split), str(pred), "-o", str(tmp_path / "x.csv")]) == 2
    assert "differs from its image's (64, 64)" in capsys.readouterr().err


def test_derive_cli(tiny_split, tmp_path, capsys):
    out = tmp_path / "dh25"
    assert main(["derive", "remove", str(tiny_split), "-o", str(out), "--fraction", "0.25"]) == 0
    assert "3 images, 48 → 12 instances (25.0 % kept)" in capsys.readouterr().out
    assert [s.n_instances for s in read_split(out)] == [4, 4, 4]
    assert main(["derive", "crop", str(tiny_split), "-o", str(tmp_path / "crop")]) == 0
    assert all(s.image.shape == (32, 32) for s in read_split(tmp_path / "crop"))
    assert (
        main(
            ["derive", "remove", str(tiny_split), "-o", str(tmp_path / "bad"), "--fraction", "1.5"]
        )
        == 2
    )
    assert not (tmp_path / "bad").exists()
    # keeping none of the annotations is rejected like keeping 150 % of them
    args = ["derive", "remove", str(tiny_split), "-o", str(tmp_path / "none"), "--fraction", "0"]
    assert main(args) == 2
    assert "--fraction must be in (0, 1], got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_train_out_must_be_a_folder(tiny_split, tmp_path, capsys):
    out = tmp_path / "model.pt"
    out.write_bytes(b"not a folder")
    assert main(["train", str(tiny_split), "-o", str(out), "--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.pt: exists and is not a folder" in err
    assert out.read_bytes() == b"not a folder"


def test_derive_missing_source(tmp_path, capsys):
    assert main(["derive", "remove", str(tmp_path / "none"), "-o", str(tmp_path / "out")]) == 2
    assert "annotations.json: file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_classical_cli(tiny_split, tmp_path):
    out = tmp_path / "classical"
    assert main(["classical", str(tiny_split), "-o", str(out)]) == 0
    csv = tmp_path / "c.csv"
    assert main(["evaluate", str(tiny_split), str(out), "-o", str(csv), "--quiet"]) == 0
    df = pd.read_csv(csv)
    assert (df["recall_50"] == 1.0).all()  # well-separated bright disks are easy


def test_nan_float_image_in_a_training_set_is_refused(tiny_split, tmp_path, capsys):
    from nuclei_pa.io.images import read_image, write_tiff

    image = tiny_split / "images" / "img001.tif"
    pixels = read_image(image).astype(np.float32) / 255
    pixels[3, 4] = np.nan
    pixels[5, 6] = np.inf
    image.unlink()
    write_tiff(image, pixels)
    out = tmp_path / "run"
    assert main(["train", str(tiny_split), "-o", str(out), "--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "img001.tif: float image with 2 NaN or infinite pixel(s)" in err
    assert not out.exists() or not any(out.iterdir())  # nothing trained, nothing written
