"""Training configuration: one frozen dataclass, the single source of every training default.

Defaults follow the paper (section III): 1000 iterations, batch 8, learning rate 0.01, SGD with
weight decay, gradient-norm clipping, random flips as the only augmentation (more are
available, off by default: :mod:`.augment`), a checkpoint every
50 iterations, whole images (``crop_size`` trains on patches instead). One departure: the
learning rate follows a cosine to zero instead of staying fixed (``lr_schedule``), because at a
fixed rate neighbouring checkpoints differ by up to 0.15 mAP and a comparison of two models
becomes a comparison of their luck.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from nuclei_pa.engine.augment import Augment
from nuclei_pa.model.config import from_plain

# The smallest patch: the backbone's coarsest feature map (stride 32) must keep a pixel.
MIN_CROP_SIZE = 32

# Settings that change the training trajectory: a resumed run must use the same values. A key
# missing from an older checkpoint stands for its default (the behaviour from before the key).
TRAJECTORY_KEYS = (
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "clip_grad_norm",
    "flips",
    "seed",
    "crop_size",
    "lr_schedule",
    "warmup_iterations",
    "warmup_factor",
    "bias_lr_factor",
    "bias_weight_decay",
    "amp",
    "rot90",
    "scale_jitter",
    "intensity_jitter",
    "stain_jitter",
)
# The value a key has in a checkpoint written before the key existed.
SAVED_BEFORE = {"lr_schedule": "constant", "amp": "off"}
LR_SCHEDULES = ("cosine", "constant")
AMP_MODES = ("auto", "bf16", "off")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: schedule, optimiser, augmentation, checkpoints, and where to run."""

    iterations: int = 1000
    batch_size: int = 8  # global batch: split evenly across data-parallel processes
    lr: float = 0.01  # the peak learning rate
    # cosine: lr · ½(1 + cos(π·(i − 1)/iterations)) at iteration i, the last checkpoints settle;
    # constant: lr throughout (the paper)
    lr_schedule: str = "cosine"
    # Linear warm-up: the rate rises from warmup_factor × its scheduled value at iteration 1 to
    # the full value over warmup_iterations (0: none). The authors' (Detectron's): 500, 1/3.
    warmup_iterations: int = 0
    warmup_factor: float = 1 / 3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # Biases train at bias_lr_factor × the rate with weight decay bias_weight_decay (None: the
    # weights'). The authors' (Detectron's): 2 and 0.
    bias_lr_factor: float = 1.0
    bias_weight_decay: float | None = None
    # Max global L2 norm of the gradient; 0 disables. The paper clips without saying at what.
    # 10 bites where training from scratch spikes: on the slim model and synthetic data (batch 2)
    # 64 % of the first 25 steps exceed it, 4 % of steps 50-100, none after (train_log.csv's
    # grad_norm column is the norm before clipping).
    clip_grad_norm: float = 10.0
    checkpoint_every: int = 50
    flips: bool = True  # random horizontal and vertical flips, the paper's only augmentation
    # More augmentation (nuclei_pa.engine.augment), all off by default (the paper's way):
    rot90: bool = False  # random quarter turns
    scale_jitter: float = 0.0  # resize each patch by a factor in [1/(1+s), 1+s], log-uniform
    intensity_jitter: float = 0.0  # gamma, contrast ×e^±s and brightness ±s/2
    stain_jitter: float = 0.0  # H&E: each stain's amount ×(1±s), shifted by ±s × its mean
    # Train on random crop_size × crop_size patches, mostly around annotated nuclei, instead of
    # whole images (None, the paper's way): a 1000 px image costs a CPU seconds per iteration
    # and gigabytes of masks, a 256 px patch a fraction of that (see nuclei_pa.engine.dataset).
    crop_size: int | None = None
    seed: int = 0
    device: str = "auto"  # auto: CUDA when available, else CPU; or cpu, cuda, cuda:1, …
    threads: int = 0  # CPU threads for torch ops (0: torch's default)
    num_workers: int = 2  # data-loading processes per training process (0: load in-process)
    log_every: int = 20  # iterations between progress lines when stderr is not a terminal
    # CUDA only: deterministic kernels (slower). CPU training is always deterministic.
    deterministic: bool = False
    # Mixed precision of the forward pass: bf16 (bfloat16 autocast), off (float32), or auto:
    # bf16 on CPUs with bfloat16 matrix units (AMX or AVX512-BF16, where it runs the slim model
    # 1.4x faster), float32 elsewhere (emulated bfloat16 is slower). Steps stay in float32.
    amp: str = "off"

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train setting {name!r} must be ≥ 1, got {getattr(self, name)!r}")
        for name in (
            "scale_jitter",
            "intensity_jitter",
            "stain_jitter",
            "momentum",
            "weight_decay",
            "clip_grad_norm",
            "seed",
            "threads",
            "num_workers",
            "warmup_iterations",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"train setting {name!r} must be ≥ 0, got {getattr(self, name)!r}")
        if self.crop_size is not None and self.crop_size < MIN_CROP_SIZE:
            raise ValueError(
                f"train setting 'crop_size' must be ≥ {MIN_CROP_SIZE} or None (whole images), "
                f"got {self.crop_size!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"train setting 'lr_schedule' must be one of {', '.join(LR_SCHEDULES)}, "
                f"got {self.lr_schedule!r}"
            )
        if self.amp not in AMP_MODES:
            raise ValueError(
                f"train setting 'amp' must be one of {', '.join(AMP_MODES)}, got {self.amp!r}"
            )
        if not self.lr > 0:
            raise ValueError(f"train setting 'lr' must be > 0, got {self.lr!r}")
        if not 0 < self.warmup_factor <= 1:
            raise ValueError(
                f"train setting 'warmup_factor' must be in (0, 1], got {self.warmup_factor!r}"
            )
        if not self.bias_lr_factor > 0:
            raise ValueError(
                f"train setting 'bias_lr_factor' must be > 0, got {self.bias_lr_factor!r}"
            )
        if self.bias_weight_decay is not None and self.bias_weight_decay < 0:
            raise ValueError(
                "train setting 'bias_weight_decay' must be ≥ 0 or None (as the weights), got "
                f"{self.bias_weight_decay!r}"
            )
        if not self.device:
            raise ValueError("train setting 'device' must not be empty (use 'auto')")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from plain data (YAML, a checkpoint), naming any unknown key or mistyped value."""
        return from_plain(cls, data, "train")

    def lr_at(self, iteration: int) -> float:
        """The learning rate of 1-based ``iteration`` (biases: × ``bias_lr_factor``): a pure
        function, so resuming is exact."""
        lr = self.lr
        if self.lr_schedule == "cosine":
            lr *= 0.5 * (1.0 + math.cos(math.pi * (iteration - 1) / self.iterations))
        if iteration - 1 < self.warmup_iterations:
            progress = (iteration - 1) / self.warmup_iterations
            lr *= self.warmup_factor * (1 - progress) + progress
        return lr

    @property
    def augment(self) -> Augment:
        """The augmentations beyond flips these settings ask for."""
        return Augment(self.rot90, self.scale_jitter, self.intensity_jitter, self.stain_jitter)

    @property
    def separate_biases(self) -> bool:
        """Whether biases need their own optimiser group (another rate or weight decay)."""
        return self.bias_lr_factor != 1.0 or self.bias_weight_decay not in (
            None,
            self.weight_decay,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
