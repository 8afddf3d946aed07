"""Rule effort_report: the sparse-label arms at equal annotation effort (issue 24), each model at
its validation-chosen checkpoint and threshold (its final checkpoint without one), with the
effort its training set cost, per effort unit and against the reference arm."""

from pathlib import Path

from nuclei_pa.data.effort import REGION_COST
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import read_choices
from nuclei_pa.report.effort import effort_table, trainset_effort, write_effort

redirect_output(snakemake.log[0])
p = snakemake.params
cost = REGION_COST if p.region_cost is None else float(p.region_cost)
n_seeds = len(p.seeds)
chosen, runs = read_choices(p.models, snakemake.input.chosen, snakemake.input.tests, n_seeds)
folders = iter(snakemake.input.trainsets)  # model after model, seed after seed
efforts = {m: [trainset_effort(next(folders), cost) for _ in p.seeds] for m in p.models}
table = effort_table(p.arms, p.info, chosen, runs, efforts, p.reference)
write_effort(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    [snakemake.output.png, snakemake.output.pdf],
    cost,
)
print(Path(snakemake.output.md).read_text())
