"""Predicted boxes stop false-negative sampling in the RPN and the R-CNN head."""

from __future__ import annotations

import torch

from nuclei_pa.model.ignore import centres_inside, count_ignored, ignore_overlapping, unlabelled
from tests.test_model_pa import tiny_model

GT = torch.tensor([[0.0, 0.0, 12.0, 12.0]])
UNLABELLED = torch.tensor([[40.0, 40.0, 52.0, 52.0]])
# matches the labelled nucleus / sits on the unlabelled one / overlaps nothing
CANDIDATES = torch.tensor(
    [[0.0, 0.0, 12.0, 12.0], [40.0, 40.0, 52.0, 52.0], [20.0, 40.0, 30.0, 50.0]]
)


def test_only_background_near_a_prediction_becomes_ignored():
    labels = torch.tensor([1.0, 0.0, 0.0, -1.0])
    boxes = torch.tensor(
        [[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110], [0, 0, 5, 5]], dtype=torch.float
    )
    predicted = torch.tensor([[51.0, 51.0, 61.0, 61.0], [1.0, 1.0, 11.0, 11.0]])
    out = ignore_overlapping(labels, boxes, predicted, 0.3, 0.0)
    assert out.tolist() == [1.0, -1.0, 0.0, -1.0]  # GT match stays positive, far one negative
    assert ignore_overlapping(labels, boxes, None, 0.3).tolist() == labels.tolist()
    assert ignore_overlapping(labels, boxes, torch.zeros(0, 4), 0.3).tolist() == labels.tolist()


def test_threshold_is_inclusive_and_per_stage():
    labels = torch.tensor([0, 0])
    # IoU with the prediction: 0.4 and 0.6
    boxes = torch.tensor([[0.0, 0.0, 10.0, 25.0], [0.0, 0.0, 10.0, 6.0]])
    predicted = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert ignore_overlapping(labels, boxes, predicted, 0.3).tolist() == [-1, -1]  # RPN: 0.3
    assert ignore_overlapping(labels, boxes, predicted, 0.5).tolist() == [0, -1]  # R-CNN: 0.5


def test_predictions_of_labelled_nuclei_leave_the_ignore_set():
    predicted = torch.tensor([[1.0, 1.0, 12.0, 12.0], [40.0, 40.0, 52.0, 52.0], [6.0, 0.0, 18, 12]])
    kept = unlabelled(predicted, GT, 0.5)
    # the first duplicates the labelled nucleus; the third only touches it (IoU 1/3)
    assert kept.tolist() == predicted[1:].tolist()
    assert unlabelled(predicted, GT, None).shape == (3, 4)
    assert unlabelled(predicted, torch.zeros(0, 4), 0.5).shape == (3, 4)


def test_rpn_ignores_anchors_on_unlabelled_nuclei():
    model = tiny_model()
    base, _ = model.rpn.assign_targets_to_anchors([CANDIDATES], [{"boxes": GT}])
    model.rpn.ignore_boxes = [torch.cat([GT, UNLABELLED])]  # even a prediction on the GT
    pa, _ = model.rpn.assign_targets_to_anchors([CANDIDATES], [{"boxes": GT}])
    model.rpn.ignore_boxes = None
    assert base[0].tolist() == [1.0, 0.0, 0.0]
    assert pa[0].tolist() == [1.0, -1.0, 0.0]  # positive stays, unlabelled ignored, far negative


def test_roi_heads_ignore_proposals_on_unlabelled_nuclei():
    model = tiny_model()
    gt_labels = [torch.ones(1, dtype=torch.int64)]
    _, base = model.roi_heads.assign_targets_to_proposals([CANDIDATES], [GT], gt_labels)
    model.roi_heads.ignore_boxes = [UNLABELLED]
    _, pa = model.roi_heads.assign_targets_to_proposals([CANDIDATES], [GT], gt_labels)
    model.roi_heads.ignore_boxes = None
    assert base[0].tolist() == [1, 0, 0] and pa[0].tolist() == [1, -1, 0]
    torch.manual_seed(0)
    sampled = model.roi_heads.subsample(pa)
    assert 1 not in sampled[0].tolist()  # the sampler never picks an ignored proposal


def test_training_pass_hands_unlabelled_predictions_to_both_stages(monkeypatch):
    from tests.test_model_pa import square_targets

    model = tiny_model().train()
    targets = square_targets(1)
    labelled = targets[0]["boxes"]
    predicted = torch.cat([labelled, UNLABELLED])
    monkeypatch.setattr(model.pa.center, "decode", lambda *a, **k: [(predicted, torch.ones(2))])
    seen = {}
    rpn_assign = model.rpn.assign_targets_to_anchors
    roi_assign = model.roi_heads.assign_targets_to_proposals

    def spy_rpn(anchors, targets):
        seen["rpn"] = model.rpn.ignore_boxes
        return rpn_assign(anchors, targets)

    def spy_roi(proposals, gt_boxes, gt_labels):
        seen["roi"] = model.roi_heads.ignore_boxes
        return roi_assign(proposals, gt_boxes, gt_labels)

    monkeypatch.setattr(model.rpn, "assign_targets_to_anchors", spy_rpn)
    monkeypatch.setattr(model.roi_heads, "assign_targets_to_proposals", spy_roi)
    model([torch.rand(3, 64, 64)], targets)
    assert torch.equal(seen["rpn"][0], UNLABELLED) and torch.equal(seen["roi"][0], UNLABELLED)
    assert model.rpn.ignore_boxes is None and model.roi_heads.ignore_boxes is None  # reset


def test_relabelled_candidates_are_counted():
    before = [torch.tensor([1.0, 0.0, 0.0, -1.0]), torch.tensor([0.0])]
    after = [torch.tensor([1.0, -1.0, 0.0, -1.0]), torch.tensor([-1.0])]
    assert count_ignored(before, after, 0.0) == 2  # the already-ignored one is not counted


def test_centres_inside_counts_boxes_on_nuclei_and_nuclei_found():
    nuclei = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0], [60.0, 0.0, 70.0, 9]])
    boxes = torch.tensor(
        [
            [2.0, 2.0, 6.0, 6.0],  # centre (4, 4): first nucleus
            [25.0, 25.0, 60.0, 60.0],  # centre (42.5, 42.5): sized wrong, off the second
            [28.0, 22.0, 36.0, 30.0],  # centre (32, 26): second nucleus
            [26.0, 30.0, 38.0, 34.0],  # centre (32, 32): second nucleus again
        ]
    )
    assert centres_inside(boxes, nuclei) == (3, 2)
    assert centres_inside(boxes[:0], nuclei) == (0, 0)


def test_training_pass_reports_what_the_centre_boxes_did(monkeypatch):
    from tests.test_model_pa import square_targets

    model = tiny_model().train()
    targets = square_targets(3)  # nuclei at (8, 6), (24, 24), (40, 42), 12 px
    full = targets[0]["boxes"]
    for key in ("boxes", "masks"):
        targets[0][key] = targets[0][key][:1]  # only the first is labelled
    targets[0]["reference_boxes"] = full
    predicted = torch.cat([full[:1], full[1:2] + 1, torch.tensor([[50.0, 2.0, 60.0, 12.0]])])
    monkeypatch.setattr(model.pa.center, "decode", lambda *a, **k: [(predicted, torch.ones(3))])
    model([torch.rand(3, 64, 64)], targets)
    d = model.diagnostics
    assert d["pa_center_boxes"] == 3 and d["pa_unlabelled_boxes"] == 2  # labelled one left out
    assert d["pa_on_unlabelled_nucleus"] == 0.5  # one on the second nucleus, one on background
    assert d["pa_unlabelled_nuclei_found"] == 0.5  # the second of two unlabelled nuclei
    assert d["pa_ignored_anchors"] == model.rpn.ignored > 0
    assert d["pa_ignored_proposals"] == model.roi_heads.ignored >= 0
