"""Reading and writing the marks users put on unknown areas and fully annotated regions
(issue 24): -1 or a chosen value in label images, QuPath classes, ImageJ ROI names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nuclei_pa.errors import ConfigError, InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.conventions import Conventions, mask_polygons
from nuclei_pa.io.formats import read_annotation, read_region_file, write_annotations
from nuclei_pa.io.images import write_tiff
from nuclei_pa.io.splines import rasterise
from tests.test_sparse_clients import marked_annotation


def test_minus_one_in_a_signed_label_image_is_ignored(tmp_path):
    labels = np.zeros((10, 12), dtype=np.int16)
    labels[1:4, 1:4] = 7
    labels[6:, 6:] = -1
    write_tiff(tmp_path / "a.tif", labels)
    ann = read_annotation(tmp_path / "a.tif", (10, 12))
    assert ann.ids == [7] and ann.labels.min() == 0
    assert np.array_equal(ann.ignore, labels == -1)


def test_a_configured_ignore_value_is_ignored(tmp_path):
    labels = np.zeros((10, 12), dtype=np.uint16)
    labels[1:4, 1:4] = 1
    labels[1:4, 6:9] = 2
    labels[6:, :] = 65535
    write_tiff(tmp_path / "a.tif", labels)
    conv = Conventions(ignore_value=65535)
    ann = read_annotation(tmp_path / "a.tif", (10, 12), conventions=conv)
    assert ann.ids == [1, 2] and np.array_equal(ann.ignore, labels == 65535)
    assert read_annotation(tmp_path / "a.tif", (10, 12)).ids == [1, 2, 65535]  # not configured


def test_an_ignore_value_that_is_also_a_nucleus_id_is_named(tmp_path):
    labels = np.zeros((10, 12), dtype=np.uint16)
    labels[0, 0], labels[1, 1], labels[2, 2] = 1, 2, 3
    write_tiff(tmp_path / "a.tif", labels)
    with pytest.raises(InputError, match=r"a\.tif: ignore value 2 is also a nucleus id"):
        read_annotation(tmp_path / "a.tif", (10, 12), conventions=Conventions(ignore_value=2))


def test_other_negative_values_are_still_rejected(tmp_path):
    labels = np.zeros((4, 4), dtype=np.int16)
    labels[0, 0], labels[1, 1] = -1, -2
    write_tiff(tmp_path / "a.tif", labels)
    with pytest.raises(InputError, match=r"a\.tif: .*negative values other than -1"):
        read_annotation(tmp_path / "a.tif", (4, 4))


def _feature(cls, ring):
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"objectType": "annotation", "classification": {"name": cls}},
    }


def test_qupath_classes_mark_ignored_areas_and_regions(tmp_path):
    square = [[2, 2], [8, 2], [8, 8], [2, 8], [2, 2]]
    features = [
        _feature("Nucleus", square),
        _feature("Ignore*", [[10, 0], [20, 0], [20, 10], [10, 10], [10, 0]]),
        _feature("Region*", [[0, 10], [12, 10], [12, 20], [0, 20], [0, 10]]),
        _feature("Region*", [[8, 14], [20, 14], [20, 20], [8, 20], [8, 14]]),  # overlaps: merges
    ]
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    ann = read_annotation(path, (20, 20))
    assert ann.ids == [1] and ann.ignore.sum() == 100
    expected = np.zeros((20, 20), dtype=bool)
    expected[10:20, 0:12] = expected[14:20, 8:20] = True
    assert np.array_equal(ann.region, expected)
    custom = Conventions(ignore_class="Unlabelled", region_class="Complete")
    features[1]["properties"]["classification"]["name"] = "unlabelled area"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    ann = read_annotation(path, (20, 20), conventions=custom)
    assert ann.ignore.sum() == 100 and ann.region is None  # Region* is now a nucleus class
    assert ann.ids == [1, 2, 3]


def test_a_region_outside_the_image_is_named(tmp_path):
    features = [_feature("Region*", [[0, 0], [40, 0], [40, 5], [0, 5], [0, 0]])]
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(InputError, match=r"a\.geojson: .*outside the 20×20 image"):
        read_annotation(path, (20, 20))


@pytest.mark.parametrize("suffix", [".geojson", ".zip"])
def test_vector_formats_round_trip_ignored_areas_and_regions_exactly(tmp_path, suffix):
    ann = marked_annotation()
    write_annotations(tmp_path / f"a{suffix}", ann)
    back = read_annotation(tmp_path / f"a{suffix}", ann.labels.shape)
    assert np.array_equal(back.ignore, ann.ignore) and np.array_equal(back.region, ann.region)
    assert back.ids == ann.ids


def test_geojson_follows_qupaths_schema(tmp_path):
    write_annotations(tmp_path / "a.geojson", marked_annotation())
    features = json.loads((tmp_path / "a.geojson").read_text())["features"]
    marked = [f for f in features if f["properties"]["classification"]["name"] != "Nucleus"]
    assert [f["properties"]["classification"]["name"] for f in marked] == [
        "Ignore*",
        "Ignore*",
        "Region*",
    ]
    for f in marked:  # QuPath's own built-in classes, as unlocked annotations
        assert f["properties"]["objectType"] == "annotation" and f["type"] == "Feature"
        rings = f["geometry"]["coordinates"]
        assert all(r[0] == r[-1] for r in rings)  # closed linear rings
    holed = [f for f in marked if len(f["geometry"]["coordinates"]) == 2]
    assert len(holed) == 1  # the area around the annotator's hole: one outer ring, one hole


def test_a_label_tiff_keeps_ignored_pixels_as_minus_one(tmp_path):
    ann = marked_annotation()
    write_annotations(tmp_path / "a.tif", ann)
    back = read_annotation(tmp_path / "a.tif", ann.labels.shape)
    assert np.array_equal(back.ignore, ann.ignore & (ann.labels == 0))  # nuclei win
    assert back.region is None and back.ids == ann.ids


def test_mask_polygons_fill_back_to_the_mask():
    rng = np.random.default_rng(0)
    mask = rng.random((30, 40)) < 0.5  # the worst case: diagonal touches everywhere
    filled = np.zeros(mask.shape, dtype=bool)
    for poly in mask_polygons(mask):
        for ring in poly:
            filled ^= rasterise(ring, mask.shape)
    assert np.array_equal(filled, mask)


def test_a_second_file_per_image_gives_its_regions(tmp_path):
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[2:9, 3:15] = 255
    write_tiff(tmp_path / "r.tif", mask)
    assert np.array_equal(read_region_file(tmp_path / "r.tif", (20, 20)), mask > 0)
    write_annotations(tmp_path / "r.geojson", Annotation((mask > 0).astype(np.int32)))
    assert read_region_file(tmp_path / "r.geojson", (20, 20)).sum() > 0


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"ignore_value": "x"}, "ignore_value"),
        ({"ignore_group": 300}, "ignore_group"),
        ({"region_class": ""}, "region_class"),
        ({"ignore_class": "Reg", "region_class": "Region"}, "region_class"),
        ({"colour": 1}, "colour"),
    ],
)
def test_conventions_config_names_the_key(data, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        Conventions.from_config(data)
