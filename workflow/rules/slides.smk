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


rule slides:
    input:
        expand(R("slides", "{slide}.geojson"), slide=sorted(SLIDE_FILES)),


rule predict_slide:
    input:
        slide=lambda wc: SLIDE_FILES[wc.slide],
        checkpoint=lambda wc: slide_checkpoint_input(),
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
        checkpoint=lambda wc: slide_checkpoint(),
        mpp=SLIDES.get("mpp"),
        level=SLIDES.get("level"),
        tile_size=SLIDES.get("tile_size", 1024),
        tile_overlap=SLIDES.get("tile_overlap", 128),
        score_threshold=SLIDES.get("score_threshold", 0.5),
        device=config.get("device", "auto"),
        gpu_locks=R(".gpu_locks"),
        inference=INFERENCE,
    script:
        "../scripts/predict_slide.py"
