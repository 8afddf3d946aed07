"""Rule table1: best mAP per model with the other metrics at that checkpoint."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import collect_best, read_curves, read_reference
from nuclei_pa.report.tables import table1, write_table

redirect_output(snakemake.log[0])
curves = read_curves(snakemake.params.models, snakemake.input.curves)
reference = read_reference("Otsu + watershed", snakemake.input.classical)
write_table(
    table1(collect_best(curves), reference),
    snakemake.output.csv,
    snakemake.output.md,
    title="Table 1. Best evaluation performance of each model (best mAP checkpoint)",
)
