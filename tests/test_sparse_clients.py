"""Ignored areas and fully annotated regions through the real ImageJ (issue 24), as the nucleus
round trips in ``test_imagej_clients.py``: ImageJ opens the ROI sets we write, and we read the
ones it writes, groups and names included."""

from __future__ import annotations

import numpy as np
import tifffile

from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.conventions import Conventions
from nuclei_pa.io.formats import read_annotation
from nuclei_pa.io.imagej import write_imagej_rois
from tests.test_imagej_clients import pytestmark, run_macro  # noqa: F401  (skip without ImageJ)


def marked_annotation() -> Annotation:
    labels = np.zeros((90, 120), dtype=np.int32)
    yy, xx = np.mgrid[:90, :120]
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 64] = 1
    labels[(yy - 60) ** 2 + (xx - 90) ** 2 <= 49] = 2
    ignore = np.zeros(labels.shape, dtype=bool)
    ignore[40:80, 70:115] = True  # holds nucleus 2, and a hole the annotator left
    ignore[45:52, 75:82] = False
    ignore[5:12, 60:64] = True  # a second, separate area
    region = np.zeros(labels.shape, dtype=bool)
    region[:35, :45] = True
    region[30:50, 30:55] = True  # overlapping rectangles: one merged region
    return Annotation(labels, ignore=ignore, region=region)


def test_imagej_opens_our_ignored_areas_and_regions_exactly(tmp_path):
    ann = marked_annotation()
    conv = Conventions(ignore_group=3, region_group=4)
    write_imagej_rois(tmp_path / "set.zip", ann, conventions=conv)
    run_macro(
        "marked_fill.ijm",
        f"{tmp_path / 'set.zip'}|{tmp_path / 'ij.tif'}|{tmp_path / 'info.txt'}|120|90",
    )
    filled = tifffile.imread(tmp_path / "ij.tif") > 0
    info = [line.split("\t") for line in (tmp_path / "info.txt").read_text().split("\n") if line]
    kinds = [(name.split("-")[0], int(group)) for name, group in info]
    assert kinds == [
        ("human", 0),
        ("human", 0),
        ("Ignore", 3),
        ("Ignore", 3),
        ("Region", 4),
    ]
    ignore_ij = filled[2] | filled[3]
    assert np.array_equal(ignore_ij, ann.ignore)  # the hole stays a hole, pixel for pixel
    assert np.array_equal(filled[4], ann.region)
    # and what ImageJ opened, we read back the same
    back = read_annotation(tmp_path / "set.zip", (90, 120), conventions=conv)
    assert np.array_equal(back.ignore, ann.ignore) and np.array_equal(back.region, ann.region)
    assert back.ids == [1, 2]


def test_we_read_imagej_groups_and_names_as_imagej_fills_them(tmp_path):
    run_macro("marked_draw.ijm", f"{tmp_path / 'drawn.zip'}|{tmp_path / 'drawn.tif'}")
    filled = tifffile.imread(tmp_path / "drawn.tif") > 0
    ann = read_annotation(
        tmp_path / "drawn.zip", (90, 120), conventions=Conventions(ignore_group=2)
    )
    assert ann.ids == [1]  # only the nucleus is a nucleus
    nucleus = ann.labels == 1
    assert (nucleus & filled[0]).sum() / (nucleus | filled[0]).sum() >= 0.99
    assert np.array_equal(ann.ignore, filled[1])  # by its group: the name says nothing
    assert np.array_equal(ann.region, filled[2])  # by its name
    # without the group configured, the unlabelled area would be read as a nucleus
    assert read_annotation(tmp_path / "drawn.zip", (90, 120)).ids == [1, 2]
