"""Annotation rounds end to end: real (tiny) training, a predictor whose detections are known.

Training is real, so warm starts and checkpoints are exercised; prediction is replaced by one
that finds every bright disk (1 px larger than the truth) plus one false nucleus in the top-left
corner, so every count in the report can be worked out by hand:

- img0: 16 disks, 4 annotated (25 %); img1: 9 disks, 2 annotated.
- Round 1 proposes the 12 + 7 unannotated disks and the two corner blobs: 21 new proposals.
- The annotator deletes both corner blobs (GeoJSON for img0, the ROI set for img1) and outlines
  one more region of img1 by hand. Round 2 then starts from 16 + 10 = 26 annotated nuclei
  (19 accepted, 1 outlined, 2 rejected); the disks are all annotated and the corner blobs are
  repeats of rejected proposals, so it shows no new proposal and the session is done.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from roifile import ImagejRoi
from scipy import ndimage

from nuclei_pa.annotate.layout import read_exact
from nuclei_pa.annotate.review import matches
from nuclei_pa.annotate.session import (
    ProposalSettings,
    describe_defaults,
    round_defaults,
    run_round,
)
from nuclei_pa.cli import main
from nuclei_pa.data.derive import remove_instances
from nuclei_pa.engine import TrainConfig
from nuclei_pa.engine import predict as engine_predict
from nuclei_pa.io.dataset import write_split
from nuclei_pa.io.formats import read_annotation
from nuclei_pa.io.images import read_labels, write_tiff
from nuclei_pa.model import ModelConfig
from tests.conftest import TINY, grid_sample

TRAIN = ["--iterations", "4", "--batch-size", "2", "--workers", "0", "--threads", "1"]
CORNER = (slice(0, 3), slice(0, 5))  # background in both images: the false nucleus
MANUAL = (slice(0, 3), slice(20, 27))  # background in img1: the region outlined in round 2


def fake_predict(model, image, **kwargs):
    """Every bright disk, dilated by one pixel (score 0.9), and the corner blob (score 0.6)."""
    truth, n = ndimage.label(image > 100)
    labels = ndimage.grey_dilation(truth, size=3).astype(np.int32)
    labels[CORNER] = n + 1
    scores = {k: 0.9 for k in range(1, n + 1)} | {n + 1: 0.6}
    return labels, scores


def instance_masks(labels: np.ndarray) -> set[bytes]:
    """Each instance as its packed pixel set: equal sets ⇔ identical instances."""
    return {np.packbits(labels == i).tobytes() for i in np.unique(labels[labels > 0])}


def proposal_id_at(folder: Path, stem: str, where: tuple[slice, slice]) -> int:
    labels = read_labels(folder / "labels" / f"{stem}.tif")
    return int(labels[where].max())


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Round 1 from COCO (library call), corrections in GeoJSON and ROI sets, round 2 (CLI)."""
    root = tmp_path_factory.mktemp("annotate")
    full = [grid_sample("img0"), grid_sample("img1", n_side=3, radius=6)]
    write_split(root / "partial", [remove_instances(s, 0.25, seed=0) for s in full])
    images, out = root / "partial" / "images", root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_predict, "predict_image", fake_predict)
        first = run_round(
            images,
            out,
            annotations=root / "partial" / "annotations.json",
            model_cfg=ModelConfig.preset("slim", variant="pa", **TINY),
            train_cfg=TrainConfig(iterations=4, batch_size=2, num_workers=0, threads=1),
            settings=ProposalSettings(min_new=1),
            progress=False,
        )
        r1 = out / "round_01"
        shutil.copytree(r1, root / "round_01.as_written")
        # img0 in QuPath: delete the corner blob.
        geo = r1 / "geojson" / "img0.geojson"
        doc = json.loads(geo.read_text())
        fp = f"proposed-{proposal_id_at(r1, 'img0', CORNER):04d}"
        doc["features"] = [f for f in doc["features"] if f["properties"]["name"] != fp]
        geo.write_text(json.dumps(doc))
        # img1 in Fiji: delete the corner blob, outline a new region by hand.
        rois = r1 / "rois" / "img1.zip"
        fp = f"proposed-{proposal_id_at(r1, 'img1', CORNER):04d}.roi"
        with zipfile.ZipFile(rois) as zf:
            kept = {n: zf.read(n) for n in zf.namelist() if n != fp}
        drawn = ImagejRoi.frompoints([[20, 0], [27, 0], [27, 3], [20, 3]], name="my-outline")
        kept["my-outline.roi"] = drawn.tobytes()
        with zipfile.ZipFile(rois, "w") as zf:
            for name, data in kept.items():
                zf.writestr(name, data)
        code = main(["annotate", str(images), "-o", str(out), "--quiet", *TRAIN])
    return {"root": root, "images": images, "out": out, "first": first, "code": code}


def test_round_one_counts_are_the_hand_computed_ones(session):
    c = session["first"].counts
    assert (c["round"], c["images"], c["human"], c["outlined"]) == (1, 2, 6, 6)
    assert (c["accepted"], c["rejected"], c["suppressed"]) == (0, 0, 0)
    assert c["proposed"] == c["new"] == 12 + 1 + 7 + 1
    assert c["score_min"] == 0.6 and c["score_max"] == 0.9 and c["status"] == "continue"
    assert not session["first"].done


def test_every_format_reads_back_to_the_same_instances(session):
    folder = session["root"] / "round_01.as_written"
    exact = read_exact(folder / "state" / "output.json", {"img0": (64, 64), "img1": (64, 64)})
    coco = json.loads((folder / "coco.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["img0.tif", "img1.tif"]
    assert len(coco["annotations"]) == 6 + 21
    for stem, ann in exact.items():
        want = {lab: (ann.source_of(lab), ann.scores.get(lab)) for lab in ann.ids}
        for path in (folder / "labels" / f"{stem}.tif", folder / "coco.json"):
            back = read_annotation(path, (64, 64), image_name=f"{stem}.tif")
            assert instance_masks(back.labels) == instance_masks(ann.labels), path
        back = read_annotation(folder / "coco.json", (64, 64), image_name=f"{stem}.tif")
        pairs = dict(matches(back.labels, ann.labels, iou=0.99))
        assert len(pairs) == len(ann.ids)
        assert {pairs[b]: (back.source_of(b), back.scores.get(b)) for b in pairs} == want
        for path in (folder / "rois" / f"{stem}.zip", folder / "geojson" / f"{stem}.geojson"):
            back = read_annotation(path, (64, 64))
            # splines approximate the pixel outline: same instances, same tags, close shapes
            pairs = dict(matches(back.labels, ann.labels, iou=0.8))
            assert len(pairs) == len(back.ids) == len(ann.ids), path
            assert {pairs[b]: (back.source_of(b), back.scores.get(b)) for b in pairs} == want
        assert (folder / "overlays" / f"{stem}.png").is_file()


def test_human_annotations_are_kept_exactly_and_win(session):
    """The predictor's masks of annotated disks are 1 px larger; the human ones stay as drawn."""
    partial = session["root"] / "partial" / "labels"
    exact = read_exact(
        session["root"] / "round_01.as_written" / "state" / "output.json",
        {"img0": (64, 64), "img1": (64, 64)},
    )
    for stem, ann in exact.items():
        human = np.where(
            np.isin(ann.labels, [i for i in ann.ids if ann.source_of(i) == "human"]),
            ann.labels,
            0,
        )
        assert instance_masks(human) == instance_masks(read_labels(partial / f"{stem}.tif"))
        proposed = (ann.labels > 0) & (human == 0)
        assert not (proposed & (human > 0)).any()


def test_round_two_reads_other_formats_warm_starts_and_stops(session):
    assert session["code"] == 0
    out = session["out"]
    r2 = json.loads((out / "round_02" / "round.json").read_text())
    c = r2["counts"]
    assert (c["human"], c["accepted"], c["outlined"], c["rejected"]) == (26, 19, 1, 2)
    assert (c["proposed"], c["suppressed"], c["new"], c["status"]) == (2, 2, 0, "done")
    assert r2["annotations"]["img0"].endswith("geojson/img0.geojson (edited)")
    assert r2["annotations"]["img1"].endswith("rois/img1.zip (edited)")
    # warm start: round 2 was initialised from round 1's final checkpoint
    state = torch.load(out / "round_02" / "model" / "last.pt", weights_only=True)
    init = Path(state["trained_model_config"]["init"])
    assert init == (out / "round_01" / "model" / "ckpt_000004.pt").resolve()
    assert state["trained_model_config"]["fpn_channels"] == TINY["fpn_channels"]
    # untouched spline instances came back exactly: all but the deleted corner blobs
    shapes = {"img0": (64, 64), "img1": (64, 64)}
    first = read_exact(session["root"] / "round_01.as_written" / "state" / "output.json", shapes)
    second = read_exact(out / "round_02" / "state" / "output.json", shapes)
    for stem in shapes:
        before = first[stem].labels
        kept = np.where(before == before[CORNER].max(), 0, before)
        assert instance_masks(kept) <= instance_masks(second[stem].labels), stem
        assert all(s == "human" for s in second[stem].source.values())
    manual = np.zeros((64, 64), bool)
    manual[MANUAL] = True
    assert np.packbits(manual).tobytes() in instance_masks(second["img1"].labels)
    # the report has one row per round, and the session says it is done
    report = pd.read_csv(out / "rounds.csv")
    assert report["round"].tolist() == [1, 2]
    assert report["new"].tolist() == [21, 0]
    assert report["status"].tolist() == ["continue", "done"]
    assert (out / "rounds.png").stat().st_size > 0
    assert "fewer than min_new 1" in (out / "DONE").read_text()


def test_a_done_session_runs_no_further_round(session, capsys):
    out = session["out"]
    assert main(["annotate", str(session["images"]), "-o", str(out), "--quiet"]) == 0
    assert "annotation is complete" in capsys.readouterr().out
    assert not (out / "round_03").exists()


def test_min_new_stops_the_first_round(session, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(engine_predict, "predict_image", fake_predict)
    (tmp_path / "tiny.yaml").write_text(
        "model:\n" + "".join(f"  {k}: {v}\n" for k, v in TINY.items())
    )
    root = session["root"]
    args = ["annotate", str(session["images"]), "-o", str(tmp_path / "out")]
    args += ["--annotations", str(root / "partial" / "labels"), "--min-new", "22"]
    args += ["--config", str(tmp_path / "tiny.yaml"), *TRAIN]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "21 new proposals, fewer than min_new 22" in printed
    # --iterations and --batch-size were given: only the patch size is the machine's default
    crop = round_defaults("auto")["crop_size"]
    assert describe_defaults("auto", {"crop_size": crop}) + "\n" in printed
    assert (tmp_path / "out" / "DONE").is_file()
    assert pd.read_csv(tmp_path / "out" / "rounds.csv")["status"].tolist() == ["done"]


def test_bad_input_exits_2_naming_the_file_and_writes_nothing(session, tmp_path, capsys):
    images = str(session["images"])
    out = tmp_path / "out"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["annotate", images, "--annotations", str(broken), "-o", str(out)]) == 2
    assert f"{broken}: not valid JSON" in capsys.readouterr().err
    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copy(session["root"] / "partial" / "labels" / "img0.tif", folder)
    assert main(["annotate", images, "--annotations", str(folder), "-o", str(out)]) == 2
    assert f"{folder / 'img1.*'}: no annotations for img1.tif" in capsys.readouterr().err
    assert main(["annotate", images, "-o", str(out)]) == 2
    assert "round 1 needs the partial annotations" in capsys.readouterr().err
    assert not out.exists()


def test_two_edited_formats_of_one_image_are_refused(session, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(session["out"] / "round_01", out / "round_01")
    labels = read_labels(out / "round_01" / "labels" / "img1.tif")
    labels[labels == labels.max()] = 0
    write_tiff(out / "round_01" / "labels" / "img1.tif", labels)  # the ROI set is edited too
    args = ["annotate", str(session["images"]), "-o", str(out), "--quiet", *TRAIN]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{out / 'round_01' / 'labels' / 'img1.tif'}: edited as well as rois/img1.zip" in err
    assert not (out / "round_02").exists() and not (out / ".round_02.work").exists()
    # redoing round 1 would overwrite the corrections: refused too
    assert main([*args, "--round", "1", "--annotations", str(out / "round_01")]) == 2
    assert "holds your corrections" in capsys.readouterr().err
