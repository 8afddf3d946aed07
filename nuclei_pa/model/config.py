"""Model configuration: one frozen dataclass, validated, round-tripping through plain dicts.

Plain types only, so a checkpoint that embeds ``dataclasses.asdict(cfg)`` loads with
``torch.load(weights_only=True)`` and rebuilds the same model.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nuclei_pa.errors import ConfigError

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnext101_64x4d")
FPN_LEVELS = ("0", "1", "2", "3", "pool")
#: ``init`` prefix of Detectron (Caffe2) weights: ``detectron:x101`` is the paper's start.
DETECTRON_PREFIX = "detectron:"


def is_detectron(init: str) -> bool:
    return init.startswith(DETECTRON_PREFIX)


#: Caffe2 (Detectron) weights read 0-255 pixels minus a mean with std 1: in our 0-1 units an
#: image_std of 1/255. A std this many times larger feeds them inputs that much off scale.
CAFFE2_STD = 1 / 255
CAFFE2_STD_TOLERANCE = 2.0


#: Allowed ``mask_box_scale``: shrinking would cut every nucleus; past 2 the mask head's 28×28
#: grid spends most of its resolution on background.
MASK_BOX_SCALES = (1.0, 2.0)

#: Settings that only change prediction, not the trained weights.
INFERENCE_KEYS = ("mask_box_scale", "mask_box_grow", "test_time_flips")

#: How pixel values become the model's 0..1 input (see nuclei_pa.engine.tensors).
INTENSITY_MODES = ("fixed", "percentile")


@dataclass(frozen=True)
class ModelConfig:
    """Mask R-CNN with an FPN backbone, optionally with the partial-annotation (pa) module.

    Defaults of the pa module follow the paper's text, except the centre threshold (0.5, not
    0.95: short CPU training never gets that sure; the ``paper`` preset keeps 0.95) and the
    centre-box coder weights ((1, 1, 1, 1), not the (10, 10, 5, 5) of the authors' code, whose
    RPN coder it shares; the ``paper`` preset keeps theirs); the authors' code additions
    (attention on every FPN level, the RPN's 3×3 conv shared with the centre head, a warm-up)
    are options.
    """

    variant: str = "baseline"  # "baseline" | "pa"
    # --- backbone -------------------------------------------------------------------------
    backbone: str = "resnet50"
    # "none" | "imagenet" | "coco" (resnet50) | "detectron:<.pkl path, URL, or x101>" (a Detectron
    # COCO Mask R-CNN FPN, the paper's start; nuclei_pa.model.detectron) | a checkpoint file
    init: str = "none"
    # auto: frozen batch norm with imagenet/coco weights (or a checkpoint trained so), else
    # group norm, which trains from scratch at batch 2 where batch norm cannot
    norm: str = "auto"  # "auto" | "frozen_bn" | "gn"
    trainable_layers: int = 5  # ResNet stages trained, from the top (5 = all, 3 = torchvision's)
    fpn_channels: int = 256
    # --- input transform: min_size None keeps each image's own size (nuclei are small) -------
    min_size: int | None = None
    max_size: int = 1333
    image_mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    image_std: tuple[float, ...] = (0.229, 0.224, 0.225)
    # How pixel values become 0..1 before that: "percentile" (each whole image's own 1st-99.8th
    # percentiles per channel, as StarDist normalises; engine.tensors.intensity_levels) or
    # "fixed" (the type's range, the paper's way; the `paper` preset). On real H&E percentile
    # raised every model's mAP; on real fluorescence it left the baselines level; with it every
    # pa target holds on both real sets (README, "The model")
    intensity: str = "percentile"
    # --- RPN: one anchor size per FPN level (nuclei are 8-128 px) ----------------------------
    anchor_sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    # Weights of the RPN's box deltas: torchvision's (1, 1, 1, 1); the authors' code (10, 10, 5, 5)
    rpn_box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    # --- R-CNN box and mask heads ------------------------------------------------------------
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    representation_size: int = 1024
    mask_head_channels: int = 256
    mask_head_layers: int = 4
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_image: int = 1000  # images are dense
    # --- inference only (nuclei_pa.engine.predict; training ignores them) ---------------------
    # The mask head reads each detection's box grown by this factor about its centre, and its
    # mask is pasted into that grown box: a nucleus a little larger than its box is then not cut
    # off in a straight line where the box ended. 1.0: torchvision's, the box itself.
    mask_box_scale: float = 1.0
    # Which detections get the grown box: "all", or "cut", only those whose mask on their own
    # box runs straight along one of its sides (model.roi_heads.cut_by_box; their mask head
    # runs twice).
    mask_box_grow: str = "cut"
    # Predict on the image and its horizontal, vertical and double flips and merge the four
    # (nuclei_pa.engine.tta): four times the prediction time.
    test_time_flips: bool = False
    # --- partial-annotation module (paper section II) ----------------------------------------
    attention_levels: tuple[str, ...] = ("0",)  # FPN levels with self-attention; "0" = fpn1
    attention_channels: int = 64  # Cb = Cv
    center_head_channels: int = 256
    center_head_convs: int = 1  # 3×3 convs before the two 3×3 predictors
    share_rpn_conv: bool = False  # authors' code: the centre head is the RPN head's 3×3 conv
    center_box_fraction: float = 0.3  # positive centre box: 0.3 w × 0.3 h
    center_samples: int = 128  # pixels sampled per batch
    center_positive_fraction: float = 0.5  # positives:negatives up to 1:1
    # Centerness above which a component becomes a predicted box. The paper's 0.95 needs a long,
    # pretrained training: at CPU budgets (a few hundred iterations from scratch) the balanced
    # centre/rim classifier is right long before it is that sure, and 0.95 predicts no box at
    # all for the first ~200 iterations on real images (see README, "The model").
    center_threshold: float = 0.5
    # Centre-box deltas (dx, dy, dw, dh) relative to the median-nucleus anchor are multiplied
    # by these before the loss: (1, 1, 1, 1), torchvision's RPN's. The authors' code encodes them
    # with its RPN coder, (10, 10, 5, 5), against a fixed 32 px box; that (10, 10, 5, 5) made
    # log-size errors of nuclei several-fold off the median dominate the whole update.
    center_box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    center_nms_iou: float | None = None  # NMS of decoded centre boxes (None: none, as the paper)
    max_center_boxes: int = 1000
    # A would-be negative overlapping a predicted box this much is ignored instead: each stage's
    # own background threshold, i.e. what would not be background were the box labelled.
    rpn_ignore_iou: float = 0.3
    box_ignore_iou: float = 0.5
    # A predicted box matching a labelled nucleus this well *is* that nucleus, whose label already
    # says what is background around it: it is left out of the ignore set. None keeps all.
    labelled_match_iou: float | None = 0.5
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
    def from_saved(cls, data: dict[str, Any]) -> ModelConfig:
        """A checkpoint's configuration; a key it predates gets the value it was trained with."""
        return cls.from_dict({**SAVED_BEFORE, **data})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from plain data (YAML, a checkpoint), naming any unknown key or mistyped value."""
        return from_plain(cls, data, "model")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_plain(cls: type, data: dict[str, Any], noun: str) -> Any:
    """Instantiate dataclass ``cls`` from plain data, rejecting unknown keys and wrong types with
    a message naming the ``noun`` setting; shared by every config class so errors read alike."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {noun} setting {unknown[0]!r}; known: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if not _type_ok(value, hints[key]):
            raise ValueError(
                f"{noun} setting {key!r} expects {_type_name(hints[key])}, got {value!r}"
            )
    return cls(**data)


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether plain data ``value`` fits the type hint (lists count as tuples; ints as floats)."""
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


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("NoneType", "None")


def inference_settings(data: Mapping[str, Any], key: str = "inference") -> dict[str, Any]:
    """``data``'s inference-only settings (:data:`INFERENCE_KEYS`), each checked by
    ModelConfig's own rules and normalised (an integer ``mask_box_scale`` becomes a float).

    A problem is a :class:`~nuclei_pa.errors.ConfigError` whose key is ``<key>.<setting>`` and
    whose problem reads without the setting's name ("must be between 1.0 and 2.0 …"), so a
    workflow key and a command-line option can each be named in front of it.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(key, f"must be a mapping of {', '.join(INFERENCE_KEYS)}, got {data!r}")
    settings: dict[str, Any] = {}
    for name, value in data.items():
        if name not in INFERENCE_KEYS:
            raise ConfigError(
                f"{key}.{name}", f"not an inference setting; those are {', '.join(INFERENCE_KEYS)}"
            )
        try:
            cfg = ModelConfig.from_dict({name: value})
        except (TypeError, ValueError) as exc:
            problem = str(exc).removeprefix(f"model setting {name!r} ")
            raise ConfigError(f"{key}.{name}", problem) from exc
        value = getattr(cfg, name)
        settings[name] = float(value) if name == "mask_box_scale" else value
    return settings


def _validate(cfg: ModelConfig) -> None:
    def bad(name: str, expectation: str) -> ValueError:
        return ValueError(
            f"model setting {name!r} must be {expectation}, got {getattr(cfg, name)!r}"
        )

    choices = {
        "variant": ("baseline", "pa"),
        "backbone": BACKBONES,
        "norm": ("auto", "frozen_bn", "gn"),
        "mask_box_grow": ("all", "cut"),
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise bad(name, "one of " + ", ".join(repr(a) for a in allowed))
    if not cfg.init or cfg.init == DETECTRON_PREFIX:
        raise bad(
            "init", "'none', 'imagenet', 'coco', 'detectron:<file, URL or x101>' or a checkpoint"
        )
    if cfg.norm == "gn" and (cfg.init in ("imagenet", "coco") or is_detectron(cfg.init)):
        raise bad("norm", "'frozen_bn' or 'auto' with pretrained weights (trained with batch norm)")
    if is_detectron(cfg.init) and not all(
        CAFFE2_STD / CAFFE2_STD_TOLERANCE <= s <= CAFFE2_STD * CAFFE2_STD_TOLERANCE
        for s in cfg.image_std
    ):
        off = sum(cfg.image_std) / len(cfg.image_std) / CAFFE2_STD
        raise ValueError(
            f"model settings 'image_mean' and 'image_std' must be Caffe2's scaling with init "
            f"{cfg.init!r}: image_std 1/255 (0.00392157) and image_mean the pixel mean / 255 in "
            "RGB order (Detectron's: 0.481458, 0.454692, 0.403843), as config/paper.yaml sets; "
            f"image_std {cfg.image_std!r} would feed its weights inputs about {off:.0f}× off scale"
        )
    if not 0 <= cfg.trainable_layers <= 5:
        raise bad("trainable_layers", "between 0 and 5")
    if cfg.init == "none" and cfg.trainable_layers < 5:
        raise bad("trainable_layers", "5 with init 'none' (fewer freezes random weights)")
    if len(cfg.anchor_sizes) != 5 or min(cfg.anchor_sizes) < 1:
        raise bad("anchor_sizes", "5 positive sizes, one per FPN level")
    if not cfg.aspect_ratios or min(cfg.aspect_ratios) <= 0:
        raise bad("aspect_ratios", "positive numbers")
    if len(cfg.image_mean) != 3 or len(cfg.image_std) != 3 or min(cfg.image_std) <= 0:
        raise bad("image_std", "3 positive numbers (and image_mean 3 numbers)")
    if cfg.intensity not in INTENSITY_MODES:
        raise bad("intensity", " or ".join(repr(m) for m in INTENSITY_MODES))
    fractions = [
        "rpn_positive_fraction",
        "box_positive_fraction",
        "center_positive_fraction",
        "center_box_fraction",
        "center_threshold",
        "rpn_ignore_iou",
        "box_ignore_iou",
    ]
    optional = ("center_nms_iou", "labelled_match_iou")
    fractions += [name for name in optional if getattr(cfg, name) is not None]
    for name in fractions:
        if not 0 < getattr(cfg, name) <= 1:
            raise bad(name, "in (0, 1]")
    for name in (
        "fpn_channels",
        "max_size",
        "rpn_batch_size_per_image",
        "rpn_pre_nms_top_n_train",
        "rpn_post_nms_top_n_train",
        "rpn_pre_nms_top_n_test",
        "rpn_post_nms_top_n_test",
        "box_batch_size_per_image",
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
    if cfg.min_size is not None and cfg.min_size < 1:
        raise bad("min_size", "a positive integer or None (keep each image's size)")
    if cfg.center_head_convs < 0 or cfg.warmup_steps < 0:
        raise bad("center_head_convs" if cfg.center_head_convs < 0 else "warmup_steps", "≥ 0")
    if not set(cfg.attention_levels) <= set(FPN_LEVELS):
        raise bad("attention_levels", f"FPN level names among {FPN_LEVELS}")
    for name in ("center_box_weights", "rpn_box_weights"):
        if min(getattr(cfg, name)) <= 0:
            raise bad(name, "four positive numbers")
    if not isinstance(cfg.test_time_flips, bool):
        raise bad("test_time_flips", "true or false")
    low, high = MASK_BOX_SCALES
    if not low <= cfg.mask_box_scale <= high:
        raise bad("mask_box_scale", f"between {low} and {high} (1 = the box itself)")
    if cfg.anchor_wh is not None and min(cfg.anchor_wh) <= 0:
        raise bad("anchor_wh", "two positive numbers (median nucleus width, height)")


# Settings added after checkpoints were first written, with the behaviour those checkpoints had.
SAVED_BEFORE: dict[str, Any] = {
    "center_box_weights": (10.0, 10.0, 5.0, 5.0),
    "intensity": "fixed",
    "mask_box_scale": 1.0,
    "mask_box_grow": "cut",
    "test_time_flips": False,
}

PRESETS: dict[str, dict[str, Any]] = {
    # Well under a second per iteration at batch 2 on 256×256 images on 2 CPU cores.
    "slim": {
        "backbone": "resnet18",
        "fpn_channels": 64,
        "representation_size": 256,
        "mask_head_channels": 64,
        "mask_head_layers": 2,
        "rpn_batch_size_per_image": 128,
        "rpn_pre_nms_top_n_train": 1000,
        "rpn_post_nms_top_n_train": 500,
        "box_batch_size_per_image": 128,
        "center_head_channels": 64,
    },
    # The paper's model as the authors' configuration builds it (github.com/feng-lab/nuclei,
    # configs/nuclei/*_da_pt.yaml and their code; README "Paper fidelity" lists every item).
    # The paper starts from Detectron's COCO Mask R-CNN X-101 (init "detectron:x101", with
    # Caffe2's image_mean/image_std; config/paper.yaml sets all three). This preset alone starts
    # from torchvision's ImageNet backbone, which needs no Detectron download and suits
    # torchvision's default mean and std (torchvision has COCO weights for resnet50 only).
    "paper": {
        "backbone": "resnext101_64x4d",
        "init": "imagenet",
        "intensity": "fixed",  # the type's range, then a fixed mean and std
        "trainable_layers": 3,  # FREEZE_CONV_BODY_AT: 2 (stem and res2 frozen)
        "rpn_pre_nms_top_n_train": 4000,
        "rpn_pre_nms_top_n_test": 4000,
        "rpn_post_nms_top_n_train": 2000,  # FPN_POST_NMS_TOP_N_*, per image
        "rpn_post_nms_top_n_test": 2000,
        "rpn_box_weights": (10.0, 10.0, 5.0, 5.0),  # their rpn.py
        "attention_levels": ("0", "1", "2", "3"),  # FPN.USE_DA: every FPN level
        "share_rpn_conv": True,  # centre predictors read the RPN head's 3×3 conv
        "center_threshold": 0.95,  # the paper's, for its long pretrained training
        "center_box_weights": (10.0, 10.0, 5.0, 5.0),  # their RPN coder encodes the centre box
    },
}
