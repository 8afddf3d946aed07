"""Ignore and region masks in the split layout and the training targets (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from nuclei_pa.engine.dataset import NucleusDataset
from nuclei_pa.errors import InputError
from nuclei_pa.io.dataset import Sample, read_split, write_split
from nuclei_pa.io.images import write_tiff


def sparse_sample(name: str = "a") -> Sample:
    labels = np.zeros((20, 30), dtype=np.int32)
    labels[2:6, 2:8] = 1
    ignore = np.zeros((20, 30), dtype=bool)
    ignore[0:10, 0:10] = True  # overlaps nucleus 1: the nucleus wins in training targets
    ignore[12:20, 24:30] = True
    region = np.zeros((20, 30), dtype=bool)
    region[:, :15] = True
    image = np.arange(600, dtype=np.uint8).reshape(20, 30)
    return Sample(name, image, labels, {}, ignore, region)


def test_split_keeps_ignore_and_region_masks(tmp_path):
    s = sparse_sample()
    write_split(tmp_path / "s", [s, Sample("b", s.image, s.labels)])
    a, b = read_split(tmp_path / "s")
    assert np.array_equal(a.ignore, s.ignore) and np.array_equal(a.region, s.region)
    assert b.ignore is None and b.region is None  # absent masks stay absent
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "annotations.json",
        "ignore",
        "images",
        "labels",
        "regions",
    ]


def test_a_mask_that_is_not_binary_is_named(tmp_path):
    write_split(tmp_path / "s", [sparse_sample()])
    write_tiff(tmp_path / "s" / "ignore" / "a.tif", np.full((20, 30), 7, dtype=np.uint8))
    with pytest.raises(InputError, match=r"ignore/a\.tif.*value 7"):
        list(read_split(tmp_path / "s"))


@pytest.mark.parametrize(("flip_h", "flip_v"), [(False, False), (True, False), (False, True)])
def test_targets_carry_the_masks_cropped_and_flipped(tmp_path, flip_h, flip_v):
    s = sparse_sample()
    write_split(tmp_path / "s", [s])
    data = NucleusDataset.from_split(tmp_path / "s")
    window = (1, 2, 15, 20)
    _, target = data.load(0, flip_h, flip_v, window)
    ignore = s.ignore & (s.labels == 0)
    expected = {"ignore": ignore, "region": s.region}
    for key, mask in expected.items():
        cut = mask[1:16, 2:22]
        cut = cut[:, ::-1] if flip_h else cut
        cut = cut[::-1] if flip_v else cut
        assert target[key].dtype.is_floating_point is False
        assert np.array_equal(target[key].numpy(), cut.astype(np.uint8)), key
    # the nucleus's own pixels are not ignored even though the mask covered them
    assert not (target["ignore"].numpy() & target["masks"][0].numpy()).any()


def test_old_splits_give_no_mask_keys(tmp_path):
    s = sparse_sample()
    write_split(tmp_path / "s", [Sample("a", s.image, s.labels)])
    _, target = NucleusDataset.from_split(tmp_path / "s").load(0)
    assert "ignore" not in target and "region" not in target


def test_changing_a_mask_changes_the_fingerprint(tmp_path):
    write_split(tmp_path / "s", [sparse_sample()])
    before = NucleusDataset.from_split(tmp_path / "s").fingerprint()
    write_tiff(tmp_path / "s" / "ignore" / "a.tif", np.zeros((20, 30), dtype=np.uint8))
    assert NucleusDataset.from_split(tmp_path / "s").fingerprint() != before
