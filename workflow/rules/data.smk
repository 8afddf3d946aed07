# Data: synthesise (or download) each dataset, then derive the partially annotated training sets.


rule prepare_dataset:
    output:
        directory(R("data", "{dataset}")),
    log:
        R("logs", "data", "{dataset}.log"),
    params:
        dataset=lambda wc: PLAN.datasets[wc.dataset],
        seed=PLAN.seed,
    conda:
        "../envs/nuclei-pa.yaml"
    script:
        "../scripts/prepare_dataset.py"


rule derive_trainset:
    input:
        lambda wc: dataset_dir(PLAN.trainsets[wc.trainset].dataset),
    output:
        directory(R("trainsets", "{trainset}")),
    log:
        R("logs", "derive", "{trainset}.log"),
    params:
        trainset=lambda wc: PLAN.trainsets[wc.trainset],
        seed=PLAN.seed,
    conda:
        "../envs/nuclei-pa.yaml"
    script:
        "../scripts/derive_trainset.py"
