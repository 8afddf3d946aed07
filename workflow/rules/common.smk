# Helpers shared by all rules (the resolved experiment plan and path builders).

from pathlib import Path

from snakemake.exceptions import WorkflowError

from nuclei_pa.experiments import ConfigError, build_plan

try:
    PLAN = build_plan(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}")


def R(*parts):
    """A path under the configured results folder."""
    return str(PLAN.results.joinpath(*map(str, parts)))


def dataset_dir(name):
    return R("data", name)


def combined_dataset_input(dataset):
    """A dataset built from another one (the paper's TNBC + Kumar breast split) needs it first."""
    other = PLAN.datasets[dataset].download.get("breast_split_with")
    return [dataset_dir(other)] if other else []


def trainset_input(trainset):
    """The folder Snakemake must build before training on ``trainset``."""
    ts = PLAN.trainsets[trainset]
    return dataset_dir(ts.dataset) if ts.derive is None else R("trainsets", trainset)


def checkpoint_summaries(model):
    return [
        R("eval", model, f"iter_{it:06d}.summary.csv")
        for it in PLAN.models[model].checkpoints
    ]


def checkpoint_evaluations(model):
    return [
        R("eval", model, f"iter_{it:06d}.csv") for it in PLAN.models[model].checkpoints
    ]


def classical_summary():
    """The classical reference's summary, when the report asks for it."""
    dataset = PLAN.report.get("classical")
    return [R("eval", "classical", f"{dataset}.summary.csv")] if dataset else []


def final_checkpoint(model):
    it = PLAN.models[model].checkpoints[-1]
    return R("models", model, "checkpoints", f"ckpt_{it:06d}.pt")


def comparison_models(table):
    """Our model first, then the models it is compared with (Tables 3 and 4)."""
    spec = PLAN.report[table]
    return [spec["ours"], *spec.get("compare", [])]


def report_models():
    rep = PLAN.report
    names = list(rep.get("table1", [])) + list(rep.get("figure4", []))
    names += list(rep.get("table2", []))
    for key in ("table3", "table4"):
        if rep.get(key):
            names += [rep[key]["ours"], *rep[key].get("compare", [])]
    return list(dict.fromkeys(names))


def final_outputs():
    rep = PLAN.report
    out = []
    if rep.get("table1"):
        out += [R("tables", "table1.csv"), R("tables", "table1.md")]
    if rep.get("figure4"):
        out += [R("figures", "figure4.png"), R("figures", "figure4.pdf")]
        out += [R("figures", "examples.png"), R("figures", "examples.pdf")]
    if rep.get("attention"):
        out += [R("figures", "attention.png"), R("figures", "attention.pdf")]
    if rep.get("table2"):
        out += [R("tables", "table2.csv"), R("tables", "table2.md")]
    for key in ("table3", "table4"):
        if rep.get(key):
            out += [R("tables", f"{key}.csv"), R("tables", f"{key}.md")]
    out += [R("eval", m, "curve.csv") for m in PLAN.models]
    return out
