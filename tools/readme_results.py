"""Rewrite the README's "What you should see" block from a finished default run.

    python tools/readme_results.py --wall-minutes 14.2

Copies Table 1, the findings table and Figure 4 of ``results/`` into the README (between the
``<!-- results:start -->`` and ``<!-- results:end -->`` markers) and ``docs/figure4.png``, so
the numbers people read are the ones the current code produced, never typed by hand.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def findings_table(findings_md: str) -> tuple[str, str]:
    """The summary sentence and the claim table of ``results/findings.md``."""
    lines = findings_md.splitlines()
    summary = next(line for line in lines if "claims hold" in line)
    table = [line for line in lines if line.startswith("|")]
    return summary, "\n".join(table)


def block(results: Path, wall_minutes: float, cores: int) -> str:
    table1 = (results / "tables" / "table1.md").read_text().strip().splitlines()
    table1 = "\n".join(line for line in table1 if line.startswith("|"))
    summary, claims = findings_table((results / "findings.md").read_text())
    return f"""{START}
`make demo` on a {cores}-core CPU took {wall_minutes:.1f} minutes (`python
benchmarks/bench_workflow.py` prints the time per rule). Table 1 of that run
(`results/tables/table1.md`; slim model trained from scratch, batch 2):

{table1}

Findings (`results/findings.md`): {summary}

{claims}

Figure 4 (`results/figures/figure4.png`):

![Figure 4 of the default run](docs/figure4.png)
{END}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--wall-minutes", type=float, required=True)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    text = args.readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{args.readme}: markers {START} … {END} not found")
    new = re.sub(
        re.escape(START) + ".*?" + re.escape(END),
        lambda _: block(args.results, args.wall_minutes, args.cores),
        text,
        flags=re.S,
    )
    (ROOT / "docs").mkdir(exist_ok=True)
    shutil.copyfile(args.results / "figures" / "figure4.png", ROOT / "docs" / "figure4.png")
    args.readme.write_text(new)
    print(f"updated {args.readme} and docs/figure4.png")


if __name__ == "__main__":
    main()
