"""Rule train: train one model variant on its training set, resuming from its saved state."""

import os
import shutil
from pathlib import Path

from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.gpu_slots import claim_gpu
from nuclei_pa.io.atomic import atomic_dir
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.model import ModelConfig

redirect_output(snakemake.log[0])
spec = snakemake.params.model
settings = dict(spec.model)
pretrained = getattr(snakemake.input, "pretrained", [])
if pretrained:  # init: model:<name> -> that model's final checkpoint
    final = snakemake.params.pretrained_iteration
    settings["init"] = str(Path(pretrained[0]) / f"ckpt_{final:06d}.pt")
model_cfg = ModelConfig.from_dict(settings)
train_cfg = TrainConfig.from_dict(
    {
        **spec.train,
        "seed": snakemake.params.seed,
        "device": snakemake.params.device,
        "threads": snakemake.threads,
    }
)
state = Path(snakemake.params.state)
with claim_gpu(snakemake.params.gpu_locks):
    train(
        snakemake.params.train_dir,
        state,
        model_cfg,
        train_cfg,
        resume=True,
        reference=snakemake.params.reference or None,  # full labels: pa diagnostics
    )
with atomic_dir(snakemake.output.checkpoints) as tmp:
    for it in spec.checkpoints:
        os.link(state / f"ckpt_{it:06d}.pt", Path(tmp) / f"ckpt_{it:06d}.pt")  # no copy
shutil.copy2(state / "train_log.csv", snakemake.output.log)
