"""Rule predict_slide: one whole slide into QuPath GeoJSON + a per-nucleus CSV (resumable)."""

from nuclei_pa.engine.predict import load_model
from nuclei_pa.gpu_slots import claim_gpu
from nuclei_pa.io.logs import redirect_output
from nuclei_pa.slide.predictors import ModelPredictor
from nuclei_pa.slide.stream import predict_slide

redirect_output(snakemake.log[0])
p = snakemake.params
with claim_gpu(p.gpu_locks):
    model = load_model(p.checkpoint, p.device, inference=p.inference)
    summary = predict_slide(
        snakemake.input.slide,
        snakemake.output.geojson,
        lambda pixels: ModelPredictor(model, pixels, score_threshold=p.score_threshold),
        mpp=p.mpp,
        level=p.level,
        tile_size=p.tile_size,
        tile_overlap=p.tile_overlap,
    )
print(
    f"{snakemake.output.geojson}: {summary['nuclei']} nuclei, {summary['tissue_tiles']} of "
    f"{summary['tiles']} tiles with tissue, {summary['tiles_per_s']:.2f} tiles/s"
)
