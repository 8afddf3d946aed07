# Helpers shared by all rules (the resolved experiment plan and path builders).
#
# Every trained model is a run per replicate seed: models/{model}/seed{seed}/, evaluated into
# eval/{model}/seed{seed}/. Tables, figures and findings gather the runs of every seed.

from pathlib import Path

from snakemake.exceptions import WorkflowError

from nuclei_pa.model.config import INFERENCE_KEYS, ModelConfig, inference_settings
from nuclei_pa.plan.experiments import ConfigError, build_plan

try:
    PLAN = build_plan(config)
    # How every trained model predicts (config key `inference`, checked by ModelConfig's rules):
    # a param of the rules that predict, never of training, so changing it re-runs evaluation,
    # choice, figures, slides and annotation proposals but no training.
    INFERENCE = {
        **{k: getattr(ModelConfig(), k) for k in INFERENCE_KEYS},
        **inference_settings(config.get("inference") or {}),
    }
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}")

SEEDS = list(PLAN.seeds)
FIRST_SEED = SEEDS[0]


def R(*parts):
    """A path under the configured results folder."""
    return str(PLAN.results.joinpath(*map(str, parts)))


def dataset_dir(name):
    return R("data", name)


def combined_dataset_input(dataset):
    """A dataset built from another one (the paper's TNBC + Kumar breast split) needs it first."""
    other = PLAN.datasets[dataset].download.get("breast_split_with")
    return [dataset_dir(other)] if other else []


def trainset_input(trainset, seed):
    """The folder Snakemake must build before training on ``trainset`` with ``seed``."""
    ts = PLAN.trainsets[trainset]
    return (
        dataset_dir(ts.dataset)
        if ts.derive is None
        else R("trainsets", trainset, f"seed{seed}")
    )


def pretrained_input(model, seed):
    """The checkpoints of the model that starts ``model`` (``init: model:<name>``)."""
    other = PLAN.models[model].pretrained
    return [] if other is None else [run_dir("models", other, seed, "checkpoints")]


def pretrained_iteration(model):
    """The final checkpoint's iteration of the model that starts ``model``, or None."""
    other = PLAN.models[model].pretrained
    return None if other is None else PLAN.models[other].checkpoints[-1]


def run_dir(kind, model, seed=FIRST_SEED, *parts):
    """models/… or eval/… of one model's run with one seed."""
    return R(kind, model, f"seed{seed}", *parts)


def curves(models):
    """Learning curves of every seed of each model, model after model (scripts rely on it)."""
    return [run_dir("eval", m, s, "curve.csv") for m in models for s in SEEDS]


def evaluations(models):
    """Per-checkpoint evaluation folders, in the order of :func:`curves`."""
    return [run_dir("eval", m, s, "checkpoints") for m in models for s in SEEDS]


def choices(models):
    """Each run's checkpoint and threshold chosen on validation, in the order of :func:`curves`."""
    return [run_dir("eval", m, s, "chosen.json") for m in models for s in SEEDS]


def chosen_tests(models):
    """Each run's per-image test metrics at its choice, in the order of :func:`curves`."""
    return [run_dir("eval", m, s, "chosen_test.csv") for m in models for s in SEEDS]


def classical_summary():
    """The classical reference's summary, when the report asks for it."""
    dataset = PLAN.report.get("classical")
    return [R("eval", "classical", f"{dataset}.summary.csv")] if dataset else []


def final_checkpoint(model):
    it = PLAN.models[model].checkpoints[-1]
    return run_dir("models", model, FIRST_SEED, "checkpoints", f"ckpt_{it:06d}.pt")


def comparison_models(table):
    """Our model first, then the models it is compared with (Tables 3 and 4)."""
    spec = PLAN.report[table]
    return [spec["ours"], *spec.get("compare", [])]


def findings_models():
    return list(PLAN.report["findings"].values()) if PLAN.report.get("findings") else []


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
    if rep.get("findings"):
        out += [R("findings.md"), R("findings.csv")]
    if rep.get("effort"):
        out += [R("tables", "effort.csv"), R("tables", "effort.md")]
        out += [R("figures", "effort.png"), R("figures", "effort.pdf")]
    sweep = set(PLAN.sweep.added) if PLAN.sweep else set()
    out += curves([m for m in PLAN.models if m not in sweep])
    return out


def sweep_outputs():
    return [
        R("tables", "sweep.csv"),
        R("tables", "sweep.md"),
        R("figures", "sweep.png"),
        R("figures", "sweep.pdf"),
    ]


# Whole slides (rules/slides.smk): the optional `slides` config key.

SLIDES = config.get("slides") or {}


def _slide_files():
    files = [Path(f) for f in SLIDES.get("files", [])]
    stems = [f.stem for f in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise WorkflowError(f"config key 'slides.files': two slides named {dup[0]!r}")
    if files and bool(SLIDES.get("model")) == bool(SLIDES.get("checkpoint")):
        raise WorkflowError(
            "config key 'slides': give exactly one of 'model' and 'checkpoint'"
        )
    if SLIDES.get("model") and SLIDES["model"] not in PLAN.models:
        raise WorkflowError(f"config key 'slides.model': no model {SLIDES['model']!r}")
    return {f.stem: str(f) for f in files}


SLIDE_FILES = _slide_files()


def slide_checkpoint_input():
    """A checkpoint file, or the checkpoints folder of a configured model (a directory output:
    Snakemake cannot ask for one file inside it, so the model's training runs first)."""
    if SLIDES.get("checkpoint"):
        return SLIDES["checkpoint"]
    return run_dir("models", SLIDES["model"], FIRST_SEED, "checkpoints")


def slide_checkpoint():
    """The checkpoint file the slides are predicted with."""
    return SLIDES.get("checkpoint") or final_checkpoint(SLIDES["model"])


# The sparse-label arms at equal annotation effort (issue 24): config key report.effort.

EFFORT = PLAN.report.get("effort") or {}


def effort_models():
    """Every model of report.effort's arms, arm after arm, each once."""
    arms = EFFORT.get("arms", {})
    return list(dict.fromkeys(m for models in arms.values() for m in models))


def effort_outputs():
    if not EFFORT:
        return []
    return [
        R("tables", "effort.csv"),
        R("tables", "effort.md"),
        R("figures", "effort.png"),
        R("figures", "effort.pdf"),
    ]
