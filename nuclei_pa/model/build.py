"""Assembling the Mask R-CNN (torchvision) with or without the partial-annotation module."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from nuclei_pa.model.attention import DecomposedSelfAttention
from nuclei_pa.model.center_head import CenterBranch, CenterHead
from nuclei_pa.model.config import ModelConfig
from nuclei_pa.model.roi_heads import PARoIHeads
from nuclei_pa.model.rpn import PARegionProposalNetwork
from nuclei_pa.model.weights import imagenet_backbone_weights, load_initial_weights


def median_box_wh(boxes_xywh: np.ndarray) -> tuple[float, float]:
    """The training set's median nucleus box (width, height): the pa module's anchor size."""
    boxes = np.asarray(boxes_xywh, dtype=float).reshape(-1, 4)
    if len(boxes) == 0:
        raise ValueError("no annotated nuclei to take the median box size from")
    return float(np.median(boxes[:, 2])), float(np.median(boxes[:, 3]))


class NativeSizeTransform(GeneralizedRCNNTransform):
    """Normalise and batch; resize only when a ``min_size`` is configured.

    Nuclei are a few pixels wide, so upscaling a 256-px image to torchvision's 800 px wastes
    compute and downscaling a large tile loses them.
    """

    def __init__(self, min_size: int | None, max_size: int, mean, std) -> None:
        super().__init__(min_size or 800, max_size, list(mean), list(std))
        self.keep_size = min_size is None

    def resize(self, image, target=None):
        if self.keep_size:
            return image, target
        return super().resize(image, target)


class PAModule(nn.Module):
    """Self-attention on FPN features plus the centre branch on fpn1 (paper Fig. 2)."""

    def __init__(self, cfg: ModelConfig, rpn_conv: nn.Module | None) -> None:
        super().__init__()
        self.attention = nn.ModuleDict(
            {
                level: DecomposedSelfAttention(
                    cfg.fpn_channels, cfg.attention_channels, cfg.attention_channels
                )
                for level in cfg.attention_levels
            }
        )
        head = CenterHead(
            cfg.fpn_channels,
            cfg.center_head_channels,
            cfg.center_head_convs,
            shared_conv=rpn_conv if cfg.share_rpn_conv else None,
        )
        self.center = CenterBranch(
            head,
            4,
            cfg.center_box_fraction,
            cfg.center_samples,
            cfg.center_positive_fraction,
            cfg.center_threshold,
            cfg.max_center_boxes,
        )
        anchor = cfg.anchor_wh if cfg.anchor_wh is not None else (0.0, 0.0)
        self.register_buffer("anchor_wh", torch.tensor(anchor, dtype=torch.float32))
        # Training forward passes seen, for the warm-up; a buffer so checkpoints carry it.
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.warmup_steps = cfg.warmup_steps

    def attend(self, features: OrderedDict[str, Tensor]) -> OrderedDict[str, Tensor]:
        return OrderedDict(
            (k, self.attention[k](v) if k in self.attention else v) for k, v in features.items()
        )


class NucleusRCNN(GeneralizedRCNN):
    """torchvision's Mask R-CNN, with the pa module threaded through its forward pass."""

    def __init__(self, backbone, rpn, roi_heads, transform, pa: PAModule | None) -> None:
        super().__init__(backbone, rpn, roi_heads, transform)
        self.pa = pa

    def _anchor_whs(self, image_sizes, original_sizes) -> list[Tensor]:
        base = self.pa.anchor_wh
        if float(base.min()) <= 0:
            raise ValueError(
                "the pa model needs anchor_wh (the training set's median nucleus w, h)"
            )
        return [
            base * torch.tensor([s[1] / o[1], s[0] / o[0]], device=base.device)
            for s, o in zip(image_sizes, original_sizes, strict=True)
        ]

    def forward(self, images, targets=None):
        if self.training and targets is None:
            raise ValueError("targets are required in training mode")
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        images, targets = self.transform(images, targets)
        features = self.backbone(images.tensors)
        losses: dict[str, Tensor] = {}
        predicted = None
        if self.pa is not None:
            features = self.pa.attend(features)
            logits, regression = self.pa.center.head(features["0"])
            anchor_whs = self._anchor_whs(images.image_sizes, original_sizes)
            if self.training:
                losses.update(self.pa.center.losses(logits, regression, targets, anchor_whs))
                self.pa.steps += 1
                if int(self.pa.steps) > self.pa.warmup_steps:
                    predicted = [
                        b
                        for b, _ in self.pa.center.decode(
                            logits, regression, images.image_sizes, anchor_whs
                        )
                    ]
            else:
                predicted = [
                    b
                    for b, _ in self.pa.center.decode(
                        logits, regression, images.image_sizes, anchor_whs
                    )
                ]
        self.rpn.ignore_boxes = predicted if self.training else None
        self.roi_heads.ignore_boxes = predicted if self.training else None
        try:
            proposals, rpn_losses = self.rpn(images, features, targets)
            if predicted is not None and not self.training:
                # Predicted centre boxes go straight to the R-CNN head as high-score proposals.
                proposals = [torch.cat([p, q]) for p, q in zip(predicted, proposals, strict=True)]
            detections, roi_losses = self.roi_heads(
                features, proposals, images.image_sizes, targets
            )
        finally:
            self.rpn.ignore_boxes = self.roi_heads.ignore_boxes = None
        losses.update(rpn_losses)
        losses.update(roi_losses)
        if self.training:
            return losses
        return self.transform.postprocess(detections, images.image_sizes, original_sizes)


def _norm_layer(cfg: ModelConfig):
    norm = cfg.norm
    if norm == "auto":
        norm = "frozen_bn" if cfg.init in ("imagenet", "coco") else "gn"
    if norm == "frozen_bn":
        return FrozenBatchNorm2d
    return lambda channels: nn.GroupNorm(min(32, channels // 4), channels)


def _backbone(cfg: ModelConfig) -> BackboneWithFPN:
    weights = imagenet_backbone_weights(cfg.backbone) if cfg.init == "imagenet" else None
    body = getattr(resnet, cfg.backbone)(weights=weights, norm_layer=_norm_layer(cfg))
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][: cfg.trainable_layers]
    if cfg.trainable_layers == 5:
        trainable.append("bn1")
    for name, param in body.named_parameters():
        if all(not name.startswith(layer) for layer in trainable):
            param.requires_grad_(False)
    in_channels = body.inplanes // 8  # channels of layer1's output
    return BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[in_channels * 2**k for k in range(4)],
        out_channels=cfg.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def build_model(cfg: ModelConfig) -> NucleusRCNN:
    """The configured Mask R-CNN (two classes: background, nucleus), weights initialised."""
    backbone = _backbone(cfg)
    c = cfg.fpn_channels
    anchor_generator = AnchorGenerator(
        tuple((s,) for s in cfg.anchor_sizes), (tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes)
    )
    rpn_head = RPNHead(c, anchor_generator.num_anchors_per_location()[0])
    rpn = PARegionProposalNetwork(
        anchor_generator,
        rpn_head,
        0.7,
        0.3,
        cfg.rpn_batch_size_per_image,
        cfg.rpn_positive_fraction,
        {"training": cfg.rpn_pre_nms_top_n_train, "testing": cfg.rpn_pre_nms_top_n_test},
        {"training": cfg.rpn_post_nms_top_n_train, "testing": cfg.rpn_post_nms_top_n_test},
        0.7,
    )
    rpn.ignore_iou = cfg.ignore_iou
    levels = ["0", "1", "2", "3"]
    mask_channels = (cfg.mask_head_channels,) * cfg.mask_head_layers
    roi_heads = PARoIHeads(
        MultiScaleRoIAlign(levels, 7, 2),
        TwoMLPHead(c * 49, cfg.representation_size),
        FastRCNNPredictor(cfg.representation_size, 2),
        0.5,
        0.5,
        cfg.box_batch_size_per_image,
        cfg.box_positive_fraction,
        None,
        cfg.box_score_thresh,
        cfg.box_nms_thresh,
        cfg.detections_per_image,
        mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2),
        mask_head=MaskRCNNHeads(c, mask_channels, 1),
        mask_predictor=MaskRCNNPredictor(mask_channels[-1], mask_channels[-1], 2),
    )
    roi_heads.ignore_iou = cfg.ignore_iou
    transform = NativeSizeTransform(cfg.min_size, cfg.max_size, cfg.image_mean, cfg.image_std)
    pa = PAModule(cfg, rpn_head.conv) if cfg.variant == "pa" else None
    model = NucleusRCNN(backbone, rpn, roi_heads, transform, pa)
    if cfg.init not in ("none", "imagenet"):
        load_initial_weights(model, cfg)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
