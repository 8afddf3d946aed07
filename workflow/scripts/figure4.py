"""Rule figure4: mAP, AJI, precision, recall and NCS against training iteration."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import read_curves, read_reference
from nuclei_pa.report.figures import figure4

redirect_output(snakemake.log[0])
curves = read_curves(snakemake.params.models, snakemake.input.curves, len(snakemake.params.seeds))
reference = read_reference("Otsu + watershed", snakemake.input.classical)
figure4(curves, [snakemake.output.png, snakemake.output.pdf], reference)
