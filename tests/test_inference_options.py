"""The inference levers exposed without retraining: ``nuclei-pa predict`` (images and slides)
and ``nuclei-pa annotate`` options, and the workflow's ``inference:`` key (its schema, its
checks, and a change re-running evaluation and choice but not training)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nuclei_pa.annotate import session
from nuclei_pa.cli import main
from nuclei_pa.engine import predict as engine
from nuclei_pa.engine.config import TrainConfig
from nuclei_pa.errors import ConfigError
from nuclei_pa.io.images import read_labels, write_tiff
from nuclei_pa.model import ModelConfig
from nuclei_pa.model.config import INFERENCE_KEYS, inference_settings
from nuclei_pa.slide.mosaic import write_mosaic_slide
from nuclei_pa.slide.predictors import ModelPredictor
from tests.test_predict import BlobModel, blob_image
from tests.test_tta import SMALL, _image, _tiny_model

ROOT = Path(__file__).resolve().parents[1]
LEVERS = ["--test-time-flips", "--mask-box-scale", "1.2", "--mask-box-grow", "all"]


def predict_cli(checkpoint: Path, *args: object) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), "--quiet", *map(str, args)])


@pytest.fixture
def blob_loader(monkeypatch):
    """``load_model`` replaced by BlobModel (flip-symmetric), its flips set as the real one
    would set them from ``inference``; every call's ``inference`` recorded."""
    calls: list[tuple[dict | None, BlobModel]] = []

    def load(path, device, **kw):
        model = BlobModel()
        model.test_time_flips = bool((kw.get("inference") or {}).get("test_time_flips"))
        calls.append((kw.get("inference"), model))
        return model

    monkeypatch.setattr(engine, "load_model", load)
    return calls


def test_flips_option_reaches_the_model_and_a_symmetric_model_predicts_the_same(
    tmp_path, blob_loader
):
    image, _ = blob_image(120, 64, 16)
    write_tiff(tmp_path / "images" / "one.tif", image)
    ckpt = tmp_path / "m.pt"
    for out, extra in (("plain", []), ("flips", ["--test-time-flips"])):
        assert predict_cli(ckpt, tmp_path / "images", "-o", tmp_path / out, *extra) == 0
    (plain_inf, plain_model), (flips_inf, flips_model) = blob_loader
    assert plain_inf is None  # no option: the checkpoint's own settings, loaded as before
    assert flips_inf == {"test_time_flips": True}
    assert len(flips_model.calls) == 4 * len(plain_model.calls) > 0  # the four views ran
    plain = read_labels(tmp_path / "plain" / "labels" / "one.tif")
    flipped = read_labels(tmp_path / "flips" / "labels" / "one.tif")
    assert plain.max() > 0 and np.array_equal(plain, flipped)
    docs = [json.loads((tmp_path / o / "predictions.json").read_text()) for o in ("plain", "flips")]
    assert [d["info"]["test_time_flips"] for d in docs] == [False, True]


def test_options_reach_a_real_checkpoints_model(tmp_path, monkeypatch):
    ckpt = tmp_path / "tiny.pt"
    torch.save({"model_config": ModelConfig.preset("slim", **SMALL).to_dict(),
                "model": _tiny_model().state_dict()}, ckpt)  # fmt: skip
    write_tiff(tmp_path / "images" / "one.tif", _image())
    loaded = []
    real = engine.load_model

    def spy(path, device, **kw):
        loaded.append(real(path, device, **kw))
        return loaded[-1]

    monkeypatch.setattr(engine, "load_model", spy)
    args = [tmp_path / "images", "-o", tmp_path / "out", "--score-threshold", "0"]
    assert predict_cli(ckpt, *args, "--min-area", "1", *LEVERS) == 0
    (model,) = loaded
    assert model.test_time_flips is True
    assert model.roi_heads.mask_box_scale == 1.2 and model.roi_heads.mask_box_grow == "all"
    info = json.loads((tmp_path / "out" / "predictions.json").read_text())["info"]
    assert info["test_time_flips"] is True and info["mask_box_scale"] == 1.2


def test_slides_get_the_options_too(tmp_path, blob_loader):
    image, _ = blob_image(200, 64, 16)
    slide = tmp_path / "blobs.svs"
    write_mosaic_slide(slide, [np.repeat(image[..., None], 3, axis=2)], (1, 1), margin=32)
    out = tmp_path / "out"
    args = [slide, "-o", out, "--no-tissue-mask", "--tile-size", "128", "--tile-overlap", "32"]
    assert predict_cli(tmp_path / "m.pt", *args, "--test-time-flips") == 0
    ((inference, model),) = blob_loader
    assert inference == {"test_time_flips": True} and model.calls
    assert (out / "blobs.geojson").is_file()
    # a run interrupted with other inference settings does not resume into this one
    pixels = np.zeros((4, 3), np.uint8)
    assert "inference=" in ModelPredictor(model, pixels).describe()
    assert "inference=" not in ModelPredictor(BlobModel(), pixels).describe()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--mask-box-scale", "2.5"], "--mask-box-scale must be between 1.0 and 2.0"),
        (["--mask-box-scale", "0.9"], "--mask-box-scale must be between 1.0 and 2.0"),
        (["--mask-box-grow", "all"], "--mask-box-grow applies with --mask-box-scale"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "annotate"])
def test_bad_values_are_one_line_naming_the_option(command, args, option, tmp_path, capsys):
    argv = [command, str(tmp_path / "images"), "-o", str(tmp_path / "out"), *args]
    if command == "predict":
        argv += ["--checkpoint", str(tmp_path / "m.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert option in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


class _Stop(Exception):
    pass


def test_annotate_proposes_with_the_options(tmp_path, monkeypatch):
    seen = {}

    def run_round(*args, settings, **kw):
        seen["settings"] = settings
        raise _Stop  # before any training

    monkeypatch.setattr(session, "run_round", run_round)
    argv = ["annotate", str(tmp_path), "-o", str(tmp_path / "out"), *LEVERS]
    with pytest.raises(_Stop):
        main(argv)
    settings = seen["settings"]
    assert settings.inference() == {
        "test_time_flips": True,
        "mask_box_scale": 1.2,
        "mask_box_grow": "all",
    }
    assert session.ProposalSettings().inference() == {}  # defaults: the model's own

    loaded = []  # the proposals' model is loaded with them
    monkeypatch.setattr(engine, "load_model", lambda path, device, **kw: loaded.append(kw))
    session._propose(1, [], None, {}, {}, tmp_path / "m.pt", TrainConfig(), settings, False)
    assert loaded == [{"inference": settings.inference()}]
    with pytest.raises(ValueError, match=r"inference\.mask_box_scale"):
        session.ProposalSettings(mask_box_scale=3.0)


# --- the workflow's `inference:` key -------------------------------------------------------


def test_the_key_is_checked_by_model_config_rules_naming_it():
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    props = yaml.safe_load(schema.read_text())["properties"]["inference"]["properties"]
    defaults = {k: v["default"] for k, v in props.items()}
    assert set(defaults) == set(INFERENCE_KEYS)
    assert ModelConfig.from_dict(defaults) == ModelConfig()  # ModelConfig's defaults
    assert all(v["description"] for v in props.values())
    assert inference_settings({"mask_box_scale": 2, "test_time_flips": True}) == {
        "mask_box_scale": 2.0,
        "test_time_flips": True,
    }
    for bad, key in [
        ({"mask_box_scale": 3.0}, "inference.mask_box_scale"),
        ({"mask_box_grow": "some"}, "inference.mask_box_grow"),
        ({"backbone": "resnet50"}, "inference.backbone"),
    ]:
        with pytest.raises(ConfigError) as err:
            inference_settings(bad)
        assert err.value.key == key and str(err.value).startswith(f"config key '{key}': ")


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile")]
    cmd += ["-d", str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "1"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two Snakemake runs: ~25 s
def test_changing_it_reruns_evaluation_and_choice_but_not_training(tmp_path):
    results = tmp_path / "results"
    config = {
        "results": str(results),
        "datasets": {"dh": {"synth": {"n_train": 2, "n_test": 1}}},
        "trainsets": {"S": {"dataset": "dh"}},
        "models": {"A-pa": {"trainset": "S", "variant": "pa"}},
    }
    chosen = str(results / "eval" / "A-pa" / "seed0" / "chosen.json")
    # every job recorded as run with the default settings (metadata, params included)...
    touched = snakemake(tmp_path, config, "--touch", chosen)
    assert touched.returncode == 0, touched.stderr[-2000:]
    # ...and its outputs made (folders where the name has no suffix), each stage newer than
    # the one before, as a real run leaves them
    stages = ["data", "models", "eval"]
    for name in (tmp_path / ".snakemake" / "metadata").iterdir():
        path = Path(base64.b64decode(name.name).decode())
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            path.mkdir(parents=True, exist_ok=True)
        stage = stages.index(path.relative_to(results).parts[0])
        os.utime(path, (1e9 + stage, 1e9 + stage))
    config["inference"] = {"test_time_flips": True}
    out = snakemake(tmp_path, config, "-n", chosen, "--rerun-triggers", "params")
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = set(re.findall(r"^(?:local)?rule (\w+):", out.stdout, flags=re.MULTILINE))
    assert jobs == {"evaluate", "choose_checkpoint"}, out.stdout[-2000:]
    assert "'test_time_flips': False} now: {" in out.stdout  # the reason: the param changed
