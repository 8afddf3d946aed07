"""Assembling the configured Mask R-CNN (torchvision parts), with or without the pa module."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from nuclei_pa.errors import InputError
from nuclei_pa.model import detectron
from nuclei_pa.model.attention import DecomposedSelfAttention
from nuclei_pa.model.center_head import CenterBranch, CenterHead
from nuclei_pa.model.config import DETECTRON_PREFIX, ModelConfig, is_detectron
from nuclei_pa.model.detector import NativeSizeTransform, NucleusRCNN, PAModule
from nuclei_pa.model.roi_heads import PARoIHeads
from nuclei_pa.model.rpn import PARegionProposalNetwork
from nuclei_pa.model.weights import (
    coco_state_dict,
    imagenet_state_dict,
    load_matching,
    read_checkpoint,
)

FPN1_STRIDE = 4
LEVELS = ["0", "1", "2", "3"]


def median_box_wh(boxes_xywh: np.ndarray) -> tuple[float, float]:
    """The training set's median nucleus box (width, height): the pa module's anchor size."""
    boxes = np.asarray(boxes_xywh, dtype=float).reshape(-1, 4)
    if len(boxes) == 0:
        raise ValueError("no annotated nuclei to take the median box size from")
    return float(np.median(boxes[:, 2])), float(np.median(boxes[:, 3]))


def count_parameters(model: nn.Module) -> int:
    """Parameters of ``model``, shared ones once (frozen ones included)."""
    return sum(p.numel() for p in model.parameters())


def resolve_norm(cfg: ModelConfig, checkpoint: dict | None = None) -> str:
    """The backbone's normalisation, ``auto`` resolved: frozen batch norm under pretrained
    weights, the checkpoint's own under a checkpoint (read from ``cfg.init`` when not given),
    group norm from scratch."""
    if cfg.norm != "auto":
        return cfg.norm
    if cfg.init in ("imagenet", "coco") or is_detectron(cfg.init):
        return "frozen_bn"
    if cfg.init == "none":
        return "gn"
    state = read_checkpoint(cfg.init) if checkpoint is None else checkpoint
    return "frozen_bn" if any(k.endswith("bn1.running_mean") for k in state) else "gn"


def _norm_layer(cfg: ModelConfig, checkpoint: dict | None):
    if resolve_norm(cfg, checkpoint) == "frozen_bn":
        return FrozenBatchNorm2d
    # Batch statistics of 2 images are noise; group norm trains from scratch at any batch size.
    return lambda channels: nn.GroupNorm(min(32, channels // 4), channels)


def _backbone(cfg: ModelConfig, checkpoint: dict | None) -> BackboneWithFPN:
    body = getattr(resnet, cfg.backbone)(weights=None, norm_layer=_norm_layer(cfg, checkpoint))
    if cfg.init == "imagenet":
        body.load_state_dict(imagenet_state_dict(cfg.backbone))
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][: cfg.trainable_layers]
    if cfg.trainable_layers == 5:
        trainable.append("bn1")
    for name, param in body.named_parameters():
        if not any(name.startswith(layer) for layer in trainable):
            param.requires_grad_(False)
    width = body.inplanes // 8  # channels of layer1's output
    return BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[width * 2**k for k in range(4)],
        out_channels=cfg.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def _rpn(cfg: ModelConfig) -> PARegionProposalNetwork:
    anchors = AnchorGenerator(
        tuple((s,) for s in cfg.anchor_sizes), (tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes)
    )
    rpn = PARegionProposalNetwork(
        anchors,
        RPNHead(cfg.fpn_channels, anchors.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=cfg.rpn_batch_size_per_image,
        positive_fraction=cfg.rpn_positive_fraction,
        pre_nms_top_n={
            "training": cfg.rpn_pre_nms_top_n_train,
            "testing": cfg.rpn_pre_nms_top_n_test,
        },
        post_nms_top_n={
            "training": cfg.rpn_post_nms_top_n_train,
            "testing": cfg.rpn_post_nms_top_n_test,
        },
        nms_thresh=0.7,
    )
    rpn.box_coder = BoxCoder(cfg.rpn_box_weights)
    rpn.ignore_iou = cfg.rpn_ignore_iou
    return rpn


def _roi_heads(cfg: ModelConfig) -> PARoIHeads:
    c = cfg.fpn_channels
    mask_channels = (cfg.mask_head_channels,) * cfg.mask_head_layers
    heads = PARoIHeads(
        MultiScaleRoIAlign(LEVELS, 7, 2),
        TwoMLPHead(c * 7 * 7, cfg.representation_size),
        FastRCNNPredictor(cfg.representation_size, 2),
        fg_iou_thresh=0.5,
        bg_iou_thresh=0.5,
        batch_size_per_image=cfg.box_batch_size_per_image,
        positive_fraction=cfg.box_positive_fraction,
        bbox_reg_weights=None,
        score_thresh=cfg.box_score_thresh,
        nms_thresh=cfg.box_nms_thresh,
        detections_per_img=cfg.detections_per_image,
        mask_roi_pool=MultiScaleRoIAlign(LEVELS, 14, 2),
        mask_head=MaskRCNNHeads(c, mask_channels, 1),
        mask_predictor=MaskRCNNPredictor(mask_channels[-1], mask_channels[-1], 2),
    )
    heads.ignore_iou = cfg.box_ignore_iou
    heads.mask_box_scale = cfg.mask_box_scale
    heads.mask_box_grow = cfg.mask_box_grow
    return heads


def _pa_module(cfg: ModelConfig, rpn_conv: nn.Module) -> PAModule:
    attention = {
        level: DecomposedSelfAttention(
            cfg.fpn_channels, cfg.attention_channels, cfg.attention_channels
        )
        for level in cfg.attention_levels
    }
    head = CenterHead(
        cfg.fpn_channels,
        cfg.center_head_channels,
        cfg.center_head_convs,
        shared_conv=rpn_conv if cfg.share_rpn_conv else None,
    )
    center = CenterBranch(
        head,
        stride=FPN1_STRIDE,
        fraction=cfg.center_box_fraction,
        samples=cfg.center_samples,
        positive_fraction=cfg.center_positive_fraction,
        threshold=cfg.center_threshold,
        max_boxes=cfg.max_center_boxes,
        nms_iou=cfg.center_nms_iou,
        box_weights=cfg.center_box_weights,
    )
    return PAModule(attention, center, cfg.anchor_wh, cfg.warmup_steps)


def build_model(cfg: ModelConfig) -> NucleusRCNN:
    """The configured Mask R-CNN (background + nucleus), its initial weights loaded.

    ``init``: none (random), imagenet (backbone body), coco (torchvision's COCO Mask R-CNN,
    resnet50, every tensor whose shape fits), detectron:… (a Detectron COCO Mask R-CNN FPN file:
    backbone, FPN, RPN head, box and mask heads; :mod:`nuclei_pa.model.detectron`) or a
    checkpoint path (every tensor that fits, but not the warm-up counter: a new training run
    starts its own warm-up). ``cfg.anchor_wh``, when given, wins over a loaded one: it describes
    the data this model is about to see.
    """
    checkpoint = None
    if cfg.init not in ("none", "imagenet", "coco") and not is_detectron(cfg.init):
        checkpoint = read_checkpoint(cfg.init)
    rpn = _rpn(cfg)
    pa = _pa_module(cfg, rpn.head.conv) if cfg.variant == "pa" else None
    model = NucleusRCNN(
        _backbone(cfg, checkpoint),
        rpn,
        _roi_heads(cfg),
        NativeSizeTransform(cfg.min_size, cfg.max_size, cfg.image_mean, cfg.image_std),
        pa,
        cfg.labelled_match_iou,
    )
    model.intensity = cfg.intensity
    model.test_time_flips = cfg.test_time_flips
    if cfg.init == "coco":
        load_matching(model, coco_state_dict(cfg.backbone))
    elif is_detectron(cfg.init):
        path = detectron.resolve(cfg.init.removeprefix(DETECTRON_PREFIX))
        detectron.load_detectron(
            model, detectron.detectron_state_dict(detectron.read_blobs(path), path), path
        )
    elif checkpoint is not None:
        checkpoint = {k: v for k, v in checkpoint.items() if k != "pa.steps"}
        if not load_matching(model, checkpoint):
            raise InputError(cfg.init, "no tensor in it fits this model (another architecture?)")
        if pa is not None and cfg.anchor_wh is not None:
            pa.anchor_wh.copy_(torch.tensor(cfg.anchor_wh))
    return model
