"""Rule evaluate: every checkpoint of one run on the test split; its curve and best checkpoint."""

import json
from pathlib import Path

from nuclei_pa.engine.evaluate import evaluate_checkpoints
from nuclei_pa.gpu_slots import claim_gpu
from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import best_checkpoint
from nuclei_pa.report.tables import write_table

redirect_output(snakemake.log[0])
folder = Path(snakemake.input.checkpoints)
checkpoints = {it: folder / f"ckpt_{it:06d}.pt" for it in snakemake.params.iterations}
with claim_gpu(snakemake.params.gpu_locks):
    curve = evaluate_checkpoints(
        checkpoints,
        snakemake.params.test_dir,
        snakemake.output.per_checkpoint,
        snakemake.params.device,
        progress=False,
        inference=snakemake.params.inference,
    )
write_table(curve, snakemake.output.curve)
write_json(snakemake.output.best, json.loads(best_checkpoint(curve).to_json()))
