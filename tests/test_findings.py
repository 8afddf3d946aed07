"""The findings report: each paper claim judged, with its interval, from hand-set per-image
metrics."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nuclei_pa.eval.folders import checkpoint_csv, read_checkpoint_csvs
from nuclei_pa.report.curves import read_runs
from nuclei_pa.report.findings import (
    MIN_TEST_IMAGES,
    READINGS,
    ROLES,
    check_claims,
    findings_markdown,
    write_findings,
)

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "partially-labeled-exemplars.txt"

#: Per-image offsets around each checkpoint's value, the same for every model (paired, mean 0):
#: differences between models are then exact at every resample, ratios nearly so. 20 images,
#: the fewest that get a verdict.
OFFSETS = (-0.03, -0.01, 0.0, 0.01, 0.03) * 4


def curve(points, offsets=OFFSETS):
    """A run's per-image metrics from (iteration, map, aji, precision, recall, ncs) tuples."""
    return pd.DataFrame(
        [
            {
                "iteration": it,
                "image": f"img{k}",
                "map": m + o,
                "aji": a + o,
                "aji_kumar": a + o,
                "ncs": n + o,
                "precision_50": p + o,
                "recall_50": r + o,
            }
            for it, m, a, p, r, n in points
            for k, o in enumerate(offsets)
        ]
    )


def paper_like():
    """Curves shaped like the paper's Table 1: every claim holds."""
    return {
        "DH100-baseline": [
            curve([(50, 0.30, 0.60, 0.90, 0.80, 0.70), (100, 0.40, 0.70, 0.92, 0.90, 0.72)])
        ],
        "DH25-baseline": [
            curve([(50, 0.10, 0.30, 0.88, 0.40, 0.30), (100, 0.12, 0.35, 0.85, 0.50, 0.35)])
        ],
        "DH25crop-baseline": [
            curve([(50, 0.20, 0.50, 0.85, 0.70, 0.60), (100, 0.25, 0.55, 0.86, 0.75, 0.62)])
        ],
        "DH100-pa": [
            curve([(50, 0.35, 0.65, 0.90, 0.85, 0.71), (100, 0.39, 0.70, 0.90, 0.91, 0.73)])
        ],
        "DH25-pa": [
            curve([(50, 0.20, 0.50, 0.90, 0.60, 0.55), (100, 0.37, 0.66, 0.91, 0.86, 0.70)])
        ],
    }


def verdicts(curves, roles=None):
    return {f.claim: f.verdict for f in check_claims(curves, roles)}


def test_paper_like_curves_pass_every_claim():
    assert verdicts(paper_like()) == dict.fromkeys(range(1, 7), "PASS")


def test_the_final_checkpoint_is_judged_not_the_luckiest():
    c = paper_like()
    # a best-mAP checkpoint of 0.50 at iteration 50 would pass; the final one, 0.30, is 0.75×
    c["DH25-pa"] = [curve([(50, 0.50, 0.99, 0.9, 0.6, 0.5), (100, 0.30, 0.66, 0.9, 0.86, 0.7)])]
    found = {f.claim: f for f in check_claims(c)}
    assert found[3].verdict == "FAIL"
    assert "mAP DH25-pa / DH100-baseline: 0.300 vs 0.400: 0.75×" in found[3].measured


@pytest.mark.parametrize(
    ("model", "points", "claim"),
    [
        # recall 0.65 > 0.7 × 0.90 = 0.63: not "much lower"
        ("DH25-baseline", [(100, 0.12, 0.35, 0.85, 0.65, 0.35)], 1),
        # precision 0.77 < 0.85 × 0.92 = 0.782: greatly affected
        ("DH25-baseline", [(100, 0.12, 0.35, 0.77, 0.50, 0.35)], 1),
        # crop baseline no better than partial baseline
        ("DH25crop-baseline", [(100, 0.11, 0.55, 0.86, 0.75, 0.62)], 2),
        # mAP 0.35 < 0.9 × 0.40 = 0.36
        ("DH25-pa", [(50, 0.20, 0.5, 0.9, 0.6, 0.5), (100, 0.35, 0.66, 0.9, 0.86, 0.7)], 3),
        # recall 0.88 < 0.90 − 0.01
        ("DH100-pa", [(100, 0.39, 0.70, 0.90, 0.88, 0.73)], 5),
        # recall falls with training
        ("DH25-pa", [(50, 0.20, 0.5, 0.9, 0.9, 0.5), (100, 0.37, 0.66, 0.9, 0.86, 0.7)], 6),
    ],
)
def test_each_claim_fails_when_its_numbers_do_not_hold(model, points, claim):
    c = paper_like()
    c[model] = [curve(points)]
    assert verdicts(c)[claim] == "FAIL"


def test_claim_four_compares_partial_pa_with_the_crop_baseline():
    c = paper_like()
    c["DH25crop-baseline"] = [curve([(100, 0.38, 0.56, 0.86, 0.75, 0.62)])]  # mAP above pa
    assert verdicts(c)[4] == "FAIL"


def test_a_mean_on_the_threshold_with_image_spread_is_inconclusive():
    """DH25-pa's mAP is 0.36 on average, exactly 0.9 × 0.40, but varies ±0.2 between images
    unlike the baseline's: the interval straddles 0.9, so claim 3 is neither PASS nor FAIL."""
    c = paper_like()
    spread = (-0.2, 0.1, 0.2, -0.1, 0.0) * 4
    c["DH25-pa"] = [
        curve([(50, 0.20, 0.5, 0.9, 0.6, 0.5), (100, 0.36, 0.66, 0.9, 0.86, 0.7)], spread)
    ]
    found = {f.claim: f for f in check_claims(c)}
    assert found[3].verdict == "INCONCLUSIVE"
    map_cmp = found[3].comparisons[0]
    assert map_cmp.interval.low < 0.9 < map_cmp.interval.high
    assert map_cmp.interval.estimate == pytest.approx(0.9)


def test_seeds_are_averaged_and_their_spread_widens_the_interval():
    """Final mAP 0.33 and 0.41 over two seeds: mean 0.37 (0.925×, above 0.9), but a resample
    drawing seed 0 twice gives 0.825×, seed 1 twice 1.025×: the seeds do not settle it."""
    c = paper_like()
    lo = curve([(50, 0.2, 0.5, 0.9, 0.6, 0.55), (100, 0.33, 0.64, 0.91, 0.86, 0.7)])
    hi = curve([(50, 0.2, 0.5, 0.9, 0.6, 0.55), (100, 0.41, 0.68, 0.91, 0.86, 0.7)])
    c["DH25-pa"] = [lo, hi]
    for m in c:
        if m != "DH25-pa":
            c[m] = c[m] * 2
    found = {f.claim: f for f in check_claims(c)}
    assert found[3].verdict == "INCONCLUSIVE"
    assert "mAP DH25-pa / DH100-baseline: 0.370 vs 0.400: 0.92× [0.82, 1.03]" in found[3].measured
    assert found[4].verdict == "PASS"  # 0.33 and 0.41 are both above the crop baseline's 0.25


def test_roles_rename_models_and_missing_or_mismatched_runs_are_named():
    c = {f"my-{k}": v for k, v in paper_like().items()}
    roles = {role: f"my-{name}" for role, name in ROLES.items()}
    assert set(verdicts(c, roles).values()) == {"PASS"}
    with pytest.raises(ValueError, match="DH25-pa"):
        check_claims({k: v for k, v in paper_like().items() if k != "DH25-pa"})
    c = paper_like()
    c["DH25-pa"] = [curve([(100, 0.37, 0.66, 0.9, 0.86, 0.7)], OFFSETS[:4])]
    with pytest.raises(ValueError, match="same test images"):
        check_claims(c)


def test_report_files(tmp_path):
    findings = check_claims(paper_like())
    write_findings(findings, tmp_path / "f.md", tmp_path / "f.csv", [0])
    md = (tmp_path / "f.md").read_text()
    assert "Of 6 claims: 6 PASS, 0 INCONCLUSIVE, 0 FAIL; seed 0" in md
    assert md.count("| PASS |") == 6
    csv = pd.read_csv(tmp_path / "f.csv")
    # one row per compared quantity: 2 + 4 + 2 + 2 + 3 + 2
    assert list(csv.groupby("claim").size()) == [2, 4, 2, 2, 3, 2]
    assert set(csv["result"]) == {"PASS"} and set(csv["verdict"]) == {"PASS"}
    row = csv[csv["quantity"] == "mAP DH25-pa − DH25crop-baseline"].iloc[0]
    assert (row["estimate"], row["ci_low"], row["ci_high"]) == pytest.approx((0.12, 0.12, 0.12))
    assert "3 seeds (0, 1, 2)" in findings_markdown(findings, [0, 1, 2])


def test_claim_six_needs_a_rise_the_partial_baseline_does_not_share():
    """Both partial models' recall and NCS climb from 0.1 to 0.5: each rises, as every model
    learning from scratch does, but the contrast is exactly 0, so claim 6 fails."""
    c = paper_like()
    rise = [(50, 0.1, 0.3, 0.9, 0.1, 0.1), (100, 0.37, 0.66, 0.9, 0.5, 0.5)]
    c["DH25-pa"] = [curve(rise)]
    c["DH25-baseline"] = [curve([(it, 0.12, 0.35, 0.85, r, n) for it, _, _, _, r, n in rise])]
    recall, ncs = {f.claim: f for f in check_claims(c)}[6].comparisons
    assert (recall.interval.low, recall.interval.high) == pytest.approx((0.0, 0.0))
    assert recall.verdict == ncs.verdict == "FAIL"
    assert "DH25-pa 0.100 → 0.500 vs DH25-baseline 0.100 → 0.500" in recall.detail


def test_claim_six_compares_the_halves_of_the_curves():
    """Five checkpoints: early = mean of the first two, late = of the last two, the middle one
    in neither. pa recall 0.1, 0.2, [0.9], 0.5, 0.6: 0.15 → 0.55, +0.40; baseline 0.3, 0.5,
    [0.0], 0.4, 0.3: 0.40 → 0.35, −0.05; contrast +0.45, exact at every paired resample."""
    c = paper_like()
    pa, base = (0.1, 0.2, 0.9, 0.5, 0.6), (0.3, 0.5, 0.0, 0.4, 0.3)
    c["DH25-pa"] = [curve([(50 * (k + 1), 0.37, 0.66, 0.9, r, 0.7) for k, r in enumerate(pa)])]
    c["DH25-baseline"] = [
        curve([(50 * (k + 1), 0.12, 0.35, 0.85, r, 0.35) for k, r in enumerate(base)])
    ]
    found = {f.claim: f for f in check_claims(c)}
    recall, ncs = found[6].comparisons
    assert recall.interval.estimate == pytest.approx(0.45)
    assert (recall.interval.low, recall.interval.high) == pytest.approx((0.45, 0.45))
    assert recall.verdict == "PASS"
    assert ncs.interval.estimate == pytest.approx(0.0)  # both NCS curves flat: no contrast
    assert found[6].verdict == "FAIL"


def test_claim_six_is_inconclusive_with_one_checkpoint():
    c = paper_like()
    c["DH25-pa"] = [curve([(100, 0.37, 0.66, 0.9, 0.86, 0.7)])]
    recall, _ = {f.claim: f for f in check_claims(c)}[6].comparisons
    assert recall.verdict == "INCONCLUSIVE" and "one checkpoint" in recall.detail


def test_too_few_test_images_make_every_verdict_inconclusive(tmp_path):
    """The paper-like numbers pass every claim on 20 images; on 19 no verdict is given, and
    the reason is printed with each quantity and in the report's summary."""
    assert MIN_TEST_IMAGES == 20

    def on(n_images):
        return {
            m: [r[r["image"].isin([f"img{k}" for k in range(n_images)])] for r in runs]
            for m, runs in paper_like().items()
        }

    assert verdicts(on(20)) == dict.fromkeys(range(1, 7), "PASS")
    findings = check_claims(on(19))
    assert {f.verdict for f in findings} == {"INCONCLUSIVE"}
    assert all("too few test images (n=19 < 20)" in str(c) for f in findings for c in f.comparisons)
    md = findings_markdown(findings, [0])
    assert "Every verdict is INCONCLUSIVE: too few test images (n=19 < 20)." in md
    write_findings(findings, tmp_path / "f.md", tmp_path / "f.csv", [0])
    assert set(pd.read_csv(tmp_path / "f.csv")["reason"]) == {"too few test images (n=19 < 20)"}


def _words(text: str) -> str:
    """Letters and digits only, lower case: the paper's text breaks lines and hyphenates
    ("DH25cropbaseline"), and prints quotes as ‘‘ ’’."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def test_each_threshold_quotes_the_papers_words_verbatim(tmp_path):
    if not PAPER.is_file():
        pytest.skip(f"the paper's text {PAPER} is not here (kept outside the repository)")
    paper = _words(PAPER.read_text())
    for claim, readings in READINGS.items():
        for quote, _ in readings:
            for part in quote.split("[...]"):
                assert _words(part) in paper, (claim, part)
    findings = check_claims(paper_like())
    write_findings(findings, tmp_path / "f.md", tmp_path / "f.csv", [0])
    md = (tmp_path / "f.md").read_text()
    assert '- claim 1: "its detection recall is extremely low" → R@0.5 at most 0.7×' in md
    paper_column = pd.read_csv(tmp_path / "f.csv").groupby("claim")["paper"].first()
    assert "extremely low" in paper_column[1] and "increases as the training" in paper_column[6]


def test_runs_are_read_from_evaluation_folders(tmp_path):
    for model in ("a", "b"):
        for it in (50, 100):
            folder = tmp_path / model
            folder.mkdir(exist_ok=True)
            curve([(it, 0.3, 0.5, 0.9, 0.8, 0.6)]).drop(columns="iteration").to_csv(
                checkpoint_csv(folder, it), index=False
            )
            (folder / f"iter_{it:06d}.summary.csv").write_text("map\n0.3\n")  # not a run row
    run = read_checkpoint_csvs(tmp_path / "a")
    assert list(run["iteration"]) == [50] * 20 + [100] * 20
    runs = read_runs(["a", "b"], [tmp_path / "a", tmp_path / "b"])
    assert list(runs) == ["a", "b"] and len(runs["b"][0]) == 40
    with pytest.raises(FileNotFoundError, match="no per-checkpoint evaluations"):
        read_checkpoint_csvs(tmp_path)
    assert np.isclose(run["map"].mean(), 0.3)
