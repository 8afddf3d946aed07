"""Validation images: carved by image from the training split, choosing checkpoint and threshold
so that test images only report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from nuclei_pa.cli import main
from nuclei_pa.data.convert_kumar import KUMAR_IMAGES, kumar_spec
from nuclei_pa.data.folder import plan_folder
from nuclei_pa.data.validation import ValidationSplit, carve_validation, split_names
from nuclei_pa.engine.choose import above, choose, final_choice
from nuclei_pa.errors import ConfigError, InputError
from nuclei_pa.io.dataset import read_split, write_split
from nuclei_pa.plan.experiments import build_plan
from tests.conftest import dry_run, grid_sample

# --- the split itself -------------------------------------------------------------------------


def test_a_count_is_drawn_by_seed_and_keeps_order():
    train = [f"img{k}" for k in range(6)]
    spec = ValidationSplit.from_config({"count": 2, "seed": 3})
    chosen = spec.choose(train)
    assert len(chosen) == 2 and set(chosen) <= set(train)
    assert chosen == sorted(chosen, key=train.index)  # in the order given
    assert spec.choose(train) == chosen  # same seed, same images
    others = {tuple(ValidationSplit(count=2, seed=s).choose(train)) for s in range(10)}
    assert len(others) > 1  # the seed matters


def test_a_fraction_rounds_to_images():
    train = [f"img{k}" for k in range(8)]
    assert len(ValidationSplit(fraction=0.25).choose(train)) == 2  # 0.25 × 8


@pytest.mark.parametrize(
    ("config", "key", "problem"),
    [
        ({"fraction": 0.1}, "fraction", "leaves no validation image (of 4 training images)"),
        ({"count": 4}, "count", "leaves no training image (4 in all)"),
        ({"names": ["t1"]}, "names", "'t1' is a test image"),
        ({"names": ["nothing"]}, "names", "'nothing' names no training image"),
    ],
)
def test_a_split_that_cannot_work_names_its_key(config, key, problem):
    with pytest.raises(ConfigError) as err:
        ValidationSplit.from_config(config).choose(["a", "b", "c", "d"], ["t1", "t2"])
    assert (err.value.key, err.value.problem) == (key, problem)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, ""),
        ({"count": 1, "fraction": 0.2}, ""),
        ({"fraction": 1.0}, "fraction"),
        ({"count": 0}, "count"),
        ({"names": "a"}, "names"),
        ({"size": 2}, "size"),
    ],
)
def test_malformed_settings_name_their_key(config, key):
    with pytest.raises(ConfigError) as err:
        ValidationSplit.from_config(config)
    assert err.value.key == key


def test_carving_moves_whole_images_from_train_to_val(tmp_path):
    samples = [grid_sample(f"img{k}", n_side=2 + k % 2) for k in range(5)]
    write_split(tmp_path / "train", samples, split="train")
    write_split(tmp_path / "test", [grid_sample("held")], split="test")
    counts = carve_validation(tmp_path, ValidationSplit(names=("img1", "img3")))
    assert counts["val"]["images"] == 2 and counts["train"]["images"] == 3
    assert split_names(tmp_path / "val") == ["img1", "img3"]
    assert split_names(tmp_path / "train") == ["img0", "img2", "img4"]
    by_name = {s.name: s for s in samples}
    for split in ("train", "val"):
        for s in read_split(tmp_path / split):  # pixels and labels travel unchanged
            np.testing.assert_array_equal(s.labels, by_name[s.name].labels)
            np.testing.assert_array_equal(s.image, by_name[s.name].image)
    assert not (tmp_path / "train.new").exists()


def test_a_validation_image_that_is_a_test_image_stops_the_plan(tmp_path):
    root = tmp_path / "mine"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for k in range(5):
        s = grid_sample(f"img{k}")
        tifffile.imwrite(root / "images" / f"img{k}.tif", s.image)
        tifffile.imwrite(root / "labels" / f"img{k}.tif", s.labels.astype(np.uint16))
    folder = {
        "images": str(root / "images"),
        "annotations": str(root / "labels"),
        "test": {"names": ["img4"]},
    }
    config = {"datasets": {"mine": {"kind": "folder", "folder": folder}}}
    config["datasets"]["mine"]["validation"] = {"names": ["img4"]}
    with pytest.raises(ConfigError) as err:
        build_plan(config)
    assert err.value.key == "datasets.mine.validation.names"
    assert "is a test image" in err.value.problem
    config["datasets"]["mine"]["validation"] = {"fraction": 0.1}  # 0.1 × 4 training images
    with pytest.raises(ConfigError) as err:
        build_plan(config)
    assert err.value.key == "datasets.mine.validation.fraction"
    config["datasets"]["mine"]["validation"] = {"count": 1}
    config["trainsets"] = {"M": {"dataset": "mine"}}
    config["models"] = {"M-pa": {"trainset": "M", "variant": "pa"}}
    plan = build_plan(config)
    assert plan.val_dir("M-pa") == plan.results / "data" / "mine" / "val"


def test_synthetic_sets_are_checked_by_count():
    config = {"datasets": {"dh": {"synth": {"n_train": 3}, "validation": {"count": 3}}}}
    with pytest.raises(ConfigError) as err:
        build_plan(config)
    assert err.value.key == "datasets.dh.validation.count"


# --- choosing ---------------------------------------------------------------------------------


def test_a_threshold_removes_the_lower_scoring_nuclei_only():
    labels = np.array([[1, 1, 0], [2, 0, 3], [2, 0, 3]])
    kept = above(labels, {1: 0.9, 2: 0.55, 3: 0.31}, 0.5)
    np.testing.assert_array_equal(kept, [[1, 1, 0], [2, 0, 0], [2, 0, 0]])
    np.testing.assert_array_equal(above(labels, {1: 0.9, 2: 0.55, 3: 0.31}, 0.3), labels)


def test_choice_is_the_best_validation_map_with_ties_to_less_training_then_the_default():
    curve = pd.DataFrame(
        {
            "iteration": [100, 100, 200, 200, 300, 300],
            "score_threshold": [0.5, 0.7, 0.4, 0.6, 0.5, 0.7],
            "map": [0.20, 0.31, 0.31, 0.31, 0.25, 0.10],
        }
    )
    c = choose(curve)
    assert (c.iteration, c.score_threshold, c.chosen_on) == (100, 0.7, "validation")
    assert c.validation_map == pytest.approx(0.31)
    tie = pd.DataFrame({"iteration": [200, 200], "score_threshold": [0.4, 0.6], "map": [0.3, 0.3]})
    assert choose(tie).score_threshold == 0.4  # both 0.1 from 0.5: the lower one
    assert final_choice([100, 300, 200]).iteration == 300


# --- evaluation-only imports and Kumar's label-image copy -------------------------------------


def _folder(root, names):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in names:
        s = grid_sample(name)
        tifffile.imwrite(root / "images" / f"{name}.tif", s.image)
        tifffile.imwrite(root / "labels" / f"{name}.tif", s.labels.astype(np.uint16))


def test_import_all_test_writes_a_test_split_only(tmp_path, capsys):
    _folder(tmp_path / "in", ["a", "b", "c"])
    args = [
        "import",
        str(tmp_path / "in" / "images"),
        "--annotations",
        str(tmp_path / "in" / "labels"),
        "-o",
        str(tmp_path / "out"),
    ]
    assert main([*args, "--test-glob", "*"]) == 2
    assert "--all-test" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main([*args, "--all-test"]) == 0
    assert split_names(tmp_path / "out" / "test") == ["a", "b", "c"]
    assert not (tmp_path / "out" / "train").exists()


def test_kumar_reads_images_beside_label_images(tmp_path):
    cases = ["TCGA-A7-A13E", "TCGA-E2-A1B5", "TCGA-NH-A8F7"]
    _folder(tmp_path, [f"{c}-01Z-00-DX1" for c in cases])
    plan = plan_folder(kumar_spec(tmp_path, require_all=False))
    assert [e.name for e in plan.train] == ["TCGA-A7-A13E-01Z-00-DX1"]
    assert [e.meta["group"] for e in plan.test] == [
        KUMAR_IMAGES["TCGA-E2-A1B5"][1],
        KUMAR_IMAGES["TCGA-NH-A8F7"][1],
    ]
    with pytest.raises(InputError, match="27 listed image"):
        plan_folder(kumar_spec(tmp_path))  # a partial copy is never taken for the benchmark


# --- pretraining as a workflow output ---------------------------------------------------------


def _pretrain_config(init_a: str, init_b: str | None = None) -> dict:
    models = {
        "A-pa": {"trainset": "S", "variant": "pa", "model": {"init": init_a}},
        "B-pa": {"trainset": "S", "variant": "pa"},
    }
    if init_b is not None:
        models["B-pa"]["model"] = {"init": init_b}
    return {
        "datasets": {"dh": {}},
        "trainsets": {"S": {"dataset": "dh"}},
        "models": models,
    }


def test_a_model_can_start_from_another_models_final_checkpoint():
    plan = build_plan(_pretrain_config("model:B-pa"))
    assert plan.models["A-pa"].pretrained == "B-pa"
    assert plan.models["B-pa"].pretrained is None


@pytest.mark.parametrize(
    ("init_a", "init_b", "problem"),
    [
        ("model:C-pa", None, "names missing model 'C-pa' (model:)"),
        ("model:B-pa", "model:A-pa", "pretraining cycle: A-pa -> B-pa -> A-pa"),
        ("model:A-pa", None, "pretraining cycle: A-pa -> A-pa"),
    ],
)
def test_a_pretraining_chain_that_cannot_run_names_the_key(init_a, init_b, problem):
    with pytest.raises(ConfigError) as err:
        build_plan(_pretrain_config(init_a, init_b))
    assert err.value.key == "models.A-pa.model.init"
    assert err.value.problem == problem


def test_the_workflow_trains_the_pretrained_model_first(tmp_path):
    config = _pretrain_config("model:B-pa")
    config["datasets"]["dh"] = {"synth": {"n_train": 2, "n_test": 1}}
    config["results"] = str(tmp_path / "results")
    target = tmp_path / "results" / "models" / "A-pa" / "seed0" / "checkpoints"
    jobs = dry_run(tmp_path, config, str(target)).split("rule train:")[1:]
    a_job = next(j for j in jobs if "model=A-pa" in j)
    b_checkpoints = tmp_path / "results" / "models" / "B-pa" / "seed0" / "checkpoints"
    assert str(b_checkpoints) in a_job.split("output:")[0]  # B trains before A starts
