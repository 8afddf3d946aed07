"""Rule classical_reference: Otsu + watershed on a test split, evaluated like the models."""

import tempfile
from pathlib import Path

from nuclei_pa.classical import otsu_watershed
from nuclei_pa.eval.folders import evaluate, summarise, write_csv
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.images import write_tiff
from nuclei_pa.io.logs import redirect_output

redirect_output(snakemake.log[0])
with tempfile.TemporaryDirectory() as tmp:
    for sample in read_split(snakemake.params.test_dir):
        write_tiff(Path(tmp) / f"{sample.name}.tif", otsu_watershed(sample.image).astype("uint16"))
    per_image = evaluate(snakemake.params.test_dir, tmp)
write_csv(per_image, snakemake.output.per_image)
write_csv(summarise(per_image), snakemake.output.summary)
