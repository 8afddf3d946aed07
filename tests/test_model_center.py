"""The pa module's centre branch: ground-truth map, sampling, losses and decoding."""

from __future__ import annotations

import numpy as np
import torch

from nuclei_pa.model.center_head import (
    CenterBranch,
    CenterHead,
    center_losses,
    centerness_targets,
    location_centres,
)


def _branch(**kw) -> CenterBranch:
    return CenterBranch(CenterHead(8, 8, 1), stride=4, samples=128, positive_fraction=0.5, **kw)


def test_centerness_map_of_one_square_nucleus():
    # A 16x16 nucleus at x, y in [8, 24) on a 32x32 image; fpn1 (stride 4) is 8x8 with location
    # centres at 2, 6, 10, ..., 30. Centres 10..22 fall in the mask → rows/cols 2..5 negative;
    # the central box is 16 ± 0.3·16/2 = [13.6, 18.4] → centres 14 and 18 → rows/cols 3..4 positive.
    mask = torch.zeros(1, 32, 32, dtype=torch.uint8)
    mask[0, 8:24, 8:24] = 1
    box = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    labels, boxes = centerness_targets(box, mask, (8, 8), 4, 0.3)
    expected = np.array(
        [
            [-1, -1, -1, -1, -1, -1, -1, -1],
            [-1, -1, -1, -1, -1, -1, -1, -1],
            [-1, -1, 0, 0, 0, 0, -1, -1],
            [-1, -1, 0, 1, 1, 0, -1, -1],
            [-1, -1, 0, 1, 1, 0, -1, -1],
            [-1, -1, 0, 0, 0, 0, -1, -1],
            [-1, -1, -1, -1, -1, -1, -1, -1],
            [-1, -1, -1, -1, -1, -1, -1, -1],
        ]
    )
    assert np.array_equal(labels.numpy(), expected)
    assert (boxes[labels == 1] == box).all()
    assert (boxes[labels != 1] == 0).all()


def test_overlapping_nuclei_positive_wins_and_smaller_owns_shared_centres():
    masks = torch.zeros(2, 32, 32, dtype=torch.uint8)
    masks[0, 0:32, 0:32] = 1  # a big nucleus whose mask covers the small one
    masks[1, 12:20, 12:20] = 1
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0], [12.0, 12.0, 20.0, 20.0]])
    labels, target = centerness_targets(boxes, masks, (8, 8), 4, 0.3)
    # the big one's central box [11.2, 20.8]² covers locations 3..4; the small one's covers no
    # location centre, so it claims the one holding its centre (16, 16) → (4, 4), and wins it
    assert (labels == 1).sum() == 4 and (labels == 0).sum() == 60  # its mask covers the rest
    assert torch.equal(target[4, 4], boxes[1])
    assert all(torch.equal(target[i, j], boxes[0]) for i, j in [(3, 3), (3, 4), (4, 3)])


def test_tiny_nucleus_still_gets_its_centre_location():
    mask = torch.zeros(1, 16, 16, dtype=torch.uint8)
    mask[0, 5:8, 9:12] = 1  # 3x3: its 0.9-px central box covers no location centre
    labels, boxes = centerness_targets(torch.tensor([[9.0, 5.0, 12.0, 8.0]]), mask, (4, 4), 4)
    assert (labels == 1).sum() == 1 and labels[1, 2] == 1  # the location holding (10.5, 6.5)
    assert boxes[1, 2].tolist() == [9.0, 5.0, 12.0, 8.0]


def test_padding_and_unlabelled_image_are_ignored():
    labels, _ = centerness_targets(torch.zeros(0, 4), torch.zeros(0, 16, 16), (4, 4), 4)
    assert (labels == -1).all()
    mask = torch.ones(1, 8, 8, dtype=torch.uint8)  # an 8x8 image padded to 16x16 features
    labels, _ = centerness_targets(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), mask, (4, 4), 4)
    assert (labels[2:] == -1).all() and (labels[:, 2:] == -1).all() and (labels[:2, :2] >= 0).all()


def test_sampling_at_most_half_positive_and_never_ignored():
    branch = _branch()
    torch.manual_seed(0)
    labels = torch.full((1000,), -1)
    labels[:100] = 1
    labels[100:600] = 0
    pos, neg = branch.sample(labels)
    assert len(pos) == 64 and len(neg) == 64
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    few = torch.full((1000,), -1)
    few[:10] = 1
    few[10:400] = 0
    pos, neg = branch.sample(few)
    assert len(pos) == 10 and len(neg) == 118  # negatives fill up the 128
    scarce = torch.full((1000,), -1)
    scarce[:100] = 1
    scarce[100:103] = 0
    pos, neg = branch.sample(scarce)
    assert len(pos) == 64 and len(neg) == 3  # never more than half positive


def test_losses_are_bce_on_sampled_and_smooth_l1_on_positives():
    logits = torch.tensor([0.0, 2.0, -1.0, 5.0])
    labels = torch.tensor([1, 0, -1, 1])
    deltas = torch.zeros(4, 4)
    target = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    bce, box = center_losses(
        logits, labels, deltas, target, torch.tensor([0, 3]), torch.tensor([1])
    )
    expected = -(np.log(0.5) + np.log(1 - 1 / (1 + np.exp(-2))) + np.log(1 / (1 + np.exp(-5))))
    assert np.isclose(bce.item(), expected / 3)
    assert np.isclose(box.item(), (1.0 - 0.5 / 9) / 3)  # one |1| error, beta 1/9, over 3 sampled


def test_branch_losses_regress_positives_to_their_nucleus():
    branch = _branch()
    mask = torch.zeros(1, 32, 32, dtype=torch.uint8)
    mask[0, 8:24, 8:24] = 1
    target = {"boxes": torch.tensor([[8.0, 8.0, 24.0, 24.0]]), "masks": mask}
    # the perfect regression: each positive location's anchor (16x16) moved onto the box
    anchors_wh = torch.tensor([16.0, 16.0])
    centres = location_centres(8, 8, 4, torch.device("cpu"))
    anchors = torch.cat([centres - 8, centres + 8], 1)
    perfect = branch.coder.encode_single(target["boxes"].expand(64, 4), anchors)
    regression = perfect.T.reshape(1, 4, 8, 8)
    logits = torch.full((1, 8, 8), -20.0)
    logits[0, 3:5, 3:5] = 20.0
    losses = branch.losses(logits, regression, [target], [anchors_wh])
    assert losses["loss_centerness"] < 1e-6 and losses["loss_centerbox"] < 1e-6
    bad = branch.losses(-logits, regression + 1, [target], [anchors_wh])
    assert bad["loss_centerness"] > 10 and bad["loss_centerbox"] > 0.1


def test_decoding_two_blobs_gives_two_boxes_at_their_peaks():
    branch = _branch()
    logits = torch.full((1, 8, 8), -10.0)
    logits[0, 1, 1:3] = 4.0  # blob 1, peak at row 1, col 2
    logits[0, 1, 2] = 6.0
    logits[0, 5:7, 5] = 5.0  # blob 2, peak at row 6, col 5
    logits[0, 6, 5] = 7.0
    regression = torch.zeros(1, 4, 8, 8)
    regression[0, :, 1, 2] = torch.tensor([0.1, 0.0, 0.0, 0.0])  # dx = 1/10 of the anchor width
    [(boxes, scores)] = branch.decode(logits, regression, [(32, 32)], [torch.tensor([6.0, 4.0])])
    # anchors centred at ((col + .5) * 4, (row + .5) * 4), 6 x 4; the first moved 0.6 px right
    expected = torch.tensor([[19.0, 24.0, 25.0, 28.0], [7.6, 4.0, 13.6, 8.0]])
    assert torch.allclose(boxes, expected)
    assert torch.allclose(scores, torch.sigmoid(torch.tensor([7.0, 6.0])))
    # the R-CNN head's weights (older checkpoints) divide the deltas: dx = 1 is then 1/10
    legacy = _branch(box_weights=(10.0, 10.0, 5.0, 5.0))
    legacy.load_state_dict(branch.state_dict())
    regression[0, 0, 1, 2] = 1.0
    [(boxes, _)] = legacy.decode(logits, regression, [(32, 32)], [torch.tensor([6.0, 4.0])])
    assert torch.allclose(boxes, expected)


def test_decoding_clips_thresholds_caps_and_nms():
    logits = torch.full((1, 4, 4), 2.0)  # sigmoid(2) = 0.88 < 0.95
    regression = torch.zeros(1, 4, 4, 4)
    anchor = [torch.tensor([8.0, 8.0])]
    [(boxes, _)] = _branch(threshold=0.95).decode(logits, regression, [(16, 16)], anchor)
    assert boxes.shape == (0, 4)
    logits[0, 0, 0] = 3.0
    [(boxes, _)] = _branch(threshold=0.8).decode(logits, regression, [(16, 16)], anchor)
    assert boxes.tolist() == [[0.0, 0.0, 6.0, 6.0]]  # one component; its corner peak, clipped
    logits = torch.full((1, 4, 4), -9.0)
    logits[0, 0, 0], logits[0, 0, 2], logits[0, 3, 3] = 9.0, 8.0, 7.0  # three separate peaks
    assert len(_branch().decode(logits, regression, [(16, 16)], anchor)[0][0]) == 3
    assert len(_branch(max_boxes=2).decode(logits, regression, [(16, 16)], anchor)[0][0]) == 2
    big = [torch.tensor([16.0, 16.0])]  # anchors overlapping each other heavily
    [(boxes, scores)] = _branch(nms_iou=0.3).decode(logits, regression, [(16, 16)], big)
    assert len(boxes) < 3 and scores[0] == torch.sigmoid(torch.tensor(9.0))
