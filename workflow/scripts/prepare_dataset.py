"""Rule prepare_dataset: synthesise the embedded default, or download and convert a real set."""

import dataclasses
import tempfile

from nuclei_pa.data.convert_tnbc import tnbc_breast_split
from nuclei_pa.data.sources import describe, prepare
from nuclei_pa.data.synth import SynthConfig, synthesize
from nuclei_pa.io.logs import redirect_output

redirect_output(snakemake.log[0])
dataset = snakemake.params.dataset
out = snakemake.output[0]
if dataset.kind == "synth":
    cfg = dataclasses.replace(SynthConfig(), **dataset.synth)
    print(synthesize(cfg, out, seed=snakemake.params.seed))
else:
    dl = dataset.download
    print(describe(dl["source"]))
    if dl.get("breast_split_with"):
        with tempfile.TemporaryDirectory(dir=snakemake.params.resources) as tmp:
            prepare(dl["source"], tmp, snakemake.params.resources, dl.get("data_root"))
            print(tnbc_breast_split(tmp, snakemake.input[0], out))
    else:
        print(prepare(dl["source"], out, snakemake.params.resources, dl.get("data_root")))
