"""``derive regions``: fully annotated regions as a careful annotator draws them, and the
annotation effort they cost (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from nuclei_pa.cli import main
from nuclei_pa.data.derive import DeriveReport, derive, region_sample, region_windows
from nuclei_pa.data.effort import Effort, effort_of
from nuclei_pa.io.dataset import Sample, read_split
from tests.conftest import grid_sample


def test_regions_cover_the_fraction_and_keep_every_nucleus_they_meet():
    s = grid_sample("img", n_side=8, size=128, radius=4)  # 64 nuclei, 16 px apart
    out = region_sample(s, 0.25, 4, seed=0)
    # 4 regions of 1/16 of the area each: 32 × 32 px, not overlapping
    assert out.region.sum() == 4 * 32 * 32
    windows = out.meta["regions_yxhw"]
    assert len(windows) == 4 and all(w[2:] == [32, 32] for w in windows)
    met = set(np.unique(s.labels[out.region]).tolist()) - {0}
    kept = set(np.unique(s.labels[out.labels > 0]).tolist())
    assert kept == met  # every nucleus meeting a region, no other
    for lab in met:  # kept whole, even where a region's edge cuts it
        assert np.array_equal(out.labels[s.labels == lab] > 0, np.ones((s.labels == lab).sum()))
    assert np.array_equal(out.image, s.image)


def test_a_fraction_of_the_nuclei_outside_is_kept():
    s = grid_sample("img", n_side=8, size=128, radius=4)
    inside = region_sample(s, 0.25, 4, seed=0)
    more = region_sample(s, 0.25, 4, seed=0, outside_fraction=0.5)
    assert np.array_equal(more.region, inside.region)
    outside = 64 - inside.n_instances
    assert more.n_instances == inside.n_instances + int(np.floor(outside * 0.5 + 0.5))


def test_regions_are_seeded_per_image():
    s = grid_sample("img", n_side=8, size=128, radius=4)
    a, b = region_sample(s, 0.25, 2, seed=0), region_sample(s, 0.25, 2, seed=0)
    assert np.array_equal(a.region, b.region) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(region_sample(s, 0.25, 2, seed=1).region, a.region)


def test_overlapping_regions_merge_and_count_once():
    # two regions of 0.45 of the area each cannot both fit apart: they overlap and merge
    rng = np.random.default_rng(0)
    windows = region_windows((100, 100), 0.9, 2, rng)
    assert len(windows) == 2
    s = grid_sample("img", n_side=4, size=100, radius=4)
    report = DeriveReport()
    (out,) = derive([s], "regions", 0.9, 0, report, count=2)
    assert report.regions == 1
    assert out.region.sum() < 2 * 67 * 67  # the union, not the sum
    assert "1 fully annotated regions" in str(report)


def test_effort_counts_nuclei_and_region_boundaries():
    s = grid_sample("img", n_side=8, size=128, radius=4)
    out = region_sample(s, 0.25, 4, seed=0)
    effort = effort_of([out])
    assert (effort.nuclei, effort.regions, effort.ignore_areas) == (out.n_instances, 4, 0)
    assert effort.units() == out.n_instances + 4 * 2.0
    assert effort.units(region_cost=0.5) == out.n_instances + 2.0
    ignore = np.zeros((128, 128), dtype=bool)
    ignore[:5, :5] = ignore[50:60, 50:60] = True
    plain = Effort()
    plain.add(Sample("x", s.image, s.labels, ignore=ignore))
    assert plain.units() == 64 + 2 * 1.0  # two ignore areas drawn, one unit each


def test_cli_writes_regions_and_prints_the_effort(tiny_split, tmp_path, capsys):
    out = tmp_path / "reg"
    args = ["derive", "regions", str(tiny_split), "-o", str(out), "--fraction", "0.25"]
    assert main([*args, "--count", "2", "--outside-fraction", "0.1"]) == 0
    samples = list(read_split(out))
    assert all(
        s.region is not None and s.region.mean() == pytest.approx(0.25, abs=0.01) for s in samples
    )
    printed = capsys.readouterr().out
    assert "6 fully annotated regions" in printed and "regions × 2" in printed
    assert main([*args, "--count", "0"]) == 2
    assert "--count must be ≥ 1" in capsys.readouterr().err


def _plan_config(**trainset):
    import yaml

    from tests.test_workflow import ROOT

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    dataset = next(iter(cfg["datasets"]))
    cfg["trainsets"]["R25"] = {"dataset": dataset, **trainset}
    return cfg


def test_workflow_trainsets_take_regions():
    from nuclei_pa.plan.experiments import build_plan

    plan = build_plan(_plan_config(derive="regions", fraction=0.25, count=4, outside_fraction=0.1))
    ts = plan.trainsets["R25"]
    assert (ts.derive, ts.fraction, ts.count, ts.outside_fraction) == ("regions", 0.25, 4, 0.1)


@pytest.mark.parametrize(
    ("trainset", "key"),
    [
        ({"derive": "regions", "count": 0}, "trainsets.R25.count"),
        ({"derive": "regions", "outside_fraction": 2}, "trainsets.R25.outside_fraction"),
        ({"derive": "remove", "count": 3}, "trainsets.R25.count"),
    ],
)
def test_bad_region_trainsets_name_the_key(trainset, key):
    from nuclei_pa.errors import ConfigError
    from nuclei_pa.plan.experiments import build_plan

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_plan(_plan_config(**trainset))
