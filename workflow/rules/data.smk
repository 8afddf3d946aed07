# Data: synthesise (or download) each dataset, then derive the partially annotated training sets.


rule prepare_dataset:
    input:
        lambda wc: combined_dataset_input(wc.dataset),
    output:
        directory(R("data", "{dataset}")),
    log:
        R("logs", "data", "{dataset}.log"),
    benchmark:
        R("benchmarks", "data", "{dataset}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        dataset=lambda wc: PLAN.datasets[wc.dataset],
        seed=PLAN.seed,
        resources=str(PLAN.resources),
    script:
        "../scripts/prepare_dataset.py"


rule derive_trainset:
    input:
        lambda wc: dataset_dir(PLAN.trainsets[wc.trainset].dataset),
    output:
        directory(R("trainsets", "{trainset}", "seed{seed}")),
    log:
        R("logs", "derive", "{trainset}", "seed{seed}.log"),
    benchmark:
        R("benchmarks", "derive", "{trainset}", "seed{seed}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        trainset=lambda wc: PLAN.trainsets[wc.trainset],
        seed=lambda wc: int(wc.seed),
    script:
        "../scripts/derive_trainset.py"
