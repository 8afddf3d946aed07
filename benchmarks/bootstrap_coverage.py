"""How often a percentile-bootstrap 95 % interval of a mean over n test images holds the truth.

The findings (:mod:`nuclei_pa.report.findings`) give no verdict below ``MIN_TEST_IMAGES`` test
images; this is the measurement behind that rule. Per-image values are drawn from a known
distribution (a normal one and a skewed Beta(2, 5), values in [0, 1] as metrics are), the
interval is computed the way :mod:`nuclei_pa.eval.bootstrap` does (images with replacement,
percentiles of the replicate means), and the fraction of trials whose interval holds the true
mean is printed per n.

    OMP_NUM_THREADS=1 python benchmarks/bootstrap_coverage.py --trials 1000 --resamples 1000
"""

from __future__ import annotations

import argparse

import numpy as np


def coverage(draw, mean: float, n: int, trials: int, resamples: int, rng) -> float:
    """Fraction of ``trials`` samples of ``n`` values whose 95 % percentile interval of the
    mean holds ``mean``."""
    values = draw(rng, (trials, n))
    picks = rng.integers(0, n, size=(trials, resamples, n))
    means = np.take_along_axis(values[:, None, :], picks, axis=2).mean(axis=2)
    low, high = np.percentile(means, [2.5, 97.5], axis=1)
    return float(((low <= mean) & (mean <= high)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 10, 15, 20, 30])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    laws = {
        "normal(0.5, 0.1)": (lambda g, s: g.normal(0.5, 0.1, s), 0.5),
        "beta(2, 5)": (lambda g, s: g.beta(2, 5, s), 2 / 7),
    }
    print("| test images | " + " | ".join(laws) + " |")
    print("|---|" + "---|" * len(laws))
    for n in args.sizes:
        cells = [
            f"{coverage(draw, mean, n, args.trials, args.resamples, rng):.3f}"
            for draw, mean in laws.values()
        ]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print(f"\nnominal 0.95; {args.trials} trials, {args.resamples} resamples each")


if __name__ == "__main__":
    main()
