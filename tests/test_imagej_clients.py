"""Round trips through the real ImageJ (Debian's ``imagej``, run headless under ``xvfb-run``).

ImageJ is the client annotators open our ROI sets in and draw theirs with; these tests make it
read what we write and write what we read. ``make test`` installs it (apt); elsewhere the tests
are skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nuclei_pa.data.synth import generate_split
from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.formats import read_annotation
from nuclei_pa.io.imagej import write_imagej_rois

IJ_JAR = Path("/usr/share/java/ij.jar")
MACROS = Path(__file__).parent / "imagej"

pytestmark = pytest.mark.skipif(
    not (IJ_JAR.is_file() and shutil.which("xvfb-run") and shutil.which("java")),
    reason="ImageJ is not installed (`make test` installs it: apt-get install imagej xvfb xauth)",
)


def run_macro(name: str, argument: str) -> None:
    out = subprocess.run(
        ["xvfb-run", "-a", "java", "-jar", str(IJ_JAR), "-batch", str(MACROS / name), argument],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def test_imagej_fills_our_roi_set_as_the_masks_it_came_from(tmp_path):
    # a few hundred nuclei of real sizes (16-28 px across), some touching
    cfg = SynthConfig(
        n_train=1, size=640, nuclei_per_image=250, radius=(8.0, 14.0), image_scale=(1.0, 1.0)
    )
    labels = next(generate_split(cfg, "train", 0)).labels
    assert len(np.unique(labels)) - 1 > 200
    write_imagej_rois(tmp_path / "set.zip", Annotation.from_labels(labels))
    run_macro(
        "fill.ijm", f"{tmp_path / 'set.zip'}|{tmp_path / 'ij.tif'}|{tmp_path / 'names.txt'}|640|640"
    )
    filled = tifffile.imread(tmp_path / "ij.tif")
    names = dict(
        line.split("\t") for line in (tmp_path / "names.txt").read_text().split("\n") if line
    )
    assert len(names) == len(np.unique(labels)) - 1  # ImageJ opened every ROI
    ious, ratios = [], []
    for value, name in names.items():
        ours = labels == int(name.split("-")[1])
        theirs = filled == int(value)
        ious.append((ours & theirs).sum() / (ours | theirs).sum())
        ratios.append(theirs.sum() / ours.sum())
    # spline outlines of pixelated masks: measured by hand on real images IoU 0.965 and 0.951
    assert np.mean(ious) >= 0.95
    assert 0.98 <= np.median(ratios) <= 1.02


def test_we_read_imagej_drawn_rois_as_imagej_fills_them(tmp_path):
    # oval, polygon, freehand, ellipse and rectangle, drawn and filled by ImageJ itself
    run_macro("draw.ijm", f"{tmp_path / 'drawn.zip'}|{tmp_path / 'drawn.tif'}")
    filled = tifffile.imread(tmp_path / "drawn.tif")
    ann = read_annotation(tmp_path / "drawn.zip", filled.shape)
    assert ann.ids == [1, 2, 3, 4, 5]
    for k in ann.ids:
        ours, theirs = ann.labels == k, filled == k
        assert (ours & theirs).sum() / (ours | theirs).sum() >= 0.99, k
