"""Rule learning_curve: metrics against iteration and the best checkpoint (by mAP)."""

import json

from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import best_checkpoint, learning_curve
from nuclei_pa.report.tables import write_table

redirect_output(snakemake.log[0])
curve = learning_curve(dict(zip(snakemake.params.iterations, snakemake.input, strict=True)))
write_table(curve, snakemake.output.curve)
best = best_checkpoint(curve)
write_json(snakemake.output.best, json.loads(best.to_json()))
