"""File formats and bad input: every problem names the file, and nothing half-written remains."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_dir, atomic_path
from nuclei_pa.io.coco import annotations_to_labels, labels_to_annotations, load_coco
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.images import read_image, read_labels, write_tiff


def test_split_round_trip(tiny_split):
    samples = list(read_split(tiny_split))
    assert [s.name for s in samples] == ["img000", "img001", "img002"]
    assert all(s.n_instances == 16 for s in samples)
    coco = json.loads((tiny_split / "annotations.json").read_text())
    assert len(coco["annotations"]) == 48
    assert len({a["id"] for a in coco["annotations"]}) == 48


def test_labels_coco_round_trip_keeps_instances():
    labels = np.zeros((20, 30), np.int32)
    labels[2:6, 3:9] = 7
    labels[10:18, 20:29] = 65000
    anns = labels_to_annotations(labels, image_id=1)
    assert [a["bbox"] for a in anns] == [[3, 2, 6, 4], [20, 10, 9, 8]]
    assert [a["area"] for a in anns] == [24, 72]
    back = annotations_to_labels(anns, 20, 30)
    assert np.array_equal(back > 0, labels > 0)
    assert len(np.unique(back)) == 3


def test_overlapping_annotations_smaller_wins_without_scores():
    big = np.zeros((10, 10), np.int32)
    big[0:8, 0:8] = 1
    small = np.zeros((10, 10), np.int32)
    small[5:9, 5:9] = 1
    anns = labels_to_annotations(big, 1) + labels_to_annotations(small, 1, first_id=2)
    out = annotations_to_labels(anns, 10, 10)
    assert (out[5:9, 5:9] == 2).all()


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        read_image(tmp_path / "nope.tif")
    assert "nope.tif" in str(err.value)


def test_truncated_tiff(tmp_path):
    path = tmp_path / "cut.tif"
    write_tiff(
        path, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), compress=False
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="unreadable or truncated") as err:
        read_image(path)
    assert "cut.tif" in str(err.value)


def test_stack_and_rgba_rejected(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 16, 16), np.uint8))
    with pytest.raises(InputError, match="3-D array of shape"):
        read_image(tmp_path / "stack.tif")
    tifffile.imwrite(tmp_path / "rgba.tif", np.zeros((16, 16, 4), np.uint8), photometric="rgb")
    with pytest.raises(InputError, match="RGBA"):
        read_image(tmp_path / "rgba.tif")


def test_rgb_planar_is_read_interleaved(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (16, 20, 3), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"
    )
    assert np.array_equal(read_image(tmp_path / "planar.tif"), rgb)


def test_label_shape_mismatch(tmp_path):
    write_tiff(tmp_path / "l.tif", np.zeros((10, 12), np.uint16))
    with pytest.raises(InputError, match=r"differs from its image's \(10, 10\)"):
        read_labels(tmp_path / "l.tif", (10, 10))


def test_label_shape_mismatch_in_split(tiny_split):
    write_tiff(tiny_split / "labels" / "img001.tif", np.zeros((32, 32), np.uint16))
    with pytest.raises(InputError, match=r"img001\.tif"):
        list(read_split(tiny_split))


def _coco(tmp_path, images, annotations):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": []}))
    return path


IMG = {"id": 1, "file_name": "a.tif", "height": 10, "width": 10}


def test_coco_missing_image_file(tmp_path):
    (tmp_path / "imgs").mkdir()
    path = _coco(tmp_path, [IMG], [])
    with pytest.raises(InputError, match=r"'a\.tif' not found"):
        load_coco(path, tmp_path / "imgs")


def test_coco_annotation_for_missing_image(tmp_path):
    path = _coco(tmp_path, [IMG], [{"id": 1, "image_id": 9, "segmentation": [[0, 0, 5, 0, 5, 5]]}])
    with pytest.raises(InputError, match="missing image id 9"):
        load_coco(path)


@pytest.mark.parametrize(
    ("poly", "problem"),
    [
        ([0, 0, 12, 0, 12, 5], "out of bounds"),
        ([1, 1, 5, 5, 8, 8], "zero area"),
        ([1, 1, 5, 5], "≥ 3"),
    ],
)
def test_coco_bad_polygons(tmp_path, poly, problem):
    path = _coco(tmp_path, [IMG], [{"id": 1, "image_id": 1, "segmentation": [poly]}])
    with pytest.raises(InputError, match=problem) as err:
        load_coco(path)
    assert "ann.json" in str(err.value)


def test_coco_duplicate_ids(tmp_path):
    with pytest.raises(InputError, match="duplicate image id 1"):
        load_coco(_coco(tmp_path, [IMG, {**IMG, "file_name": "b.tif"}], []))
    seg = [[0, 0, 5, 0, 5, 5]]
    anns = [
        {"id": 3, "image_id": 1, "segmentation": seg},
        {"id": 3, "image_id": 1, "segmentation": seg},
    ]
    with pytest.raises(InputError, match="duplicate annotation id 3"):
        load_coco(_coco(tmp_path, [IMG], anns))


def test_coco_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_coco(path)


def test_polygon_annotations_decode(tmp_path):
    path = _coco(
        tmp_path, [IMG], [{"id": 1, "image_id": 1, "segmentation": [[2, 2, 8, 2, 8, 8, 2, 8]]}]
    )
    labels = load_coco(path).labels(1)
    assert 30 <= (labels == 1).sum() <= 49


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "split"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["split"]


def test_atomic_outputs_get_the_umask_mode_not_the_private_temporary_one(tmp_path):
    import os

    from nuclei_pa.io.atomic import atomic_dir, write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
