"""Rewrite the README's result blocks from finished runs.

    python tools/readme_results.py --wall-minutes 14.2          # "What you should see"
    python tools/readme_results.py --real --wall-minutes 28.0   # "On real data"
    python tools/readme_results.py --pa-bench results/bench_pa_real/fluo results/bench_pa_real/kumar
    python tools/readme_results.py --reproducibility results/bench_reproducibility
    python tools/readme_results.py --annotator results/bench_annotator results/bench_annotator_kumar
    python tools/readme_results.py --mask-width FILE   # bench_mask_width.py's output
    python tools/readme_results.py --slide results/bench_slide/summary.md
    python tools/readme_results.py --pretrain results/bench_pretrain/bbbc25-pa
    python tools/readme_results.py --levers results/bench_levers/kumar25-pa
    python tools/readme_results.py --inference-levers results/bench_inference_levers/output.txt
    python tools/readme_results.py --times 14.1 9.8   # timed make demo, make test (minutes)
    python tools/readme_results.py --effort results/effort --wall-minutes 95 --cores 1
    python tools/readme_results.py --real-long results/real-long --wall-minutes 80

Copies Table 1, the findings table and Figure 4 of ``results/`` (with ``--real``: of
``results/real-cpu/``, plus Tables 3 and 4 and the run's training speed) into the README
between its ``<!-- results:start -->`` … ``<!-- results:end -->`` (``<!-- real:start -->`` …
``<!-- real:end -->``) markers and the figure into ``docs/``, so the numbers people read are
the ones the current code produced, never typed by hand.
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
ANNOTATOR_START, ANNOTATOR_END = "<!-- annotator:start -->", "<!-- annotator:end -->"
SLIDE_START, SLIDE_END = "<!-- slide:start -->", "<!-- slide:end -->"
LONG_START, LONG_END = "<!-- real-long:start -->", "<!-- real-long:end -->"
PRETRAINED_START = "<!-- real-pretrained:start -->"
PRETRAINED_END = "<!-- real-pretrained:end -->"
TIMES_START, TIMES_END = "<!-- times:start -->", "<!-- times:end -->"
PRETRAIN_START, PRETRAIN_END = "<!-- pretrain:start -->", "<!-- pretrain:end -->"
EFFORT_START, EFFORT_END = "<!-- effort:start -->", "<!-- effort:end -->"
LEVERS_START, LEVERS_END = "<!-- levers:start -->", "<!-- levers:end -->"
INFERENCE_START, INFERENCE_END = "<!-- inference-levers:start -->", "<!-- inference-levers:end -->"
MASK_WIDTH_START, MASK_WIDTH_END = "<!-- mask-width:start -->", "<!-- mask-width:end -->"


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


def annotator_block(runs: list[Path]) -> str:
    """The ``summary.md`` of each ``benchmarks/bench_annotator.py`` run (its command, the data,
    the rounds' table and what the rounds saved), one after the other."""
    parts = [(run / "summary.md").read_text().strip() for run in runs]
    return ANNOTATOR_START + "\n" + "\n\n".join(parts) + "\n" + ANNOTATOR_END


def times_block(demo_minutes: float, test_minutes: float, results: Path, cores: int) -> str:
    """The quick start's two commands, timed on one machine, with that machine's training speed
    (from the demo run's own benchmark files) so a reader can scale them to theirs."""
    speed = train_seconds_per_iteration(results)
    return f"""{TIMES_START}
Measured on a {cores}-core CPU where a slim training iteration (batch 2, one thread per job, two
jobs at once) took {speed:.2f} s: `make demo` {demo_minutes:.1f} minutes, `make test`
{test_minutes:.1f} minutes (both with `.venv` already installed).
{TIMES_END}"""


def shown_path(results: Path) -> Path:
    """A results folder as the README names it: relative to the repository when inside it."""
    full = results.resolve()
    return full.relative_to(ROOT) if full.is_relative_to(ROOT) else results


def table_without_title(path: Path) -> str:
    """A table file's markdown without its ``## `` title: its tables and the text between."""
    lines = path.read_text().strip().splitlines()
    return "\n".join(line for line in lines if not line.startswith("## ")).strip()


def summaries_block(runs: list[Path], start: str, end: str) -> str:
    """The ``summary.md`` of each benchmark run (bench_pretrain, bench_levers), in order."""
    parts = [(run / "summary.md").read_text().strip() for run in runs]
    return start + "\n" + "\n\n".join(parts) + "\n" + end


def printed_block(output: Path, start: str, end: str) -> str:
    """What a benchmark printed (saved as a file), as a code block between ``start`` and ``end``:
    ``bench_inference_levers.py`` and ``bench_mask_width.py``, whose first line is their command."""
    return f"{start}\n```\n{output.read_text().strip()}\n```\n{end}"


def effort_block(results: Path, wall_minutes: float, cores: int, conditions: str = "") -> str:
    """The effort experiment's table and reading (``tables/effort.md`` of a run of
    ``config/effort.yaml``), with its command, wall time and training speed; its figure is
    copied to ``docs/effort.png``."""
    where = shown_path(results)
    lines = (results / "tables" / "effort.md").read_text().splitlines()
    table = "\n".join(line for line in lines if line.startswith("|"))
    reading = "\n".join(line for line in lines if line.startswith("- "))
    speed = train_seconds_per_iteration(results)
    return f"""{EFFORT_START}
`snakemake --configfile config/effort.yaml --cores {cores} effort` ({where}/tables/effort.md):
one seed, 400 iterations of the slim preset per model on CPU, {wall_minutes:.0f} minutes on
{cores} core(s) of a shared 2-core machine ({speed:.2f} s per training iteration){conditions}.
Effort: 1 unit per outlined nucleus, 2 per fully annotated region; mAP and AJI at the
validation-chosen checkpoint with 95 % bootstrap intervals over test images; Δ: the metric per
1000 units minus the reference arm's (named in its column; same dataset and variant), paired
over test images.

{table}

{reading}

![mAP and AJI per arm at equal effort](docs/effort.png)
{EFFORT_END}"""


def chosen_runs(results: Path) -> list[Path]:
    """``eval/<model>/seed0`` of every model of a run that validation chose for (a pretraining
    model on synthetic images has no validation split and is not reported)."""
    return [r for r in sorted((results / "eval").glob("*/seed0")) if (r / "chosen.json").is_file()]


def validation_learning_curves(results: Path) -> str:
    """Per model and checkpoint, the best validation mAP over the grid of score and mask
    thresholds and dilation (and the AJI there; a ``validation.csv`` without a ``dilate`` column
    was dilated throughout), with the checkpoint validation chose: the learning
    curves of a run, read from ``eval/<model>/seed0/{validation.csv,chosen.json}``."""
    import json

    import pandas as pd

    rows = []
    for run in chosen_runs(results):
        curve = pd.read_csv(run / "validation.csv")
        chosen = json.loads((run / "chosen.json").read_text())
        for iteration, at in curve.groupby("iteration"):
            best = at.loc[at["map"].idxmax()]
            mark = " (chosen)" if iteration == chosen["iteration"] else ""
            rows.append(
                {
                    "model": run.parent.name,
                    "iteration": f"{iteration}{mark}",
                    "best validation mAP": round(float(best["map"]), 3),
                    "AJI there": round(float(best["aji"]), 3),
                    "score / mask threshold, dilation": (
                        f"{best['score_threshold']:.1f} / {best['mask_threshold']:.1f}, "
                        + ("3×3" if best.get("dilate", True) else "none")
                    ),
                }
            )
    return pd.DataFrame(rows).to_markdown(index=False)


#: What differs between the Kumar-only configs a block can come from: (config, schedule, the
#: name Table 3 gets, the README markers).
KUMAR_RUNS = {
    "real-long": (
        "config/real-long.yaml",
        "1600 iterations per model, checkpoints every 400, test-time flips on.",
        "Table 3 at 1600 iterations",
        (LONG_START, LONG_END),
    ),
    "real-pretrained": (
        "config/real-pretrained.yaml",
        "SynthHE-pa trained 400 iterations on 60 synthetic H&E images; every Kumar model started "
        "from it and trained 800 iterations, checkpoints every 200, test-time flips on.",
        "Table 3 from the synthetic start",
        (PRETRAINED_START, PRETRAINED_END),
    ),
}


def real_long_block(
    results: Path, wall_minutes: float, cores: int, conditions: str = "", run: str = "real-long"
) -> str:
    """Kumar's Table 3 from a run of one of :data:`KUMAR_RUNS`' configs, with the validation
    learning curves that chose each model's checkpoint and thresholds, its command and time."""
    config, schedule, title, (start, end) = KUMAR_RUNS[run]
    where = shown_path(results)
    table3 = table_without_title(results / "tables" / "table3.md")
    speed = train_seconds_per_iteration(results)
    return f"""{start}
`snakemake --configfile {config} --cores {cores}`: {wall_minutes:.0f} minutes on
{cores} cores{conditions}; a training iteration took {speed:.2f} s on average (one thread per
job). {schedule}

Validation learning curves (Kumar's 3 validation images; `{where}/eval/*/seed0/validation.csv`):

{validation_learning_curves(results)}

Test means at the validation-chosen checkpoint and thresholds, 14 test images
(`{where}/eval/*/seed0/chosen_test.csv`; Otsu + watershed: `{where}/eval/classical/`):

{test_means(results)}

{title} (`{where}/tables/table3.md`), the same 14 test images:

{table3}
{end}"""


def test_means(results: Path) -> str:
    """Mean test mAP, AJI, R@0.5 and P@0.5 of each model of a run at its validation choice, and
    of Otsu + watershed on the same images."""
    import pandas as pd

    columns = {"map": "mAP", "aji": "AJI", "recall_50": "R@0.5", "precision_50": "P@0.5"}
    rows = {
        run.parent.name: pd.read_csv(run / "chosen_test.csv")[list(columns)].mean()
        for run in chosen_runs(results)
    }
    for summary in sorted((results / "eval" / "classical").glob("*.summary.csv")):
        rows["Otsu + watershed"] = pd.read_csv(summary)[list(columns)].iloc[0]
    table = pd.DataFrame(rows).T.rename(columns=columns).round(3)
    return table.rename_axis("model").reset_index().to_markdown(index=False)


def slide_block(summary: Path) -> str:
    """What ``benchmarks/bench_slide.py --summary FILE`` printed, with its command."""
    return SLIDE_START + "\n" + summary.read_text().strip() + "\n" + SLIDE_END


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


def train_seconds_per_iteration(results: Path) -> float:
    """Mean wall seconds per training iteration over a run's training jobs (Snakemake's
    benchmark files): the speed of the machine the run's times were measured on."""
    import pandas as pd

    per_iteration = []
    for tsv in sorted((results / "benchmarks" / "train").glob("*/seed*.tsv")):
        log = results / "models" / tsv.parent.name / tsv.stem / "train_log.csv"
        iterations = len(pd.read_csv(log)) if log.is_file() else None
        if iterations:
            per_iteration.append(float(pd.read_csv(tsv, sep="\t")["s"].iloc[0]) / iterations)
    return sum(per_iteration) / len(per_iteration) if per_iteration else float("nan")


def real_block(results: Path, wall_minutes: float, cores: int, conditions: str = "") -> str:
    where = shown_path(results)
    tables = {
        name: table_without_title(results / "tables" / f"{name}.md")
        for name in ("table3", "table4")
    }
    summary, claims = findings_table((results / "findings.md").read_text())
    speed = train_seconds_per_iteration(results)
    return f"""{REAL_START}
`snakemake --configfile config/real-cpu.yaml --cores {cores}` on a {cores}-core CPU took
{wall_minutes:.1f} minutes{conditions} (slim model from scratch, 256-px training patches, batch 2;
a training iteration took {speed:.2f} s on average on this machine, one thread per job, two
jobs at once).
Every model is shown at the checkpoint, score and mask thresholds and dilation its dataset's
validation images chose; test images were read only to report.

Table 1 (`{where}/tables/table1.md`) on the 25 held-out BBBC039 test images:

{table_lines(results / "tables" / "table1.md")}

Findings (`{where}/findings.md`), on the same BBBC039 test images: {summary}

{claims}

Table 3 (`{where}/tables/table3.md`): per-image AJI on Kumar's 14 test images (8 same-organ, 6
unseen-organ), training on 13 of Kumar's 16 training images (3 validate):

{tables["table3"]}

Table 4 (`{where}/tables/table4.md`; here the heterogeneous dsb-fluo set, not the paper's TNBC):
per-image AJI on its 3 test images:

{tables["table4"]}

Figure 4 on BBBC039 (`{where}/figures/figure4.png`):

![Figure 4 on BBBC039](docs/figure4-real.png)
{REAL_END}"""


def block(results: Path, wall_minutes: float, cores: int) -> str:
    table1 = table_lines(results / "tables" / "table1.md")
    summary, claims = findings_table((results / "findings.md").read_text())
    return f"""{START}
The workflow `make demo` runs (`snakemake --cores {cores}`, seed 0) took {wall_minutes:.1f}
minutes on a {cores}-core CPU (`python benchmarks/bench_workflow.py` prints the time per rule).
Table 1 of that run (`results/tables/table1.md`; slim model trained from scratch, batch 2; the
default's datasets have no validation split, so each model is shown at its final checkpoint and
the default score threshold, with 95 % intervals over the test images; the last column is the
paper's best-on-test protocol, optimistic by design):

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
    parser.add_argument(
        "--annotator",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="bench_annotator.py output folders: the simulated annotator's block",
    )
    parser.add_argument(
        "--slide", type=Path, metavar="FILE", help="bench_slide.py --summary output: its block"
    )
    parser.add_argument(
        "--times",
        nargs=2,
        type=float,
        metavar=("DEMO_MIN", "TEST_MIN"),
        help="timed make demo and make test minutes: the quick start's block",
    )
    parser.add_argument(
        "--pretrain", type=Path, nargs="+", metavar="RUN", help="bench_pretrain.py output folders"
    )
    parser.add_argument(
        "--levers", type=Path, nargs="+", metavar="RUN", help="bench_levers.py output folders"
    )
    parser.add_argument(
        "--inference-levers",
        type=Path,
        metavar="FILE",
        help="bench_inference_levers.py's printed output, saved to a file",
    )
    parser.add_argument(
        "--mask-width",
        type=Path,
        metavar="FILE",
        help="bench_mask_width.py's printed output, saved to a file",
    )
    parser.add_argument(
        "--effort", type=Path, metavar="RESULTS", help="a config/effort.yaml run's results folder"
    )
    parser.add_argument(
        "--real-long",
        type=Path,
        metavar="RESULTS",
        help="a config/real-long.yaml run's results folder: Kumar at 1600 iterations",
    )
    parser.add_argument(
        "--real-pretrained",
        type=Path,
        metavar="RESULTS",
        help="a config/real-pretrained.yaml run's results folder: Kumar from synthetic H&E",
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--real", action="store_true", help="the real-data run's block")
    parser.add_argument(
        "--conditions", default="", help="how the machine was loaded while the run was timed"
    )
    args = parser.parse_args()
    if args.times:
        demo, test = args.times
        replace_block(
            args.readme,
            TIMES_START,
            TIMES_END,
            times_block(demo, test, ROOT / "results", args.cores),
        )
        print(f"updated {args.readme}")
        return
    for run, results in (("real-long", args.real_long), ("real-pretrained", args.real_pretrained)):
        if results:
            if args.wall_minutes is None:
                parser.error(f"--{run} needs --wall-minutes (the run's wall-clock time)")
            block = real_long_block(results, args.wall_minutes, args.cores, args.conditions, run)
            replace_block(args.readme, *KUMAR_RUNS[run][3], block)
            print(f"updated {args.readme}")
            return
    if args.effort:
        if args.wall_minutes is None:
            parser.error("--effort needs --wall-minutes (the run's wall-clock time)")
        block = effort_block(args.effort, args.wall_minutes, args.cores, args.conditions)
        replace_block(args.readme, EFFORT_START, EFFORT_END, block)
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(args.effort / "figures" / "effort.png", ROOT / "docs" / "effort.png")
        print(f"updated {args.readme} and docs/effort.png")
        return
    benches = (args.pa_bench, args.reproducibility, args.annotator, args.slide, args.pretrain)
    if args.mask_width:
        block = printed_block(args.mask_width, MASK_WIDTH_START, MASK_WIDTH_END)
        replace_block(args.readme, MASK_WIDTH_START, MASK_WIDTH_END, block)
        print(f"updated {args.readme}")
        return
    if any(benches) or args.levers or args.inference_levers:
        if args.pretrain:
            block = summaries_block(args.pretrain, PRETRAIN_START, PRETRAIN_END)
            replace_block(args.readme, PRETRAIN_START, PRETRAIN_END, block)
        if args.levers:
            block = summaries_block(args.levers, LEVERS_START, LEVERS_END)
            replace_block(args.readme, LEVERS_START, LEVERS_END, block)
        if args.inference_levers:
            block = printed_block(args.inference_levers, INFERENCE_START, INFERENCE_END)
            replace_block(args.readme, INFERENCE_START, INFERENCE_END, block)
        if args.slide:
            replace_block(args.readme, SLIDE_START, SLIDE_END, slide_block(args.slide))
        if args.annotator:
            replace_block(
                args.readme, ANNOTATOR_START, ANNOTATOR_END, annotator_block(args.annotator)
            )
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
    figure = ROOT / "docs" / ("figure4-real.png" if args.real else "figure4.png")
    text = args.readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{args.readme}: markers {start} … {end} not found")
    new = re.sub(
        re.escape(start) + ".*?" + re.escape(end),
        lambda _: (
            real_block(results, args.wall_minutes, args.cores, args.conditions)
            if args.real
            else block(results, args.wall_minutes, args.cores)
        ),
        text,
        flags=re.S,
    )
    figure.parent.mkdir(exist_ok=True)
    shutil.copyfile(results / "figures" / "figure4.png", figure)
    args.readme.write_text(new)
    print(f"updated {args.readme} and {figure.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
