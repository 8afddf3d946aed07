"""Run the whole workflow and print its wall time and the time spent per rule.

    python benchmarks/bench_workflow.py                      # the embedded default, all cores
    python benchmarks/bench_workflow.py --configfile config/test.yaml --cores 2

Per-rule times come from the `benchmark:` files every rule writes (results/benchmarks/...).
The embedded default's target is under 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def per_rule_times(bench_dir: Path) -> pd.DataFrame:
    rows = []
    for tsv in bench_dir.rglob("*.tsv"):
        rule = tsv.relative_to(bench_dir).parts[0]
        df = pd.read_csv(tsv, sep="\t")
        rows.append(
            {
                "rule": rule,
                "seconds": float(df["s"].iloc[0]),
                "max_rss_mb": float(df["max_rss"].iloc[0]),
            }
        )
    table = pd.DataFrame(rows)
    return (
        table.groupby("rule")
        .agg(
            jobs=("seconds", "size"),
            total_s=("seconds", "sum"),
            mean_s=("seconds", "mean"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .sort_values("total_s", ascending=False)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    results = Path(yaml.safe_load(args.configfile.read_text()).get("results", "results"))
    tic = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        str(args.configfile),
        "--cores",
        str(args.cores),
    ]
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.perf_counter() - tic
    table = per_rule_times(ROOT / results / "benchmarks")
    print(table.to_string(float_format=lambda v: f"{v:.1f}"))
    print(
        f"\nwall time: {wall / 60:.1f} min on {args.cores} cores "
        f"(sum of job times {table['total_s'].sum() / 60:.1f} min)"
    )


if __name__ == "__main__":
    main()
