"""Paired significance test over per-image metric values (the paper's Table 3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["WilcoxonResult", "wilcoxon"]


@dataclass(frozen=True)
class WilcoxonResult:
    """Outcome of :func:`wilcoxon`.

    ``n`` is the number of pairs tested (after dropping NaN pairs; pairs with zero difference are
    counted here though the test itself discards them), ``median_difference`` the median of
    ``a - b`` over those pairs (positive: ``a`` tends to be higher).
    """

    statistic: float
    p_value: float
    n: int
    median_difference: float


def wilcoxon(
    per_image_a: Sequence[float] | np.ndarray | pd.Series,
    per_image_b: Sequence[float] | np.ndarray | pd.Series,
) -> WilcoxonResult:
    """Paired two-sided Wilcoxon signed-rank test of two methods' per-image values.

    Values are paired by position (a Series' index is not used for alignment), since both come
    from the same image list. Pairs where either value is NaN are dropped, as a metric can be
    undefined on some image. If every remaining difference is zero the methods are
    indistinguishable: the result is ``p_value = 1.0`` (scipy would raise). Raises ValueError
    when the inputs differ in length or fewer than 2 pairs remain.
    """
    a = np.asarray(per_image_a, dtype=float)
    b = np.asarray(per_image_b, dtype=float)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"expected 1-D per-image values, got shapes {a.shape} and {b.shape}")
    if a.size != b.size:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size} per-image values")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n < 2:
        raise ValueError(f"the Wilcoxon test needs at least 2 non-NaN pairs, got {n}")
    diff = a - b
    median = float(np.median(diff))
    if not np.any(diff != 0):
        return WilcoxonResult(statistic=0.0, p_value=1.0, n=n, median_difference=median)

    from scipy.stats import wilcoxon as _scipy_wilcoxon  # deferred: scipy.stats is slow to import

    res = _scipy_wilcoxon(a, b, alternative="two-sided")
    return WilcoxonResult(
        statistic=float(res.statistic), p_value=float(res.pvalue), n=n, median_difference=median
    )
