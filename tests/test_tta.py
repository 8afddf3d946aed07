"""Inference-time levers: test-time flips (engine.tta) and the mask head on grown boxes
(``mask_box_scale``), with their settings in ModelConfig."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torchvision.models.detection.roi_heads import RoIHeads, expand_boxes, paste_masks_in_image

from nuclei_pa.engine import predict as engine
from nuclei_pa.engine.predict import image_to_tensor, load_model, predict_image
from nuclei_pa.engine.tta import FLIPS, Window, merge_views, trim, unflip
from nuclei_pa.model import ModelConfig, build_model
from nuclei_pa.model.config import SAVED_BEFORE
from nuclei_pa.model.roi_heads import cut_by_box
from tests.test_predict import BlobModel, blob_image, canonical


def _window(top: int, left: int, mask: np.ndarray, score: float, p: float = 0.8) -> Window:
    return Window(top, left, torch.from_numpy(mask.astype(np.float32) * p), score)


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy**2 + xx**2 <= radius**2


def test_flips_of_an_equivariant_model_equal_the_plain_prediction():
    # BlobModel finds the same blobs whatever the flip: the four views agree exactly
    image, kept = blob_image(400, 200, 64)
    for tile_size in (None, 200):
        plain, plain_scores = predict_image(BlobModel(), image, tile_size=tile_size)
        model = BlobModel()
        flipped, flipped_scores = predict_image(
            model, image, tile_size=tile_size, tile_overlap=64, test_time_flips=True
        )
        assert len(plain_scores) > kept // 2
        assert canonical(flipped) == canonical(plain)
        assert sorted(flipped_scores.values()) == pytest.approx(sorted(plain_scores.values()))
        assert len(model.calls) % len(FLIPS) == 0


def test_flips_follow_the_models_setting():
    image, _ = blob_image(200)
    model = BlobModel()
    predict_image(model, image, tile_size=None)
    assert len(model.calls) == 1
    model.test_time_flips = True  # what build_model sets from ModelConfig.test_time_flips
    predict_image(model, image, tile_size=None)
    assert len(model.calls) == 1 + len(FLIPS)
    predict_image(model, image, tile_size=None, test_time_flips=False)
    assert len(model.calls) == 2 + len(FLIPS)


def test_unflip_mirrors_pixels_exactly():
    prob = torch.rand(5, 7, generator=torch.Generator().manual_seed(0))
    canvas = torch.zeros(20, 30)
    canvas[3:8, 11:18] = prob
    for dims in FLIPS:
        seen = canvas.flip(dims) if dims else canvas
        window = trim(Window(0, 0, seen, 0.9))
        back = unflip(window, dims, 20, 30)
        assert (back.top, back.left) == (3, 11)
        assert torch.equal(back.prob, prob)


def test_merging_votes_and_averages_over_the_views_that_saw_a_nucleus():
    disk = _disk(5)
    views = [
        [_window(10, 10, disk, 0.9), _window(40, 40, disk, 0.7, p=0.6)],  # A, B
        [_window(10, 11, disk, 0.8), _window(40, 40, disk, 0.5, p=1.0)],  # A shifted, B
        [_window(10, 10, disk, 0.7), _window(70, 10, disk, 0.95)],  # A, C (one view only)
        [_window(80, 80, disk, 0.6)],  # D (one view only)
    ]
    merged = merge_views(views, 0.5)
    assert len(merged) == 2  # C and D seen once: dropped
    a, b = sorted(merged, key=lambda w: w.top)
    assert a.score == pytest.approx(0.8) and (a.top, a.left) == (10, 10)
    assert a.prob.shape == (11, 12)  # the union of its windows
    # mean over the three views that saw A: 0.8 where all three masks are, 0.8·2/3 elsewhere
    assert float(a.prob.max()) == pytest.approx(0.8)
    assert float(a.prob[5, 0]) == pytest.approx(0.8 * 2 / 3)
    assert b.score == pytest.approx(0.6)  # mean of B's two views
    assert torch.allclose(b.prob, torch.from_numpy(disk * 0.8).float())  # (0.6 + 1.0) / 2


def test_one_view_contributes_one_detection_per_nucleus():
    disk = _disk(5)
    views = [[_window(10, 10, disk, 0.9), _window(10, 10, disk, 0.6)], [], [], []]
    assert merge_views(views, 0.5) == []  # two detections of one view are two groups of one
    views = [[_window(10, 10, disk, 0.9), _window(10, 10, disk, 0.6)], [_window(10, 10, disk, 0.8)]]
    (merged,) = merge_views(views, 0.5, min_views=2)
    assert merged.score == pytest.approx(0.85)
    apart = [[_window(10, 10, disk, 0.9)], [_window(10, 18, disk, 0.9)]]  # IoU < 0.5
    assert merge_views(apart, 0.5, min_views=2) == []


#: A random slim model small enough to run in well under a second on a 64×72 image.
SMALL = {
    "fpn_channels": 16,
    "representation_size": 32,
    "mask_head_channels": 16,
    "box_score_thresh": 0.0,
    "rpn_pre_nms_top_n_test": 200,
    "rpn_post_nms_top_n_test": 50,
    "detections_per_image": 20,
}


def _tiny_model(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig.preset("slim", **SMALL, **overrides)
    return build_model(cfg).eval()


def _image(seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((64, 72)) * 255).astype(np.uint8)


def test_box_scale_one_is_torchvisions_mask_head_bit_for_bit():
    model = _tiny_model()
    assert model.roi_heads.mask_box_scale == 1.0 and model.test_time_flips is False
    x = image_to_tensor(_image())
    seen = {}
    with torch.inference_mode():
        ours = model([x])[0]
        original = model.roi_heads.forward
        model.roi_heads.forward = lambda *a, **k: seen.setdefault(
            "out", RoIHeads.forward(model.roi_heads, *a, **k)
        )
        try:
            theirs = model([x])[0]
        finally:
            model.roi_heads.forward = original
    assert "mask_boxes" not in ours and len(ours["scores"]) > 0
    for key in ("boxes", "scores", "masks"):
        assert torch.equal(ours[key], theirs[key])
    labels, _ = predict_image(model, _image(), score_threshold=0.0, min_area=1)
    again, _ = predict_image(model, _image(), score_threshold=0.0, min_area=1, mask_box_scale=1.0)
    assert np.array_equal(labels, again)


def test_grown_boxes_feed_the_mask_head_and_take_its_masks():
    model = _tiny_model(mask_box_grow="all")
    x = image_to_tensor(_image())
    with torch.inference_mode():
        plain = model([x])[0]
        with engine._mask_box_scale(model, 1.2), engine._masks_unpasted(model):
            grown = model([x])[0]
        model.roi_heads.mask_box_scale = 1.2
        pasted = model([x])[0]  # torchvision's full-size paste, into the grown boxes
        model.roi_heads.mask_box_scale = 1.0
    assert torch.equal(grown["boxes"], plain["boxes"])  # detections unchanged
    assert torch.equal(grown["mask_boxes"], expand_boxes(plain["boxes"], 1.2))
    assert not torch.equal(paste_masks_in_image(grown["masks"], grown["boxes"], (64, 72)),
                           plain["masks"])  # fmt: skip
    full = paste_masks_in_image(grown["masks"], grown["mask_boxes"], (64, 72))
    assert torch.equal(pasted["masks"], full)
    # prediction pastes each mask into its grown box alone: the same pixels as the full paste
    tile = engine.tile_grid(64, 72, None, 0)[0]
    local = list(engine._tile_instances(grown, tile, 0.0, 0.5))
    whole = list(engine._tile_instances(pasted, tile, 0.0, 0.5))
    assert len(local) == len(whole) > 0
    for a, b in zip(local, whole, strict=True):
        assert (a.y0, a.x0) == (b.y0, b.x0) and np.array_equal(a.mask, b.mask)
    assert model.roi_heads.mask_box_scale == 1.0


def test_only_masks_cut_by_their_box_get_a_grown_box():
    model = _tiny_model(mask_box_grow="all")
    x = image_to_tensor(_image())
    with torch.inference_mode(), engine._masks_unpasted(model):
        plain = model([x])[0]
        with engine._mask_box_scale(model, 1.2):
            every = model([x])[0]
            model.roi_heads.mask_box_grow = "cut"
            some = model([x])[0]
    cut = cut_by_box(plain["masks"][:, 0])
    assert 0 < int(cut.sum()) < len(cut)  # a random model: some masks fill their box's side
    assert torch.equal(some["mask_boxes"][~cut], plain["boxes"][~cut])
    assert torch.equal(some["masks"][~cut], plain["masks"][~cut])
    assert torch.equal(some["mask_boxes"][cut], every["mask_boxes"][cut])
    torch.testing.assert_close(some["masks"][cut], every["masks"][cut])


def test_cut_by_box_reads_the_sides_of_the_mask_grid():
    masks = torch.zeros(3, 28, 28)
    masks[0, 8:20, 8:20] = 1.0  # inside its box
    masks[1, 0:10, 6:22] = 1.0  # runs along the top side over 16 of 28 pixels
    masks[2, 0:10, 10:20] = 1.0  # touches the top over 10 pixels only
    assert cut_by_box(masks).tolist() == [False, True, False]


def test_mask_box_scale_needs_a_nuclei_pa_model_and_a_sane_value():
    with pytest.raises(ValueError, match="mask_box_scale"):
        predict_image(BlobModel(), _image(), mask_box_scale=1.2)
    with pytest.raises(ValueError, match="mask_box_scale"):
        predict_image(_tiny_model(), _image(), mask_box_scale=0.8)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mask_box_scale", 0.9),
        ("mask_box_scale", 2.5),
        ("mask_box_scale", "big"),
        ("test_time_flips", "yes"),
        ("test_time_flips", 1),
        ("mask_box_grow", "some"),
    ],
)
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        ModelConfig.from_dict({key: value})


def test_config_settings_reach_the_model():
    model = _tiny_model(mask_box_scale=1.15, test_time_flips=True)
    assert model.roi_heads.mask_box_scale == 1.15 and model.test_time_flips is True
    cfg = ModelConfig.from_dict({"mask_box_scale": 1, "test_time_flips": True})
    assert cfg.mask_box_scale == 1.0 and ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_old_checkpoint_without_the_keys_predicts_as_before(tmp_path):
    model = _tiny_model()
    saved = ModelConfig.preset("slim", **SMALL).to_dict()
    for key in ("mask_box_scale", "mask_box_grow", "test_time_flips"):
        assert key in SAVED_BEFORE
        del saved[key]
    path = tmp_path / "old.pt"
    torch.save({"model_config": saved, "model": model.state_dict()}, path)
    loaded = load_model(path, "cpu")
    assert loaded.roi_heads.mask_box_scale == 1.0 and loaded.test_time_flips is False
    new, new_scores = predict_image(model, _image(), score_threshold=0.0, min_area=1)
    old, old_scores = predict_image(loaded, _image(), score_threshold=0.0, min_area=1)
    assert np.array_equal(new, old) and new_scores == old_scores
    assert dataclasses.replace(ModelConfig.from_saved(saved)) == ModelConfig.from_dict(
        {**saved, "mask_box_scale": 1.0, "mask_box_grow": "cut", "test_time_flips": False}
    )


@pytest.mark.parametrize("flips", [False, True])
def test_several_mask_thresholds_from_one_run_equal_one_run_each(flips):
    model = _tiny_model()
    image = _image()
    kwargs = {"score_threshold": 0.0, "min_area": 1, "test_time_flips": flips}
    together = engine.predict_mask_thresholds(model, image, [0.3, 0.5, 0.7], **kwargs)
    for t, (labels, scores) in zip([0.3, 0.5, 0.7], together, strict=True):
        alone, alone_scores = predict_image(model, image, mask_threshold=t, **kwargs)
        assert np.array_equal(labels, alone) and scores == alone_scores


# --- the mask threshold chosen on validation images ----------------------------------------


def test_choice_takes_the_mask_threshold_too_and_reads_old_choices():
    import pandas as pd

    from nuclei_pa.engine.choose import Choice, choose

    curve = pd.DataFrame(
        {
            "iteration": [100, 100, 100, 200],
            "score_threshold": [0.5, 0.5, 0.5, 0.5],
            "mask_threshold": [0.4, 0.5, 0.6, 0.5],
            "map": [0.30, 0.31, 0.33, 0.33],
        }
    )
    c = choose(curve)
    assert (c.iteration, c.score_threshold, c.mask_threshold) == (100, 0.5, 0.6)
    flat = curve.assign(map=0.3)
    assert choose(flat).mask_threshold == 0.5  # ties: the default
    old_curve = curve.drop(columns="mask_threshold").iloc[[1, 3]]
    assert choose(old_curve).mask_threshold == 0.5
    old = {
        "iteration": 300,
        "score_threshold": 0.4,
        "chosen_on": "validation",
        "validation_map": 0.4,
    }
    # written before mask thresholds and dilation were chosen: evaluated as the paper does
    assert Choice.from_dict(old) == Choice(300, 0.4, "validation", 0.4, 0.5, True)
    assert Choice.from_dict(c.to_dict()) == c


def test_dilation_is_chosen_on_validation_and_ties_keep_the_predictors_default():
    import pandas as pd

    from nuclei_pa.engine.choose import choose, final_choice

    curve = pd.DataFrame(
        {
            "iteration": [100, 100, 100, 100],
            "score_threshold": [0.5, 0.5, 0.5, 0.5],
            "mask_threshold": [0.5, 0.5, 0.9, 0.9],
            "dilate": [False, True, False, True],
            "map": [0.56, 0.45, 0.46, 0.57],
        }
    )
    c = choose(curve)
    assert (c.mask_threshold, c.dilate) == (0.9, True)
    assert choose(curve.iloc[:3]).dilate is False
    tie = curve.assign(map=0.5).iloc[:2]
    assert choose(tie).dilate is engine.DEFAULTS["dilate"] is False
    # an old curve (no dilate column) was predicted with the paper's dilation
    assert choose(curve.drop(columns="dilate").iloc[[1]]).dilate is True
    # without validation images: the final checkpoint as the learning curve measured it
    f = final_choice([100, 300, 200])
    assert (f.iteration, f.score_threshold, f.mask_threshold, f.dilate) == (300, 0.5, 0.5, True)


def test_threshold_grid_equals_predicting_at_each_pair(tiny_split):
    from nuclei_pa.engine.choose import above, threshold_metrics
    from nuclei_pa.engine.evaluate import TestSplit
    from nuclei_pa.eval.matching import image_metrics

    split = TestSplit.read(tiny_split)
    model = _tiny_model()
    grid = threshold_metrics(
        model, split, [0.0, 0.3], dilations=[False, True], mask_thresholds=[0.4, 0.6]
    )
    assert len(grid) == 8 * len(split.names)
    name, image, truth = split.names[0], split.images[0], split.labels[0]
    by = ["score_threshold", "mask_threshold", "dilate"]
    for (t, m, d), row in grid[grid["image"] == name].groupby(by):
        labels, scores = predict_image(
            model, image, score_threshold=0.0, mask_threshold=m, dilate=False
        )
        pred = above(labels, scores, t)
        pred = engine.dilate_labels(pred) if d else pred
        assert row.iloc[0]["map"] == pytest.approx(image_metrics(truth, pred).map)


def test_load_model_overrides_inference_settings_only(tmp_path):
    model = _tiny_model()
    path = tmp_path / "m.pt"
    torch.save({"model_config": ModelConfig.preset("slim", **SMALL).to_dict(),
                "model": model.state_dict()}, path)  # fmt: skip
    loaded = load_model(path, "cpu", inference={"test_time_flips": True, "mask_box_scale": 1.2})
    assert loaded.test_time_flips is True and loaded.roi_heads.mask_box_scale == 1.2
    with pytest.raises(ValueError, match="backbone"):
        load_model(path, "cpu", inference={"backbone": "resnet50"})
    with pytest.raises(ValueError, match="mask_box_scale"):
        load_model(path, "cpu", inference={"mask_box_scale": 3.0})
