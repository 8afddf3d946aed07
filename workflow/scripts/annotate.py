"""Rule annotate: one computer-assisted annotation round (paper §III.D)."""

from nuclei_pa.annotate.session import ProposalSettings, run_round
from nuclei_pa.engine import TrainConfig
from nuclei_pa.gpu_slots import claim_gpu
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.model import ModelConfig

redirect_output(snakemake.log[0])
p = snakemake.params
with claim_gpu(p.gpu_locks):
    result = run_round(
        p.paths["images"],
        p.out,
        annotations=p.paths["annotations"],
        round_no=p.round,
        model_cfg=ModelConfig.from_dict(p.model),
        train_cfg=TrainConfig.from_dict({**p.train, "threads": snakemake.threads}),
        settings=ProposalSettings(**p.settings, **p.inference),
    )
print(result.message)
