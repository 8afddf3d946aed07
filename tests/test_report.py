"""Tables and figures from evaluation results."""

from __future__ import annotations

import pandas as pd
import pytest

from nuclei_pa.report.curves import best_checkpoint, collect_best, learning_curve
from nuclei_pa.report.figures import figure4
from nuclei_pa.report.tables import (
    add_group_means,
    best_intervals,
    per_image_comparison,
    table1,
    wilcoxon_table,
    write_table,
)

METRICS = ["map", "aji", "aji_kumar", "ncs", "precision_50", "recall_50"]


def _summary(tmp_path, name, value):
    path = tmp_path / f"{name}.summary.csv"
    pd.DataFrame([{m: value for m in METRICS} | {"n_images": 2, "n_gt": 10, "n_pred": 9}]).to_csv(
        path, index=False
    )
    return path


def test_curve_and_best_checkpoint(tmp_path):
    curve = learning_curve(
        {
            100: _summary(tmp_path, "b", 0.6),
            50: _summary(tmp_path, "a", 0.4),
            150: _summary(tmp_path, "c", 0.6),
        }
    )
    assert curve["iteration"].tolist() == [50, 100, 150]
    best = best_checkpoint(curve)
    assert best["iteration"] == 100 and best["map"] == 0.6  # tie → earliest
    body = collect_best({"m": [curve]})
    t1 = table1(body, reference={"Otsu+watershed": dict.fromkeys(METRICS, 0.3)})
    assert t1["model"].tolist() == ["m", "Otsu+watershed"]
    assert t1.loc[0, "mAP"] == 0.6 and t1.loc[1, "R@0.5"] == 0.3
    with pytest.raises(ValueError):
        best_checkpoint(curve.iloc[:0])


def test_table1_over_seeds_gives_mean_and_spread():
    def c(best_map, best_at):
        rows = [{"iteration": it, **dict.fromkeys(METRICS, 0.1)} for it in (50, 100)]
        rows[best_at]["map"] = best_map
        rows[best_at]["aji"] = 0.5
        return pd.DataFrame(rows)

    t1 = table1(collect_best({"m": [c(0.4, 0), c(0.6, 1), c(0.5, 1)]}))
    row = t1.iloc[0]
    assert row["seeds"] == 3 and row["iteration"] == "50/100/100"
    assert row["mAP"] == pytest.approx(0.5) and row["mAP sd"] == pytest.approx(0.1)
    assert row["AJI"] == pytest.approx(0.5) and row["AJI sd"] == 0


def test_table1_intervals_resample_the_best_checkpoints_images():
    """Seed 0's best checkpoint is 100, seed 1's 50; their per-image mAP is flat at 0.4 and 0.6:
    resampling images changes nothing, resampling the two seeds gives 0.4, 0.5 or 0.6."""

    def run(at_50, at_100):
        return pd.DataFrame(
            [
                {"iteration": it, "image": f"i{k}", **dict.fromkeys(METRICS, v)}
                for it, v in ((50, at_50), (100, at_100))
                for k in range(4)
            ]
        )

    runs = {"m": [run(0.1, 0.4), run(0.6, 0.2)]}
    curves = {"m": [r.groupby("iteration", as_index=False)[METRICS].mean() for r in runs["m"]]}
    best = collect_best(curves)
    assert best["iteration"].tolist() == [100, 50]
    intervals = best_intervals(best, runs)
    iv = intervals["m"]["map"]
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((0.5, 0.4, 0.6))
    t1 = table1(best, {"Otsu": dict.fromkeys(METRICS, 0.3)}, intervals)
    assert list(t1.columns[3:8]) == ["mAP", "mAP sd", "mAP 95% CI low", "mAP 95% CI high", "AJI"]
    assert t1.loc[0, "AJI 95% CI high"] == pytest.approx(0.6)
    assert pd.isna(t1.loc[1, "mAP 95% CI low"])  # the reference has no interval


def test_sweep_table_and_figure(tmp_path):
    from nuclei_pa.report.figures import sweep_figure
    from nuclei_pa.report.tables import sweep_table

    runs = [
        {"fraction": f, "variant": v, "model": f"{v}{f}"}
        for f in (1.0, 0.25)
        for v in ("baseline", "pa")
    ]
    curves = {
        r["model"]: [pd.DataFrame([{"iteration": 50, **dict.fromkeys(METRICS, r["fraction"] / 2)}])]
        for r in runs
    }
    table = sweep_table(collect_best(curves), runs)
    assert table["fraction"].tolist() == [1.0, 1.0, 0.25, 0.25]
    assert table["variant"].tolist() == ["baseline", "pa", "baseline", "pa"]
    assert table["mAP"].tolist() == [0.5, 0.5, 0.125, 0.125]
    paths = [tmp_path / "s.png", tmp_path / "s.pdf"]
    sweep_figure(table, paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_per_image_comparison_with_groups_published_and_wilcoxon(tmp_path):
    ours = pd.DataFrame(
        {"image": ["a", "b", "c", "d", "e", "f"], "aji": [0.6, 0.7, 0.5, 0.65, 0.55, 0.62]}
    )
    other = ours.assign(aji=ours["aji"] - [0.1, 0.05, 0.02, 0.08, 0.03, 0.01])
    published = pd.DataFrame({"image": list("abcdef"), "CNN3": [0.5, 0.6, 0.4, 0.5, 0.5, 0.5]})
    groups = dict(zip("abcdef", ["same"] * 3 + ["unseen"] * 3, strict=True))
    table = per_image_comparison({"ours": ours, "other": other}, groups=groups, published=published)
    assert list(table.columns) == ["image", "group", "ours", "other", "CNN3"]
    means = add_group_means(table)
    assert means["image"].tolist()[-5:-2] == ["mean (same)", "mean (unseen)", "mean (all)"]
    assert means.iloc[-5]["ours"] == pytest.approx(0.6)
    tests = wilcoxon_table(table, "ours", ["other", "CNN3"])
    # ours > other on all 6 images: exact two-sided p = 2 / 2**6
    assert tests.loc[0, "p_value"] == pytest.approx(2 / 64)
    assert tests.loc[0, "n"] == 6
    with pytest.raises(ValueError, match="lack test image"):
        per_image_comparison({"ours": ours}, published=published.iloc[:3])
    write_table(means, tmp_path / "t3.csv", tmp_path / "t3.md", title="Table 3")
    assert (tmp_path / "t3.md").read_text().startswith("## Table 3")
    assert len(pd.read_csv(tmp_path / "t3.csv")) == 11
    # the overall mean's interval over images; paired differences of ours − other
    low, high = means.iloc[-2], means.iloc[-1]
    assert low["image"] == "mean (all) 95% CI low" and high["image"] == "mean (all) 95% CI high"
    assert 0.5 <= low["ours"] < means.iloc[-3]["ours"] < high["ours"] <= 0.7
    assert tests.loc[0, "mean_difference"] == pytest.approx(0.29 / 6)
    assert 0.01 <= tests.loc[0, "mean_difference 95% CI low"] < 0.29 / 6
    assert 0.29 / 6 < tests.loc[0, "mean_difference 95% CI high"] <= 0.1


def test_figure4_writes_png_and_pdf(tmp_path):
    curve = pd.DataFrame({"iteration": [50, 100], **{m: [0.3, 0.5] for m in METRICS}})
    paths = [tmp_path / "fig4.png", tmp_path / "fig4.pdf"]
    figure4(
        {"DH100-baseline": curve, "DH25-pa": [curve, curve.assign(map=[0.4, 0.6])]},
        paths,
        reference={"classical": dict.fromkeys(METRICS, 0.2)},
    )
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_examples_figure_png_and_pdf(tmp_path):
    import numpy as np

    from nuclei_pa.report.figures import examples_figure

    truth = np.zeros((32, 32), np.int32)
    truth[4:10, 4:10] = 1
    truth[20:28, 18:26] = 2
    paths = [tmp_path / "ex.png", tmp_path / "ex.pdf"]
    examples_figure(
        np.random.default_rng(0).random((32, 32)), truth, {"model": truth.copy()}, paths
    )
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_readme_blocks_are_copied_from_benchmark_output_files(tmp_path):
    """tools/readme_results.py --annotator: each run's summary.md, in order, between the
    README's markers; the text around them stays as it was."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "readme_results", Path(__file__).resolve().parents[1] / "tools" / "readme_results.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    runs = []
    for name, table in (("synth", "| 0 | 210 |"), ("kumar", "| 0 | 219 |")):
        run = tmp_path / name
        run.mkdir()
        (run / "summary.md").write_text(f"`{name} command`: data\n\n{table}\n")
        runs.append(run)
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- annotator:start -->\nold 406\n<!-- annotator:end -->\nafter\n")
    tool.replace_block(readme, tool.ANNOTATOR_START, tool.ANNOTATOR_END, tool.annotator_block(runs))
    assert readme.read_text() == (
        "before\n<!-- annotator:start -->\n`synth command`: data\n\n| 0 | 210 |\n\n"
        "`kumar command`: data\n\n| 0 | 219 |\n<!-- annotator:end -->\nafter\n"
    )
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        tool.replace_block(readme, tool.ANNOTATOR_START, tool.ANNOTATOR_END, "x")


def test_real_long_block_marks_the_chosen_checkpoint_and_averages_the_test_images(tmp_path):
    """tools/readme_results.py --real-long: per checkpoint the best validation mAP over the
    threshold grid, the validation-chosen one marked, and test means beside Otsu's."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "readme_results", Path(__file__).resolve().parents[1] / "tools" / "readme_results.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    run = tmp_path / "eval" / "K25-pa" / "seed0"
    run.mkdir(parents=True)
    pd.DataFrame(
        {
            "iteration": [400, 400, 800, 800],
            "score_threshold": [0.2, 0.8, 0.2, 0.8],
            "mask_threshold": [0.5, 0.7, 0.5, 0.7],
            "dilate": [True, False, False, True],
            "map": [0.10, 0.15, 0.30, 0.20],
            "aji": [0.40, 0.45, 0.55, 0.50],
        }
    ).to_csv(run / "validation.csv", index=False)
    (run / "chosen.json").write_text(json.dumps({"iteration": 800}))
    pd.DataFrame(
        {"map": [0.2, 0.4], "aji": [0.5, 0.6], "recall_50": [0.6, 0.8], "precision_50": [1, 0.5]}
    ).to_csv(run / "chosen_test.csv", index=False)
    (tmp_path / "eval" / "classical").mkdir()
    pd.DataFrame(
        {"map": [0.1], "aji": [0.4], "recall_50": [0.5], "precision_50": [0.3], "n_images": [2]}
    ).to_csv(tmp_path / "eval" / "classical" / "kumar.summary.csv", index=False)
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "table3.md").write_text("## table3\n\n| image | K25-pa |\n")
    block = tool.real_long_block(tmp_path, 12.0, 2)
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in block.splitlines()
        if line.startswith("| K25-pa") or line.startswith("| Otsu")
    ]
    assert rows == [
        ["K25-pa", "400", "0.15", "0.45", "0.8 / 0.7, none"],  # the best of the grid at 400
        ["K25-pa", "800 (chosen)", "0.3", "0.55", "0.2 / 0.5, none"],
        ["K25-pa", "0.3", "0.55", "0.7", "0.75"],  # test means: mAP, AJI, R@0.5, P@0.5
        ["Otsu + watershed", "0.1", "0.4", "0.5", "0.3"],
    ]
    assert block.endswith("| image | K25-pa |\n" + tool.LONG_END)
    # a pretraining model (no validation split, nothing chosen) is left out of both tables;
    # the same block serves config/real-pretrained.yaml under its own markers
    (tmp_path / "eval" / "SynthHE-pa" / "seed0").mkdir(parents=True)
    pretrained = tool.real_long_block(tmp_path, 12.0, 2, run="real-pretrained")
    assert "| SynthHE" not in pretrained and "config/real-pretrained.yaml" in pretrained
    assert pretrained.startswith(tool.PRETRAINED_START)
    assert pretrained.endswith(tool.PRETRAINED_END)
    assert sum(line.startswith("| K25-pa") for line in pretrained.splitlines()) == 3
    # a validation.csv written before dilation was chosen was dilated throughout
    pd.read_csv(run / "validation.csv").drop(columns="dilate").to_csv(
        run / "validation.csv", index=False
    )
    assert "| 0.2 / 0.5, 3×3 " in tool.real_long_block(tmp_path, 12.0, 2)
