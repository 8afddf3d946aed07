"""The workflow's `annotate:` config block, resolved and checked before any job runs.

Rounds need a person in between, so one run of the `annotate` target makes exactly one round:
``rounds: N`` builds round N from round N−1's folder as the annotator corrected it in place.
Earlier rounds are inputs of the rule, never outputs, so Snakemake can neither re-run nor
delete a round somebody has corrected. Kept out of the rule file so it is plain, tested Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nuclei_pa.plan.experiments import ConfigError, Plan

__all__ = ["AnnotatePlan", "annotate_plan"]

SETTING_KEYS = ("min_new", "score_threshold")


@dataclass(frozen=True)
class AnnotatePlan:
    """One round's paths and settings; ``configured`` is False without an `annotate:` block."""

    configured: bool
    out: Path
    round_no: int
    images: Path | None
    annotations: Path | None  # round 1: the partial ones; later: `corrected`, else None
    trainset: str | None
    trainset_split: Path | None
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def round_name(self) -> str:
        return f"round_{self.round_no:02d}"

    @property
    def previous(self) -> Path | None:
        return self.out / f"round_{self.round_no - 1:02d}" if self.round_no > 1 else None

    def inputs(
        self, trainset_input: Callable[[str], str], ancient: Callable[[str], Any]
    ) -> dict[str, Any]:
        """The rule's input: round 1's data (a training set's folder is built first), or the
        previous round's folder (``ancient``: the annotator's edits must not re-trigger it)."""
        if not self.configured:
            raise ConfigError(
                "annotate",
                "missing; add an `annotate:` block with `images` and `annotations` (or "
                "`trainset`) to run annotation rounds",
            )
        if self.previous is not None:
            files = {"previous": ancient(str(self.previous))}
            if self.annotations is not None:
                files["corrected"] = ancient(str(self.annotations))
            return files
        if self.trainset is not None:
            return {"trainset": trainset_input(self.trainset)}
        if self.images is None or self.annotations is None:
            raise ConfigError(
                "annotate", "round 1 needs `images` and `annotations` (or `trainset`)"
            )
        return {"images": str(self.images), "annotations": str(self.annotations)}

    def paths(self) -> dict[str, str | None]:
        """What the round reads: the images folder and the annotations (None: previous round)."""
        images = self.trainset_split / "images" if self.trainset_split else self.images
        annotations = self.annotations
        if self.round_no == 1 and self.trainset_split is not None:
            annotations = self.trainset_split / "annotations.json"
        return {
            "images": str(images),
            "annotations": None if annotations is None else str(annotations),
        }


def annotate_plan(config: Mapping[str, Any], plan: Plan, seed: int) -> AnnotatePlan:
    """Resolve `annotate:` against the experiment plan (``seed`` picks a derived training set's
    copy); errors name the `annotate.` key. Model and training settings are the top-level
    `model:`/`train:` defaults overridden by `annotate.model:`/`annotate.train:`, always pa."""
    from nuclei_pa.annotate.session import ROUND_ITERATIONS
    from nuclei_pa.engine import TrainConfig
    from nuclei_pa.model import ModelConfig

    raw = config.get("annotate")
    spec = dict(raw or {})
    trainset = spec.get("trainset")
    if trainset is not None:
        if trainset not in plan.trainsets:
            raise ConfigError(
                "annotate.trainset",
                f"names missing training set {trainset!r}; known: {sorted(plan.trainsets)}",
            )
        if spec.get("images") or spec.get("annotations"):
            raise ConfigError(
                "annotate", "give `trainset` or `images` with `annotations`, not both"
            )
    rounds = spec.get("rounds", 1)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ConfigError("annotate.rounds", f"expected a round number from 1, got {rounds!r}")
    model = {**config.get("model", {}), **spec.get("model", {})}
    preset = model.pop("preset", "slim")
    train = {
        **dataclasses.asdict(TrainConfig()),
        **config.get("train", {}),
        **spec.get("train", {}),
        "iterations": spec.get("iterations", ROUND_ITERATIONS),
        "device": plan.device,
    }
    try:
        model_cfg = ModelConfig.preset(preset, **{**model, "variant": "pa"})
        TrainConfig.from_dict(train)
    except (TypeError, ValueError) as exc:
        raise ConfigError("annotate", str(exc)) from exc
    annotations = spec.get("annotations") if rounds == 1 else spec.get("corrected")
    return AnnotatePlan(
        configured=raw is not None,
        out=Path(spec.get("out") or plan.results / "annotate"),
        round_no=rounds,
        images=Path(spec["images"]) if spec.get("images") else None,
        annotations=Path(annotations) if annotations else None,
        trainset=trainset,
        trainset_split=plan.trainset_dir(trainset, seed) if trainset is not None else None,
        model=model_cfg.to_dict(),
        train=train,
        settings={k: spec[k] for k in SETTING_KEYS if k in spec},
    )
