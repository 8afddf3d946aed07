"""Both variants end to end on tiny inputs: losses, gradients, outputs, the pa wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nuclei_pa.model import ModelConfig, build_model, count_parameters
from nuclei_pa.model.attention import DecomposedSelfAttention
from nuclei_pa.model.visualize import attention_map, save_attention_figure
from tests.conftest import TINY

MASK_RCNN_LOSSES = {
    "loss_objectness",
    "loss_rpn_box_reg",
    "loss_classifier",
    "loss_box_reg",
    "loss_mask",
}


def tiny_model(variant: str = "pa", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    kw.setdefault("anchor_wh", (12.0, 12.0))
    return build_model(ModelConfig.preset("slim", variant=variant, **{**TINY, **kw}))


def square_targets(n: int = 3, size: int = 64) -> list[dict[str, torch.Tensor]]:
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    boxes = []
    for k in range(n):
        y, x = 6 + 18 * k, 8 + 16 * k
        masks[k, y : y + 12, x : x + 12] = 1
        boxes.append([x, y, x + 12, y + 12])
    return [
        {
            "boxes": torch.tensor(boxes, dtype=torch.float32),
            "labels": torch.ones(n, dtype=torch.int64),
            "masks": masks,
        }
    ]


@pytest.mark.parametrize("variant", ["baseline", "pa"])
def test_training_step_losses_and_gradients(variant):
    model = tiny_model(variant).train()
    losses = model([torch.rand(3, 64, 64)], square_targets())
    expected = MASK_RCNN_LOSSES | (
        {"loss_centerness", "loss_centerbox"} if variant == "pa" else set()
    )
    assert set(losses) == expected
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    if variant == "pa":
        assert losses["loss_centerness"] > 0 and losses["loss_centerbox"] > 0
        assert model.pa.center.head.centerness.weight.grad.abs().sum() > 0
        assert model.pa.center.head.box.weight.grad.abs().sum() > 0
        assert model.pa.attention["0"].w_f.weight.grad.abs().sum() > 0
        assert int(model.pa.steps) == 1


def test_options_share_rpn_conv_and_attend_every_level():
    model = tiny_model(share_rpn_conv=True, attention_levels=("0", "1", "2", "3", "pool"))
    assert model.pa.center.head.tower is model.rpn.head.conv
    assert set(model.pa.attention) == {"0", "1", "2", "3", "pool"}
    losses = model.train()([torch.rand(3, 64, 64)], square_targets())
    sum(losses.values()).backward()
    assert all(model.pa.attention[k].w_f.weight.grad.abs().sum() > 0 for k in "0123")


def test_warm_up_counts_steps_in_a_buffer_and_delays_predicted_boxes(monkeypatch):
    model = tiny_model(warmup_steps=2).train()
    calls = []
    decode = model.pa.center.decode
    monkeypatch.setattr(model.pa.center, "decode", lambda *a: calls.append(1) or decode(*a))
    for _ in range(3):
        model([torch.rand(3, 32, 32)], square_targets(1, 32))
    assert len(calls) == 1 and int(model.pa.steps) == 3
    resumed = tiny_model(warmup_steps=2)
    resumed.load_state_dict(model.state_dict())
    assert int(resumed.pa.steps) == 3  # a resumed run does not warm up again
    model.eval()([torch.rand(3, 32, 32)])
    assert int(model.pa.steps) == 3 and len(calls) == 2  # inference always uses them


def test_predicted_boxes_reach_the_rcnn_head_first_at_inference(monkeypatch):
    model = tiny_model().eval()
    marker = torch.tensor([[3.0, 5.0, 17.0, 19.0], [30.0, 30.0, 40.0, 44.0]])
    monkeypatch.setattr(model.pa.center, "decode", lambda *a, **k: [(marker, torch.ones(2))])
    seen = {}
    forward = model.roi_heads.forward

    def spy(features, proposals, image_sizes, targets=None):
        seen["proposals"] = proposals
        return forward(features, proposals, image_sizes, targets)

    monkeypatch.setattr(model.roi_heads, "forward", spy)
    model([torch.rand(3, 64, 64)])
    assert torch.equal(seen["proposals"][0][:2], marker)
    assert len(seen["proposals"][0]) > 2  # the RPN's proposals follow


def test_eval_output_format():
    model = tiny_model().eval()
    outputs = model([torch.rand(3, 48, 40), torch.rand(3, 32, 32)])
    assert len(outputs) == 2
    for out, size in zip(outputs, [(48, 40), (32, 32)], strict=True):
        assert set(out) == {"boxes", "labels", "scores", "masks"}
        n = len(out["boxes"])
        assert out["boxes"].shape == (n, 4) and out["scores"].shape == (n,)
        assert out["labels"].dtype == torch.int64 and out["masks"].shape == (n, 1, *size)
        assert out["masks"].dtype == torch.float32


def test_pa_needs_anchor_size():
    model = tiny_model(anchor_wh=None).train()
    with pytest.raises(ValueError, match="anchor_wh"):
        model([torch.rand(3, 32, 32)], square_targets(1, 32))


def test_bad_targets_are_named():
    model = tiny_model("baseline").train()
    with pytest.raises(ValueError, match="required"):
        model([torch.rand(3, 32, 32)])
    targets = square_targets(1, 32)
    targets[0]["boxes"][0, 2] = targets[0]["boxes"][0, 0]
    with pytest.raises(ValueError, match="degenerate"):
        model([torch.rand(3, 32, 32)], targets)


def test_pa_adds_few_parameters():
    base = count_parameters(build_model(ModelConfig.preset("slim")))
    pa = count_parameters(build_model(ModelConfig.preset("slim", variant="pa")))
    assert 0 < pa / base - 1 < 0.01
    with torch.device("meta"):  # the paper's backbone, without allocating it
        paper = build_model(
            ModelConfig.preset("paper", variant="pa", init="none", trainable_layers=5)
        )
    added = count_parameters(paper.pa)
    assert 0 < added / (count_parameters(paper) - added) < 0.02


def test_attention_starts_as_identity_and_maps_queries():
    att = DecomposedSelfAttention(8, 4, 4)
    x = torch.rand(1, 8, 6, 6)
    assert torch.equal(att(x), x)
    query = torch.zeros(6, 6, dtype=torch.bool)
    query[2, 3] = True
    amap = att.attention_to(x, query)
    assert amap.shape == (6, 6) and torch.isclose(amap.sum(), torch.tensor(1.0))  # softmax over N
    assert torch.allclose(att.attention_to(x, query.float() * 2), 2 * amap)


def test_attention_map_and_figure(tmp_path):
    model = tiny_model()
    image = np.random.default_rng(0).integers(0, 255, (60, 44), dtype=np.uint8)
    labels = np.zeros((60, 44), np.int32)
    labels[10:20, 10:20] = 1
    labels[40:50, 30:40] = 2
    tensor = torch.from_numpy(image / 255.0).float().expand(3, -1, -1)
    amap = attention_map(model, tensor, labels > 0)
    assert amap.shape == (60, 44) and amap.min() == 0.0 and amap.max() == 1.0
    assert model.training  # mode restored
    save_attention_figure(image, labels, amap, tmp_path / "fig1.png")
    assert (tmp_path / "fig1.png").read_bytes()[:4] == b"\x89PNG"
    stack = np.stack([labels == 1, labels == 2])
    save_attention_figure(image, stack, amap, tmp_path / "stack.png")
    assert (tmp_path / "stack.png").is_file()
    with pytest.raises(ValueError, match="no pixel"):
        attention_map(model, tensor, np.zeros((60, 44), bool))
