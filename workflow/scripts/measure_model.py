"""Rule measure_model: Table 2's size, speed and memory numbers for one model."""

from nuclei_pa.gpu_slots import claim_gpu
from nuclei_pa.io.atomic import write_json
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.measure import measure_model

redirect_output(snakemake.log[0])
with claim_gpu(snakemake.params.gpu_locks):
    numbers = measure_model(
        snakemake.params.checkpoint,
        snakemake.params.test_images,
        snakemake.input.log,
        snakemake.params.device,
        inference=snakemake.params.inference,
    )
write_json(snakemake.output[0], numbers)
