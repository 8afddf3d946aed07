"""Whole-image prediction with a fake model whose detections are known exactly: tiling,
stitching, thresholds, COCO export and the ``nuclei-pa predict`` command line."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from nuclei_pa.cli import main
from nuclei_pa.commands import predict as predict_command
from nuclei_pa.engine import predict as engine
from nuclei_pa.engine.postprocess import paste_instances
from nuclei_pa.engine.predict import image_to_tensor, predict_folder, predict_image
from nuclei_pa.engine.tiling import tile_grid
from nuclei_pa.io.images import read_labels, write_tiff


class BlobModel(torch.nn.Module):
    """Detects every 8-connected bright blob (mean channel > 0.5) as one nucleus.

    Its score is the blob's brightest value, so the same blob scores the same in every tile,
    and its mask is 0.8 inside the blob: the predictions of any crop are known exactly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device
        self.calls: list[tuple[int, int]] = []

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        assert not self.training
        outputs = []
        for img in images:
            assert img.dtype == torch.float32 and img.shape[0] == 3
            self.calls.append(tuple(img.shape[1:]))
            grey = img.mean(0).numpy()
            comp, n = ndimage.label(grey > 0.5, structure=np.ones((3, 3)))
            masks = torch.zeros((n, 1, *grey.shape))
            boxes = torch.zeros((n, 4))
            scores = torch.zeros(n)
            for k, sl in enumerate(ndimage.find_objects(comp)):
                inside = comp[sl] == k + 1
                masks[k, 0][sl] = torch.from_numpy(inside * 0.8)
                boxes[k] = torch.tensor([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
                scores[k] = float(grey[sl][inside].max())
            outputs.append(
                {
                    "boxes": boxes,
                    "labels": torch.ones(n, dtype=torch.int64),
                    "scores": scores,
                    "masks": masks,
                }
            )
        return outputs


def blob_image(size: int = 600, tile: int = 256, overlap: int = 64, radius: int = 9):
    """Disks on a grid plus disks centred on every tile border and corner, distinct values."""
    tiles = tile_grid(size, size, tile, overlap)
    borders = sorted(
        {t.y0 for t in tiles if t.y0}
        | {t.y1 for t in tiles if t.y1 < size}
        | {t.cy0 for t in tiles if t.cy0}
    )
    centres = [(y, x) for y in range(30, size - 20, 70) for x in range(30, size - 20, 70)]
    centres += [(b, x) for b in borders for x in (100, 333)]
    centres += [(y, b) for b in borders for y in (170, 480)]
    centres += [(b0, b1) for b0 in borders for b1 in borders]
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size), dtype=np.uint8)
    free = np.ones((size, size), dtype=bool)
    kept = 0
    for cy, cx in centres:
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        halo = (yy - cy) ** 2 + (xx - cx) ** 2 <= (radius + 2) ** 2
        if not free[halo].all():
            continue  # keep blobs apart so each is one component
        free &= ~halo
        image[disk] = 140 + kept % 110  # distinct-ish brightness = score
        kept += 1
    return image, kept


def canonical(labels: np.ndarray) -> set[frozenset[int]]:
    """Instances as sets of flat pixel indices: comparison independent of label ids."""
    flat = labels.ravel()
    return {frozenset(np.flatnonzero(flat == k).tolist()) for k in np.unique(flat) if k}


def test_tiled_prediction_equals_untiled():
    image, n_blobs = blob_image()
    model = BlobModel()
    whole, whole_scores = predict_image(model, image, tile_size=None, dilate=True)
    assert model.calls == [(600, 600)]
    model.calls.clear()
    tiled, tiled_scores = predict_image(model, image, tile_size=256, tile_overlap=64, dilate=True)
    assert model.calls == [(256, 256)] * 9  # 3 × 3 tiles, one at a time
    assert len(whole_scores) == n_blobs > 40
    np.testing.assert_array_equal(tiled, whole)  # same pixels, same ids, same order
    assert tiled_scores == whole_scores
    # and it is the ground truth: each blob once, whole, dilated by one pixel
    truth = ndimage.label(image > 0, structure=np.ones((3, 3)))[0]
    truth = ndimage.grey_dilation(truth, size=3)
    assert canonical(tiled) == canonical(truth)


def test_instances_do_not_keep_tile_sized_masks_alive(monkeypatch):
    image, _ = blob_image(300, 128, 32)
    seen = []

    def spy(instances, shape, **kw):
        seen.extend(instances)
        return paste_instances(instances, shape, **kw)

    monkeypatch.setattr(engine, "paste_instances", spy)
    predict_image(BlobModel(), image, tile_size=128, tile_overlap=32)
    assert seen and all(inst.mask.base is None for inst in seen)  # owns a box-sized buffer
    assert all(inst.mask.nbytes <= 21 * 21 for inst in seen)


def test_nuclei_wider_than_the_overlap_can_be_lost():
    image = np.zeros((300, 300), dtype=np.uint8)
    image[100:160, 90:150] = 200  # 60 px square straddling the tile border at x = 128..
    _, scores = predict_image(BlobModel(), image, tile_size=160, tile_overlap=20)
    assert scores == {}  # documented limitation: overlap must exceed the nucleus size
    _, scores = predict_image(BlobModel(), image, tile_size=160, tile_overlap=64)
    assert len(scores) == 1


def test_thresholds_and_dilation_options():
    image = np.zeros((40, 40), dtype=np.uint8)
    image[5:10, 5:10] = 250  # score 0.98, 25 px
    image[20:24, 20:24] = 153  # score 0.6, 16 px
    model = BlobModel()
    labels, scores = predict_image(model, image, dilate=False, min_area=1)
    assert scores == pytest.approx({1: 250 / 255, 2: 153 / 255})
    assert (labels == 1).sum() == 25 and (labels == 2).sum() == 16
    _, scores = predict_image(model, image, score_threshold=0.7)
    assert list(scores) == [1]
    labels, _ = predict_image(model, image, mask_threshold=0.9)  # masks are 0.8: none left
    assert labels.max() == 0
    labels, _ = predict_image(model, image, min_area=20, dilate=True)
    assert labels.max() == 1  # min_area counts the undilated pixels: the 16-px one went
    labels, _ = predict_image(model, image, dilate=True)
    assert (labels == 1).sum() == 49 and (labels == 2).sum() == 36  # 5², 4² grown to 7², 6²
    labels, _ = predict_image(model, image)  # no dilation by default
    assert (labels == 1).sum() == 25 and (labels == 2).sum() == 16


def test_model_mode_is_restored():
    model = BlobModel().train()
    predict_image(model, np.zeros((16, 16), dtype=np.uint8))
    assert model.training


def test_image_normalisation():
    grey16 = np.array([[0, 65535]], dtype=np.uint16)
    t = image_to_tensor(grey16)
    assert t.shape == (3, 1, 2) and t.dtype == torch.float32
    assert t[:, 0, 1].tolist() == [1.0] * 3 and t[:, 0, 0].tolist() == [0.0] * 3
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    t = image_to_tensor(rgb)
    assert t.shape == (3, 2, 3) and t[1].min() == 1.0 and t[0].max() == 0.0


def test_untrained_torchvision_maskrcnn_runs():
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=2,
        min_size=64,
        max_size=96,
        rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=20,
        box_detections_per_img=10,
    )
    image = (np.random.default_rng(0).random((64, 90)) * 255).astype(np.uint8)
    labels, scores = predict_image(
        model,
        image,
        score_threshold=0.0,
        mask_threshold=0.0,
        min_area=1,
        tile_size=64,
        tile_overlap=16,
    )
    assert labels.shape == (64, 90) and labels.dtype == np.int32
    assert set(np.unique(labels)) - {0} == set(scores)


def test_score_floor_inside_the_model_keeps_the_same_detections():
    """Dropping sub-threshold boxes before the mask head (for speed) changes nothing kept."""
    from nuclei_pa.model import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig.preset("slim", fpn_channels=16, representation_size=32)
    model = build_model(dataclasses.replace(cfg, box_score_thresh=0.0)).eval()
    x = image_to_tensor((np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8))
    with torch.inference_mode():
        raw = model([x])[0]
        threshold = float(raw["scores"].median())  # about half the detections are above it
        keep = raw["scores"] >= threshold
        assert 0 < int(keep.sum()) < len(keep)
        with engine._score_floor(model, threshold):
            floored = model([x])[0]
    assert model.roi_heads.score_thresh == 0.0  # restored afterwards
    for key in ("scores", "boxes", "masks"):
        torch.testing.assert_close(floored[key], raw[key][keep])


def test_predict_folder_writes_labels_and_a_readable_coco(tiny_split, tmp_path):
    from pycocotools.coco import COCO

    out = tmp_path / "pred"
    summary = predict_folder(BlobModel(), tiny_split, out, dilate=False, progress=False)
    assert summary == {"images": 3, "instances": 48}
    coco = COCO(str(out / "predictions.json"))
    for img in coco.dataset["images"]:
        labels = read_labels(out / "labels" / img["file_name"])
        rebuilt = np.zeros_like(labels)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            rebuilt[coco.annToMask(ann) > 0] = labels[coco.annToMask(ann) > 0].max()
            assert 0 < ann["score"] <= 1 and ann["category_id"] == 1
        np.testing.assert_array_equal(rebuilt, labels)
    results = coco.loadRes(coco.dataset["annotations"])  # also a valid results list
    assert len(results.getAnnIds()) == 48


def test_predictions_score_perfectly_in_the_evaluator(tiny_split, tmp_path):
    from nuclei_pa.eval.folders import evaluate

    out = tmp_path / "pred"
    predict_folder(BlobModel(), tiny_split, out, dilate=False, progress=False)
    for source in (out / "labels", out / "predictions.json"):
        per_image = evaluate(tiny_split, source)
        assert (per_image["map"] == 1.0).all() and (per_image["n_pred"] == 16).all()


def test_predict_folder_accepts_files_and_rejects_clashing_names(tmp_path):
    image, _ = blob_image(120, 64, 16)
    write_tiff(tmp_path / "a" / "x.tif", image)
    write_tiff(tmp_path / "b" / "x.tif", image)
    write_tiff(tmp_path / "b" / "y.tif", image[:50])
    out = tmp_path / "out"
    summary = predict_folder(BlobModel(), [tmp_path / "b" / "y.tif"], out, progress=False)
    assert summary["images"] == 1
    with pytest.raises(engine.InputError, match="same name"):
        predict_folder(BlobModel(), [tmp_path / "a", tmp_path / "b"], out, progress=False)


# --- command line ------------------------------------------------------------------------------


def test_cli_defaults_match_the_engine():
    for key, value in predict_command.DEFAULTS.items():
        assert engine.DEFAULTS[key] == value, key


def test_cli_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--checkpoint",
        "--out",
        "--score-threshold",
        "--mask-threshold",
        "--min-area",
        "--dilate",
        "--no-dilate",
        "--tile-size",
        "--tile-overlap",
        "--device",
        "auto",
    ):
        assert option in text, option


def predict_cli(checkpoint, *args) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), *map(str, args)])


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "images"
    image, _ = blob_image(100, 64, 16)
    write_tiff(folder / "one.tif", image)
    return folder


def test_cli_predicts_with_a_checkpoint(image_dir, tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "model.pt"
    torch.save({"model": {}, "model_config": {}}, ckpt)
    monkeypatch.setattr(engine, "load_model", lambda path, device: BlobModel())
    out = tmp_path / "out"
    args = [str(image_dir), "-o", str(out), "--tile-size", "64", "--tile-overlap", "24"]
    assert predict_cli(ckpt, *args, "--quiet") == 0
    labels = read_labels(out / "labels" / "one.tif")
    doc = json.loads((out / "predictions.json").read_text())
    assert labels.max() == len(doc["annotations"]) > 0
    assert doc["images"][0]["file_name"] == "one.tif" and doc["info"]["tile_size"] == 64


class _RunsCode:
    """Unpickling this creates a file: a stand-in for a checkpoint carrying code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_cli_bad_inputs_exit_2(image_dir, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "out")
    missing = tmp_path / "missing.pt"
    assert predict_cli(missing, image_dir, "-o", out) == 2
    assert str(missing) in capsys.readouterr().err

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert predict_cli(garbage, image_dir, "-o", out) == 2
    err = capsys.readouterr().err
    assert "garbage.pt" in err and "not a nuclei-pa checkpoint: it is corrupt, truncated" in err
    assert len(err.strip().splitlines()) == 1

    truncated = tmp_path / "truncated.pt"
    torch.save({"model": {"w": torch.zeros(100)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    assert predict_cli(truncated, image_dir, "-o", out) == 2
    assert "truncated.pt: not a nuclei-pa checkpoint: it is corrupt" in capsys.readouterr().err

    # a pickle that would run code when unpickled: refused, nothing runs, and the message
    # never suggests turning the protection off
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(str(marker))}, evil)
    assert predict_cli(evil, image_dir, "-o", out) == 2
    err = capsys.readouterr().err
    assert "evil.pt: not a nuclei-pa checkpoint: it holds Python objects or code" in err
    assert "weights_only" not in err and not marker.exists()

    no_config = tmp_path / "no_config.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, no_config)
    assert predict_cli(no_config, image_dir, "-o", out) == 2
    err = capsys.readouterr().err
    assert "no_config.pt" in err and "model_config" in err

    ckpt = tmp_path / "model.pt"
    torch.save({"model": {}, "model_config": {}}, ckpt)
    assert predict_cli(ckpt, tmp_path / "nope.tif", "-o", out) == 2
    assert "nope.tif" in capsys.readouterr().err

    monkeypatch.setattr(engine, "load_model", lambda path, device: BlobModel())
    (image_dir / "broken.tif").write_bytes(b"II*\x00garbage")
    assert predict_cli(ckpt, image_dir, "-o", out, "--quiet") == 2
    assert "broken.tif" in capsys.readouterr().err
    assert not (tmp_path / "out" / "labels").exists()  # nothing half-written

    assert predict_cli(ckpt, image_dir, "-o", out, "--tile-size", "64", "--tile-overlap", "64") == 2
    assert "--tile-overlap" in capsys.readouterr().err


def test_masks_pasted_into_their_boxes_alone_match_torchvision():
    # prediction pastes each 28×28 mask into its box only (not an image-sized canvas each);
    # the instances must be exactly those of torchvision's full-size paste
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from nuclei_pa.engine.predict import _tile_instances
    from nuclei_pa.engine.tiling import tile_grid

    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 1, 28, 28, generator=gen)
    boxes = torch.tensor(
        [
            [3.2, 4.7, 20.1, 18.9],
            [-5.0, 10.0, 12.0, 30.0],  # off the left edge
            [50.5, 40.2, 70.0, 64.0],  # off the bottom right corner
            [30.0, 30.0, 30.4, 30.3],  # under a pixel
            [100.0, 100.0, 120.0, 120.0],  # outside the image
            [10.0, 20.0, 45.0, 28.0],
        ]
    )
    out = {"scores": torch.linspace(0.9, 0.6, 6), "boxes": boxes}
    tile = tile_grid(60, 64, None, 0)[0]
    full = list(
        _tile_instances(
            {**out, "masks": paste_masks_in_image(masks, boxes, (60, 64))}, tile, 0.5, 0.5
        )
    )
    local = list(_tile_instances({**out, "masks": masks}, tile, 0.5, 0.5))
    assert len(full) == len(local) >= 4
    for a, b in zip(full, local, strict=True):
        assert (a.y0, a.x0, a.score) == (b.y0, b.x0, b.score)
        assert np.array_equal(a.mask, b.mask)
