"""Rule table1: each model at the checkpoint and score threshold its validation images chose
(the final checkpoint where the dataset has none), metrics on the test images (mean over seeds),
mAP and AJI with their bootstrap interval over test images (and seeds), and the paper's
best-on-test mAP beside them as the optimistic number it is."""

from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import read_choices, read_curves, read_reference
from nuclei_pa.report.tables import best_intervals, table1, write_table

redirect_output(snakemake.log[0])
seeds, models = snakemake.params.seeds, snakemake.params.models
curves = read_curves(models, snakemake.input.curves, len(seeds))
chosen, runs = read_choices(models, snakemake.input.chosen, snakemake.input.tests, len(seeds))
intervals = best_intervals(chosen, runs)
reference = read_reference("Otsu + watershed", snakemake.input.classical)
on = sorted(set(chosen["chosen_on"]))
title = f"Table 1. Test performance of each model (checkpoint: {' / '.join(on)})"
if len(seeds) > 1:
    title += f"; mean and sd over seeds {', '.join(map(str, seeds))}"
footer = (
    "Checkpoint, score and mask thresholds and the 3×3 dilation are chosen on each dataset's "
    "validation images where it has them, else the final checkpoint is predicted as the paper "
    "does (score and mask threshold 0.5, dilated): the test images only report. The 95 % CI "
    "columns resample the test images (and seeds). The last column is "
    "the paper's protocol, the best mAP over every checkpoint on the test images themselves: "
    "optimistic, shown for comparison with the paper only."
)
write_table(
    table1(chosen, reference, intervals, curves),
    snakemake.output.csv,
    snakemake.output.md,
    title=title,
    footer=footer,
)
