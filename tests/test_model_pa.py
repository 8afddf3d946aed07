"""The partial-annotation module's mechanisms, on tiny hand-made inputs."""

from __future__ import annotations

import dataclasses
import urllib.error

import numpy as np
import pytest
import torch

from nuclei_pa.errors import InputError
from nuclei_pa.model import ModelConfig, build_model, count_parameters, median_box_wh
from nuclei_pa.model.attention import DecomposedSelfAttention
from nuclei_pa.model.center_head import CenterBranch, CenterHead, centerness_targets
from nuclei_pa.model.rpn import ignore_overlapping
from nuclei_pa.model.visualize import attention_map, save_attention_figure

TINY = {
    "fpn_channels": 16,
    "representation_size": 32,
    "mask_head_channels": 8,
    "center_head_channels": 8,
    "attention_channels": 8,
}


def tiny_model(variant: str = "pa", **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(
        ModelConfig.preset("slim", variant=variant, anchor_wh=(12.0, 12.0), **TINY, **kw)
    )


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


def test_centerness_map_of_one_square_nucleus():
    # A 16x16 nucleus at x, y in [8, 24) on a 32x32 image; fpn1 (stride 4) is 8x8 with location
    # centres at 2, 6, 10, ..., 30. Centres 10..22 fall in the mask → rows/cols 2..5 are negatives;
    # the central box is 16 ± 0.3*16/2 = [13.6, 18.4] → centres 14 and 18 → rows/cols 3..4 positive.
    mask = torch.zeros(1, 32, 32, dtype=torch.uint8)
    mask[0, 8:24, 8:24] = 1
    labels, boxes = centerness_targets(torch.tensor([[8.0, 8.0, 24.0, 24.0]]), mask, (8, 8), 4, 0.3)
    expected = -np.ones((8, 8), int)
    expected[2:6, 2:6] = 0
    expected[3:5, 3:5] = 1
    assert np.array_equal(labels.numpy(), expected)
    assert torch.equal(boxes[3, 3], torch.tensor([8.0, 8.0, 24.0, 24.0]))
    assert boxes[0, 0].abs().sum() == 0


def test_tiny_nucleus_still_gets_its_centre_location():
    mask = torch.zeros(1, 16, 16, dtype=torch.uint8)
    mask[0, 0:3, 0:3] = 1
    labels, _ = centerness_targets(torch.tensor([[0.0, 0.0, 3.0, 3.0]]), mask, (4, 4), 4, 0.3)
    assert labels[0, 0] == 1 and (labels == 1).sum() == 1


def test_no_annotations_means_everything_ignored():
    labels, _ = centerness_targets(torch.zeros(0, 4), torch.zeros(0, 16, 16), (4, 4), 4)
    assert (labels == -1).all()


def _branch() -> CenterBranch:
    return CenterBranch(CenterHead(8, 8, 1), stride=4, samples=128, positive_fraction=0.5)


def test_sampling_at_most_half_positive_and_never_ignored():
    branch = _branch()
    torch.manual_seed(0)
    labels = torch.full((1000,), -1)
    labels[:100] = 1
    labels[100:600] = 0
    pos, neg = branch.sampler([labels])
    assert pos[0].sum() == 64 and neg[0].sum() == 64
    assert (labels[pos[0].bool()] == 1).all() and (labels[neg[0].bool()] == 0).all()
    few = torch.full((1000,), -1)
    few[:10] = 1
    few[10:400] = 0
    pos, neg = branch.sampler([few])
    assert pos[0].sum() == 10 and neg[0].sum() == 118  # negatives fill the 128, positives ≤ half


def test_decoding_two_blobs_gives_two_boxes_at_their_peaks():
    branch = _branch()
    logits = torch.full((1, 8, 8), -10.0)
    logits[0, 1, 1:3] = 4.0  # blob 1, peak at (1, 2)
    logits[0, 1, 2] = 6.0
    logits[0, 5:7, 5] = 5.0  # blob 2, peak at (6, 5)
    logits[0, 6, 5] = 7.0
    regression = torch.zeros(1, 4, 8, 8)
    [(boxes, scores)] = branch.decode(logits, regression, [(32, 32)], [torch.tensor([6.0, 4.0])])
    # zero regression → the anchor itself: centred at ((j + .5) * 4, (i + .5) * 4), size 6 x 4
    expected = torch.tensor([[19.0, 24.0, 25.0, 28.0], [7.0, 4.0, 13.0, 8.0]])  # peaks (6,5), (1,2)
    assert torch.allclose(boxes, expected)
    assert torch.allclose(scores, torch.sigmoid(torch.tensor([7.0, 6.0])))


def test_below_threshold_decodes_nothing():
    [(boxes, _)] = _branch().decode(
        torch.full((1, 4, 4), 2.0), torch.zeros(1, 4, 4, 4), [(16, 16)], [torch.tensor([4.0, 4.0])]
    )
    assert boxes.shape == (0, 4)  # sigmoid(2) = 0.88 < 0.95


def test_negative_near_predicted_box_is_ignored_not_negative():
    labels = torch.tensor([1.0, 0.0, 0.0, -1.0])
    anchors = torch.tensor(
        [[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110], [0, 0, 5, 5]], dtype=torch.float
    )
    predicted = torch.tensor([[51.0, 51.0, 61.0, 61.0], [1.0, 1.0, 11.0, 11.0]])
    out = ignore_overlapping(labels, anchors, predicted, 0.3, 0.0)
    assert out.tolist() == [1.0, -1.0, 0.0, -1.0]  # GT match stays positive, far one stays negative


def test_rpn_and_roi_heads_ignore_anchors_on_unlabelled_nuclei():
    model = tiny_model()
    gt = {"boxes": torch.tensor([[0.0, 0.0, 12.0, 12.0]])}
    unlabelled = torch.tensor([[40.0, 40.0, 52.0, 52.0]])
    anchors = [
        torch.tensor([[0.0, 0.0, 12.0, 12.0], [40.0, 40.0, 52.0, 52.0], [20.0, 40.0, 30.0, 50.0]])
    ]
    base, _ = model.rpn.assign_targets_to_anchors(anchors, [gt])
    model.rpn.ignore_boxes = [unlabelled]
    pa, _ = model.rpn.assign_targets_to_anchors(anchors, [gt])
    model.rpn.ignore_boxes = None
    assert base[0].tolist() == [1.0, 0.0, 0.0] and pa[0].tolist() == [1.0, -1.0, 0.0]
    model.roi_heads.ignore_boxes = [unlabelled]
    _, labels = model.roi_heads.assign_targets_to_proposals(
        anchors, [gt["boxes"]], [torch.ones(1, dtype=torch.int64)]
    )
    model.roi_heads.ignore_boxes = None
    assert labels[0].tolist() == [1, -1, 0]


def test_predicted_boxes_reach_the_rcnn_head_at_inference(monkeypatch):
    model = tiny_model().eval()
    marker = torch.tensor([[3.0, 5.0, 17.0, 19.0]])
    monkeypatch.setattr(model.pa.center, "decode", lambda *a, **k: [(marker, torch.ones(1))])
    seen = {}
    original = model.roi_heads.forward

    def spy(features, proposals, image_sizes, targets=None):
        seen["proposals"] = proposals
        return original(features, proposals, image_sizes, targets)

    monkeypatch.setattr(model.roi_heads, "forward", spy)
    model([torch.rand(3, 64, 64)])
    assert torch.equal(seen["proposals"][0][:1], marker)


@pytest.mark.parametrize("variant", ["baseline", "pa"])
def test_training_step_losses_and_gradients(variant):
    model = tiny_model(variant).train()
    losses = model([torch.rand(3, 64, 64)], square_targets())
    expected = {
        "loss_objectness",
        "loss_rpn_box_reg",
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
    }
    if variant == "pa":
        expected |= {"loss_centerness", "loss_centerbox"}
    assert set(losses) == expected
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    if variant == "pa":
        assert model.pa.center.head.centerness.weight.grad.abs().sum() > 0
        assert model.pa.attention["0"].w_f.weight.grad.abs().sum() > 0
        assert int(model.pa.steps) == 1


def test_eval_output_format():
    model = tiny_model().eval()
    (out,) = model([torch.rand(3, 48, 40)])
    assert set(out) == {"boxes", "labels", "scores", "masks"}
    assert out["masks"].shape[1:] == (1, 48, 40)


def test_pa_needs_anchor_size():
    model = build_model(ModelConfig.preset("slim", variant="pa", **TINY)).train()
    with pytest.raises(ValueError, match="anchor_wh"):
        model([torch.rand(3, 32, 32)], square_targets(1, 32))


def test_pa_adds_few_parameters():
    base = count_parameters(build_model(ModelConfig.preset("slim")))
    pa = count_parameters(
        build_model(ModelConfig.preset("slim", variant="pa", anchor_wh=(10.0, 10.0)))
    )
    assert 0 < pa / base - 1 < 0.02


def test_attention_starts_as_identity_and_maps_queries():
    att = DecomposedSelfAttention(8, 4, 4)
    x = torch.rand(1, 8, 6, 6)
    assert torch.equal(att(x), x)
    query = torch.zeros(6, 6, dtype=torch.bool)
    query[2, 3] = True
    amap = att.attention_to(x, query)
    assert amap.shape == (6, 6) and torch.isclose(amap.sum(), torch.tensor(1.0))  # softmax over N


def test_attention_figure(tmp_path):
    model = tiny_model()
    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:20] = 1
    amap = attention_map(
        model, torch.from_numpy(image / 255.0).float().expand(3, -1, -1), labels > 0
    )
    assert amap.shape == (64, 64) and amap.min() == 0.0 and amap.max() == 1.0
    save_attention_figure(image, labels, amap, tmp_path / "fig1.png")
    assert (tmp_path / "fig1.png").read_bytes()[:4] == b"\x89PNG"


def test_config_round_trip_and_errors():
    cfg = ModelConfig.preset("slim", variant="pa", anchor_wh=(10.0, 12.0))
    assert ModelConfig.from_dict(dataclasses.asdict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown model setting 'bakbone'"):
        ModelConfig.from_dict({"bakbone": "resnet18"})
    with pytest.raises(ValueError, match="'fpn_channels' expects"):
        ModelConfig.from_dict({"fpn_channels": "wide"})
    with pytest.raises(ValueError, match="'variant' must be"):
        ModelConfig(variant="fancy")
    with pytest.raises(ValueError, match="unknown model preset"):
        ModelConfig.preset("huge")
    assert median_box_wh(np.array([[0, 0, 4, 10], [0, 0, 6, 20], [0, 0, 100, 30]])) == (6.0, 20.0)


def test_init_from_checkpoint_file_weights_only(tmp_path):
    source = tiny_model("baseline")
    torch.save({"model": source.state_dict(), "iteration": 3}, tmp_path / "ck.pt")
    loaded = tiny_model("baseline", init=str(tmp_path / "ck.pt"))
    for (name, a), (_, b) in zip(
        source.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    with pytest.raises(InputError, match="initial checkpoint not found"):
        tiny_model("baseline", init=str(tmp_path / "missing.pt"))


def test_offline_pretrained_weights_say_where_to_put_the_file(tmp_path, monkeypatch):
    from torchvision.models import ResNet18_Weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(
        ResNet18_Weights.IMAGENET1K_V1.__class__,
        "get_state_dict",
        lambda self, *a, **k: offline(),
        raising=False,
    )
    with pytest.raises(InputError) as err:
        build_model(ModelConfig.preset("slim", init="imagenet"))
    message = str(err.value)
    assert (
        str(tmp_path / "checkpoints") in message and "resnet18" in message and "download" in message
    )
