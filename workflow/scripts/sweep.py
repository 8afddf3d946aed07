"""Rule sweep_report: best mAP and AJI against the fraction of annotations kept for training."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import collect_best, read_curves
from nuclei_pa.report.figures import sweep_figure
from nuclei_pa.report.tables import sweep_table, write_table

redirect_output(snakemake.log[0])
runs, seeds = snakemake.params.runs, snakemake.params.seeds
curves = read_curves([r["model"] for r in runs], snakemake.input.curves, len(seeds))
table = sweep_table(collect_best(curves), runs)
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    title=f"Annotation-fraction sweep on {snakemake.params.dataset}: best mAP and AJI",
)
sweep_figure(table, [snakemake.output.png, snakemake.output.pdf])
