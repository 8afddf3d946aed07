"""Ignored pixels are neither nucleus nor background in any loss (issue 24): RPN objectness,
R-CNN classification and the mask loss see no gradient from them; inside a fully annotated
region the pa module protects nothing."""

from __future__ import annotations

import torch
from torchvision.models.detection.roi_heads import maskrcnn_loss

from nuclei_pa.model.ignore import (
    IGNORE_KEY,
    REGION_KEY,
    ignore_marked,
    ignored_share,
    ignoring_mask_loss,
    outside_regions,
)
from tests.test_model_pa import square_targets, tiny_model

GT = torch.tensor([[0.0, 0.0, 12.0, 12.0]])
# matches the labelled nucleus / lies wholly on the ignored area / half on it / off it
CANDIDATES = torch.tensor(
    [[0.0, 0.0, 12.0, 12.0], [40.0, 40.0, 50.0, 50.0], [30.0, 40.0, 40.0, 50.0], [0, 50, 10, 60]]
)


def ignore_mask(size: int = 64) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.uint8)
    mask[35:55, 35:55] = 1  # columns and rows 35..54
    return mask


def test_ignored_share_counts_pixels_inside_each_box():
    share = ignored_share(CANDIDATES, ignore_mask())
    # box 2 spans columns 30..39, of which 35..39 are ignored: half of it
    assert share.tolist() == [0.0, 1.0, 0.5, 0.0]
    outside = torch.tensor([[70.0, 70.0, 80.0, 80.0], [60.0, 60.0, 70.0, 70.0]])
    # no pixel in the image / its 4 × 4 in-image pixels are none of them ignored
    assert ignored_share(outside, ignore_mask()).tolist() == [0.0, 0.0]


def test_only_background_mostly_on_ignored_pixels_becomes_ignored():
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0])
    out = ignore_marked(labels, CANDIDATES, ignore_mask(), 0.0)
    assert out.tolist() == [1.0, -1.0, -1.0, 0.0]  # half counts as mostly; the far one stays
    positive_there = ignore_marked(torch.tensor([0.0, 1.0]), CANDIDATES[:2], ignore_mask(), 0.0)
    assert positive_there.tolist() == [0.0, 1.0]
    assert ignore_marked(labels, CANDIDATES, None).tolist() == labels.tolist()


def _objectness_grad(model, targets) -> torch.Tensor:
    """Gradient of the RPN objectness loss on each candidate's logit (all sampled when they
    are fewer than the RPN's sample size)."""
    labels, _ = model.rpn.assign_targets_to_anchors([CANDIDATES], targets)
    regression = model.rpn.box_coder.encode([GT[0][None].expand(4, 4)], [CANDIDATES])[0]
    logits = torch.zeros(4, 1, requires_grad=True)
    deltas = torch.zeros(4, 4, requires_grad=True)
    torch.manual_seed(0)
    loss, _ = model.rpn.compute_loss(logits, deltas, labels, [regression])
    loss.backward()
    return logits.grad[:, 0]


def test_rpn_objectness_has_no_gradient_on_ignored_anchors():
    model = tiny_model("baseline")
    plain = _objectness_grad(model, [{"boxes": GT}])
    assert (plain != 0).all()  # without the mask every candidate is a sampled example
    grad = _objectness_grad(model, [{"boxes": GT, IGNORE_KEY: ignore_mask()}])
    assert grad[1] == 0 and grad[2] == 0
    assert grad[0] < 0 and grad[3] > 0  # the positive and the real negative still learn
    assert model.rpn.ignored_marked == 2


def test_roi_heads_never_sample_proposals_on_ignored_pixels():
    model = tiny_model("baseline").train()
    target = {
        "boxes": GT,
        "labels": torch.ones(1, dtype=torch.int64),
        "masks": torch.zeros(1, 64, 64, dtype=torch.uint8),
        IGNORE_KEY: ignore_mask(),
    }
    target["masks"][0, :12, :12] = 1
    model.roi_heads._ignores = [target[IGNORE_KEY]]
    try:
        proposals, *_ = model.roi_heads.select_training_samples([CANDIDATES], [target])
    finally:
        model.roi_heads._ignores = None
    kept = {tuple(p) for p in proposals[0].tolist()}
    assert tuple(CANDIDATES[3].tolist()) in kept  # a real negative
    assert not kept & {tuple(CANDIDATES[1].tolist()), tuple(CANDIDATES[2].tolist())}
    assert model.roi_heads.ignored_marked == 2


def _mask_case():
    torch.manual_seed(1)
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)  # 2 positives, 2 classes, M = 8
    proposals = [torch.tensor([[0.0, 0.0, 16.0, 16.0], [8.0, 0.0, 24.0, 16.0]])]
    masks = torch.zeros(1, 32, 32, dtype=torch.uint8)
    masks[0, 2:12, 2:14] = 1
    return logits, proposals, [masks], [torch.ones(1, dtype=torch.int64)], [torch.zeros(2).long()]


def test_mask_loss_without_ignored_pixels_is_torchvisions():
    logits, proposals, masks, labels, matched = _mask_case()
    ours = ignoring_mask_loss(logits, proposals, masks, labels, matched, [None])
    theirs = maskrcnn_loss(logits, proposals, masks, labels, matched)
    empty = torch.zeros(32, 32, dtype=torch.uint8)
    assert torch.allclose(ours, theirs)
    assert torch.allclose(
        ignoring_mask_loss(logits, proposals, masks, labels, matched, [empty]), theirs
    )


def test_mask_loss_has_no_gradient_on_ignored_pixels():
    logits, proposals, masks, labels, matched = _mask_case()
    ignore = torch.zeros(32, 32, dtype=torch.uint8)
    ignore[:, 12:16] = 1  # columns 12..15: cells 6, 7 of box 0 (2 px a cell), 2, 3 of box 1
    loss = ignoring_mask_loss(logits, proposals, masks, labels, matched, [ignore])
    loss.backward()
    grad = logits.grad[:, 1]
    assert (grad[0, :, 6:] == 0).all() and (grad[1, :, 2:4] == 0).all()
    assert (grad[0, :, :6] != 0).all() and (grad[1, :, 4:] != 0).all()
    assert (logits.grad[:, 0] == 0).all()  # the other class's channel is never scored
    with torch.no_grad():  # changing the logits on ignored cells changes nothing
        moved = logits.clone()
        moved[0, 1, :, 6:] += 5.0
        moved[1, 1, :, 2:4] -= 5.0
        again = ignoring_mask_loss(moved, proposals, masks, labels, matched, [ignore])
    assert torch.equal(again, loss.detach())


def test_training_pass_with_an_empty_ignore_mask_is_the_plain_one():
    model = tiny_model("baseline").train()
    image = torch.rand(3, 64, 64)
    torch.manual_seed(3)
    plain = model([image], square_targets())
    torch.manual_seed(3)
    targets = square_targets()
    targets[0][IGNORE_KEY] = torch.zeros(64, 64, dtype=torch.uint8)
    same = model([image], targets)
    for key in plain:
        assert torch.allclose(plain[key], same[key]), key


def test_training_pass_takes_ignored_pixels_out_of_every_loss():
    model = tiny_model("baseline").train()
    targets = square_targets()
    targets[0][IGNORE_KEY] = ignore_mask()
    torch.manual_seed(3)
    losses = model([torch.rand(3, 64, 64)], targets)
    assert model.rpn.ignored_marked > 0 and model.roi_heads.ignored_marked > 0
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())


def test_resized_inputs_resize_their_masks():
    model = tiny_model("baseline", min_size=128, max_size=128).train()
    seen = {}
    assign = model.rpn.assign_targets_to_anchors

    def spy(anchors, targets):
        seen["ignore"] = targets[0][IGNORE_KEY]
        return assign(anchors, targets)

    model.rpn.assign_targets_to_anchors = spy
    targets = square_targets()
    targets[0][IGNORE_KEY] = ignore_mask()
    model([torch.rand(3, 64, 64)], targets)
    assert seen["ignore"].shape == (128, 128)
    assert int(seen["ignore"].sum()) == 4 * int(ignore_mask().sum())  # 20 × 20 px → 40 × 40


def test_boxes_inside_a_fully_annotated_region_protect_nothing():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 40.0, 40.0]])
    region = torch.zeros(64, 64, dtype=torch.uint8)
    region[:20, :20] = 1
    assert outside_regions(boxes, region).tolist() == boxes[1:].tolist()
    assert outside_regions(boxes, None).tolist() == boxes.tolist()


def test_pa_training_pass_drops_predictions_inside_regions(monkeypatch):
    model = tiny_model().train()
    targets = square_targets(1)  # one nucleus at x 8..20, y 6..18
    inside, outside = [40.0, 2.0, 52.0, 14.0], [40.0, 40.0, 52.0, 52.0]
    predicted = torch.tensor([inside, outside])
    monkeypatch.setattr(model.pa.center, "decode", lambda *a, **k: [(predicted, torch.ones(2))])
    region = torch.zeros(64, 64, dtype=torch.uint8)
    region[:32, :] = 1  # the upper half is fully annotated
    targets[0][REGION_KEY] = region
    seen = {}
    assign = model.rpn.assign_targets_to_anchors

    def spy(anchors, targets):
        seen["boxes"] = model.rpn.ignore_boxes
        return assign(anchors, targets)

    monkeypatch.setattr(model.rpn, "assign_targets_to_anchors", spy)
    model([torch.rand(3, 64, 64)], targets)
    assert seen["boxes"][0].tolist() == [outside]
