# Computer-assisted annotation (paper §III.D): `snakemake annotate` runs one round.
#
#   annotate:
#     images: DIR          # the images to annotate, with
#     annotations: PATH    # round 1's partial annotations (COCO, ROI sets, GeoJSON, labels);
#     trainset: NAME       # or instead of both: a configured training set (e.g. DH25)
#     rounds: 1            # the round to run; raise it after correcting the previous one
#     iterations: 200      # training iterations per round (the paper: 200)
#     min_new: 1           # done once a round shows fewer new proposals
#
# Rounds need a person in between, so each run makes one: round N reads round N-1's folder as
# the annotator corrected it in place (`nuclei-pa annotate --help` shows the layout). Earlier
# rounds are inputs, never outputs: Snakemake can neither re-run nor delete a corrected round.
# Settings are checked by nuclei_pa.plan.annotation when the workflow is parsed.

from nuclei_pa.plan.annotation import annotate_plan

try:
    ANNOTATE = annotate_plan(config, PLAN, FIRST_SEED)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}")


rule annotate:
    input:
        unpack(
            lambda wc: ANNOTATE.inputs(
                lambda ts: trainset_input(ts, FIRST_SEED), ancient
            )
        ),
    output:
        round=directory(str(ANNOTATE.out / ANNOTATE.round_name)),
        table=str(ANNOTATE.out / "rounds.csv"),
        figure=report(str(ANNOTATE.out / "rounds.png"), category="Annotation"),
    log:
        R("logs", "annotate", f"{ANNOTATE.round_name}.log"),
    benchmark:
        R("benchmarks", "annotate", f"{ANNOTATE.round_name}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    threads: max(1, int(ANNOTATE.train["threads"]))
    resources:
        gpu=1,
    params:
        paths=lambda wc: ANNOTATE.paths(),
        out=lambda wc, output: str(Path(output.round).parent),
        round=ANNOTATE.round_no,
        model=ANNOTATE.model,
        train=ANNOTATE.train,
        settings=ANNOTATE.settings,
        inference=INFERENCE,
        gpu_locks=R(".gpu_locks"),
    script:
        "../scripts/annotate.py"
