"""Rule prepare_dataset: synthesise (embedded default) or fetch a dataset into train/ and test/."""

import dataclasses

from nuclei_pa.data.synth import SynthConfig, synthesize
from nuclei_pa.io.logs import redirect_output

redirect_output(snakemake.log[0])
dataset = snakemake.params.dataset
cfg = dataclasses.replace(SynthConfig(), **dataset.synth)
print(synthesize(cfg, snakemake.output[0], seed=snakemake.params.seed))
