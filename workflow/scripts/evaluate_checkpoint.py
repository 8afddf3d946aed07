"""Rule evaluate_checkpoint: predict the test split with one checkpoint and score it."""

import tempfile
from pathlib import Path

from nuclei_pa.engine.predict import predict_folder
from nuclei_pa.eval.folders import evaluate, summarise, write_csv
from nuclei_pa.gpu_slots import claim_gpu
from nuclei_pa.io.logs import redirect_output

redirect_output(snakemake.log[0])
test_dir = Path(snakemake.params.test_dir)
with claim_gpu(snakemake.params.gpu_locks), tempfile.TemporaryDirectory() as tmp:
    predict_folder(
        snakemake.params.checkpoint,
        test_dir / "images",
        tmp,
        device=snakemake.params.device,
        progress=False,
    )
    per_image = evaluate(test_dir, Path(tmp) / "labels")
write_csv(per_image, snakemake.output.per_image)
write_csv(summarise(per_image), snakemake.output.summary)
