"""Rewrite the README's result blocks from finished runs.

    python tools/readme_results.py --wall-minutes 14.2          # "What you should see"
    python tools/readme_results.py --real --wall-minutes 28.0   # "On real data"
    python tools/readme_results.py --pa-bench results/bench_pa_real/fluo results/bench_pa_real/kumar
    python tools/readme_results.py --reproducibility results/bench_reproducibility

Copies Table 1, the findings table and Figure 4 of ``results/`` (with ``--real``: of
``results/real-cpu/``, plus Table 3) into the README between its ``<!-- results:start -->`` …
``<!-- results:end -->`` (``<!-- real:start -->`` … ``<!-- real:end -->``) markers and the figure
into ``docs/``, so the numbers people read are the ones the current code produced, never typed
by hand.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"
REAL_START, REAL_END = "<!-- real:start -->", "<!-- real:end -->"
PA_START, PA_END = "<!-- pa-bench:start -->", "<!-- pa-bench:end -->"
REPRO_START, REPRO_END = "<!-- repro:start -->", "<!-- repro:end -->"


def pa_bench_block(runs: list[Path]) -> str:
    """The ``summary.md`` of each ``benchmarks/bench_pa_real.py`` run, one after the other, each
    followed by its ``cost.md`` from ``benchmarks/bench_pa_cost.py`` when there is one."""
    parts = [
        "\n\n".join(
            (run / name).read_text().strip()
            for name in ("summary.md", "cost.md")  # cost.md: bench_pa_cost.py, when run
            if (run / name).is_file()
        )
        for run in runs
    ]
    return PA_START + "\n" + "\n\n".join(parts) + "\n" + PA_END


def repro_block(run: Path) -> str:
    """The ``summary.md`` of a ``benchmarks/bench_reproducibility.py`` run."""
    return REPRO_START + "\n" + (run / "summary.md").read_text().strip() + "\n" + REPRO_END


def replace_block(readme: Path, start: str, end: str, block: str) -> None:
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: markers {start} … {end} not found")
    readme.write_text(
        re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    )


def findings_table(findings_md: str) -> tuple[str, str]:
    """The summary sentence and the claim table of ``results/findings.md``."""
    lines = findings_md.splitlines()
    summary = next(line for line in lines if line.startswith("Of ") and "claims:" in line)
    table = [line for line in lines if line.startswith("|")]
    return summary, "\n".join(table)


def table_lines(path: Path) -> str:
    """The markdown table rows of a table file (its title and footer left out)."""
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("|"))


def real_block(results: Path, wall_minutes: float, cores: int) -> str:
    full = results.resolve()
    where = full.relative_to(ROOT) if full.is_relative_to(ROOT) else results
    table3 = (results / "tables" / "table3.md").read_text().strip()
    table3 = "\n".join(line for line in table3.splitlines() if not line.startswith("## "))
    summary, claims = findings_table((results / "findings.md").read_text())
    return f"""{REAL_START}
`snakemake --configfile config/real-cpu.yaml --cores {cores}` on a {cores}-core CPU took
{wall_minutes:.1f} minutes (slim model from scratch, 256-px training patches, batch 2).

Table 3 (`{where}/tables/table3.md`): per-image AJI on Kumar's test images present
(same-organ and unseen-organ groups), each model at its best-mAP checkpoint:

{table3.strip()}

Table 1 (`{where}/tables/table1.md`) on the held-out real fluorescence images:

{table_lines(results / "tables" / "table1.md")}

Findings (`{where}/findings.md`): {summary}

{claims}

Figure 4 on the real fluorescence images (`{where}/figures/figure4.png`):

![Figure 4 on real fluorescence images](docs/figure4-real.png)
{REAL_END}"""


def block(results: Path, wall_minutes: float, cores: int) -> str:
    table1 = table_lines(results / "tables" / "table1.md")
    summary, claims = findings_table((results / "findings.md").read_text())
    return f"""{START}
The workflow `make demo` runs (`snakemake --cores {cores}`, seed 0) took {wall_minutes:.1f}
minutes on a {cores}-core CPU (`python benchmarks/bench_workflow.py` prints the time per rule).
Table 1 of that run (`results/tables/table1.md`; slim model trained from scratch, batch 2; the
best-mAP checkpoint of each model, as the paper, with 95 % intervals over the test images):

{table1}

Findings (`results/findings.md`): {summary}

{claims}

Figure 4 (`results/figures/figure4.png`):

![Figure 4 of the default run](docs/figure4.png)
{END}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="default: results/ (--real: results/real-cpu)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--wall-minutes", type=float)
    parser.add_argument(
        "--pa-bench",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="bench_pa_real.py output folders: the model section's block",
    )
    parser.add_argument(
        "--reproducibility",
        type=Path,
        metavar="RUN",
        help="a bench_reproducibility.py output folder: the ranges over seeds",
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--real", action="store_true", help="the real-data run's block")
    args = parser.parse_args()
    if args.pa_bench or args.reproducibility:
        if args.pa_bench:
            replace_block(args.readme, PA_START, PA_END, pa_bench_block(args.pa_bench))
        if args.reproducibility:
            replace_block(args.readme, REPRO_START, REPRO_END, repro_block(args.reproducibility))
        print(f"updated {args.readme}")
        return
    if args.wall_minutes is None:
        parser.error("--wall-minutes is required (the run's wall-clock time)")
    results = args.results or ROOT / ("results/real-cpu" if args.real else "results")
    start, end = (REAL_START, REAL_END) if args.real else (START, END)
    make = real_block if args.real else block
    figure = ROOT / "docs" / ("figure4-real.png" if args.real else "figure4.png")
    text = args.readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{args.readme}: markers {start} … {end} not found")
    new = re.sub(
        re.escape(start) + ".*?" + re.escape(end),
        lambda _: make(results, args.wall_minutes, args.cores),
        text,
        flags=re.S,
    )
    figure.parent.mkdir(exist_ok=True)
    shutil.copyfile(results / "figures" / "figure4.png", figure)
    args.readme.write_text(new)
    print(f"updated {args.readme} and {figure.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
