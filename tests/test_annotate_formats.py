"""Annotation readers and writers: round trips for every format, foreign files, bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import tifffile
from roifile import ROI_OPTIONS, ROI_SUBTYPE, ROI_TYPE, ImagejRoi, roiwrite

from nuclei_pa.annotate.overlay import draw_overlay
from nuclei_pa.errors import InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.coco import coco_document, encode_mask
from nuclei_pa.io.formats import detect_format, read_annotation, read_annotations, write_annotations
from nuclei_pa.io.geojson import write_geojson
from nuclei_pa.io.imagej import write_imagej_rois
from nuclei_pa.io.splines import rasterise, spline_polygon
from tests.test_splines import touching_labels

SHAPE = (96, 96)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def annotation() -> Annotation:
    """Touching irregular nuclei (one at the image border), half human, half proposed."""
    labels = touching_labels(np.random.default_rng(3), SHAPE, n=14)
    labels[labels == labels.max()] = 0
    labels[:7, 40:52] = labels.max() + 1  # cut by the top edge
    ids = np.unique(labels[labels > 0])
    half = len(ids) // 2
    source = {int(i): "human" if k < half else "proposed" for k, i in enumerate(ids)}
    scores = {int(i): 0.5 + 0.03 * k for k, i in enumerate(ids) if k >= half}
    return Annotation(labels, scores=scores, source=source)


@pytest.mark.parametrize("suffix", [".zip", ".geojson", ".json", ".tif"])
def test_round_trip(tmp_path, annotation, suffix):
    path = tmp_path / f"img000{suffix}"
    write_annotations(path, annotation, image_name="img000.tif")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic: no leftovers
    back = read_annotation(path, (*SHAPE, 3), image_name="img000.png")
    assert back.ids == annotation.ids  # same count, and ids follow the writer's order
    if suffix in (".json", ".tif"):
        np.testing.assert_array_equal(back.labels, annotation.labels)
    else:
        for lab in annotation.ids:
            iou = _iou(back.labels == lab, annotation.labels == lab)
            assert iou >= 0.9, (lab, iou)
    if suffix != ".tif":  # label images carry no metadata
        assert back.source == annotation.source
        assert back.scores == annotation.scores
    assert np.array_equal(read_annotations(path, SHAPE, "img000"), back.labels)


def test_imagej_writer_makes_named_spline_polygons(tmp_path, annotation):
    path = tmp_path / "rois.zip"
    write_imagej_rois(path, annotation)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        rois = [ImagejRoi.frombytes(zf.read(n)) for n in names]
    first = annotation.ids[0]
    last = annotation.ids[-1]
    assert names[0] == f"human-{first:04d}.roi" and names[-1] == f"proposed-{last:04d}.roi"
    for roi in rois:
        assert roi.roitype == ROI_TYPE.POLYGON
        assert roi.options & ROI_OPTIONS.SPLINE_FIT
        assert roi.subpixelresolution
        assert 4 <= roi.n_coordinates <= 40  # a few control points, not the pixel outline
    assert rois[0].hexcolor(rois[0].stroke_color) != rois[-1].hexcolor(rois[-1].stroke_color)
    assert rois[-1].properties["score"] == pytest.approx(annotation.scores[last])


def test_geojson_writer_is_qupath_shaped(tmp_path, annotation):
    path = tmp_path / "img.geojson"
    write_geojson(path, annotation)
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) == len(annotation.ids)
    feat = doc["features"][-1]
    props = feat["properties"]
    assert props["objectType"] == "annotation" and props["classification"]["name"] == "Nucleus"
    assert props["isLocked"] is False and props["source"] == "proposed"
    assert props["score"] == pytest.approx(annotation.scores[annotation.ids[-1]])
    ring = np.asarray(feat["geometry"]["coordinates"][0])
    assert feat["geometry"]["type"] == "Polygon" and np.array_equal(ring[0], ring[-1])
    assert len(ring) > 30  # densely sampled curve
    for f in doc["features"]:
        xy = np.asarray(f["geometry"]["coordinates"][0])
        assert xy.min() >= 0 and xy[:, 0].max() <= SHAPE[1] and xy[:, 1].max() <= SHAPE[0]


# --- foreign ImageJ ROIs -----------------------------------------------------------------------


def _roi_from(points, roitype=ROI_TYPE.POLYGON, name="r", options=ROI_OPTIONS.NONE):
    roi = ImagejRoi.frompoints(np.asarray(points), name=name)
    roi.roitype = roitype
    roi.options = (roi.options & ROI_OPTIONS.SUB_PIXEL_RESOLUTION) | options
    return roi


def test_reads_imagej_roi_types(tmp_path):
    rect = ImagejRoi(roitype=ROI_TYPE.RECT, left=10, top=5, right=20, bottom=12, name="rect")
    oval = ImagejRoi(roitype=ROI_TYPE.OVAL, left=40, top=40, right=60, bottom=52, name="oval")
    traced = _roi_from(  # an L traced along pixel edges (integer corners), as the wand makes
        [[70, 10], [80, 10], [80, 14], [74, 14], [74, 20], [70, 20]], ROI_TYPE.TRACED, "traced"
    )
    a = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ctrl = np.column_stack([25 + 9 * np.cos(a), 75 + 9 * np.sin(a)]).astype(np.float32)
    spline = _roi_from(ctrl, ROI_TYPE.POLYGON, "spline", ROI_OPTIONS.SPLINE_FIT)
    freehand = _roi_from(np.column_stack([ctrl[:, 0] + 50, ctrl[:, 1]]), ROI_TYPE.FREEHAND, "fh")
    point = _roi_from([[5, 5]], ROI_TYPE.POINT, "pt")
    path = tmp_path / "set.zip"
    roiwrite(path, [rect, oval, traced, spline, freehand, point])
    with pytest.warns(UserWarning, match="skipped 1 non-area"):
        ann = read_annotation(path, SHAPE)
    assert ann.ids == [1, 2, 3, 4, 5]

    expected = np.zeros(SHAPE, dtype=bool)
    expected[5:12, 10:20] = True
    np.testing.assert_array_equal(ann.labels == 1, expected)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]] + 0.5
    ellipse = ((xx - 50) / 10) ** 2 + ((yy - 46) / 6) ** 2 <= 1
    assert _iou(ann.labels == 2, ellipse) > 0.95
    expected = np.zeros(SHAPE, dtype=bool)
    expected[10:14, 70:80] = True
    expected[14:20, 70:74] = True
    np.testing.assert_array_equal(ann.labels == 3, expected)
    # Spline-fit ROIs are curves through their points; plain polygons are straight-edged.
    disk = (xx - 25) ** 2 + (yy - 75) ** 2 <= 81
    assert _iou(ann.labels == 4, disk) > 0.95
    np.testing.assert_array_equal(ann.labels == 4, rasterise(spline_polygon(ctrl), SHAPE))
    np.testing.assert_array_equal(ann.labels == 5, rasterise(ctrl + np.array([50.0, 0.0]), SHAPE))


def test_reads_imagej_ellipse_and_refuses_rois_of_other_planes(tmp_path):
    # ImageJ saves an EllipseRoi as a freehand polygon of subtype ELLIPSE (with its parameters)
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    ring = np.column_stack([48 + 20 * np.cos(t), 30 + 10 * np.sin(t)])
    ellipse = _roi_from(ring, ROI_TYPE.FREEHAND, "ellipse")
    ellipse.subtype = ROI_SUBTYPE.ELLIPSE
    ellipse.tofile(tmp_path / "ellipse.roi")
    labels = read_annotations(tmp_path / "ellipse.roi", SHAPE)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]] + 0.5
    assert _iou(labels == 1, ((xx - 48) / 20) ** 2 + ((yy - 30) / 10) ** 2 <= 1) > 0.95
    for attr, what in (("position", "slice"), ("z_position", "z-plane"), ("t_position", "frame")):
        roi = ImagejRoi(roitype=ROI_TYPE.RECT, left=10, top=5, right=20, bottom=12, name="n1")
        setattr(roi, attr, 3)
        roi.tofile(tmp_path / "stack.roi")
        with pytest.raises(InputError, match=f"ROI 'n1' lies on {what} 3 of a stack"):
            read_annotations(tmp_path / "stack.roi", SHAPE)
    roi = ImagejRoi(roitype=ROI_TYPE.RECT, left=10, top=5, right=20, bottom=12, name="c2")
    roi.c_position = 2  # the nuclear channel of a hyperstack: the same outline
    roi.tofile(tmp_path / "channel.roi")
    assert (read_annotations(tmp_path / "channel.roi", SHAPE) == 1).sum() == 70


def test_reads_single_roi_and_composite_with_hole(tmp_path):
    outer = [0, 10, 10, 1, 30, 10, 1, 30, 30, 1, 10, 30, 4]
    inner = [0, 15, 15, 1, 25, 15, 1, 25, 25, 1, 15, 25, 4]
    roi = ImagejRoi(roitype=ROI_TYPE.RECT, left=10, top=10, right=30, bottom=30, name="donut")
    roi.multi_coordinates = np.asarray(outer + inner, dtype=np.float32)
    roi.shape_roi_size = len(outer) + len(inner)
    path = tmp_path / "donut.roi"
    roi.tofile(path)
    labels = read_annotations(path, SHAPE)
    expected = np.zeros(SHAPE, dtype=bool)
    expected[10:30, 10:30] = True
    expected[15:25, 15:25] = False
    np.testing.assert_array_equal(labels == 1, expected)


def test_overlapping_vector_shapes_smaller_wins(tmp_path):
    big = _roi_from([[10, 10], [40, 10], [40, 40], [10, 40]], name="big")
    small = _roi_from([[30, 30], [50, 30], [50, 50], [30, 50]], name="small")
    path = tmp_path / "overlap.zip"
    roiwrite(path, [big, small])
    labels = read_annotations(path, SHAPE)
    assert labels[35, 35] == 2 and labels[20, 20] == 1
    assert (labels == 2).sum() == 400


# --- foreign GeoJSON and COCO -------------------------------------------------------------------


def _square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def test_reads_qupath_geojson_variants(tmp_path):
    features = [  # QuPath 0.2 style: a bare list of features, measurements as a list
        {
            "type": "Feature",
            "id": "PathAnnotationObject",
            "geometry": {
                "type": "Polygon",
                "coordinates": [_square(10, 10, 30, 30), _square(15, 15, 25, 25)],
            },
            "properties": {"isLocked": False, "measurements": [{"name": "score", "value": 0.7}]},
        },
        {
            "type": "Feature",
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [[_square(40, 10, 45, 15)], [_square(50, 10, 55, 15)]],
            },
            "properties": {"objectType": "detection", "name": "proposed-0002"},
        },
        {  # a QuPath cell: the nucleus geometry is the instance, not the cell boundary
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [_square(60, 60, 90, 90)]},
            "nucleusGeometry": {"type": "Polygon", "coordinates": [_square(70, 70, 80, 80)]},
            "properties": {"objectType": "cell"},
        },
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {}},
    ]
    path = tmp_path / "qupath.json"
    path.write_text(json.dumps(features))
    assert detect_format(path) == "geojson"
    with pytest.warns(UserWarning, match="skipped 1 non-area"):
        ann = read_annotation(path, SHAPE)
    donut = np.zeros(SHAPE, dtype=bool)
    donut[10:30, 10:30] = True
    donut[15:25, 15:25] = False
    np.testing.assert_array_equal(ann.labels == 1, donut)
    assert (ann.labels == 2).sum() == 50 and ann.labels[12, 42] == 2 and ann.labels[12, 52] == 2
    assert (ann.labels == 3).sum() == 100 and ann.labels[75, 75] == 3
    assert ann.scores == {1: 0.7} and ann.source == {2: "proposed"}


def test_reads_coco_by_image_name(tmp_path):
    m = np.zeros(SHAPE, dtype=bool)
    m[5:15, 5:20] = True
    images = [
        {"id": 1, "file_name": "a.tif", "height": 96, "width": 96},
        {"id": 2, "file_name": "sub/b.png", "height": 96, "width": 96},
    ]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_mask(m), "iscrowd": 0},
        {  # polygons are fine too
            "id": 2,
            "image_id": 2,
            "category_id": 1,
            "segmentation": [[30.0, 30.0, 50.0, 30.0, 50.0, 40.0, 30.0, 40.0]],
            "iscrowd": 0,
            "score": 0.9,
        },
    ]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco_document(images, anns)))
    np.testing.assert_array_equal(read_annotations(path, SHAPE, "a") == 1, m)
    b = read_annotation(path, SHAPE, "b.tif")
    assert b.ids == [1] and b.scores == {1: 0.9} and 150 <= (b.labels == 1).sum() <= 260
    with pytest.raises(InputError, match="say which one"):
        read_annotations(path, SHAPE)
    with pytest.raises(InputError, match="no image named 'c'"):
        read_annotations(path, SHAPE, "c.tif")
    with pytest.raises(InputError, match=r"96×96 .* but the image is 64×96"):
        read_annotations(path, (64, 96), "a")


def test_label_images_keep_their_ids(tmp_path):
    labels = np.zeros(SHAPE, dtype=np.int32)
    labels[5:10, 5:10] = 3
    labels[20:30, 20:30] = 700
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, labels.astype(np.uint16))
    np.testing.assert_array_equal(read_annotations(path, SHAPE), labels)
    with pytest.raises(InputError, match="differs from its image"):
        read_annotations(path, (50, 50))


# --- bad files ----------------------------------------------------------------------------------


def test_bad_files_name_the_file_and_the_problem(tmp_path):
    cases = []
    p = tmp_path / "garbage.roi"
    p.write_bytes(b"not an roi at all, definitely more than sixty-four bytes long......")
    cases.append((p, "unreadable ROI 'garbage.roi'"))
    p = tmp_path / "badentry.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("good.roi", _roi_from([[1, 1], [5, 1], [5, 5]]).tobytes())
        zf.writestr("broken.roi", b"Iout" + b"\0" * 10)
    cases.append((p, "unreadable ROI 'broken.roi'"))
    p = tmp_path / "notzip.zip"
    p.write_text("hello")
    cases.append((p, "not a readable zip"))
    p = tmp_path / "outside.zip"
    roiwrite(p, [_roi_from([[80, 80], [140, 80], [140, 120]], name="far")])
    cases.append((p, "ROI 'far' reaches .* outside the 96×96 image"))
    p = tmp_path / "outside.geojson"
    p.write_text(json.dumps({"type": "Polygon", "coordinates": [_square(-10, 0, 10, 10)]}))
    cases.append((p, "outside the 96×96 image"))
    p = tmp_path / "badring.geojson"
    feat = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [2]]]}}
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    cases.append((p, "ring is not a list of"))
    p = tmp_path / "weird.json"
    p.write_text(json.dumps({"hello": 1}))
    cases.append((p, "neither COCO instances nor GeoJSON"))
    p = tmp_path / "broken.json"
    p.write_text("{")
    cases.append((p, "not valid JSON"))
    p = tmp_path / "notes.txt"
    p.write_text("x")
    cases.append((p, "unknown annotation format '.txt'"))
    cases.append((tmp_path / "missing.zip", "file not found"))
    for path, problem in cases:
        with pytest.raises(InputError, match=problem) as err:
            read_annotations(path, SHAPE)
        assert err.value.path == path


def test_overlay_png(tmp_path, annotation):
    human = np.where(
        np.isin(
            annotation.labels, [i for i in annotation.ids if annotation.source_of(i) == "human"]
        ),
        annotation.labels,
        0,
    )
    proposed = np.where(human > 0, 0, annotation.labels)
    grey = (np.random.default_rng(0).random(SHAPE) * 4000).astype(np.uint16)
    import skimage.io

    for image in (grey, np.stack([grey] * 3, axis=-1).astype(np.float32)):
        path = tmp_path / "overlay.png"
        draw_overlay(image, human, proposed, path)
        rgb = skimage.io.imread(path)
        assert rgb.shape == (2 * SHAPE[0], 2 * SHAPE[1], 3) and rgb.dtype == np.uint8
        colours = {tuple(c) for c in rgb.reshape(-1, 3)}
        assert (0, 170, 255) in colours and (255, 160, 0) in colours
    assert [p.name for p in tmp_path.iterdir()] == ["overlay.png"]


def _disc(cx, cy, r, n=24):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1).round(2).tolist()
    return ring + ring[:1]


def test_geojson_round_trip_keeps_qupath_classes_and_object_types(tmp_path):
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [_disc(20, 20, 8)]},
            "properties": {"objectType": "detection", "classification": {"name": "Tumor"}},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [_disc(60, 60, 10)]},
            "properties": {"objectType": "annotation", "classification": "Immune cells"},
        },
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_disc(60, 20, 9)]}},
        {  # seed points of two nuclei: no outline, so not an instance
            "type": "Feature",
            "geometry": {"type": "MultiPoint", "coordinates": [[5, 5], [7, 9]]},
            "properties": {"classification": {"name": "Tumor"}},
        },
    ]
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.warns(UserWarning, match="skipped 1 non-area"):
        ann = read_annotation(path, SHAPE)
    assert ann.classes == {1: "Tumor", 2: "Immune cells"}
    assert ann.object_types == {1: "detection", 2: "annotation"}
    out = tmp_path / "back.geojson"
    write_geojson(out, ann)
    props = [f["properties"] for f in json.loads(out.read_text())["features"]]
    written = {(p["classification"]["name"], p["objectType"]) for p in props}
    assert written == {
        ("Tumor", "detection"),
        ("Immune cells", "annotation"),
        ("Nucleus", "annotation"),
    }
    again = read_annotation(out, SHAPE)
    assert sorted(again.classes.values()) == ["Immune cells", "Nucleus", "Tumor"]
    at = {again.classes[int(again.labels[y, x])] for y, x in [(20, 20)]}
    assert at == {"Tumor"}  # the class stays with its nucleus
