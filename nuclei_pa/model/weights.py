"""Initial weights through torchvision's own weights API, or from a checkpoint file.

A download happens only where the network allows (cached in torch.hub's folder, as torchvision
does); offline, the error says which file to place where.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch
from torch import nn
from torchvision.models import (
    ResNet18_Weights,
    ResNet34_Weights,
    ResNet50_Weights,
    ResNet101_Weights,
    ResNeXt101_64X4D_Weights,
)
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

from nuclei_pa.errors import InputError

IMAGENET = {
    "resnet18": ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": ResNet101_Weights.IMAGENET1K_V1,
    "resnext101_64x4d": ResNeXt101_64X4D_Weights.IMAGENET1K_V1,
}


def _offline_error(weights) -> InputError:
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    return InputError(
        target,
        f"cannot download pretrained weights from {weights.url}; download that file on a machine "
        f"with network access and place it at this path (or use init: none)",
    )


def fetch_state_dict(weights) -> dict[str, torch.Tensor]:
    """The weights' state dict, downloaded once into torch.hub's cache."""
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "invalid hash" not in str(exc).lower():
            raise
        raise _offline_error(weights) from exc


def imagenet_backbone_weights(backbone: str):
    """torchvision's ImageNet weights for ``backbone``, checked to be obtainable now."""
    weights = IMAGENET[backbone]
    fetch_state_dict(weights)  # fail early with the offline message, not deep inside torchvision
    return weights


def _load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> int:
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return len(matching)


def load_initial_weights(model: nn.Module, cfg) -> None:
    """``coco``: torchvision's COCO Mask R-CNN (ResNet-50 only), matching tensors; else a file."""
    if cfg.init == "coco":
        if cfg.backbone != "resnet50":
            raise ValueError(
                "init 'coco' exists for backbone resnet50 only (torchvision's weights)"
            )
        state = fetch_state_dict(MaskRCNN_ResNet50_FPN_Weights.COCO_V1)
        _load_matching(model, state)
        return
    path = Path(cfg.init)
    if not path.is_file():
        raise InputError(path, "initial checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"not a loadable checkpoint ({exc})") from exc
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    if not isinstance(state, dict) or _load_matching(model, state) == 0:
        raise InputError(path, "no weights in it match this model")
