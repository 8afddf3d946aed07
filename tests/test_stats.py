"""Paired Wilcoxon signed-rank test over per-image values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from nuclei_pa.eval.stats import WilcoxonResult, wilcoxon

A = [0.61, 0.72, 0.55, 0.68, 0.59, 0.70, 0.64, 0.66]
B = [0.58, 0.70, 0.57, 0.61, 0.52, 0.69, 0.60, 0.68]


def test_matches_scipy_on_a_small_example():
    res = wilcoxon(A, B)
    ref = scipy.stats.wilcoxon(A, B, alternative="two-sided")
    assert isinstance(res, WilcoxonResult)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.n == 8
    # differences 0.03, 0.02, -0.02, 0.07, 0.07, 0.01, 0.04, -0.02 -> sorted middle two 0.02, 0.03
    assert res.median_difference == pytest.approx(0.025)


def test_exact_p_value_by_hand():
    # a > b on all 5 images: W- = 0, and only 2 of the 2**5 sign patterns are as extreme
    # (all + or all -) -> two-sided p = 2/32.
    res = wilcoxon([5, 6, 7, 8, 9], [4.9, 5.8, 6.7, 7.6, 8.5])
    assert res.statistic == 0
    assert res.p_value == pytest.approx(2 / 32)
    assert res.median_difference == pytest.approx(0.3)


def test_accepts_series_and_pairs_by_position():
    a = pd.Series(A, index=list("abcdefgh"))
    b = pd.Series(B, index=list("hgfedcba"))  # different index: still paired by position
    assert wilcoxon(a, b) == wilcoxon(A, B)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length: 3 vs 2"):
        wilcoxon([1, 2, 3], [1, 2])


def test_fewer_than_two_pairs_is_an_error():
    with pytest.raises(ValueError, match="at least 2"):
        wilcoxon([1.0], [2.0])
    with pytest.raises(ValueError, match="at least 2 non-NaN pairs, got 1"):
        wilcoxon([1.0, np.nan, 3.0], [2.0, 2.0, np.nan])


def test_nan_pairs_are_dropped():
    a = [*A, np.nan, 0.5]
    b = [*B, 0.4, np.nan]
    res = wilcoxon(a, b)
    assert res == wilcoxon(A, B)
    assert res.n == 8


def test_all_zero_differences_give_p_one():
    res = wilcoxon([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert res.p_value == 1.0
    assert res.statistic == 0.0
    assert res.median_difference == 0.0
    assert res.n == 3
