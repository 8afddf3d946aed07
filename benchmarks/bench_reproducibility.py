"""Do the default experiment's verdicts hold from one seed, and one machine, to the next?

    python benchmarks/bench_reproducibility.py --seeds 0 1 2             # three default runs
    python benchmarks/bench_reproducibility.py --seeds 0 --threads 1 2   # one seed, 1 and 2
                                                                         # threads per training

Each run is the workflow on the embedded default (``--configfile``) with ``seed`` (which draws
the synthetic data, the removed annotations and the training randomness) and optionally
``train.threads`` overridden, whole (what ``make demo`` runs; ``--findings-only``: up to the
findings and the models they compare), in ``OUT/<run>/``; a finished run is not redone.
Floating-point sums in a different order (another thread count, another CPU) make two runs of
one seed differ like two seeds do.

Prints, and writes to ``OUT/summary.md`` and ``OUT/summary.json``: each claim's verdict per run
and whether they agree; each compared quantity's estimate per run with its range; per model, the
final checkpoint's mAP and the largest mAP change between neighbouring checkpoints in the second
half of training (how settled training is when it stops).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_name(seed: int, threads: int | None) -> str:
    return f"seed{seed}" if threads is None else f"seed{seed}-threads{threads}"


def run_workflow(
    configfile: Path, out: Path, seed: int, threads: int | None, cores: int, everything: bool
) -> tuple[Path, float]:
    """One default run, whole or up to its findings; (its results folder, minutes it took)."""
    results = out / run_name(seed, threads)
    results.mkdir(parents=True, exist_ok=True)
    override: dict = {"seed": seed, "seeds": [seed], "results": str(results)}
    if threads is not None:
        override["train"] = {"threads": threads}
    (results / "override.yaml").write_text(yaml.safe_dump(override))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "workflow" / "Snakefile"),
        "--directory",
        str(ROOT),
        "--configfile",
        str(configfile),
        str(results / "override.yaml"),
        "--cores",
        str(cores),
        "--quiet",
        "progress",
        *([] if everything else [str(results / "findings.md")]),
    ]
    tic = time.perf_counter()
    subprocess.run(cmd, check=True)
    return results, (time.perf_counter() - tic) / 60


def stability(results: Path, seed: int) -> pd.DataFrame:
    """Per model: final mAP, and the largest |ΔmAP| between neighbouring checkpoints in the
    second half of training."""
    rows = []
    for curve_csv in sorted((results / "eval").glob(f"*/seed{seed}/curve.csv")):
        curve = pd.read_csv(curve_csv).sort_values("iteration")
        late = curve[curve["iteration"] >= curve["iteration"].max() / 2]
        rows.append(
            {
                "model": curve_csv.parent.parent.name,
                "final mAP": float(curve["map"].iloc[-1]),
                "best mAP": float(curve["map"].max()),
                "max late mAP change": float(late["map"].diff().abs().max()),
            }
        )
    return pd.DataFrame(rows)


def summarise(
    runs: dict[str, Path], seeds: dict[str, int], minutes: dict[str, float], cores: int
) -> dict:
    findings = {name: pd.read_csv(path / "findings.csv") for name, path in runs.items()}
    names = list(runs)
    first = findings[names[0]]
    claims = first.drop_duplicates("claim")[["claim", "statement"]]
    verdicts = pd.DataFrame(
        {
            name: f.drop_duplicates("claim").set_index("claim")["result"]
            for name, f in findings.items()
        }
    )
    verdicts["same in every run"] = (
        verdicts[names].nunique(axis=1).eq(1).map({True: "yes", False: "no"})
    )
    quantities = []
    for (claim, quantity), _ in first.groupby(["claim", "quantity"], sort=False):
        row = {"claim": int(claim), "quantity": quantity}
        picks = {
            n: f[(f["claim"] == claim) & (f["quantity"] == quantity)].iloc[0]
            for n, f in findings.items()
        }
        for n, p in picks.items():
            row[n] = float(p["estimate"])
            row[f"{n} verdict"] = p["verdict"]
        estimates = [row[n] for n in names]
        row["min"], row["max"] = min(estimates), max(estimates)
        row["lowest CI"] = min(float(p["ci_low"]) for p in picks.values())
        row["highest CI"] = max(float(p["ci_high"]) for p in picks.values())
        row["threshold"] = f"{picks[names[0]]['side']} {picks[names[0]]['threshold']:g}"
        quantities.append(row)
    stable = pd.concat(
        [stability(runs[n], seeds[n]).assign(run=n) for n in names], ignore_index=True
    )
    return {
        "runs": names,
        "cores": cores,
        "minutes": minutes,
        "claims": claims.to_dict("records"),
        "verdicts": verdicts.reset_index().to_dict("records"),
        "quantities": quantities,
        "stability": stable.to_dict("records"),
    }


def markdown(summary: dict, command: str) -> str:
    names = summary["runs"]
    verdicts = pd.DataFrame(summary["verdicts"])
    quantities = pd.DataFrame(summary["quantities"])
    stable = pd.DataFrame(summary["stability"])
    ranges = quantities[
        ["claim", "quantity", "threshold", *names, "min", "max", "lowest CI", "highest CI"]
    ]
    per_model = stable.groupby("model", sort=False).agg(
        final_min=("final mAP", "min"),
        final_max=("final mAP", "max"),
        late_jump_max=("max late mAP change", "max"),
    )
    per_model.columns = [
        "final mAP, lowest run",
        "final mAP, highest run",
        "largest late mAP change",
    ]
    minutes = ", ".join(f"{n} {m:.1f} min" for n, m in summary["minutes"].items())
    return (
        "\n\n".join(
            [
                f"`{command}`: {len(names)} runs of the embedded default with --cores "
                f"{summary['cores']}, one after the other ({minutes}).",
                "Verdict of each claim per run (95 % paired bootstrap intervals over test images):",
                verdicts.to_markdown(index=False),
                "Each compared quantity per run (estimates; min–max over runs; the lowest and "
                "highest interval bound of any run):",
                ranges.to_markdown(index=False, floatfmt=".3f"),
                "Training stability per model: final-checkpoint mAP over runs, and the largest mAP "
                "change between neighbouring checkpoints in the second half of training:",
                per_model.reset_index().to_markdown(index=False, floatfmt=".3f"),
            ]
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="train.threads values to run each seed with",
    )
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--findings-only",
        action="store_true",
        help="stop at the findings (skips Tables 2-4, the figures and their models)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench_reproducibility"))
    args = parser.parse_args()
    out = args.out.resolve()
    runs, seeds, minutes = {}, {}, {}
    for seed, threads in itertools.product(args.seeds, args.threads or [None]):
        name = run_name(seed, threads)
        print(f"== {name}", flush=True)
        runs[name], minutes[name] = run_workflow(
            args.configfile, out, seed, threads, args.cores, not args.findings_only
        )
        seeds[name] = seed
    summary = summarise(runs, seeds, minutes, args.cores)
    command = "python benchmarks/bench_reproducibility.py " + " ".join(sys.argv[1:])
    text = markdown(summary, command.strip())
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
