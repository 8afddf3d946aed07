"""Rule choose_checkpoint: a run's checkpoint, score threshold and mask threshold, chosen on its
dataset's validation images (the final checkpoint at the default thresholds when it has none),
and its per-image test metrics at that choice: what Tables 1, 3 and 4 report. Every model
predicts with the configured `inference` settings."""

from pathlib import Path

import pandas as pd

from nuclei_pa.engine.choose import choose, final_choice, test_metrics, validation_curve
from nuclei_pa.eval.folders import write_csv
from nuclei_pa.gpu_slots import claim_gpu
from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.logs import redirect_output

redirect_output(snakemake.log[0])
folder = Path(snakemake.input.checkpoints)
checkpoints = {it: folder / f"ckpt_{it:06d}.pt" for it in snakemake.params.iterations}
val_dir, device = snakemake.params.val_dir, snakemake.params.device
inference = snakemake.params.inference
with claim_gpu(snakemake.params.gpu_locks):
    if val_dir is None:
        curve = pd.DataFrame(columns=["iteration", "score_threshold", "map"])
        choice = final_choice(list(checkpoints))
    else:
        curve = validation_curve(checkpoints, val_dir, device, progress=False, inference=inference)
        choice = choose(curve)
    print(f"chosen: {choice}")
    per_image = test_metrics(
        choice,
        checkpoints,
        snakemake.params.test_dir,
        snakemake.input.evaluated,
        device,
        inference=inference,
    )
write_csv(curve, snakemake.output.validation)
write_csv(per_image, snakemake.output.test)
write_json(snakemake.output.chosen, choice.to_dict())
