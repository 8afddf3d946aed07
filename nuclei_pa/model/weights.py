"""Initial weights: torchvision's own weights API (ImageNet, COCO) or a checkpoint file.

Pretrained files are downloaded once into torch.hub's cache (``torch.hub.get_dir()/checkpoints``)
where the network allows, exactly as torchvision does; offline, the error names the file to place
there. Checkpoint files load with ``weights_only=True`` (no code runs from them).
"""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import (
    ResNet18_Weights,
    ResNet34_Weights,
    ResNet50_Weights,
    ResNet101_Weights,
    ResNeXt101_64X4D_Weights,
)
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn

from nuclei_pa.errors import InputError
from nuclei_pa.io.torchfile import load_torch_file

IMAGENET = {
    "resnet18": ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": ResNet101_Weights.IMAGENET1K_V1,
    "resnext101_64x4d": ResNeXt101_64X4D_Weights.IMAGENET1K_V1,
}
COCO = {"resnet50": MaskRCNN_ResNet50_FPN_Weights.COCO_V1}


def cached_weights_path(weights: Any) -> Path:
    """Where torch.hub keeps (and looks for) the file of torchvision ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def fetch_state_dict(weights: Any) -> dict[str, torch.Tensor]:
    """The state dict of torchvision ``weights``, from torch.hub's cache or downloaded into it."""
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "hash" not in str(exc).lower():
            raise
        raise InputError(
            cached_weights_path(weights),
            f"cannot download the pretrained weights {weights.url} ({exc}); download that file "
            "where the network allows and place it at this path (or use init: none)",
        ) from exc


def imagenet_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet classification weights for ``backbone``."""
    return fetch_state_dict(IMAGENET[backbone])


def coco_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """torchvision's COCO Mask R-CNN weights in today's key layout (its own upgrade hooks run)."""
    if backbone not in COCO:
        raise ValueError(
            f"init 'coco' needs backbone {' or '.join(COCO)} (torchvision has COCO Mask R-CNN "
            f"weights for that only); use init 'imagenet' for {backbone}"
        )
    state = fetch_state_dict(COCO[backbone])
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    reference.load_state_dict(state, strict=False)
    return reference.state_dict()


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict in a checkpoint file: a raw state dict or one under ``"model"``."""
    path = Path(path)
    ckpt = load_torch_file(path, "initial checkpoint")
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "holds no state dict (expected one, or a dict with a 'model' key)")
    return state


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load the tensors of ``state`` whose name and shape match ``model``'s; their names."""
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return sorted(matching)
