"""Bootstrap intervals over test images (and seeds), and the verdict of an interval."""

from __future__ import annotations

import numpy as np
import pytest

from nuclei_pa.eval.bootstrap import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Interval,
    combine,
    compare_means,
    judge,
    mean_interval,
    resample_means,
)


def test_identical_images_give_a_point_interval():
    # every resample of [1, 1, 1] vs [2, 2, 2] has means 1 and 2: ratio exactly 0.5
    iv = compare_means([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], "ratio")
    assert (iv.estimate, iv.low, iv.high) == (0.5, 0.5, 0.5)


def test_images_are_paired_between_models():
    """b = a + 0.1 on every image: however the images vary, every paired resample differs by
    exactly 0.1, while each model's own mean varies widely with the draw."""
    a = np.array([0.1, 0.9, 0.3, 0.7, 0.5, 0.2])
    iv = compare_means(a + 0.1, a, "difference")
    assert iv.estimate == pytest.approx(0.1)
    assert iv.low == pytest.approx(0.1) and iv.high == pytest.approx(0.1)
    own = mean_interval(a)
    assert own.high - own.low > 0.3


def test_seeds_are_resampled_per_model():
    """Two seeds, flat over images, at 0.2 and 0.4: a resample draws two seeds, both seed 0
    with probability 1/4 (mean 0.2), both seed 1 with 1/4 (0.4), else 0.3. So the 2.5th and
    97.5th percentiles are 0.2 and 0.4 and the estimate is 0.3."""
    runs = [[0.2] * 5, [0.4] * 5]
    iv = mean_interval(runs)
    assert iv.estimate == pytest.approx(0.3)
    assert (iv.low, iv.high) == (pytest.approx(0.2), pytest.approx(0.4))
    draws = resample_means([runs], n_resamples=4000)[0]
    assert np.mean(np.isclose(draws, 0.2)) == pytest.approx(0.25, abs=0.03)


def test_interval_of_a_mean_has_the_textbook_width():
    """100 standard-normal values: the mean's 95 % interval is about ±1.96/√100 = ±0.196."""
    values = np.random.default_rng(3).standard_normal(100)
    iv = mean_interval(values)
    assert iv.low < iv.estimate < iv.high
    assert iv.high - iv.low == pytest.approx(2 * 1.96 / 10, rel=0.15)


def test_nan_images_are_left_out_and_mismatched_test_sets_refused():
    iv = mean_interval([0.5, np.nan, 0.5])
    assert (iv.estimate, iv.low, iv.high) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="same test images"):
        compare_means([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="difference' or 'ratio"):
        compare_means([1.0], [1.0], "quotient")


def test_deterministic():
    a, b = np.random.default_rng(0).random((2, 20))
    assert compare_means(a, b, "ratio") == compare_means(a, b, "ratio")


@pytest.mark.parametrize(
    ("low", "high", "side", "threshold", "verdict"),
    [
        (0.91, 0.99, ">=", 0.9, PASS),
        (0.90, 0.99, ">=", 0.9, PASS),  # ≥ includes the threshold itself
        (0.85, 0.95, ">=", 0.9, INCONCLUSIVE),
        (0.70, 0.89, ">=", 0.9, FAIL),
        (0.00, 0.10, ">", 0.0, INCONCLUSIVE),  # > excludes it
        (0.01, 0.10, ">", 0.0, PASS),
        (-0.2, 0.00, ">", 0.0, FAIL),
        (0.40, 0.69, "<=", 0.7, PASS),
        (0.60, 0.80, "<=", 0.7, INCONCLUSIVE),
        (0.71, 0.80, "<=", 0.7, FAIL),
        (np.nan, np.nan, ">=", 0.9, INCONCLUSIVE),
    ],
)
def test_judge(low, high, side, threshold, verdict):
    assert judge(Interval(0.0, low, high), side, threshold) == verdict


def test_combine_and_format():
    assert combine([PASS, PASS]) == PASS
    assert combine([PASS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([INCONCLUSIVE, FAIL, PASS]) == FAIL
    assert str(Interval(0.5, 0.25, 0.75)) == "0.500 [0.250, 0.750]"
    assert Interval(0.93, 0.85, 1.0).format(".2f", "×") == "0.93× [0.85, 1.00]"
    with pytest.raises(ValueError, match="side"):
        judge(Interval(0, 0, 0), "=>", 0)
