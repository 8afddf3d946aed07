# Whole slides (optional, config key `slides`): `snakemake slides` segments every listed slide
# into <results>/slides/<name>.geojson (QuPath detections) and <name>.csv (one row per nucleus).
#
#   slides:
#     files: [scans/a.svs, scans/b.ndpi]   # slides, named by file stem
#     model: Kumar25-pa                    # a configured model (its final checkpoint), or
#     checkpoint: path/to/model.pt         # any checkpoint written by nuclei-pa train
#     mpp: 0.5                             # or level: 1; neither: full resolution
#
# A job killed half-way resumes where it stopped when the rule is run again.

SLIDES = config.get("slides") or {}


def _slide_files():
    files = [Path(f) for f in SLIDES.get("files", [])]
    stems = [f.stem for f in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise WorkflowError(f"config key 'slides.files': two slides named {dup[0]!r}")
    if files and bool(SLIDES.get("model")) == bool(SLIDES.get("checkpoint")):
        raise WorkflowError(
            "config key 'slides': give exactly one of 'model' and 'checkpoint'"
        )
    if SLIDES.get("model") and SLIDES["model"] not in PLAN.models:
        raise WorkflowError(f"config key 'slides.model': no model {SLIDES['model']!r}")
    return {f.stem: str(f) for f in files}


SLIDE_FILES = _slide_files()


def slide_checkpoint():
    return SLIDES.get("checkpoint") or final_checkpoint(SLIDES["model"])


rule slides:
    input:
        expand(R("slides", "{slide}.geojson"), slide=sorted(SLIDE_FILES)),


rule predict_slide:
    input:
        slide=lambda wc: SLIDE_FILES[wc.slide],
        checkpoint=lambda wc: slide_checkpoint(),
    output:
        geojson=R("slides", "{slide}.geojson"),
        csv=R("slides", "{slide}.csv"),
    log:
        R("logs", "slides", "{slide}.log"),
    benchmark:
        R("benchmarks", "slides", "{slide}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    resources:
        gpu=1,
    params:
        mpp=SLIDES.get("mpp"),
        level=SLIDES.get("level"),
        tile_size=SLIDES.get("tile_size", 1024),
        tile_overlap=SLIDES.get("tile_overlap", 128),
        score_threshold=SLIDES.get("score_threshold", 0.5),
        device=config.get("device", "auto"),
        gpu_locks=R(".gpu_locks"),
    script:
        "../scripts/predict_slide.py"
