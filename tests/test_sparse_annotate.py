"""Sparse labels through ``nuclei-pa annotate`` (issue 24): the annotator's unknown areas and
fully annotated regions reach training, stay in the review files they edit, and survive a
round in which they touched nothing."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from nuclei_pa.annotate.inputs import list_session_images, read_corrections
from nuclei_pa.annotate.session import ProposalSettings, run_round
from nuclei_pa.engine import TrainConfig
from nuclei_pa.engine import predict as engine_predict
from nuclei_pa.engine.dataset import open_dataset
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.formats import read_annotation, write_annotations
from nuclei_pa.io.images import write_tiff
from nuclei_pa.model import ModelConfig
from tests.conftest import TINY, grid_sample
from tests.test_annotate_session import fake_predict

engine_train = importlib.import_module("nuclei_pa.engine.train")  # the module, not its train()


def marks(shape):
    ignore = np.zeros(shape, dtype=bool)
    ignore[40:60, 0:20] = True
    region = np.zeros(shape, dtype=bool)
    region[:32, :32] = True
    return ignore, region


@pytest.fixture(scope="module")
def round_one(tmp_path_factory):
    root = tmp_path_factory.mktemp("sparse_annotate")
    images, anns, out = root / "images", root / "anns", root / "out"
    for k in range(2):
        s = grid_sample(f"img{k}")
        write_tiff(images / f"img{k}.tif", s.image)
        keep = np.where(np.isin(s.labels, [1, 2, 5, 6]), s.labels, 0)  # the region's 4 nuclei
        ignore, region = marks(s.labels.shape)
        write_annotations(anns / f"img{k}.geojson", Annotation(keep, ignore=ignore, region=region))
    seen = []
    real_train = engine_train.train

    def spy(data, *args, **kwargs):
        dataset = open_dataset(data)
        seen.append({key for i in range(len(dataset)) for key in dataset.load(i)[1]})
        return real_train(data, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_predict, "predict_image", fake_predict)
        mp.setattr(engine_train, "train", spy)
        run_round(
            images,
            out,
            annotations=anns,
            model_cfg=ModelConfig.preset("slim", variant="pa", **TINY),
            train_cfg=TrainConfig(iterations=2, batch_size=2, num_workers=0, threads=1),
            settings=ProposalSettings(min_new=1),
            progress=False,
        )
    return {"images": images, "out": out, "seen": seen}


def test_training_sees_the_marks(round_one):
    assert round_one["seen"] == [{"boxes", "labels", "masks", "ignore", "region"}]


def test_review_files_keep_the_marks(round_one):
    folder = round_one["out"] / "round_01"
    ignore, region = marks((64, 64))
    for sub, suffix in (("geojson", ".geojson"), ("rois", ".zip")):
        ann = read_annotation(folder / sub / f"img0{suffix}", (64, 64))
        assert np.array_equal(ann.ignore, ignore) and np.array_equal(ann.region, region), sub
    doc = json.loads((folder / "geojson" / "img0.geojson").read_text())
    classes = {f["properties"]["classification"]["name"] for f in doc["features"]}
    assert {"Ignore*", "Region*"} <= classes


def test_an_untouched_round_keeps_the_marks_and_an_edit_can_drop_them(round_one, tmp_path):
    folder = round_one["out"] / "round_01"
    refs = list_session_images(round_one["images"])
    ignore, region = marks((64, 64))
    got = read_corrections(folder, refs)
    for stem in ("img0", "img1"):
        assert np.array_equal(got.ignore[stem], ignore) and np.array_equal(got.region[stem], region)
    # the annotator deletes img1's region in QuPath: it is gone, img0 keeps its own
    geo = folder / "geojson" / "img1.geojson"
    backup = geo.read_bytes()
    doc = json.loads(backup)
    doc["features"] = [
        f for f in doc["features"] if f["properties"]["classification"]["name"] != "Region*"
    ]
    geo.write_text(json.dumps(doc))
    try:
        got = read_corrections(folder, refs)
    finally:
        geo.write_bytes(backup)
    assert "img1" not in got.region and np.array_equal(got.ignore["img1"], ignore)
    assert np.array_equal(got.region["img0"], region)
