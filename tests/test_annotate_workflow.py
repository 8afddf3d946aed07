"""The `annotate` rule: its DAG for round 1 and later rounds, bad config, and one real round.

The rule file is included by a throw-away Snakefile (common + data rules + annotate), so these
tests do not depend on the main Snakefile's schema listing the `annotate:` key.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nuclei_pa.io.dataset import write_split
from tests.conftest import TINY, grid_sample

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow" / "rules"


def run_snakemake(tmp_path: Path, annotate: dict, *args: str) -> subprocess.CompletedProcess:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    config["annotate"] = annotate
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{tmp_path / "config.yaml"}"\n\n\n'
        f'include: "{RULES / "common.smk"}"\n'
        f'include: "{RULES / "data.smk"}"\n'
        f'include: "{RULES / "annotate.smk"}"\n'
    )
    cmd = [sys.executable, "-m", "snakemake", "-s", str(tmp_path / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def dry_run(tmp_path: Path, annotate: dict) -> subprocess.CompletedProcess:
    return run_snakemake(tmp_path, annotate, "annotate", "-n", "--cores", "1", "--quiet", "rules")


@pytest.fixture
def split(tmp_path) -> Path:
    write_split(tmp_path / "split", [grid_sample("img0"), grid_sample("img1", n_side=3)])
    return tmp_path / "split"


def test_round_one_from_a_trainset_builds_its_data_first(tmp_path):
    out = dry_run(tmp_path, {"trainset": "DH25", "rounds": 1})
    assert out.returncode == 0, out.stderr[-2000:]
    for rule in ("prepare_dataset", "derive_trainset", "annotate"):
        assert rule in out.stdout, rule


def test_later_rounds_need_the_previous_round_and_nothing_else(tmp_path, split):
    spec = {"images": str(split / "images"), "annotations": str(split), "rounds": 2}
    out = dry_run(tmp_path, spec)
    assert out.returncode != 0
    assert "Missing input" in out.stdout + out.stderr and "round_01" in out.stdout + out.stderr
    (tmp_path / "results" / "annotate" / "round_01").mkdir(parents=True)
    out = dry_run(tmp_path, spec)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "annotate" in out.stdout and "prepare_dataset" not in out.stdout


def test_bad_annotate_config_names_the_key(tmp_path, split):
    from nuclei_pa.plan.annotation import annotate_plan
    from nuclei_pa.plan.experiments import ConfigError, build_plan

    out = dry_run(tmp_path, {"trainset": "nope"})  # the rule file reports the plan's errors
    message = "invalid configuration: config key 'annotate.trainset': names missing training set"
    assert out.returncode != 0 and message in out.stdout + out.stderr
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    plan = build_plan(config)
    for spec, message in (
        ({"trainset": "DH25", "model": {"backbone": "vgg"}}, "'annotate': model setting"),
        ({"trainset": "DH25", "train": {"lr": 0}}, "'annotate': train setting 'lr'"),
        ({"trainset": "DH25", "rounds": 0}, "'annotate.rounds': expected a round number"),
        ({"trainset": "DH25", "images": str(split)}, "give `trainset` or `images`"),
    ):
        with pytest.raises(ConfigError, match=message):
            annotate_plan({**config, "annotate": spec}, plan, 0)
    half = annotate_plan({**config, "annotate": {"images": str(split)}}, plan, 0)
    with pytest.raises(ConfigError, match="round 1 needs `images` and `annotations`"):
        half.inputs(str, str)


def test_the_rule_runs_a_round(tmp_path, split):
    spec = {
        "images": str(split / "images"),
        "annotations": str(split / "annotations.json"),
        "out": str(tmp_path / "session"),
        "iterations": 2,
        "model": TINY,
        "train": {"batch_size": 2, "num_workers": 0, "checkpoint_every": 1},
    }
    out = run_snakemake(tmp_path, spec, "--cores", "1", "annotate")
    assert out.returncode == 0, out.stderr[-3000:]
    report = pd.read_csv(tmp_path / "session" / "rounds.csv")
    assert report["round"].tolist() == [1] and report["human"].tolist() == [16 + 9]
    assert (tmp_path / "session" / "round_01" / "rois" / "img1.zip").is_file()
    assert (tmp_path / "results" / "logs" / "annotate" / "round_01.log").is_file()


def test_plan_resolves_paths_and_settings():
    from nuclei_pa.plan.annotation import annotate_plan
    from nuclei_pa.plan.experiments import ConfigError, build_plan

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert config["annotate"]["trainset"] == "DH25"  # the default runs out of the box
    del config["annotate"]
    plan = build_plan(config)
    unset = annotate_plan(config, plan, 0)
    with pytest.raises(ConfigError, match="'annotate': missing"):
        unset.inputs(str, str)
    config["annotate"] = {"trainset": "DH25", "min_new": 5, "train": {"batch_size": 2}}
    first = annotate_plan(config, plan, 3)
    split = plan.trainset_dir("DH25", 3)
    assert first.inputs(lambda ts: f"built:{ts}", str) == {"trainset": "built:DH25"}
    assert first.paths() == {
        "images": str(split / "images"),
        "annotations": str(split / "annotations.json"),
    }
    assert (first.train["iterations"], first.train["batch_size"]) == (200, 2)
    assert first.model["variant"] == "pa" and first.settings == {"min_new": 5}
    config["annotate"] |= {"rounds": 3, "out": "session"}
    third = annotate_plan(config, plan, 0)
    marked = third.inputs(str, lambda p: f"ancient:{p}")
    assert marked == {"previous": f"ancient:{Path('session') / 'round_02'}"}
    assert third.paths()["annotations"] is None and third.round_name == "round_03"
