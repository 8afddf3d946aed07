"""Sparse labels through ``nuclei-pa import`` and the ``folder`` dataset (issue 24): what the
files mark reaches the split folders' masks; a class that names nothing stops the import."""

from __future__ import annotations

import numpy as np
import pytest

from nuclei_pa.cli import main
from nuclei_pa.data.folder import FolderSpec
from nuclei_pa.errors import ConfigError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.formats import write_annotations
from nuclei_pa.io.images import write_tiff
from tests.conftest import disk_labels


def make_folder(tmp_path, n: int = 4):
    """n images; each annotation file a QuPath GeoJSON with nuclei, an Ignore* area and a
    Region* region, except image 0's, a signed label TIFF with -1 for unknown pixels."""
    images, anns = tmp_path / "images", tmp_path / "anns"
    images.mkdir()
    anns.mkdir()
    expected = {}
    for k in range(n):
        labels = disk_labels((48, 48), [(12, 12), (36, 36), (12, 36)], 4)
        ignore = np.zeros((48, 48), dtype=bool)
        ignore[30:44, 2:16] = True
        region = np.zeros((48, 48), dtype=bool)
        region[:24, :24] = True
        write_tiff(images / f"im{k}.tif", np.where(labels > 0, 200, 30).astype(np.uint8))
        if k == 0:
            signed = labels.astype(np.int16)
            signed[ignore] = -1
            write_tiff(anns / f"im{k}.tif", signed)
            expected[f"im{k}"] = (ignore, None)
        else:
            write_annotations(
                anns / f"im{k}.geojson", Annotation(labels, ignore=ignore, region=region)
            )
            expected[f"im{k}"] = (ignore, region)
    return images, anns, expected


def test_import_carries_ignored_areas_and_regions_into_the_splits(tmp_path):
    images, anns, expected = make_folder(tmp_path)
    out = tmp_path / "ds"
    args = ["import", str(images), "--annotations", str(anns), "-o", str(out)]
    assert main([*args, "--test-names", "im3"]) == 0
    samples = {s.name: s for split in ("train", "test") for s in read_split(out / split)}
    assert sorted(samples) == ["im0", "im1", "im2", "im3"]
    for name, (ignore, region) in expected.items():
        s = samples[name]
        assert s.n_instances == 3
        assert np.array_equal(s.ignore, ignore), name
        assert (s.region is None) if region is None else np.array_equal(s.region, region), name


def test_a_second_file_per_image_gives_regions(tmp_path):
    images, anns, _ = make_folder(tmp_path, 2)
    regions = tmp_path / "regions"
    regions.mkdir()
    mask = np.zeros((48, 48), dtype=np.uint8)
    mask[40:, 40:] = 1
    write_tiff(regions / "im0.tif", mask)
    out = tmp_path / "ds"
    args = ["import", str(images), "--annotations", str(anns), "-o", str(out)]
    assert main([*args, "--test-names", "im1", "--regions", str(regions)]) == 0
    (s,) = read_split(out / "train")
    assert np.array_equal(s.region, mask > 0)


def test_a_region_class_that_names_nothing_stops_the_import(tmp_path, capsys):
    images, anns, _ = make_folder(tmp_path)
    out = tmp_path / "ds"
    args = ["import", str(images), "--annotations", str(anns), "-o", str(out)]
    assert main([*args, "--test-names", "im3", "--region-class", "Complete"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(anns) in err[0]
    assert "region class 'Complete'" in err[0] and "classes found: Nucleus, Region*" in err[0]
    assert not out.exists()  # no partial output


def test_folder_config_names_the_sparse_key():
    base = {"images": "i", "annotations": "a", "test": {"fraction": 0.5}}
    with pytest.raises(ConfigError, match=r"'sparse\.ignore_group'"):
        FolderSpec.from_config({**base, "sparse": {"ignore_group": 0}})
    spec = FolderSpec.from_config({**base, "sparse": {"ignore_value": 65535}, "regions": "r"})
    assert spec.sparse.ignore_value == 65535 and str(spec.regions) == "r"
