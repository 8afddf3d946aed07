"""Initial weights: checkpoint files (weights_only), torch.hub's cache, the offline error."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torchvision.models import resnet18
from torchvision.models.detection import maskrcnn_resnet50_fpn

from nuclei_pa.errors import InputError
from nuclei_pa.model import ModelConfig, build_model, resolve_norm
from nuclei_pa.model import weights as weights_module
from tests.test_model_pa import TINY, tiny_model


def _assert_same(a: torch.nn.Module, b: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        if name not in skip:
            assert torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize("wrapped", [True, False])
def test_init_from_a_checkpoint_file_loads_weights_only(tmp_path, wrapped):
    source = tiny_model()
    source.pa.steps += 7
    state = source.state_dict()
    payload = (
        {"model": state, "iteration": 3, "model_config": {"variant": "pa"}} if wrapped else state
    )
    torch.save(payload, tmp_path / "ck.pt")
    loaded = tiny_model(init=str(tmp_path / "ck.pt"), anchor_wh=(9.0, 11.0))
    _assert_same(source, loaded, skip=("pa.steps", "pa.anchor_wh"))
    assert int(loaded.pa.steps) == 0  # a new run warms up again
    assert loaded.pa.anchor_wh.tolist() == [9.0, 11.0]  # the new data's nucleus size wins
    kept = tiny_model(init=str(tmp_path / "ck.pt"), anchor_wh=None)
    assert kept.pa.anchor_wh.tolist() == [12.0, 12.0]  # else the checkpoint's


def test_a_baseline_checkpoint_initialises_the_pa_variant(tmp_path):
    base = tiny_model("baseline")
    torch.save({"model": base.state_dict()}, tmp_path / "base.pt")
    pa = tiny_model("pa", init=str(tmp_path / "base.pt"))
    assert torch.equal(pa.backbone.body.conv1.weight, base.backbone.body.conv1.weight)
    assert torch.equal(
        pa.roi_heads.mask_predictor.mask_fcn_logits.weight,
        base.roi_heads.mask_predictor.mask_fcn_logits.weight,
    )


def test_bad_checkpoint_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="initial checkpoint not found"):
        tiny_model(init=str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a nuclei-pa initial checkpoint: it is corrupt"):
        tiny_model(init=str(tmp_path / "junk.pt"))
    torch.save({"model": {"x": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="no tensor in it fits"):
        tiny_model(init=str(tmp_path / "other.pt"))


def test_auto_norm_follows_the_checkpoint(tmp_path):
    bn = tiny_model("baseline", norm="frozen_bn")
    torch.save({"model": bn.state_dict()}, tmp_path / "bn.pt")
    cfg = ModelConfig.preset("slim", init=str(tmp_path / "bn.pt"), **TINY)
    assert resolve_norm(cfg) == "frozen_bn"
    _assert_same(bn, build_model(cfg))
    assert resolve_norm(ModelConfig.preset("slim")) == "gn"
    assert resolve_norm(ModelConfig.preset("slim", init="imagenet")) == "frozen_bn"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """torch.hub's cache in an empty folder, and every download failing as without network."""

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "checkpoints"


def test_offline_pretrained_weights_say_which_file_to_place_where(offline_hub):
    with pytest.raises(InputError) as err:
        build_model(ModelConfig.preset("slim", init="imagenet"))
    assert err.value.path == offline_hub / "resnet18-f37072fd.pth"
    assert "download" in str(err.value) and "resnet18-f37072fd.pth" in str(err.value)
    assert isinstance(err.value.__cause__, urllib.error.URLError)


def test_a_file_placed_in_the_hub_cache_is_used_without_network(offline_hub):
    torch.manual_seed(1)
    imagenet = resnet18()  # stands in for the ImageNet file, in torchvision's layout
    offline_hub.mkdir(parents=True)
    torch.save(imagenet.state_dict(), offline_hub / "resnet18-f37072fd.pth")
    model = build_model(ModelConfig.preset("slim", init="imagenet", **TINY))
    body = model.backbone.body
    assert torch.equal(body.conv1.weight, imagenet.conv1.weight)
    assert torch.equal(body.layer4[1].bn2.running_var, imagenet.layer4[1].bn2.running_var)


def test_coco_init_loads_torchvision_mask_rcnn_in_its_old_key_layout(monkeypatch):
    torch.manual_seed(2)
    coco = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    old = {k.replace("rpn.head.conv.0.0.", "rpn.head.conv."): v for k, v in coco.items()}
    monkeypatch.setattr(weights_module, "fetch_state_dict", lambda weights: old)
    model = build_model(
        ModelConfig(backbone="resnet50", init="coco", variant="pa", anchor_wh=(10.0, 10.0))
    )
    state = model.state_dict()
    for key in (
        "rpn.head.conv.0.0.weight",
        "backbone.fpn.layer_blocks.0.0.weight",
        "backbone.body.layer3.5.bn3.running_mean",
        "roi_heads.box_head.fc7.weight",
    ):
        assert torch.equal(state[key], coco[key]), key
    # the 91-class predictors do not fit the nucleus model and keep their own initialisation
    assert state["roi_heads.box_predictor.cls_score.weight"].shape[0] == 2
    with pytest.raises(ValueError, match="init 'coco' needs backbone resnet50"):
        build_model(ModelConfig.preset("slim", init="coco"))
