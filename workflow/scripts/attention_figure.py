"""Rule attention_figure: the paper's Fig. 1 on a partially annotated training image."""

import json
from pathlib import Path

from nuclei_pa.engine.predict import load_model
from nuclei_pa.engine.tensors import image_to_tensor, intensity_levels
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.model.visualize import attention_map, save_attention_figure

redirect_output(snakemake.log[0])
best = int(json.loads(Path(snakemake.input.chosen).read_text())["iteration"])
model = load_model(Path(snakemake.input.checkpoints) / f"ckpt_{best:06d}.pt", "cpu")
sample = next(s for s in read_split(snakemake.params.train_dir) if s.n_instances)
levels = intensity_levels(sample.image, model.intensity)
amap = attention_map(model, image_to_tensor(sample.image, levels), sample.labels > 0)
save_attention_figure(
    sample.image, sample.labels, amap, [snakemake.output.png, snakemake.output.pdf]
)
