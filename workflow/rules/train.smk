# Training: one job per model variant, each holding one GPU (when there is one).
#
# Resumable state lives in models/{model}/state/, which is not a declared output: Snakemake
# deletes a failed job's outputs, and the state must survive so that a rerun resumes from the
# last complete checkpoint instead of starting over.


rule train:
    input:
        lambda wc: trainset_input(PLAN.models[wc.model].trainset),
    output:
        checkpoints=directory(R("models", "{model}", "checkpoints")),
        log=R("models", "{model}", "train_log.csv"),
    log:
        R("logs", "train", "{model}.log"),
    benchmark:
        R("benchmarks", "train", "{model}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        model=lambda wc: PLAN.models[wc.model],
        train_dir=lambda wc: str(PLAN.trainset_dir(PLAN.models[wc.model].trainset)),
        state=R("models", "{model}", "state"),
        gpu_locks=R(".gpu_locks"),
        device=PLAN.device,
    script:
        "../scripts/train.py"
