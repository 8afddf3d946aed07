"""The experiment plan behind the workflow: datasets → training sets → models → tables.

Snakemake's JSON schema checks types, unknown keys and fills defaults; what a schema cannot
express — names that must refer to each other, and the model and training settings whose single
source of truth is :class:`~nuclei_pa.model.ModelConfig` / :class:`~nuclei_pa.engine.TrainConfig`
— is checked here, before any job runs, with errors that name the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuclei_pa.errors import ConfigError

__all__ = [
    "MODEL_INIT",
    "ConfigError",
    "Dataset",
    "Model",
    "Plan",
    "Sweep",
    "TrainSet",
    "build_plan",
]


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "synth" | "download" | "folder"
    synth: dict[str, Any] = field(default_factory=dict)
    download: dict[str, Any] = field(default_factory=dict)
    folder: dict[str, Any] = field(default_factory=dict)  # a nuclei_pa.data.folder.FolderSpec
    groups: dict[str, list[str]] = field(default_factory=dict)  # group → styles/images
    validation: dict[str, Any] | None = None  # a nuclei_pa.data.validation.ValidationSplit


@dataclass(frozen=True)
class TrainSet:
    name: str
    dataset: str
    derive: str | None = None  # None | "remove" | "crop" | "regions"
    fraction: float = 1.0
    count: int = 1  # regions: regions per image
    outside_fraction: float = 0.0  # regions: share of the nuclei outside them kept


@dataclass(frozen=True)
class Model:
    name: str
    trainset: str
    variant: str
    test: str  # dataset whose test split evaluates the model
    model: dict[str, Any]
    train: dict[str, Any]

    @property
    def iterations(self) -> int:
        return int(self.train["iterations"])

    @property
    def checkpoints(self) -> list[int]:
        every = int(self.train["checkpoint_every"])
        return list(range(every, self.iterations + 1, every))

    @property
    def pretrained(self) -> str | None:
        """The plan's model whose final checkpoint starts this one (``init: model:<name>``)."""
        init = str(self.model.get("init", ""))
        return init.removeprefix(MODEL_INIT) if init.startswith(MODEL_INIT) else None


@dataclass(frozen=True)
class Sweep:
    """The annotation-fraction sweep: one model per (fraction, variant), named in ``models``;
    ``added`` are those it trains itself (the others are configured models it reuses)."""

    dataset: str
    fractions: tuple[float, ...]
    variants: tuple[str, ...]
    models: dict[tuple[float, str], str]
    added: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    results: Path
    resources: Path
    seed: int
    device: str
    datasets: dict[str, Dataset]
    trainsets: dict[str, TrainSet]
    models: dict[str, Model]
    report: dict[str, Any]
    seeds: tuple[int, ...] = (0,)
    sweep: Sweep | None = None

    def trainset_dir(self, name: str, seed: int) -> Path:
        """Where a training set lives: the raw train split, or its derivation for ``seed``."""
        ts = self.trainsets[name]
        if ts.derive is None:
            return self.results / "data" / ts.dataset / "train"
        return self.results / "trainsets" / name / f"seed{seed}"

    def reference_dir(self, name: str) -> Path | None:
        """The full annotations of a ``remove``-derived training set's images (the same files),
        so a pa model's ``train_log.csv`` says how many centre boxes land on unlabelled nuclei;
        None for the others (no labels were removed, or the images were cropped)."""
        ts = self.trainsets[name]
        return self.results / "data" / ts.dataset / "train" if ts.derive == "remove" else None

    def test_dir(self, model: str) -> Path:
        return self.results / "data" / self.models[model].test / "test"

    def val_dir(self, model: str) -> Path | None:
        """The validation split that chooses for ``model`` (its test dataset's), or None."""
        dataset = self.models[model].test
        if self.datasets[dataset].validation is None:
            return None
        return self.results / "data" / dataset / "val"


DATASET_KINDS = ("synth", "download", "folder")

#: ``model.init`` prefix naming another model of the plan: its final checkpoint (same seed)
#: starts this one, so a pretraining run (e.g. on synthetic nuclei) is a cached workflow output.
MODEL_INIT = "model:"


def _check_folder(name: str, spec: Any) -> tuple[list[str], list[str]]:
    """A folder dataset must name its files and split them into training and test images now,
    before any job runs: files are listed and the split resolved (no pixel is read). Returns
    the training and test image names."""
    from nuclei_pa.data.folder import FolderSpec, plan_folder
    from nuclei_pa.errors import InputError

    key = f"datasets.{name}.folder"
    if spec is None:
        raise ConfigError(key, "required for kind 'folder' (images, annotations, test)")
    try:
        plan = plan_folder(FolderSpec.from_config(_mapping(spec, key)))
    except ConfigError as exc:
        raise ConfigError(f"{key}.{exc.key}", exc.problem) from exc
    except InputError as exc:
        raise ConfigError(key, str(exc)) from exc
    return [e.name for e in plan.train], [e.name for e in plan.test]


def _local_split(d: Mapping[str, Any]) -> tuple[list[str], list[str]] | None:
    """Training and test image names of a dataset, where they are known before any job runs:
    a folder (listed), a download read from a local copy with a split table (Kumar), or a
    synthetic set (counted); None where only the download would tell."""
    from nuclei_pa.data.convert import CONVERTERS
    from nuclei_pa.data.folder import FolderSpec, plan_folder
    from nuclei_pa.data.sources import source
    from nuclei_pa.errors import InputError

    if d.get("kind", "synth") == "synth":
        from nuclei_pa.data.synth_config import SynthConfig

        n = int(d.get("synth", {}).get("n_train", SynthConfig().n_train))
        return [f"train_{i:04d}" for i in range(n)], []
    dl = d.get("download") or {}
    root = dl.get("data_root")
    if d.get("kind") != "download" or root is None or not Path(root).is_dir():
        return None
    options = {"require_all": False} if dl.get("allow_missing") else {}
    try:
        spec = CONVERTERS[source(dl["source"]).converter](Path(root), **options)
        if not isinstance(spec, FolderSpec):
            return None
        plan = plan_folder(spec)
    except (ConfigError, InputError, TypeError):
        return None  # the prepare job reports it, naming the file
    return [e.name for e in plan.train], [e.name for e in plan.test]


def _check_validation(
    name: str, d: Mapping[str, Any], split: tuple[list[str], list[str]] | None
) -> dict[str, Any] | None:
    """The validation split must be well formed and, where the images are known now, leave at
    least one validation and one training image and name no test image."""
    from nuclei_pa.data.validation import ValidationSplit

    spec = d.get("validation")
    if spec is None:
        return None
    key = f"datasets.{name}.validation"
    synthetic = d.get("kind", "synth") == "synth"
    try:
        parsed = ValidationSplit.from_config(spec)
        split = split or _local_split(d)
        # synthetic images are counted, not named, before synthesis
        if split is not None and not (synthetic and parsed.names is not None):
            parsed.choose(*split)
    except ConfigError as exc:
        raise ConfigError(f"{key}.{exc.key}".rstrip("."), exc.problem) from exc
    return dict(spec)


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a mapping, got {type(value).__name__}")
    return value


def _validated_model_settings(
    key: str, base: Mapping[str, Any], override: Mapping[str, Any], variant: str
) -> dict[str, Any]:
    from nuclei_pa.model import ModelConfig

    merged = {**base, **override}
    preset = merged.pop("preset", "slim")
    try:
        data = {**ModelConfig.preset(preset).to_dict(), **merged, "variant": variant}
        ModelConfig.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(key, str(exc)) from exc
    return data


def _validated_train_settings(
    key: str, base: Mapping[str, Any], override: Mapping[str, Any]
) -> dict[str, Any]:
    import dataclasses

    from nuclei_pa.engine import TrainConfig

    merged = {**dataclasses.asdict(TrainConfig()), **base, **override}
    try:
        TrainConfig.from_dict(merged)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(key, str(exc)) from exc
    every, iters = merged["checkpoint_every"], merged["iterations"]
    if iters % every:
        raise ConfigError(
            f"{key}.checkpoint_every",
            f"{every} does not divide iterations ({iters}); checkpoints would miss the end",
        )
    return merged


def build_plan(config: Mapping[str, Any]) -> Plan:
    """Check cross-references and model/training settings; return the resolved plan."""
    datasets = _datasets(config)
    trainsets = _trainsets(config, datasets)
    base_model = _mapping(config.get("model", {}), "model")
    base_train = _mapping(config.get("train", {}), "train")
    models = _models(config, datasets, trainsets, base_model, base_train)
    _check_pretraining(models)
    sweep = _sweep(config.get("sweep"), datasets, trainsets, models, base_model, base_train)
    report = dict(_mapping(config.get("report", {}), "report"))
    _check_report(report, datasets, models)
    _check_effort_report(report.get("effort"), models)
    seed = int(config.get("seed", 0))
    seeds = tuple(int(s) for s in config.get("seeds") or [seed])
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"repeats a seed: {list(seeds)}")
    return Plan(
        Path(config.get("results", "results")),
        Path(config.get("resources", "resources")),
        seed,
        str(config.get("device", "auto")),
        datasets,
        trainsets,
        models,
        report,
        seeds,
        sweep,
    )


def _datasets(config: Mapping[str, Any]) -> dict[str, Dataset]:
    """``datasets``: each one's kind, source or folder, and validation images."""
    datasets = {}
    for name, d in _mapping(config.get("datasets", {}), "datasets").items():
        d = _mapping(d, f"datasets.{name}")
        kind = d.get("kind", "synth")
        if kind not in DATASET_KINDS:
            raise ConfigError(
                f"datasets.{name}.kind", f"expected one of {', '.join(DATASET_KINDS)}, got {kind!r}"
            )
        split = _check_folder(name, d.get("folder")) if kind == "folder" else None
        if kind == "download":
            from nuclei_pa.data.sources import REGISTRY

            src = d.get("download", {}).get("source")
            if src not in REGISTRY:
                raise ConfigError(
                    f"datasets.{name}.download.source",
                    f"expected one of {sorted(REGISTRY)}, got {src!r}",
                )
        datasets[name] = Dataset(
            name,
            kind,
            dict(d.get("synth", {})),
            dict(d.get("download", {})),
            folder=dict(d.get("folder") or {}),
            groups={g: list(v) for g, v in d.get("groups", {}).items()},
            validation=_check_validation(name, d, split),
        )
    for name, d in datasets.items():
        other = d.download.get("breast_split_with")
        if other is not None and other not in datasets:
            raise ConfigError(
                f"datasets.{name}.download.breast_split_with", f"names missing dataset {other!r}"
            )
    return datasets


def _trainsets(config: Mapping[str, Any], datasets: Mapping[str, Dataset]) -> dict[str, TrainSet]:
    """``trainsets``: each names a dataset and how its annotations are derived."""
    trainsets = {}
    for name, t in _mapping(config.get("trainsets", {}), "trainsets").items():
        t = _mapping(t, f"trainsets.{name}")
        if t.get("dataset") not in datasets:
            raise ConfigError(
                f"trainsets.{name}.dataset",
                f"names missing dataset {t.get('dataset')!r}; known: {sorted(datasets)}",
            )
        derive = t.get("derive")
        if derive not in (None, "remove", "crop", "regions"):
            raise ConfigError(
                f"trainsets.{name}.derive",
                f"expected 'remove', 'crop' or 'regions', got {derive!r}",
            )
        count, outside = t.get("count", 1), float(t.get("outside_fraction", 0.0))
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"trainsets.{name}.count", f"expected an integer ≥ 1, got {count!r}")
        if not 0.0 <= outside <= 1.0:
            raise ConfigError(
                f"trainsets.{name}.outside_fraction", f"expected a number in [0, 1], got {outside}"
            )
        if derive != "regions" and ("count" in t or "outside_fraction" in t):
            key = "count" if "count" in t else "outside_fraction"
            raise ConfigError(f"trainsets.{name}.{key}", "only for derive: regions")
        fraction = float(t.get("fraction", 1.0))
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(
                f"trainsets.{name}.fraction", f"expected a number in (0, 1], got {fraction}"
            )
        trainsets[name] = TrainSet(name, t["dataset"], derive, fraction, count, outside)
    return trainsets


def _models(
    config: Mapping[str, Any],
    datasets: Mapping[str, Dataset],
    trainsets: Mapping[str, TrainSet],
    base_model: Mapping[str, Any],
    base_train: Mapping[str, Any],
) -> dict[str, Model]:
    """``models``: each names a training set and a test dataset; settings checked by the
    configurations themselves."""
    models = {}
    for name, m in _mapping(config.get("models", {}), "models").items():
        m = _mapping(m, f"models.{name}")
        ts = m.get("trainset")
        if ts not in trainsets:
            raise ConfigError(
                f"models.{name}.trainset",
                f"names missing training set {ts!r}; known: {sorted(trainsets)}",
            )
        variant = m.get("variant")
        if variant not in ("baseline", "pa"):
            raise ConfigError(
                f"models.{name}.variant", f"expected 'baseline' or 'pa', got {variant!r}"
            )
        test = m.get("test", trainsets[ts].dataset)
        if test not in datasets:
            raise ConfigError(f"models.{name}.test", f"names missing dataset {test!r}")
        model_cfg = _validated_model_settings(
            f"models.{name}.model", base_model, m.get("model", {}), variant
        )
        train_cfg = _validated_train_settings(
            f"models.{name}.train", base_train, m.get("train", {})
        )
        models[name] = Model(name, ts, variant, test, model_cfg, train_cfg)
    return models


def _check_report(
    report: Mapping[str, Any], datasets: Mapping[str, Dataset], models: Mapping[str, Model]
) -> None:
    """The tables, figures and findings name configured models, evaluated where they say."""
    for key in ("table1", "figure4"):
        for model in report.get(key, []):
            if model not in models:
                raise ConfigError(f"report.{key}", f"names missing model {model!r}")
    attention = report.get("attention")
    if attention and (attention not in models or models[attention].variant != "pa"):
        raise ConfigError("report.attention", f"names {attention!r}, which is not a pa model")
    for key in ("table3", "table4"):
        spec = report.get(key)
        if spec:
            if spec.get("dataset") not in datasets:
                raise ConfigError(
                    f"report.{key}.dataset", f"names missing dataset {spec.get('dataset')!r}"
                )
            for model in [spec.get("ours"), *spec.get("compare", [])]:
                if model not in models:
                    raise ConfigError(f"report.{key}", f"names missing model {model!r}")
                if models[model].test != spec["dataset"]:
                    raise ConfigError(
                        f"report.{key}",
                        f"model {model!r} is evaluated on {models[model].test!r}, not on the "
                        f"table's dataset {spec['dataset']!r}",
                    )
    for role, model in (report.get("findings") or {}).items():
        if model not in models:
            raise ConfigError(f"report.findings.{role}", f"names missing model {model!r}")


def _check_effort_report(spec: Any, models: Mapping[str, Model]) -> None:
    """report.effort (issue 24): every arm names configured models, at most one per dataset
    and variant, and the reference is one of the arms."""
    if not spec:
        return
    arms = _mapping(spec.get("arms"), "report.effort.arms")
    if not arms:
        raise ConfigError("report.effort.arms", "names no arm")
    for arm, names in arms.items():
        seen: dict[tuple[str, str], str] = {}
        for model in names or []:
            if model not in models:
                raise ConfigError(f"report.effort.arms.{arm}", f"names missing model {model!r}")
            key = (models[model].test, models[model].variant)
            if key in seen:
                raise ConfigError(
                    f"report.effort.arms.{arm}",
                    f"{seen[key]!r} and {model!r} are both {key[1]} models tested on {key[0]!r}",
                )
            seen[key] = model
    reference = spec.get("reference")
    if reference is not None and reference not in arms:
        raise ConfigError("report.effort.reference", f"names missing arm {reference!r}")


def _check_pretraining(models: Mapping[str, Model]) -> None:
    """``init: model:<name>`` must name another model of the plan, without a cycle."""
    for name, model in models.items():
        seen, current = [name], model.pretrained
        while current is not None:
            if current not in models:
                raise ConfigError(
                    f"models.{name}.model.init", f"names missing model {current!r} ({MODEL_INIT})"
                )
            if current in seen:
                chain = " -> ".join([*seen, current])
                raise ConfigError(f"models.{name}.model.init", f"pretraining cycle: {chain}")
            seen.append(current)
            current = models[current].pretrained


def _sweep(
    spec: Any,
    datasets: Mapping[str, Dataset],
    trainsets: dict[str, TrainSet],
    models: dict[str, Model],
    base_model: Mapping[str, Any],
    base_train: Mapping[str, Any],
) -> Sweep | None:
    """Add the sweep's training sets and models to the plan (they train like any other). A
    point whose training set and model a configured model already has (e.g. fraction 1.0 and a
    full-label model) reuses that model instead of training the same run twice."""
    if not spec:
        return None
    spec = _mapping(spec, "sweep")
    dataset = spec.get("dataset")
    if dataset not in datasets:
        raise ConfigError("sweep.dataset", f"names missing dataset {dataset!r}")
    fractions = tuple(float(f) for f in spec.get("fractions", (1.0, 0.75, 0.5, 0.25, 0.1)))
    variants = tuple(spec.get("variants", ("baseline", "pa")))
    named: dict[tuple[float, str], str] = {}
    added: list[str] = []
    seen: set[str] = set()
    for fraction in fractions:
        if not 0.0 < fraction <= 1.0:
            raise ConfigError("sweep.fractions", f"expected numbers in (0, 1], got {fraction}")
        ts = f"sweep_{dataset}_{round(fraction * 100):03d}"
        if ts in trainsets or ts in seen:
            raise ConfigError("sweep.fractions", f"{fraction} gives {ts!r} twice")
        seen.add(ts)
        data = TrainSet(ts, dataset, None if fraction == 1.0 else "remove", fraction)
        twin = next((t.name for t in trainsets.values() if _same_but_name(t, data)), None)
        if twin is None:
            trainsets[ts] = data
        for variant in variants:
            if variant not in ("baseline", "pa"):
                raise ConfigError("sweep.variants", f"expected 'baseline' or 'pa', got {variant!r}")
            model = Model(
                f"{ts}-{variant}",
                twin or ts,
                variant,
                dataset,
                _validated_model_settings(
                    "sweep.model", base_model, spec.get("model", {}), variant
                ),
                _validated_train_settings("sweep.train", base_train, spec.get("train", {})),
            )
            same = next((m.name for m in models.values() if _same_but_name(m, model)), None)
            if same is None:
                models[model.name] = model
                added.append(model.name)
            named[(fraction, variant)] = same or model.name
    return Sweep(dataset, fractions, variants, named, tuple(added))


def _same_but_name(a: TrainSet | Model, b: TrainSet | Model) -> bool:
    """Whether two training sets, or two models, differ in name only: derivations and trainings
    are seeded by the replicate seed alone, so such twins make identical files and runs."""
    return dataclasses.replace(a, name="") == dataclasses.replace(b, name="")
