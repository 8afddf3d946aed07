"""Rule examples_figure: one test image segmented by each model at the checkpoint, score and
mask thresholds its validation images chose (the final checkpoint where there are none), with
the configured `inference` settings."""

import json
from pathlib import Path

from nuclei_pa.engine.choose import Choice
from nuclei_pa.engine.predict import load_model, predict_image
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.figures import examples_figure

redirect_output(snakemake.log[0])
sample = next(read_split(snakemake.params.test_dir))
predictions = {}
for model, chosen, folder in zip(
    snakemake.params.models, snakemake.input.chosen, snakemake.input.checkpoints, strict=True
):
    choice = Choice.from_dict(json.loads(Path(chosen).read_text()))
    net = load_model(
        Path(folder) / f"ckpt_{choice.iteration:06d}.pt",
        snakemake.params.device,
        inference=snakemake.params.inference,
    )
    predictions[model] = predict_image(
        net,
        sample.image,
        **choice.prediction(),
    )[0]
examples_figure(
    sample.image, sample.labels, predictions, [snakemake.output.png, snakemake.output.pdf]
)
