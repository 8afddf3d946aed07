"""Rule table1: best mAP per model with the other metrics at that checkpoint (mean over seeds)."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import collect_best, read_curves, read_reference
from nuclei_pa.report.tables import table1, write_table

redirect_output(snakemake.log[0])
seeds = snakemake.params.seeds
curves = read_curves(snakemake.params.models, snakemake.input.curves, len(seeds))
reference = read_reference("Otsu + watershed", snakemake.input.classical)
title = "Table 1. Best evaluation performance of each model (best mAP checkpoint)"
if len(seeds) > 1:
    title += f"; mean and sd over seeds {', '.join(map(str, seeds))}"
write_table(
    table1(collect_best(curves), reference),
    snakemake.output.csv,
    snakemake.output.md,
    title=title,
)
