# Training: one job per model variant and replicate seed, each holding one GPU (when there is one).
#
# Resumable state lives in models/{model}/seed{seed}/state/, which is not a declared output:
# Snakemake deletes a failed job's outputs, and the state must survive so that a rerun resumes
# from the last complete checkpoint instead of starting over.


rule train:
    input:
        data=lambda wc: trainset_input(PLAN.models[wc.model].trainset, wc.seed),
        pretrained=lambda wc: pretrained_input(wc.model, wc.seed),
    output:
        checkpoints=directory(run_dir("models", "{model}", "{seed}", "checkpoints")),
        log=run_dir("models", "{model}", "{seed}", "train_log.csv"),
    log:
        R("logs", "train", "{model}", "seed{seed}.log"),
    benchmark:
        R("benchmarks", "train", "{model}", "seed{seed}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    # CPU threads of the job: on a laptop two one-thread jobs train ~1.4× faster than one
    # two-thread job (small convolutions scale poorly); `train.threads` in the config sets it.
    threads: lambda wc: max(1, int(PLAN.models[wc.model].train["threads"]))
    resources:
        gpu=1,
    params:
        model=lambda wc: PLAN.models[wc.model],
        seed=lambda wc: int(wc.seed),
        pretrained_iteration=lambda wc: pretrained_iteration(wc.model),
        train_dir=lambda wc: str(
            PLAN.trainset_dir(PLAN.models[wc.model].trainset, int(wc.seed))
        ),
        reference=lambda wc: str(
            PLAN.reference_dir(PLAN.models[wc.model].trainset) or ""
        ),
        state=run_dir("models", "{model}", "{seed}", "state"),
        gpu_locks=R(".gpu_locks"),
        device=PLAN.device,
    script:
        "../scripts/train.py"
