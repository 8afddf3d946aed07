"""Training data: flips that keep image, boxes and masks together, normalisation, the sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nuclei_pa.engine.dataset import (
    InfiniteBatchSampler,
    NucleusDataset,
    batch_plan,
    collate,
    open_dataset,
)
from nuclei_pa.errors import InputError
from nuclei_pa.io.dataset import Sample, write_split
from nuclei_pa.io.images import write_tiff
from tests.conftest import disk_labels


def asymmetric_sample(name: str, rgb: bool = True) -> Sample:
    """Nuclei of different sizes off the diagonals, so every flip changes every box."""
    labels = disk_labels((48, 64), [(8, 10), (30, 45), (12, 50)], 4)
    labels[labels == 3] = 0
    yy, xx = np.mgrid[:48, :64]
    labels[(np.abs(yy - 36) <= 3) & (np.abs(xx - 12) <= 6)] = 3  # a 13×7 rectangle
    grey = (np.where(labels > 0, 180, 30) + xx // 4 + yy // 8).astype(np.uint8)
    image = np.stack([grey, grey // 2, 255 - grey], axis=-1) if rgb else grey
    return Sample(name, image, labels)


@pytest.fixture
def split(tmp_path):
    empty = Sample("empty", np.full((48, 64), 7, np.uint8), np.zeros((48, 64), np.int32))
    write_split(tmp_path / "s", [asymmetric_sample("rgb"), asymmetric_sample("grey", False), empty])
    return tmp_path / "s"


@pytest.mark.parametrize("flip_h, flip_v", [(True, False), (False, True), (True, True)])
def test_flips_move_image_boxes_and_masks_together(split, flip_h, flip_v):
    ds = NucleusDataset.from_split(split)
    image, target = ds[0]
    fimage, ftarget = ds[(0, flip_h, flip_v)]
    dims = [d for d, f in ((-1, flip_h), (-2, flip_v)) if f]
    assert torch.equal(fimage, image.flip(dims))
    assert torch.equal(ftarget["masks"], target["masks"].flip(dims))
    h, w = image.shape[-2:]
    expected = target["boxes"].clone()
    if flip_h:
        expected[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
    if flip_v:
        expected[:, [1, 3]] = h - target["boxes"][:, [3, 1]]
    assert torch.equal(ftarget["boxes"], expected)
    assert not torch.equal(ftarget["boxes"], target["boxes"])
    for mask, box in zip(ftarget["masks"], ftarget["boxes"], strict=True):  # boxes stay tight
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert torch.equal(ftarget["labels"], torch.ones(3, dtype=torch.int64))


def test_images_become_three_channel_floats_in_0_1(split):
    ds = NucleusDataset.from_split(split)
    rgb, _ = ds[0]
    grey, _ = ds[1]
    sample = asymmetric_sample("x")
    assert rgb.dtype == torch.float32 and rgb.shape == (3, 48, 64)
    assert torch.allclose(rgb, torch.from_numpy(sample.image).permute(2, 0, 1).float() / 255)
    assert grey.shape == (3, 48, 64)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert torch.allclose(grey[0], torch.from_numpy(sample.image[..., 0]).float() / 255)


def test_uint16_images_divide_by_the_type_maximum(tmp_path):
    s = asymmetric_sample("a", rgb=False)
    write_split(tmp_path / "s", [s])
    write_tiff(tmp_path / "s" / "images" / "a.tif", s.image.astype(np.uint16) * 100)
    image, _ = NucleusDataset.from_split(tmp_path / "s")[0]
    assert torch.allclose(image[0], torch.from_numpy(s.image * 100.0).float() / 65535)


def test_image_without_annotations_gives_empty_targets(split):
    image, target = NucleusDataset.from_split(split)[2]
    assert image.shape == (3, 48, 64)
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    assert target["masks"].shape == (0, 48, 64) and target["masks"].dtype == torch.uint8


def test_empty_masks_are_dropped_and_degenerate_boxes_ignored(split):
    doc = json.loads((split / "annotations.json").read_text())
    ann = dict(doc["annotations"][0], id=999, bbox=[5, 5, 0, 3])
    ann["segmentation"] = {"size": [48, 64], "counts": [48 * 64]}  # uncompressed, all zero
    doc["annotations"].append(ann)
    (split / "annotations.json").write_text(json.dumps(doc))
    ds = NucleusDataset.from_split(split)
    _, target = ds[0]
    assert len(target["boxes"]) == 3
    assert (ds.boxes_xywh()[:, 2:] >= 1).all() and len(ds.boxes_xywh()) == 6


def test_any_images_folder_with_a_coco_file(split, tmp_path):
    (tmp_path / "anns.json").write_text((split / "annotations.json").read_text())
    ds = open_dataset((split / "images", tmp_path / "anns.json"))
    assert len(ds) == 3 and ds[0][1]["masks"].shape == (3, 48, 64)


def test_bad_input_names_the_file(split, tmp_path):
    with pytest.raises(InputError, match="training folder not found"):
        open_dataset(tmp_path / "missing")
    with pytest.raises(InputError, match=r"annotations\.json: file not found"):
        open_dataset(split / "images")
    with pytest.raises(InputError, match="images folder not found"):
        open_dataset((tmp_path / "nope", split / "annotations.json"))
    (split / "images" / "grey.tif").unlink()
    with pytest.raises(InputError, match=r"annotations\.json.*'grey\.tif' not found"):
        open_dataset(split)


def test_empty_or_unannotated_dataset_is_rejected(split):
    doc = json.loads((split / "annotations.json").read_text())
    (split / "annotations.json").write_text(json.dumps({**doc, "annotations": []}))
    with pytest.raises(InputError, match="no annotated nuclei"):
        open_dataset(split)
    (split / "annotations.json").write_text(json.dumps({**doc, "images": [], "annotations": []}))
    with pytest.raises(InputError, match="no images"):
        open_dataset(split)


def test_image_size_disagreeing_with_annotations_fails_early(split):
    write_tiff(split / "images" / "grey.tif", np.zeros((40, 64), np.uint8))
    with pytest.raises(InputError, match=r"grey\.tif: image is 40×64 but annotations\.json says"):
        open_dataset(split)


def test_batches_visit_every_image_once_per_epoch_and_depend_only_on_seed_and_iteration():
    plans = [batch_plan(5, 2, it, seed=3, flips=True) for it in range(5)]  # 10 draws = 2 epochs
    order = [i for plan in plans for i, _, _ in plan]
    assert sorted(order[:5]) == sorted(order[5:]) == list(range(5))
    assert order[:5] != order[5:]  # a fresh permutation each epoch
    assert batch_plan(5, 2, 3, seed=3, flips=True) == plans[3]
    assert batch_plan(5, 2, 3, seed=4, flips=True) != plans[3]
    flips = [f for it in range(20) for _, *hv in batch_plan(5, 2, it, 3, True) for f in hv]
    assert 10 < sum(flips) < 70
    assert not any(h or v for it in range(5) for _, h, v in batch_plan(5, 2, it, 3, flips=False))


def test_sampler_resumes_the_sequence_and_shards_it_across_ranks():
    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    full = take(InfiniteBatchSampler(7, 4, seed=1, flips=True), 6)
    assert take(InfiniteBatchSampler(7, 4, seed=1, flips=True, start=4), 2) == full[4:]
    shards = [take(InfiniteBatchSampler(7, 4, 1, True, rank=r, world_size=2), 6) for r in (0, 1)]
    for k in range(6):
        assert len(shards[0][k]) == len(shards[1][k]) == 2
        assert sorted(shards[0][k] + shards[1][k]) == sorted(full[k])
    with pytest.raises(ValueError, match="does not split evenly"):
        InfiniteBatchSampler(7, 3, 1, True, world_size=2)


def test_loader_workers_yield_the_same_batches(split):
    ds = NucleusDataset.from_split(split)

    def batches(workers):
        sampler = InfiniteBatchSampler(len(ds), 2, seed=0, flips=True)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers)
        it = iter(loader)
        return [next(it) for _ in range(3)]

    for (ia, ta), (ib, tb) in zip(batches(0), batches(1), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(ia, ib, strict=True))
        for a, b in zip(ta, tb, strict=True):
            assert all(torch.equal(a[k], b[k]) for k in ("boxes", "labels", "masks"))


@pytest.mark.parametrize("flip_h, flip_v", [(False, False), (True, True)])
def test_full_reference_annotations_follow_crops_and_flips(split, tmp_path, flip_h, flip_v):
    # a partial set (first nucleus of each image) diagnosed against the full annotations
    sample = asymmetric_sample("rgb")
    partial = Sample("rgb", sample.image, np.where(sample.labels == 1, 1, 0))
    write_split(tmp_path / "partial", [partial])
    ds = open_dataset(tmp_path / "partial", reference=split)
    full = NucleusDataset.from_split(split)
    window = (0, 0, 48, 40)  # holds the disk at (8, 10) and the rectangle, no other nucleus
    _, target = ds[(0, flip_h, flip_v, window)]
    _, expected = full[(0, flip_h, flip_v, window)]
    assert len(target["boxes"]) == 1
    got = sorted(target["reference_boxes"].tolist())
    assert got == sorted(expected["boxes"].tolist()) and len(got) == 2
    with pytest.raises(InputError, match="does not list training image grey"):
        open_dataset(split, reference=tmp_path / "partial")
