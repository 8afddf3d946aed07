"""The effort experiment's report (issue 24, item 3): table, reading and figure on hand-made
choices, the report.effort config check, and the rule's wiring (a dry run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nuclei_pa.eval.folders import METRIC_COLUMNS
from nuclei_pa.io.dataset import Sample, write_split
from nuclei_pa.report.curves import read_choices
from nuclei_pa.report.effort import effort_reading, effort_table, trainset_effort, write_effort
from tests.conftest import dry_run

ROOT = Path(__file__).resolve().parents[1]

# Per-image test mAP / AJI of two images, per model: arm A (reference) and arm B, pa and baseline.
PER_IMAGE = {
    "A-pa": ([0.4, 0.6], [0.5, 0.7]),
    "B-pa": ([0.6, 0.8], [0.6, 0.8]),
    "A-baseline": ([0.2, 0.4], [0.3, 0.5]),
    "B-baseline": ([0.2, 0.2], [0.4, 0.4]),
}
ARMS = {"A": ["A-pa", "A-baseline"], "B": ["B-pa", "B-baseline"]}
INFO = {m: {"dataset": "d", "variant": m.split("-")[1]} for m in PER_IMAGE}
# A: 1000 nuclei; B: 1800 nuclei + 100 regions × 2 = 2000 units
EFFORT = {"A": (1000, 0), "B": (1800, 100)}


def _choices(tmp_path: Path) -> tuple[pd.DataFrame, dict]:
    chosen, tests = [], []
    for model, (maps, ajis) in PER_IMAGE.items():
        run = tmp_path / model
        run.mkdir()
        (run / "chosen.json").write_text(
            json.dumps({"iteration": 300, "score_threshold": 0.5, "chosen_on": "validation"})
        )
        frame = pd.DataFrame({"image": ["i2", "i1"], **{m: 0.0 for m in METRIC_COLUMNS}})
        frame["map"], frame["aji"] = maps[::-1], ajis[::-1]  # files list images in any order
        frame.to_csv(run / "chosen_test.csv", index=False)
        chosen.append(run / "chosen.json")
        tests.append(run / "chosen_test.csv")
    return read_choices(list(PER_IMAGE), chosen, tests)


def _efforts(cost: float = 2.0) -> dict:
    out = {}
    for model in PER_IMAGE:
        nuclei, regions = EFFORT[model[0]]
        out[model] = [{"units": nuclei + cost * regions, "nuclei": nuclei, "regions": regions}]
    return out


def test_table_gives_metrics_per_effort_and_the_paired_difference_from_the_reference(tmp_path):
    chosen, runs = _choices(tmp_path)
    table = effort_table(ARMS, INFO, chosen, runs, _efforts()).set_index("model")
    a, b = table.loc["A-pa"], table.loc["B-pa"]
    assert (a["arm"], a["dataset"], a["variant"]) == ("A", "d", "pa")
    assert a["effort units"] == 1000 and b["effort units"] == 2000 and b["regions"] == 100
    assert a["mAP"] == pytest.approx(0.5) and b["mAP"] == pytest.approx(0.7)
    # two images: a resampled mean is one image's value or their mean, so 95 % of it spans both
    assert (a["mAP low"], a["mAP high"]) == pytest.approx((0.4, 0.6))
    assert a["mAP per 1000 units"] == pytest.approx(0.5)
    assert b["mAP per 1000 units"] == pytest.approx(0.35)
    assert (b["mAP per 1000 units low"], b["mAP per 1000 units high"]) == pytest.approx((0.3, 0.4))
    # B per 1000 units: [0.3, 0.4]; A: [0.4, 0.6]; paired per-image differences -0.1, -0.2
    assert b["Δ mAP per 1000 units"] == pytest.approx(-0.15)
    assert (b["Δ mAP per 1000 units low"], b["Δ mAP per 1000 units high"]) == pytest.approx(
        (-0.2, -0.1)
    )
    assert a["Δ mAP per 1000 units"] == 0.0
    # baseline: B 0.2 mAP for 2000 units (0.1 per 1000) vs A 0.3 for 1000; AJI 0.4 → 0.2 vs 0.4
    c = table.loc["B-baseline"]
    assert c["mAP per 1000 units"] == pytest.approx(0.1)
    assert c["Δ mAP per 1000 units"] == pytest.approx(-0.2)
    assert c["Δ AJI per 1000 units"] == pytest.approx(0.2 - 0.4)


def test_several_seeds_average_each_seed_at_its_own_effort():
    def run(maps):
        return pd.DataFrame({"image": ["i1", "i2"], "map": maps, "aji": maps})

    chosen = pd.DataFrame(
        {"model": ["m", "m"], "seed": [0, 1], "iteration": [200, 300], "score_threshold": 0.5}
    )
    runs = {"m": [run([0.4, 0.6]), run([0.6, 0.8])]}
    efforts = {
        "m": [
            {"units": 1000, "nuclei": 1000, "regions": 0},
            {"units": 2000, "nuclei": 1800, "regions": 100},
        ]
    }
    info = {"m": {"dataset": "d", "variant": "pa"}}
    row = effort_table({"A": ["m"]}, info, chosen, runs, efforts).iloc[0]
    assert row["iteration"] == "200/300" and row["effort units"] == 1500
    assert row["regions"] == 50 and row["mAP"] == pytest.approx(0.6)
    assert row["mAP per 1000 units"] == pytest.approx((0.5 + 0.35) / 2)


def test_reading_names_the_best_arm_per_effort_with_its_interval(tmp_path):
    chosen, runs = _choices(tmp_path)
    table = effort_table(ARMS, INFO, chosen, runs, _efforts())
    reading = effort_reading(table)
    assert reading[0].startswith("d, pa: most mAP per effort unit from 'A' (0.500 per 1000 units")
    assert "'B' − 'A': -0.150 [-0.200, -0.100] (excludes 0)" in reading[0]
    # reference B: now A's mAP per 1000 units is compared with B's
    table = effort_table(ARMS, INFO, chosen, runs, _efforts(), reference="B")
    assert "'A' − 'B': +0.150 [+0.100, +0.200] (excludes 0)" in effort_reading(table)[0]


def test_region_cost_reprices_the_effort_and_the_files_are_written(tmp_path):
    chosen, runs = _choices(tmp_path)
    table = effort_table(ARMS, INFO, chosen, runs, _efforts(cost=0.0))
    b = table.set_index("model").loc["B-pa"]
    assert b["effort units"] == 1800 and b["mAP per 1000 units"] == pytest.approx(0.7 / 1.8)
    out = tmp_path / "out"
    write_effort(
        table, out / "effort.csv", out / "effort.md", [out / "effort.png"], region_cost=0.0
    )
    md = (out / "effort.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| A ")).split("|")
    cells = [c.strip() for c in row[1:-1]]
    assert cells[:7] == [
        "A",
        "d",
        "pa",
        "1000",
        "1000 + 0",
        "0.500 [0.400, 0.600]",
        "0.600 [0.500, 0.700]",
    ]
    assert cells[7:] == ["0.500", "(reference)", "0.600", "(reference)"]
    assert "0 per fully annotated region" in md and "- d, pa: most mAP per effort unit" in md
    assert pd.read_csv(out / "effort.csv")["model"].tolist() == list(PER_IMAGE)
    assert (out / "effort.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob("*.tmp*"))


def test_trainset_effort_reads_the_derivation_or_counts_the_split(tmp_path):
    labels = np.zeros((8, 8), np.uint16)
    labels[1:3, 1:3], labels[5:7, 5:7] = 1, 2
    sample = Sample("x", np.zeros((8, 8), np.uint8), labels)
    write_split(
        tmp_path / "derived",
        [sample],
        effort_units=7.0,
        effort_nuclei=5,
        effort_regions=1,
    )
    assert trainset_effort(tmp_path / "derived") == {"units": 7.0, "nuclei": 5, "regions": 1}
    assert trainset_effort(tmp_path / "derived", region_cost=5)["units"] == 10.0
    write_split(tmp_path / "dataset" / "train", [sample])  # a dataset used as it is
    assert trainset_effort(tmp_path / "dataset") == {"units": 2.0, "nuclei": 2, "regions": 0}


def _config(**effort) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["report"]["effort"] = {
        "arms": {"random": ["DH25-pa", "DH25-baseline"], "crop": ["DH25crop-pa"]},
        **effort,
    }
    return config


@pytest.mark.parametrize(
    ("effort", "key", "message"),
    [
        (
            {"arms": {"random": ["DH25-pa", "DH26-pa"]}},
            "report.effort.arms.random",
            "names missing model 'DH26-pa'",
        ),
        (
            {"arms": {"random": ["DH25-pa", "DH100-pa"]}},
            "report.effort.arms.random",
            "'DH25-pa' and 'DH100-pa' are both pa models tested on 'dh'",
        ),
        ({"reference": "regions"}, "report.effort.reference", "names missing arm 'regions'"),
    ],
)
def test_a_bad_report_effort_names_its_key(effort, key, message):
    from nuclei_pa.plan.experiments import ConfigError, build_plan

    assert build_plan(_config()).report["effort"]["arms"]["crop"] == ["DH25crop-pa"]
    with pytest.raises(ConfigError, match=f"'{key}': {message}"):
        build_plan(_config(**effort))


def test_the_effort_target_reports_each_arm_from_its_runs_and_training_sets(tmp_path):
    config = {"report": _config()["report"], "results": str(tmp_path / "results")}
    out = dry_run(tmp_path, config, "effort", base=ROOT / "config" / "config.yaml")
    job = out.split("rule effort_report:")[1].split("\n\n")[0]
    inputs = job.split("output:")[0]
    results = tmp_path / "results"
    for model in ("DH25-pa", "DH25-baseline", "DH25crop-pa"):
        assert str(results / "eval" / model / "seed0" / "chosen_test.csv") in inputs
    assert str(results / "trainsets" / "DH25" / "seed0") in inputs
    assert str(results / "trainsets" / "DH25crop" / "seed0") in inputs
    assert str(results / "tables" / "effort.md") in job.split("output:")[1]
    assert str(results / "figures" / "effort.png") in job.split("output:")[1]
    assert "DH100-pa" not in inputs  # only the arms' models


def test_readme_block_copies_the_table_and_the_reading(tmp_path):
    """tools/readme_results.py --effort: the table rows and reading of tables/effort.md."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "readme_results", ROOT / "tools" / "readme_results.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    chosen, runs = _choices(tmp_path)
    results = tmp_path / "results"
    write_effort(
        effort_table(ARMS, INFO, chosen, runs, _efforts()),
        results / "tables" / "effort.csv",
        results / "tables" / "effort.md",
        [results / "figures" / "effort.png"],
    )
    block = tool.effort_block(results, 95.4, 1)
    assert block.startswith(tool.EFFORT_START) and block.endswith(tool.EFFORT_END)
    assert "`snakemake --configfile config/effort.yaml --cores 1 effort`" in block
    assert "95 minutes on" in block and "## " not in block
    md = (results / "tables" / "effort.md").read_text()
    for line in md.splitlines():
        if line.startswith(("|", "- ")):
            assert line in block
