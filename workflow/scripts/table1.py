"""Rule table1: best mAP per model with the other metrics at that checkpoint (mean over seeds),
mAP and AJI with their bootstrap interval over test images (and seeds)."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import collect_best, read_curves, read_reference, read_runs
from nuclei_pa.report.tables import best_intervals, table1, write_table

redirect_output(snakemake.log[0])
seeds, models = snakemake.params.seeds, snakemake.params.models
curves = read_curves(models, snakemake.input.curves, len(seeds))
best = collect_best(curves)
intervals = best_intervals(best, read_runs(models, snakemake.input.evaluations, len(seeds)))
reference = read_reference("Otsu + watershed", snakemake.input.classical)
title = "Table 1. Best evaluation performance of each model (best mAP checkpoint)"
if len(seeds) > 1:
    title += f"; mean and sd over seeds {', '.join(map(str, seeds))}"
footer = (
    "The best checkpoint is chosen on the test set, as in the paper, so these numbers are "
    "optimistic; the 95 % CI columns resample the test images (and seeds) at those checkpoints. "
    "results/findings.md judges the paper's claims at the final checkpoint instead."
)
write_table(
    table1(best, reference, intervals),
    snakemake.output.csv,
    snakemake.output.md,
    title=title,
    footer=footer,
)
