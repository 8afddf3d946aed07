"""The findings report: each paper claim judged from learning curves with hand-set numbers."""

import pandas as pd
import pytest

from nuclei_pa.report.findings import ROLES, check_claims, findings_markdown, write_findings


def curve(points):
    """A learning curve from (iteration, map, aji, precision, recall, ncs) tuples."""
    return pd.DataFrame(
        [
            {
                "iteration": it,
                "map": m,
                "aji": a,
                "aji_kumar": a,
                "ncs": n,
                "precision_50": p,
                "recall_50": r,
            }
            for it, m, a, p, r, n in points
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
    return {f.claim: f.passed for f in check_claims(curves, roles)}


def test_paper_like_curves_pass_every_claim():
    assert verdicts(paper_like()) == dict.fromkeys(range(1, 7), True)


def test_best_checkpoint_is_chosen_by_map():
    c = paper_like()
    # DH25-pa's best mAP (0.37) is at iteration 100: 0.37 / 0.40 = 0.925 ≥ 0.9 passes;
    # with a later, lower-mAP checkpoint of higher AJI, the verdict still uses iteration 100
    c["DH25-pa"] = [curve([(50, 0.20, 0.99, 0.9, 0.6, 0.5), (100, 0.37, 0.66, 0.9, 0.86, 0.7)])]
    found = {f.claim: f for f in check_claims(c)}
    assert "AJI 0.660 vs 0.700 (0.94×)" in found[3].measured


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
    result = verdicts(c)
    assert result[claim] is False


def test_claim_four_compares_partial_pa_with_the_crop_baseline():
    c = paper_like()
    c["DH25crop-baseline"] = [curve([(100, 0.38, 0.56, 0.86, 0.75, 0.62)])]  # mAP above pa
    assert verdicts(c)[4] is False


def test_seeds_are_judged_on_the_mean_and_shown_with_spread():
    c = paper_like()
    lo = curve([(50, 0.2, 0.5, 0.9, 0.6, 0.55), (100, 0.33, 0.64, 0.91, 0.86, 0.7)])
    hi = curve([(50, 0.2, 0.5, 0.9, 0.6, 0.55), (100, 0.41, 0.68, 0.91, 0.86, 0.7)])
    c["DH25-pa"] = [lo, hi]  # mean mAP 0.37 ≥ 0.36 although one seed alone (0.33) is below
    for m in c:
        if m != "DH25-pa":
            c[m] = c[m] * 2
    found = {f.claim: f for f in check_claims(c)}
    assert found[3].passed
    assert "mAP 0.370 ± 0.057 vs 0.400 ± 0.000" in found[3].measured


def test_roles_rename_models_and_missing_curves_are_named():
    c = {f"my-{k}": v for k, v in paper_like().items()}
    roles = {role: f"my-{name}" for role, name in ROLES.items()}
    assert all(verdicts(c, roles).values())
    with pytest.raises(ValueError, match="DH25-pa"):
        check_claims({k: v for k, v in paper_like().items() if k != "DH25-pa"})


def test_report_files(tmp_path):
    findings = check_claims(paper_like())
    write_findings(findings, tmp_path / "f.md", tmp_path / "f.csv", [0])
    md = (tmp_path / "f.md").read_text()
    assert "6 of 6 claims hold; seed 0" in md and md.count("| PASS |") == 6
    csv = pd.read_csv(tmp_path / "f.csv")
    assert list(csv["result"]) == ["PASS"] * 6 and list(csv["claim"]) == list(range(1, 7))
    assert "3 seeds (0, 1, 2)" in findings_markdown(findings, [0, 1, 2])


def test_rising_recall_at_exactly_the_threshold_passes():
    """Recall ranks 3, 1, 4, 2, 5 over five checkpoints: Σd² = 10, ρ = 1 − 6·10/(5·24) = 0.5
    exactly (scipy computes 0.49999999999999994), last > first: claim 6 holds."""
    c = paper_like()
    recalls = [0.164, 0.106, 0.239, 0.117, 0.419]
    maps = [0.30, 0.31, 0.33, 0.34, 0.37]  # best mAP last, as before
    c["DH25-pa"] = [
        curve(
            [
                (50 * (k + 1), m, 0.66, 0.9, r, 0.7)
                for k, (m, r) in enumerate(zip(maps, recalls, strict=True))
            ]
        )
    ]
    found = {f.claim: f for f in check_claims(c)}
    assert "ρ = 0.50" in found[6].measured and found[6].passed
