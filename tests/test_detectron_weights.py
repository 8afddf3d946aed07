"""The Detectron (Caffe2) weight import: a file in Detectron's naming layout, written here from a
small ResNet-50 FPN Mask R-CNN, loads into our model tensor by tensor."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pooch
import pytest
import requests
import torch

from nuclei_pa.errors import InputError
from nuclei_pa.io import download
from nuclei_pa.model import ModelConfig, build_model
from nuclei_pa.model import detectron as det

SMALL = {  # a ResNet-50 body (Detectron's R-50 layout) with narrow FPN and heads: a small file
    "backbone": "resnet50",
    "fpn_channels": 16,
    "representation_size": 32,
    "mask_head_channels": 8,
    "mask_head_layers": 4,  # Detectron's _[mask]_fcn1-4
    "norm": "frozen_bn",
    "trainable_layers": 3,
    "image_mean": (0.481458, 0.454692, 0.403843),  # Caffe2's scaling, as Detectron weights need
    "image_std": (1 / 255, 1 / 255, 1 / 255),
}
LAST_BLOCK = {2: 2, 3: 3, 4: 5, 5: 2}  # blocks per stage − 1 (names the FPN blobs)


def detectron_name(key: str) -> str | None:
    """Our key → Detectron's blob name, written out by hand (the inverse of the importer)."""
    m = re.fullmatch(r"backbone\.body\.layer(\d)\.(\d+)\.(conv|bn)(\d)\.(weight|bias)", key)
    if m:
        stage, block, kind, n, param = int(m[1]) + 1, m[2], m[3], int(m[4]), m[5]
        branch = "abc"[n - 1]
        suffix = ("_w" if param == "weight" else "_b") if kind == "conv" else "_bn_" + param[0]
        return f"res{stage}_{block}_branch2{branch}{suffix.replace('_bn_w', '_bn_s')}"
    m = re.fullmatch(r"backbone\.body\.layer(\d)\.(\d+)\.downsample\.([01])\.(weight|bias)", key)
    if m:
        end = {"0weight": "_w", "1weight": "_bn_s", "1bias": "_bn_b"}[m[3] + m[4]]
        return f"res{int(m[1]) + 1}_{m[2]}_branch1{end}"
    m = re.fullmatch(r"backbone\.fpn\.(inner|layer)_blocks\.(\d)\.0\.(weight|bias)", key)
    if m:
        stage = int(m[2]) + 2
        name = f"fpn_inner_res{stage}_{LAST_BLOCK[stage]}_sum" if m[1] == "inner" else None
        if m[1] == "inner" and stage < 5:
            name += "_lateral"
        if m[1] == "layer":
            name = f"fpn_res{stage}_{LAST_BLOCK[stage]}_sum"
        return f"{name}_{m[3][0]}"
    m = re.fullmatch(r"roi_heads\.mask_head\.(\d)\.0\.(weight|bias)", key)
    if m:
        return f"_[mask]_fcn{int(m[1]) + 1}_{m[2][0]}"
    fixed = {
        "backbone.body.conv1.weight": "conv1_w",
        "backbone.body.bn1.weight": "res_conv1_bn_s",
        "backbone.body.bn1.bias": "res_conv1_bn_b",
        "rpn.head.conv.0.0.weight": "conv_rpn_fpn2_w",
        "rpn.head.conv.0.0.bias": "conv_rpn_fpn2_b",
        "rpn.head.cls_logits.weight": "rpn_cls_logits_fpn2_w",
        "rpn.head.cls_logits.bias": "rpn_cls_logits_fpn2_b",
        "rpn.head.bbox_pred.weight": "rpn_bbox_pred_fpn2_w",
        "rpn.head.bbox_pred.bias": "rpn_bbox_pred_fpn2_b",
        "roi_heads.box_head.fc6.weight": "fc6_w",
        "roi_heads.box_head.fc6.bias": "fc6_b",
        "roi_heads.box_head.fc7.weight": "fc7_w",
        "roi_heads.box_head.fc7.bias": "fc7_b",
        "roi_heads.mask_predictor.conv5_mask.weight": "conv5_mask_w",
        "roi_heads.mask_predictor.conv5_mask.bias": "conv5_mask_b",
    }
    return fixed.get(key)


@pytest.fixture(scope="module")
def detectron_file(tmp_path_factory):
    """A Detectron-layout pickle with random weights for SMALL, plus COCO's 81-class predictors,
    optimiser momenta and bookkeeping, as model_final.pkl holds them."""
    model = build_model(ModelConfig.preset("slim", **{**SMALL, "trainable_layers": 5}))
    rng = np.random.default_rng(0)
    blobs = {}
    for key, value in model.state_dict().items():
        name = detectron_name(key)
        if name is not None:
            blobs[name] = rng.standard_normal(tuple(value.shape)).astype(np.float32)
    rep, ch = SMALL["representation_size"], SMALL["mask_head_channels"]
    blobs |= {
        "cls_score_w": np.zeros((81, rep), np.float32),
        "cls_score_b": np.zeros(81, np.float32),
        "bbox_pred_w": np.zeros((324, rep), np.float32),
        "bbox_pred_b": np.zeros(324, np.float32),
        "mask_fcn_logits_w": np.zeros((81, ch, 1, 1), np.float32),
        "mask_fcn_logits_b": np.zeros(81, np.float32),
        "fc6_w_momentum": np.zeros((rep, 1), np.float32),
        "pred_w": np.zeros((1000, 2048), np.float32),  # X-101's ImageNet classifier
        "pred_b": np.zeros(1000, np.float32),
        "model_iter": np.array([90000]),
    }
    path = tmp_path_factory.mktemp("detectron") / "model_final.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"blobs": blobs, "cfg": "..."}, fh, protocol=2)
    return path, blobs


def test_every_blob_lands_where_it_belongs(detectron_file):
    path, blobs = detectron_file
    model = build_model(ModelConfig.preset("slim", init=f"detectron:{path}", **SMALL))
    state = model.state_dict()
    loaded = 0
    for key, value in state.items():
        name = detectron_name(key)
        if name is None:
            continue
        expected = torch.from_numpy(blobs[name])
        if name == "conv1_w":
            expected = expected.flip(1)  # BGR → RGB
        if name.endswith("_bn_s"):  # frozen batch norm's effective scale is the blob
            stats = key.removesuffix("weight")
            var = state[stats + "running_var"]
            value = value * (var + det.FROZEN_BN_EPS).rsqrt()
            assert torch.equal(state[stats + "running_mean"], torch.zeros_like(var))
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6)
        loaded += 1
    weight_blobs = [b for b in blobs if det.our_name(b) is not None]
    # 53 convs with their affine channels (159), FPN 8 convs (16), RPN 3 (6), fc6-7 (4),
    # mask head 4 (8) and its deconvolution (2)
    assert loaded == len(weight_blobs) == 195
    # the 81-class COCO predictors are replaced by fresh 2-class ones
    assert model.roi_heads.box_predictor.cls_score.weight.shape == (2, 32)
    assert model.roi_heads.mask_predictor.mask_fcn_logits.weight.shape == (2, 8, 1, 1)
    # the frozen stages stay frozen; trained ones train
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad
    assert model.backbone.body.layer4[0].conv1.weight.requires_grad


def test_the_conversion_is_exactly_the_affine_map_caffe2_computed(detectron_file):
    """A Caffe2 affine channel y = s·x + b and our frozen batch norm agree on a real input."""
    path, blobs = detectron_file
    model = build_model(ModelConfig.preset("slim", init=f"detectron:{path}", **SMALL))
    x = torch.randn(1, 64, 5, 5)
    s, b = (torch.from_numpy(blobs[f"res_conv1_bn_{k}"]) for k in "sb")
    torch.testing.assert_close(model.backbone.body.bn1(x), x * s[:, None, None] + b[:, None, None])


def test_refuses_code_unknown_blobs_and_misfits(detectron_file, tmp_path):
    path, blobs = detectron_file

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"blobs": {"x": Evil()}}))
    with pytest.raises(InputError, match=r"refusing to load builtins\.print"):
        det.read_blobs(evil)
    with pytest.raises(InputError, match="kps_score_w"):
        det.detectron_state_dict({**blobs, "kps_score_w": np.zeros(3, np.float32)})
    wider = ModelConfig.preset("slim", init=f"detectron:{path}", **{**SMALL, "fpn_channels": 24})
    with pytest.raises(InputError, match=r"shape .*16.* in the file, .*24.* in the model"):
        build_model(wider)
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({"blobs": {k: v for k, v in blobs.items() if k != "fc7_w"}}))
    with pytest.raises(InputError, match=r"lacks 1 weight\(s\), e\.g\. \['roi_heads\.box_head"):
        build_model(ModelConfig.preset("slim", init=f"detectron:{partial}", **SMALL))
    with pytest.raises(ValueError, match="norm"):
        ModelConfig.preset("slim", init=f"detectron:{path}", norm="gn")
    with pytest.raises(ValueError, match="init"):
        ModelConfig(init="detectron:")


def test_urls_download_verified_and_the_paper_file_fails_offline_with_directions(
    detectron_file, tmp_path, monkeypatch
):
    path, _ = detectron_file
    monkeypatch.setattr(download, "DOWNLOAD_RETRIES", 0)
    got = det.resolve(path.as_uri(), tmp_path / "cache")
    assert got.read_bytes() == path.read_bytes()
    recorded = (tmp_path / "cache" / "hashes.json").read_text()
    assert pooch.file_hash(str(path), alg="sha256") in recorded  # checked on every reuse

    def refuse(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'dl.fbaipublicfiles.com'")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", refuse)
    url, filename = det.PAPER_WEIGHTS["x101"]
    with pytest.raises(InputError) as err:
        det.resolve("x101", tmp_path / "cache")
    msg = str(err.value)
    assert url in msg and str(tmp_path / "cache" / filename) in msg and "by hand" in msg


def test_detectron_weights_refuse_torchvision_pixel_scaling():
    """Caffe2 weights read 0-255 pixels (std 1); torchvision's default std (0.229, 0.224,
    0.225) would scale their inputs down by 0.226 × 255 ≈ 58: refused, naming both keys."""
    imagenet_scaling = {k: v for k, v in SMALL.items() if k not in ("image_mean", "image_std")}
    with pytest.raises(ValueError, match=r"'image_mean' and 'image_std' .* about 58× off scale"):
        ModelConfig.preset("slim", init="detectron:x101", **imagenet_scaling)
    with pytest.raises(ValueError, match="image_std"):
        ModelConfig.preset("slim", init="detectron:x101", **{**SMALL, "image_std": (0.02,) * 3})
    assert (
        ModelConfig.preset("slim", init="detectron:x101", **SMALL).image_std == SMALL["image_std"]
    )
    assert ModelConfig.preset("slim", init="imagenet", **imagenet_scaling).image_std[0] == 0.229
