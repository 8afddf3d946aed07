"""Rule sweep_report: mAP and AJI against the fraction of annotations kept for training, each
run at its validation-chosen checkpoint and threshold (its final checkpoint without one)."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import read_choices
from nuclei_pa.report.figures import sweep_figure
from nuclei_pa.report.tables import sweep_table, write_table

redirect_output(snakemake.log[0])
runs, seeds = snakemake.params.runs, snakemake.params.seeds
models = [r["model"] for r in runs]
chosen, _ = read_choices(models, snakemake.input.chosen, snakemake.input.tests, len(seeds))
table = sweep_table(chosen, runs)
on = " / ".join(sorted(set(chosen["chosen_on"])))
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    title=f"Annotation-fraction sweep on {snakemake.params.dataset}: mAP and AJI ({on})",
)
sweep_figure(table, [snakemake.output.png, snakemake.output.pdf])
