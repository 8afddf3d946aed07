"""The Snakemake workflow: configuration checks, the DAG, lint, and a whole tiny run."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nuclei_pa.plan.experiments import ConfigError, build_plan

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile")]


def snakemake(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_default_dag_has_every_stage():
    out = snakemake("-n", "--forceall", "--cores", "2", "--quiet", "rules")  # whatever is on disk
    assert out.returncode == 0, out.stderr[-2000:]
    for rule in (
        "prepare_dataset",
        "derive_trainset",
        "train",
        "evaluate",
        "classical_reference",
        "table1",
        "figure4",
        "table2",
        "comparison_table",
        "examples_figure",
        "attention_figure",
        "measure_model",
        "findings",
    ):
        assert rule in out.stdout, rule


def test_lint_is_clean():
    out = snakemake("--lint", "--cores", "1")
    assert out.returncode == 0 and "good condition" in out.stdout + out.stderr, out.stdout[-2000:]


def test_plan_resolves_the_papers_experiments():
    plan = build_plan(default_config())
    assert set(plan.models) >= {
        "DH100-baseline",
        "DH25crop-baseline",
        "DH25-baseline",
        "DH100-pa",
        "DH25-pa",
        "DH25crop-pa",
        "Kumar25-pa",
        "TNBC25-pa",
    }
    dh25 = plan.models["DH25-pa"]
    assert dh25.variant == "pa" and dh25.model["backbone"] == "resnet18"
    assert dh25.checkpoints == list(range(50, dh25.iterations + 1, 50))
    assert plan.trainset_dir("DH25", 3).parts[-2:] == ("DH25", "seed3")
    assert plan.trainset_dir("DH100", 3).name == "train"  # nothing derived, nothing per seed
    assert plan.seeds == (0,) and plan.sweep is None


VARIANTS = ("baseline", "pa")


def test_seeds_and_sweep_expand_the_plan():
    cfg = copy.deepcopy(default_config())
    cfg["seeds"] = [0, 1, 2]
    cfg["sweep"] = {"dataset": "dh", "fractions": [1.0, 0.5, 0.1]}
    plan = build_plan(cfg)
    assert plan.seeds == (0, 1, 2)
    assert plan.sweep.models[(0.1, "pa")] == "sweep_dh_010-pa"
    assert plan.trainsets["sweep_dh_050"].fraction == 0.5
    assert plan.models["sweep_dh_050-baseline"].variant == "baseline"
    # fraction 1.0 is DH100 with the same settings: the sweep reuses those runs
    assert plan.sweep.models[(1.0, "baseline")] == "DH100-baseline"
    assert plan.sweep.models[(1.0, "pa")] == "DH100-pa"
    assert "sweep_dh_100" not in plan.trainsets and "sweep_dh_100-pa" not in plan.models
    assert set(plan.sweep.added) == {f"sweep_dh_{p}-{v}" for p in ("050", "010") for v in VARIANTS}
    # a sweep model set apart by its own settings trains on the reused training set
    cfg["sweep"]["train"] = {"lr": 0.005}
    plan = build_plan(cfg)
    assert plan.models["sweep_dh_100-pa"].trainset == "DH100"
    assert plan.models["sweep_dh_100-pa"].train["lr"] == 0.005
    out = snakemake("-n", "--config", "seeds=[0,1,2]", "--cores", "2", "--quiet", "rules")
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["models"]["DH25-pa"].update(trainset="DH12"), "models.DH25-pa.trainset"),
        (lambda c: c["trainsets"]["DH25"].update(dataset="nope"), "trainsets.DH25.dataset"),
        (lambda c: c["train"].update(checkpoint_every=70), "checkpoint_every"),
        (lambda c: c["model"].update(fpn_width=64), "models.DH100-baseline.model"),
        (lambda c: c["train"].update(iterations="many"), "models.DH100-baseline.train"),
        (lambda c: c["report"].update(table1=["DH7-pa"]), "report.table1"),
        (lambda c: c["report"]["table3"].update(compare=["DH25-pa"]), "report.table3"),
        (lambda c: c["report"]["findings"].update(partial_pa="DH9-pa"), "report.findings"),
        (lambda c: c.update(sweep={"dataset": "nope"}), "sweep.dataset"),
        (lambda c: c.update(sweep={"dataset": "dh", "fractions": [0.5, 2]}), "sweep.fractions"),
        # a repeated point is refused even where a configured model serves it
        (lambda c: c.update(sweep={"dataset": "dh", "fractions": [1.0, 1.0]}), "sweep.fractions"),
    ],
)
def test_bad_plans_name_the_key(edit, key):
    cfg = copy.deepcopy(default_config())
    edit(cfg)
    with pytest.raises(ConfigError) as err:
        build_plan(cfg)
    assert key in str(err.value)


def test_schema_rejects_unknown_keys_and_wrong_types_before_any_job(tmp_path):
    for edit, needle in [
        (lambda c: c.update(sed=1), "'sed' was unexpected"),
        (lambda c: c.update(seed="zero"), "['properties']['seed']"),
        (lambda c: c["models"]["DH25-pa"].update(variant="fancy"), "['properties']['variant']"),
    ]:
        cfg = default_config()
        edit(cfg)
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out = snakemake("-n", "--configfile", str(path), "--cores", "1")
        assert out.returncode != 0 and needle in out.stdout + out.stderr, out.stderr[-1500:]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    """One run of the tiny workflow (config/test.yaml) and its Snakemake report, shared by the
    tests that read them, so each of those tests runs alone or in any order."""
    work = tmp_path_factory.mktemp("tiny") / "work"
    work.mkdir()
    shutil.copy(ROOT / "config" / "test.yaml", work / "test.yaml")
    config = ["--configfile", str(work / "test.yaml"), "--config", f"results={work / 'results'}"]
    out = snakemake(*config, "--cores", "2", "--quiet", cwd=work, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    results = work / "results"
    # what the run made (the sweep is a target of its own, outside the report)
    outputs = [p.name for p in (results / "tables").glob("*.csv")] + [
        p.name for p in (results / "figures").glob("*.png")
    ]
    report = snakemake(*config, "--cores", "1", "--report", str(work / "report.html"), cwd=work)
    assert report.returncode == 0, report.stderr[-2000:]
    return {
        "work": work,
        "results": results,
        "config": config,
        "outputs": outputs,
        "report": work / "report.html",
    }


@pytest.mark.slow
def test_tiny_workflow_produces_every_table_and_figure(tiny_run):
    work, results, config = tiny_run["work"], tiny_run["results"], tiny_run["config"]
    for name in ("table1", "table2", "table3", "table4"):
        assert (results / "tables" / f"{name}.csv").stat().st_size > 0
        assert (results / "tables" / f"{name}.md").read_text().startswith("## ")
    for name in (
        "figure4.png",
        "figure4.pdf",
        "examples.png",
        "examples.pdf",
        "attention.png",
        "attention.pdf",
    ):
        assert (results / "figures" / name).stat().st_size > 1000
    table1 = (results / "tables" / "table1.md").read_text()
    assert "DH25-pa" in table1 and "Otsu + watershed" in table1
    assert " sd" in table1 and "95% CI" in table1  # two seeds: mean, spread and interval
    findings = (results / "findings.md").read_text()
    verdicts = ("| PASS |", "| FAIL |", "| INCONCLUSIVE |")
    assert sum(findings.count(v) for v in verdicts) == 6
    rows = pd.read_csv(results / "findings.csv")
    assert list(rows.groupby("claim").size()) == [2, 4, 2, 2, 3, 2]  # one row per quantity
    # a ratio over a model that found nothing (tiny training) is undefined: INCONCLUSIVE
    defined = rows["ci_low"].notna()
    assert (rows["ci_low"][defined] <= rows["ci_high"][defined]).all()
    assert (rows["verdict"][~defined] == "INCONCLUSIVE").all()
    assert "95% CI" in (results / "tables" / "table3.md").read_text()
    # a pa model on a `remove` derivation logs how its centre boxes fare on unlabelled nuclei
    log = (results / "models" / "DH25-pa" / "seed0" / "train_log.csv").read_text()
    assert "pa_center_boxes" in log and "pa_on_unlabelled_nucleus" in log
    for seed in (0, 1):
        assert (results / "eval" / "DH25-pa" / f"seed{seed}" / "curve.csv").is_file()
        assert (results / "trainsets" / "DH25" / f"seed{seed}" / "annotations.json").is_file()
    # the derivations differ between seeds: each keeps its own random quarter
    a, b = (
        (results / "trainsets" / "DH25" / f"seed{s}" / "annotations.json").read_text()
        for s in (0, 1)
    )
    assert a != b
    sweep = snakemake("sweep", *config, "--cores", "2", cwd=work, timeout=900)
    assert sweep.returncode == 0, sweep.stderr[-4000:]
    table = (results / "tables" / "sweep.csv").read_text().splitlines()
    assert len(table) == 1 + 2 * 2 and table[0].startswith("fraction,variant,mAP")
    assert (results / "figures" / "sweep.png").stat().st_size > 1000
    html = tiny_run["report"].read_text(errors="replace")
    assert "Tables" in html and "Figures" in html and "table1.csv" in html
    # a second invocation has nothing left to do
    again = snakemake(*config, "-n", "--cores", "2", cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_builds_its_plan(path):
    """What the README tells users to pass with --configfile must get past the plan's checks."""
    plan = build_plan(yaml.safe_load(path.read_text()))
    assert plan.models and all(m.iterations > 0 for m in plan.models.values())


def test_paper_config_lists_the_whole_dag_without_any_data():
    out = snakemake(
        "-n",
        "--configfile",
        str(ROOT / "config" / "paper.yaml"),
        "--cores",
        "32",
        "--resources",
        "gpu=4",
        "--quiet",
        "rules",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    plan = build_plan(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    assert plan.models["DH25-pa"].model["backbone"] == "resnext101_64x4d"
    assert (
        plan.models["DH25-pa"].train["batch_size"] == 8
        and plan.models["DH25-pa"].iterations == 1000
    )
    assert (
        plan.models["Kumar25-pa"].iterations == 2000
        and plan.models["Kumar25-pa"].train["batch_size"] == 4
    )
    assert len(plan.models["DH25-pa"].checkpoints) == 20
    assert plan.datasets["tnbc"].download["breast_split_with"] == "kumar"
    # the authors' configuration (feng-lab/nuclei configs/nuclei/dh25_..._da_pt.yaml)
    model, train = plan.models["DH25-pa"].model, plan.models["DH25-pa"].train
    assert (model["rpn_pre_nms_top_n_train"], model["rpn_pre_nms_top_n_test"]) == (4000, 4000)
    assert (model["rpn_post_nms_top_n_train"], model["rpn_post_nms_top_n_test"]) == (2000, 2000)
    assert model["rpn_box_weights"] == model["center_box_weights"] == (10.0, 10.0, 5.0, 5.0)
    assert model["trainable_layers"] == 3 and model["min_size"] == 360
    assert model["share_rpn_conv"] and model["attention_levels"] == ("0", "1", "2", "3")
    assert (train["warmup_iterations"], round(train["warmup_factor"], 4)) == (500, 0.3333)
    assert (train["bias_lr_factor"], train["bias_weight_decay"]) == (2.0, 0.0)
    assert plan.models["DH25crop-pa"].model["min_size"] == 180  # their dhc25 configuration
    # their start, read as Caffe2 reads images: 0-255 minus their pixel mean, std 1
    assert model["init"] == "detectron:x101"
    assert all(abs(v - 1 / 255) < 1e-8 for v in model["image_std"])
    assert [round(v * 255, 2) for v in model["image_mean"]] == [43.53, 39.56, 48.22]  # RGB


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (`make test` installs it with apt)"
)
def test_report_opens_in_a_real_browser_and_lists_every_table_and_figure(tiny_run):
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # as root in a container
            "--disable-gpu",
            "--virtual-time-budget=10000",  # let the report's scripts render before dumping
            "--dump-dom",
            tiny_run["report"].as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    assert "<html" in dom and "Snakemake" in dom
    names = tiny_run["outputs"]
    assert len(names) >= 8
    missing = [name for name in names if name not in dom]
    assert not missing, f"the rendered report does not list {missing}"
