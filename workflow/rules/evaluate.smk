# Evaluation: every checkpoint of every model on the fully annotated test split, one job each.


rule evaluate_checkpoint:
    input:
        checkpoints=R("models", "{model}", "checkpoints"),
        test=lambda wc: dataset_dir(PLAN.models[wc.model].test),
    output:
        per_image=R("eval", "{model}", "iter_{iteration}.csv"),
        summary=R("eval", "{model}", "iter_{iteration}.summary.csv"),
    log:
        R("logs", "evaluate", "{model}", "iter_{iteration}.log"),
    benchmark:
        R("benchmarks", "evaluate", "{model}", "iter_{iteration}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    resources:
        gpu=1,
    params:
        checkpoint=lambda wc: R(
            "models", wc.model, "checkpoints", f"ckpt_{wc.iteration}.pt"
        ),
        test_dir=lambda wc: str(PLAN.test_dir(wc.model)),
        gpu_locks=R(".gpu_locks"),
        device=PLAN.device,
    script:
        "../scripts/evaluate_checkpoint.py"


rule learning_curve:
    input:
        lambda wc: checkpoint_summaries(wc.model),
    output:
        curve=R("eval", "{model}", "curve.csv"),
        best=R("eval", "{model}", "best.json"),
    log:
        R("logs", "curve", "{model}.log"),
    benchmark:
        R("benchmarks", "curve", "{model}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        iterations=lambda wc: PLAN.models[wc.model].checkpoints,
    script:
        "../scripts/learning_curve.py"


rule classical_reference:
    input:
        dataset_dir("{dataset}"),
    output:
        per_image=R("eval", "classical", "{dataset}.csv"),
        summary=R("eval", "classical", "{dataset}.summary.csv"),
    log:
        R("logs", "classical", "{dataset}.log"),
    benchmark:
        R("benchmarks", "classical", "{dataset}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        test_dir=lambda wc: R("data", wc.dataset, "test"),
    script:
        "../scripts/classical_reference.py"
