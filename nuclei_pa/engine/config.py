"""Training configuration (the paper: batch 8, fixed LR 0.01, weight decay, gradient clipping,
flips only, a checkpoint every 50 of 1000 iterations)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nuclei_pa.model.config import _type_ok


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 1000
    batch_size: int = 8  # global batch, split across data-parallel processes
    lr: float = 0.01  # fixed: no schedule, as in the paper
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip_grad_norm: float = 10.0  # max global gradient norm; 0 disables
    checkpoint_every: int = 50
    flips: bool = True  # random horizontal and vertical flips, the paper's only augmentation
    seed: int = 0
    device: str = "auto"  # auto: CUDA when available, else CPU
    threads: int = 0  # CPU threads for torch (0: torch's default)

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train setting {name!r} must be ≥ 1, got {getattr(self, name)!r}")
        for name in ("lr", "momentum", "weight_decay", "clip_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"train setting {name!r} must be ≥ 0, got {getattr(self, name)!r}")
        if self.lr == 0:
            raise ValueError("train setting 'lr' must be > 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from plain data, naming any unknown key or wrongly typed value."""
        import typing

        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(
                f"unknown train setting {unknown[0]!r}; known: {', '.join(sorted(fields))}"
            )
        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            if not _type_ok(value, hints[key]):
                raise ValueError(
                    f"train setting {key!r} expects {hints[key].__name__}, got {value!r}"
                )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
