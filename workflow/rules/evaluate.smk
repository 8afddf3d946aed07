# Evaluation: every checkpoint of a run on the fully annotated test split, in one job per run
# (the model and the test images are loaded once, not once per checkpoint), then its learning
# curve and best checkpoint.


rule evaluate:
    input:
        checkpoints=run_dir("models", "{model}", "{seed}", "checkpoints"),
        test=lambda wc: dataset_dir(PLAN.models[wc.model].test),
    output:
        per_checkpoint=directory(run_dir("eval", "{model}", "{seed}", "checkpoints")),
        curve=run_dir("eval", "{model}", "{seed}", "curve.csv"),
        best=run_dir("eval", "{model}", "{seed}", "best.json"),
    log:
        R("logs", "evaluate", "{model}", "seed{seed}.log"),
    benchmark:
        R("benchmarks", "evaluate", "{model}", "seed{seed}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    resources:
        gpu=1,
    params:
        iterations=lambda wc: PLAN.models[wc.model].checkpoints,
        test_dir=lambda wc: str(PLAN.test_dir(wc.model)),
        gpu_locks=R(".gpu_locks"),
        device=PLAN.device,
        inference=INFERENCE,
    script:
        "../scripts/evaluate_run.py"


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


rule choose_checkpoint:
    input:
        checkpoints=run_dir("models", "{model}", "{seed}", "checkpoints"),
        evaluated=run_dir("eval", "{model}", "{seed}", "checkpoints"),
        data=lambda wc: dataset_dir(PLAN.models[wc.model].test),
    output:
        chosen=run_dir("eval", "{model}", "{seed}", "chosen.json"),
        validation=run_dir("eval", "{model}", "{seed}", "validation.csv"),
        test=run_dir("eval", "{model}", "{seed}", "chosen_test.csv"),
    log:
        R("logs", "choose", "{model}", "seed{seed}.log"),
    benchmark:
        R("benchmarks", "choose", "{model}", "seed{seed}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    resources:
        gpu=1,
    params:
        iterations=lambda wc: PLAN.models[wc.model].checkpoints,
        val_dir=lambda wc: PLAN.val_dir(wc.model),
        test_dir=lambda wc: str(PLAN.test_dir(wc.model)),
        gpu_locks=R(".gpu_locks"),
        device=PLAN.device,
        inference=INFERENCE,
    script:
        "../scripts/choose_checkpoint.py"
