"""Model configuration: one frozen dataclass, validated, round-tripping through plain dicts.

Plain types only, so a checkpoint that embeds ``dataclasses.asdict(cfg)`` loads with
``torch.load(weights_only=True)`` and rebuilds the same model.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnext101_64x4d")


@dataclass(frozen=True)
class ModelConfig:
    """Mask R-CNN with an FPN backbone, optionally with the partial-annotation (pa) module."""

    variant: str = "baseline"  # "baseline" | "pa"
    # backbone
    backbone: str = "resnet50"
    init: str = "none"  # "none" | "imagenet" | "coco" | path to a checkpoint
    norm: str = "auto"  # auto: frozen BN with imagenet/coco weights, else group norm | frozen_bn | gn
    trainable_layers: int = 5  # ResNet stages trained (5 = all, needed from scratch)
    fpn_channels: int = 256
    # input transform; min_size None keeps the native resolution (nuclei are small)
    min_size: int | None = None
    max_size: int = 1333
    image_mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    image_std: tuple[float, ...] = (0.229, 0.224, 0.225)
    # RPN: one anchor size per FPN level (the paper's nuclei are 8-128 px)
    anchor_sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    # R-CNN box and mask heads
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    representation_size: int = 1024
    mask_head_channels: int = 256
    mask_head_layers: int = 4
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_image: int = 1000  # images are dense
    # partial-annotation module (paper section II); the authors' code additions are options
    attention_levels: tuple[str, ...] = ("0",)  # FPN levels with self-attention ("0" = fpn1)
    attention_channels: int = 64  # Cb = Cv
    center_head_channels: int = 256
    center_head_convs: int = 2
    share_rpn_conv: bool = False  # authors' code: the centre head reuses the RPN head's 3x3 conv
    center_box_fraction: float = 0.3  # positive centre box = 0.3 w x 0.3 h
    center_samples: int = 128  # pixels sampled per batch
    center_positive_fraction: float = 0.5  # positives:negatives up to 1:1
    center_threshold: float = 0.95
    max_center_boxes: int = 1000
    ignore_iou: float = 0.3  # a would-be negative overlapping a predicted box this much is ignored
    warmup_steps: int = 0  # training steps before predicted boxes are used (authors' code)
    anchor_wh: tuple[float, float] | None = None  # training set's median nucleus (w, h), px

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        _validate(self)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """``slim``: trains usefully on a laptop CPU; ``paper``: the paper's ResNeXt-101 FPN."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from plain data, naming any unknown key or wrongly typed value."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown model setting {unknown[0]!r}; known: {', '.join(known)}")
        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            if not _type_ok(value, hints[key]):
                raise ValueError(f"model setting {key!r} expects {hints[key]}, got {value!r}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _type_ok(v, a) for v, a in zip(value, args, strict=True)
        )
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _validate(cfg: ModelConfig) -> None:
    def bad(name: str, expectation: str) -> ValueError:
        return ValueError(
            f"model setting {name!r} must be {expectation}, got {getattr(cfg, name)!r}"
        )

    if cfg.variant not in ("baseline", "pa"):
        raise bad("variant", "'baseline' or 'pa'")
    if cfg.backbone not in BACKBONES:
        raise bad("backbone", f"one of {BACKBONES}")
    if cfg.norm not in ("auto", "frozen_bn", "gn"):
        raise bad("norm", "'auto', 'frozen_bn' or 'gn'")
    if not 0 <= cfg.trainable_layers <= 5:
        raise bad("trainable_layers", "between 0 and 5")
    if len(cfg.anchor_sizes) != 5:
        raise bad("anchor_sizes", "5 sizes, one per FPN level")
    for name in (
        "rpn_positive_fraction",
        "box_positive_fraction",
        "center_positive_fraction",
        "center_box_fraction",
        "center_threshold",
        "ignore_iou",
    ):
        if not 0 < getattr(cfg, name) <= 1:
            raise bad(name, "in (0, 1]")
    for name in (
        "fpn_channels",
        "representation_size",
        "mask_head_channels",
        "mask_head_layers",
        "detections_per_image",
        "attention_channels",
        "center_head_channels",
        "center_samples",
        "max_center_boxes",
    ):
        if getattr(cfg, name) < 1:
            raise bad(name, "a positive integer")
    if not set(cfg.attention_levels) <= {"0", "1", "2", "3", "pool"}:
        raise bad("attention_levels", "FPN level names among '0', '1', '2', '3', 'pool'")
    if cfg.anchor_wh is not None and min(cfg.anchor_wh) <= 0:
        raise bad("anchor_wh", "two positive numbers (median nucleus width, height)")


PRESETS: dict[str, dict[str, Any]] = {
    "slim": {
        "backbone": "resnet18",
        "fpn_channels": 64,
        "representation_size": 256,
        "mask_head_channels": 64,
        "mask_head_layers": 2,
        "rpn_batch_size_per_image": 128,
        "rpn_pre_nms_top_n_train": 1000,
        "rpn_post_nms_top_n_train": 500,
        "rpn_pre_nms_top_n_test": 1000,
        "rpn_post_nms_top_n_test": 500,
        "box_batch_size_per_image": 128,
        "detections_per_image": 300,
        "center_head_channels": 64,
    },
    "paper": {
        "backbone": "resnext101_64x4d",
        "init": "imagenet",
        "trainable_layers": 3,
        "min_size": 360,
        "max_size": 1333,
    },
}
