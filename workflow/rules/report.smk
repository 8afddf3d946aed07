# Report: the paper's tables and figures from the learning curves.


rule table1:
    input:
        curves=curves(PLAN.report.get("table1", [])),
        chosen=choices(PLAN.report.get("table1", [])),
        tests=chosen_tests(PLAN.report.get("table1", [])),
        classical=classical_summary(),
    output:
        csv=report(
            R("tables", "table1.csv"),
            caption="../report/table1.rst",
            category="Tables",
        ),
        md=R("tables", "table1.md"),
    log:
        R("logs", "report", "table1.log"),
    benchmark:
        R("benchmarks", "report", "table1.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        models=PLAN.report.get("table1", []),
        seeds=SEEDS,
    script:
        "../scripts/table1.py"


rule figure4:
    input:
        curves=curves(PLAN.report.get("figure4", [])),
        classical=classical_summary(),
    output:
        png=report(
            R("figures", "figure4.png"),
            caption="../report/figure4.rst",
            category="Figures",
        ),
        pdf=R("figures", "figure4.pdf"),
    log:
        R("logs", "report", "figure4.log"),
    benchmark:
        R("benchmarks", "report", "figure4.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        models=PLAN.report.get("figure4", []),
        seeds=SEEDS,
    script:
        "../scripts/figure4.py"


rule comparison_table:
    input:
        chosen=lambda wc: choices(comparison_models(wc.table)),
        tests=lambda wc: chosen_tests(comparison_models(wc.table)),
        dataset=lambda wc: dataset_dir(PLAN.report[wc.table]["dataset"]),
        classical=lambda wc: R(
            "eval", "classical", f"{PLAN.report[wc.table]['dataset']}.csv"
        ),
    output:
        csv=report(
            R("tables", "{table}.csv"),
            caption="../report/comparison_table.rst",
            category="Tables",
        ),
        md=R("tables", "{table}.md"),
        tests=report(
            R("tables", "{table}_wilcoxon.csv"),
            caption="../report/wilcoxon.rst",
            category="Tables",
        ),
    log:
        R("logs", "report", "{table}.log"),
    benchmark:
        R("benchmarks", "report", "{table}.tsv")
    wildcard_constraints:
        table="table3|table4",
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        spec=lambda wc: PLAN.report[wc.table],
        models=lambda wc: comparison_models(wc.table),
        groups=lambda wc: PLAN.datasets[PLAN.report[wc.table]["dataset"]].groups,
        seeds=SEEDS,
    script:
        "../scripts/comparison_table.py"


rule measure_model:
    input:
        checkpoints=run_dir("models", "{model}", FIRST_SEED, "checkpoints"),
        log=run_dir("models", "{model}", FIRST_SEED, "train_log.csv"),
        test=lambda wc: dataset_dir(PLAN.models[wc.model].test),
    output:
        R("measure", "{model}.json"),
    log:
        R("logs", "measure", "{model}.log"),
    benchmark:
        R("benchmarks", "measure", "{model}.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    resources:
        gpu=1,
    params:
        checkpoint=lambda wc: final_checkpoint(wc.model),
        test_images=lambda wc: str(PLAN.test_dir(wc.model) / "images"),
        gpu_locks=R(".gpu_locks"),
        device=PLAN.device,
        inference=INFERENCE,
    script:
        "../scripts/measure_model.py"


rule table2:
    input:
        [R("measure", f"{m}.json") for m in PLAN.report.get("table2", [])],
    output:
        csv=report(
            R("tables", "table2.csv"),
            caption="../report/table2.rst",
            category="Tables",
        ),
        md=R("tables", "table2.md"),
    log:
        R("logs", "report", "table2.log"),
    benchmark:
        R("benchmarks", "report", "table2.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        models=PLAN.report.get("table2", []),
    script:
        "../scripts/table2.py"


rule examples_figure:
    input:
        chosen=[
            run_dir("eval", m, FIRST_SEED, "chosen.json")
            for m in PLAN.report.get("figure4", [])
        ],
        checkpoints=[
            run_dir("models", m, FIRST_SEED, "checkpoints")
            for m in PLAN.report.get("figure4", [])
        ],
        test=lambda wc: [
            dataset_dir(PLAN.models[m].test)
            for m in PLAN.report.get("figure4", [])[:1]
        ],
    output:
        png=report(
            R("figures", "examples.png"),
            caption="../report/examples.rst",
            category="Figures",
        ),
        pdf=R("figures", "examples.pdf"),
    log:
        R("logs", "report", "examples.log"),
    benchmark:
        R("benchmarks", "report", "examples.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        models=PLAN.report.get("figure4", []),
        test_dir=lambda wc: str(PLAN.test_dir(PLAN.report["figure4"][0])),
        device=PLAN.device,
        inference=INFERENCE,
    script:
        "../scripts/examples_figure.py"


rule attention_figure:
    input:
        chosen=lambda wc: run_dir(
            "eval", PLAN.report["attention"], FIRST_SEED, "chosen.json"
        ),
        checkpoints=lambda wc: run_dir(
            "models", PLAN.report["attention"], FIRST_SEED, "checkpoints"
        ),
        trainset=lambda wc: trainset_input(
            PLAN.models[PLAN.report["attention"]].trainset, FIRST_SEED
        ),
    output:
        png=report(
            R("figures", "attention.png"),
            caption="../report/attention.rst",
            category="Figures",
        ),
        pdf=R("figures", "attention.pdf"),
    log:
        R("logs", "report", "attention.log"),
    benchmark:
        R("benchmarks", "report", "attention.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        train_dir=lambda wc: str(
            PLAN.trainset_dir(
                PLAN.models[PLAN.report["attention"]].trainset, FIRST_SEED
            )
        ),
    script:
        "../scripts/attention_figure.py"


rule findings:
    input:
        evaluations=evaluations(findings_models()),
    output:
        md=report(
            R("findings.md"),
            caption="../report/findings.rst",
            category="Findings",
        ),
        csv=R("findings.csv"),
    log:
        R("logs", "report", "findings.log"),
    benchmark:
        R("benchmarks", "report", "findings.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        roles=PLAN.report.get("findings") or {},
        seeds=SEEDS,
    script:
        "../scripts/findings.py"


rule sweep_report:
    input:
        chosen=choices(list(PLAN.sweep.models.values()) if PLAN.sweep else []),
        tests=chosen_tests(list(PLAN.sweep.models.values()) if PLAN.sweep else []),
    output:
        csv=R("tables", "sweep.csv"),
        md=R("tables", "sweep.md"),
        png=report(
            R("figures", "sweep.png"),
            caption="../report/sweep.rst",
            category="Figures",
        ),
        pdf=R("figures", "sweep.pdf"),
    log:
        R("logs", "report", "sweep.log"),
    benchmark:
        R("benchmarks", "report", "sweep.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        runs=[
            {"fraction": f, "variant": v, "model": m}
            for (f, v), m in (PLAN.sweep.models.items() if PLAN.sweep else [])
        ],
        seeds=SEEDS,
        dataset=PLAN.sweep.dataset if PLAN.sweep else None,
    script:
        "../scripts/sweep.py"


rule effort_report:
    input:
        chosen=choices(effort_models()),
        tests=chosen_tests(effort_models()),
        trainsets=[
            trainset_input(PLAN.models[m].trainset, s)
            for m in effort_models()
            for s in SEEDS
        ],
    output:
        csv=report(
            R("tables", "effort.csv"),
            caption="../report/effort.rst",
            category="Tables",
        ),
        md=R("tables", "effort.md"),
        png=report(
            R("figures", "effort.png"),
            caption="../report/effort.rst",
            category="Figures",
        ),
        pdf=R("figures", "effort.pdf"),
    log:
        R("logs", "report", "effort.log"),
    benchmark:
        R("benchmarks", "report", "effort.tsv")
    conda:
        "../envs/nuclei-pa.yaml"
    params:
        models=effort_models(),
        arms=EFFORT.get("arms", {}),
        info={
            m: {"dataset": PLAN.models[m].test, "variant": PLAN.models[m].variant}
            for m in effort_models()
        },
        reference=EFFORT.get("reference"),
        region_cost=EFFORT.get("region_cost"),
        seeds=SEEDS,
    script:
        "../scripts/effort_report.py"


# `snakemake effort`: the effort table and figure (and the runs they need) only.
rule effort:
    input:
        effort_outputs(),
