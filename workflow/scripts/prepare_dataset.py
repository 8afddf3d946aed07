"""Rule prepare_dataset: synthesise the embedded default, import a folder, or download a set;
then carve its validation images out of the training split when the config asks for them."""

import dataclasses

from nuclei_pa.data.folder import FolderSpec, write_folder_dataset
from nuclei_pa.data.prepare import prepare, prepare_breast_split
from nuclei_pa.data.sources import describe
from nuclei_pa.data.synth import synthesize
from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.data.validation import ValidationSplit, carve_validation
from nuclei_pa.io.logs import redirect_output

redirect_output(snakemake.log[0])
dataset = snakemake.params.dataset
out = snakemake.output[0]
if dataset.kind == "synth":
    cfg = dataclasses.replace(SynthConfig(), **dataset.synth)
    print(synthesize(cfg, out, seed=snakemake.params.seed))
elif dataset.kind == "folder":
    print(write_folder_dataset(FolderSpec.from_config(dataset.folder), out, source="folder"))
else:
    dl = dataset.download
    resources, root = snakemake.params.resources, dl.get("data_root")
    options = {"require_all": False} if dl.get("allow_missing") else {}
    print(describe(dl["source"]))
    if dl.get("breast_split_with"):
        kumar = snakemake.input[0]
        print(prepare_breast_split(dl["source"], kumar, out, resources, root, **options))
    else:
        print(prepare(dl["source"], out, resources, root, **options))
if dataset.validation is not None:
    print(carve_validation(out, ValidationSplit.from_config(dataset.validation)))
