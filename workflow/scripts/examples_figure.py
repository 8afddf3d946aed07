"""Rule examples_figure: one test image segmented by each model at its best checkpoint."""

from pathlib import Path

from nuclei_pa.engine.predict import load_model, predict_image
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.report.curves import best_checkpoint, first_seed, read_curves
from nuclei_pa.report.figures import examples_figure

redirect_output(snakemake.log[0])
sample = next(read_split(snakemake.params.test_dir))
predictions = {}
for (model, curve), folder in zip(
    first_seed(read_curves(snakemake.params.models, snakemake.input.curves)).items(),
    snakemake.input.checkpoints,
    strict=True,
):
    best = int(best_checkpoint(curve)["iteration"])
    net = load_model(Path(folder) / f"ckpt_{best:06d}.pt", snakemake.params.device)
    predictions[model] = predict_image(net, sample.image)[0]
examples_figure(
    sample.image, sample.labels, predictions, [snakemake.output.png, snakemake.output.pdf]
)
