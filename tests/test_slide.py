"""Whole-slide prediction on slides built from the real Kumar images, written as scanners write
them (pyramidal, JPEG-tiled, Aperio SVS with its µm/px; generic TIFF pyramids).

The predictor is the classical Otsu + watershed with a slide-wide threshold: deterministic, it
finds thousands of real nuclei, and any disagreement with a whole-image run of the same
predictor can only come from the tiling, the stitching or the reading.
"""

from __future__ import annotations

import collections
import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.io import imread

from nuclei_pa.cli import main
from nuclei_pa.engine import predict as engine
from nuclei_pa.errors import InputError
from nuclei_pa.eval.matching import iou_matrix
from nuclei_pa.io.formats import read_annotation
from nuclei_pa.io.images import write_tiff
from nuclei_pa.slide import predictors
from nuclei_pa.slide.mosaic import GLASS, write_mosaic_slide
from nuclei_pa.slide.output import paths
from nuclei_pa.slide.predictors import ClassicalPredictor
from nuclei_pa.slide.reader import Slide, is_slide
from nuclei_pa.slide.stream import predict_slide
from nuclei_pa.slide.tissue import thumbnail, tissue_mask

KUMAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "monuseg-train" / "images"
pytestmark = pytest.mark.skipif(not KUMAR.is_dir(), reason="real Kumar images not available")


@pytest.fixture(scope="module")
def kumar() -> list[np.ndarray]:
    return [imread(p)[..., :3] for p in sorted(KUMAR.glob("*.png"))[:4]]


@pytest.fixture(scope="module")
def svs(kumar, tmp_path_factory) -> Path:
    """2 × 2 Kumar images (1000 px, 0.25 µm/px) on a 256 px glass margin: 2512² px, 3 levels."""
    path = tmp_path_factory.mktemp("slides") / "kumar.svs"
    assert write_mosaic_slide(path, kumar, (2, 2), margin=256, mpp=0.25) == (2512, 2512)
    return path


def classical(pixels: np.ndarray) -> ClassicalPredictor:
    return ClassicalPredictor.for_pixels(pixels)


@pytest.fixture(scope="module")
def seam_run(svs, tmp_path_factory):
    """The slide predicted in 512 px tiles (128 overlap) and as one whole image."""
    out = tmp_path_factory.mktemp("run") / "kumar.geojson"
    summary = predict_slide(svs, out, classical, tile_size=512, tile_overlap=128, progress=False)
    with Slide(svs) as slide:
        whole_rgb = slide.read(0, 0, 2512, 0, 2512)
        whole, _ = classical(thumbnail(slide, tissue_mask(slide)))(whole_rgb)
    return out, summary, whole


def test_reader_levels_resolution_and_region_independence(svs, kumar):
    with Slide(svs) as slide:
        assert slide.sizes == ((2512, 2512), (628, 628), (157, 157))
        assert slide.downsamples == (1.0, 4.0, 16.0) and slide.mpp == pytest.approx(0.25)
        # JPEG at quality 90: the tiles hold the Kumar pixels up to compression noise
        error = np.abs(slide.read(0, 256, 1256, 256, 1256).astype(int) - kumar[0]).mean()
        assert error < 4
        # 1 µm/px is level 2's 4× neighbour: level 1 as it is; 0.5 µm/px: level 0 halved
        assert slide.plane(mpp=1.0) == slide.plane(level=1)
        half = slide.plane(mpp=0.5)
        assert (half.level, half.scale, half.height, half.mpp) == (0, 2.0, 1256, 0.5)
        # a resampled pixel depends on its position only, not on the region read around it
        big = slide.read_plane(half, 100, 420, 200, 520)
        small = slide.read_plane(half, 250, 300, 333, 400)
        assert np.array_equal(small, big[150:200, 133:200])


def test_seams_agree_with_a_whole_image_prediction(seam_run):
    out, summary, whole = seam_run
    # ⌈(2512 − 128) / (512 − 128)⌉ = 7 tiles a side, so seams cross every Kumar image
    assert summary["tiles"] == 49 and summary["nuclei"] > 2000
    # read back through the project's QuPath GeoJSON reader, in level-0 pixels
    stitched = read_annotation(out, whole.shape).labels
    n_whole, n_stitched = whole.max(), stitched.max()
    assert n_stitched == summary["nuclei"]
    iou = iou_matrix(whole, stitched).tocoo()
    good = iou.data >= 0.5
    matched_whole = len(set(iou.row[good].tolist()))
    assert matched_whole >= 0.99 * n_whole and len(set(iou.col[good].tolist())) >= 0.99 * n_stitched
    # none duplicated: no whole-image nucleus is matched by two stitched ones
    assert max(collections.Counter(iou.row[good].tolist()).values()) == 1


def test_outputs_follow_qupath_schema_and_csv_units(seam_run):
    out, summary, _ = seam_run
    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == summary["nuclei"]
    feature = doc["features"][0]
    props = feature["properties"]
    assert props["objectType"] == "detection" and props["classification"]["name"] == "Nucleus"
    assert props["measurements"]["score"] == 1.0
    ring = feature["geometry"]["coordinates"][0]
    assert feature["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) >= 4
    assert len({f["id"] for f in doc["features"]}) == summary["nuclei"]
    with open(out.with_suffix(".csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["nuclei"]
    row = rows[0]
    # 0.25 µm per level-0 pixel: µm = px / 4, µm² = px² / 16
    assert float(row["x_um"]) == pytest.approx(float(row["x"]) / 4, abs=1e-3)
    assert float(row["area_um2"]) == pytest.approx(float(row["area_px"]) / 16, abs=1e-3)
    xs = [p[0] for p in ring]
    assert min(xs) < float(row["x"]) < max(xs)
    assert props["measurements"]["Area µm^2"] == pytest.approx(float(row["area_um2"]), abs=1e-3)
    # every nucleus sits on tissue, none in the 256 px glass margin
    centres = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    assert centres.min() > 256 - 20 and centres.max() < 2512 - 256 + 20
    assert not any(p.exists() for k, p in paths(out).items() if k not in ("geojson", "csv"))


def test_coarser_resolution_is_read_from_the_pyramid_in_slide_coordinates(svs, tmp_path):
    out = tmp_path / "coarse.geojson"
    summary = predict_slide(
        svs, out, classical, mpp=0.5, tile_size=512, tile_overlap=128, progress=False
    )
    assert summary["plane"]["downsample"] == 2.0 and summary["nuclei"] > 500
    with open(out.with_suffix(".csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    # coordinates are level-0 pixels whatever the plane: the tissue spans 256 … 2256
    xs = np.array([float(r["x"]) for r in rows])
    assert 240 < xs.min() < 400 and 2100 < xs.max() < 2272
    # a plane pixel is 2 × 2 level-0 pixels, i.e. 0.25 µm²
    areas = np.array([float(r["area_um2"]) for r in rows])
    assert np.allclose(areas * 16, [float(r["area_px"]) for r in rows])


def test_background_tiles_are_skipped_without_losing_nuclei(kumar, tmp_path):
    def cell(r: int, c: int) -> np.ndarray:  # one image of the 2 × 2 is bare glass
        return np.full_like(kumar[0], GLASS) if (r, c) == (1, 1) else kumar[r * 2 + c]

    path = tmp_path / "holes.svs"
    write_mosaic_slide(path, cell, (2, 2), margin=512)
    runs = {}
    for tissue in (True, False):
        out = tmp_path / f"{tissue}.geojson"
        runs[tissue] = predict_slide(
            path,
            out,
            classical,
            level=1,
            tile_size=128,
            tile_overlap=32,
            tissue=tissue,
            progress=False,
        )
        runs[tissue]["csv"] = out.with_suffix(".csv").read_text()
    # level 1 is 756 px: 8 × 8 tiles of 128 px starting at 0, 89, …, 448, 538, 628; the bare
    # quadrant and its margin start at 378, so the 3 × 3 tiles from 448 on hold only glass
    assert runs[False]["tissue_tiles"] == runs[False]["tiles"] == 64
    assert runs[True]["tissue_tiles"] <= 64 - 9
    assert runs[True]["nuclei"] == runs[False]["nuclei"] > 100
    assert runs[True]["csv"] == runs[False]["csv"]


class Killable:
    """The classical predictor, 'killed' (Ctrl-C) on its ``at``-th tile; counts its tiles."""

    def __init__(self, at: int = 0) -> None:
        self.at, self.calls = at, 0

    def make(self, pixels: np.ndarray) -> Killable:
        self.inner = classical(pixels)
        return self

    def describe(self) -> str:
        return self.inner.describe()

    def __call__(self, tile: np.ndarray):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner(tile)


RESUME = {"level": 1, "tile_size": 208, "tile_overlap": 48, "progress": False}  # 4 × 4 tiles


def test_a_killed_run_resumes_where_it_stopped(svs, tmp_path):
    reference = tmp_path / "ref" / "kumar.geojson"
    full = predict_slide(svs, reference, classical, **RESUME)
    assert full["tiles"] == 16 and full["nuclei"] > 300

    out = tmp_path / "run" / "kumar.geojson"
    with pytest.raises(KeyboardInterrupt):  # mid second row: row 1 done, row 2 half written
        predict_slide(svs, out, Killable(at=7).make, **RESUME)
    p = paths(out)
    assert not out.exists() and not p["csv"].exists()
    assert p["geojson_part"].exists() and p["checkpoint"].exists()

    resumed = Killable()
    summary = predict_slide(svs, out, resumed.make, **RESUME)
    assert resumed.calls == 16 - 4  # the first row is not predicted again
    assert summary["nuclei"] == full["nuclei"]
    assert out.read_bytes() == reference.read_bytes()
    assert p["csv"].read_bytes() == reference.with_suffix(".csv").read_bytes()
    assert not p["checkpoint"].exists() and not p["geojson_part"].exists()


def test_a_changed_setting_starts_afresh(svs, tmp_path):
    out = tmp_path / "s.geojson"
    with pytest.raises(KeyboardInterrupt):
        predict_slide(svs, out, Killable(at=7).make, **RESUME)
    again = Killable()
    predict_slide(svs, out, again.make, **{**RESUME, "tile_overlap": 40})
    assert again.calls == 16  # the checkpoint of other settings was not trusted


def test_is_slide_by_suffix_or_pyramid(svs, tmp_path):
    plain = tmp_path / "plain.tif"
    write_tiff(plain, np.zeros((64, 64, 3), np.uint8))
    generic = tmp_path / "generic.tif"
    write_mosaic_slide(generic, [np.zeros((64, 64, 3), np.uint8)], (1, 1), margin=0, kind="tiff")
    assert is_slide(svs) and is_slide(generic) and not is_slide(plain)
    assert is_slide(tmp_path / "x.ndpi") and is_slide(tmp_path / "y.ome.tiff")


# ------------------------------------------------------------------------------------------
# The command line, bad input included: one line each, exit 2, no outputs left behind


@pytest.fixture
def fake_model(monkeypatch):
    """The CLI's checkpoint loading replaced: the classical predictor stands in for a model."""
    loaded = []
    monkeypatch.setattr(engine, "load_model", lambda path, device: loaded.append(path) or "model")
    monkeypatch.setattr(predictors, "ModelPredictor", lambda model, px, **kw: classical(px))
    return loaded


def slide_cli(out: Path, *args: object) -> int:
    return main(["predict", "--checkpoint", "m.pt", "-o", str(out), "--quiet", *map(str, args)])


def assert_clean_failure(capsys, out: Path, *expected: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(e in err for e in expected), err
    assert not out.exists() or not any(out.iterdir())


def test_cli_predicts_a_slide(svs, tmp_path, fake_model, capsys):
    out = tmp_path / "out"
    args = [svs, "--level", "1", "--tile-size", "256", "--tile-overlap", "64"]
    assert slide_cli(out, *args) == 0
    assert fake_model == [Path("m.pt")]
    assert sorted(p.name for p in out.iterdir()) == ["kumar.csv", "kumar.geojson"]
    assert len(json.loads((out / "kumar.geojson").read_text())["features"]) > 300


def test_cli_bad_slides_exit_2(svs, tmp_path, fake_model, capsys):
    out = tmp_path / "out"
    junk = tmp_path / "junk.svs"
    junk.write_bytes(b"this is no slide" * 100)
    assert slide_cli(out, junk) == 2
    assert_clean_failure(capsys, out, "junk.svs", "not a readable slide")

    assert slide_cli(out, svs, "--level", "3") == 2
    assert_clean_failure(capsys, out, "kumar.svs", "has no level 3 (levels 0–2)")
    assert slide_cli(out, svs, "--mpp", "0.1") == 2
    assert_clean_failure(capsys, out, "kumar.svs", "cannot give 0.1 µm/px", "0.25 µm/px")

    bare = tmp_path / "bare.tif"
    tiny = [np.zeros((64, 64, 3), np.uint8)]
    write_mosaic_slide(bare, tiny, (1, 1), margin=0, kind="tiff", mpp=None)
    assert slide_cli(out, bare, "--mpp", "0.5") == 2
    assert_clean_failure(capsys, out, "bare.tif", "has no resolution metadata")
    assert fake_model == []  # every one of these failed before a model was loaded


def test_cli_unreadable_tile_leaves_no_outputs(svs, tmp_path, fake_model, capsys):
    broken = tmp_path / "broken.svs"
    shutil.copy(svs, broken)
    with tifffile.TiffFile(broken) as tf:  # level 1 is the SVS's third page: 3 × 3 tiles
        page = tf.pages[2]
        offset, count = page.dataoffsets[8], page.databytecounts[8]  # the last: rows done before
    with open(broken, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\0" * count)
    out = tmp_path / "out"
    assert slide_cli(out, broken, "--level", "1", "--tile-size", "256") == 2
    assert_clean_failure(
        capsys, out, "broken.svs", "level 1 tile 8 (row 2, column 2)", "unreadable"
    )


def test_missing_tile_is_named(svs, tmp_path):
    """A tile whose byte count is 0 (never written): zarr would give black, we name it."""
    broken = tmp_path / "missing.svs"
    shutil.copy(svs, broken)
    with tifffile.TiffFile(broken, mode="r+b") as tf:
        tag = tf.pages[2].tags["TileByteCounts"]
        tag.overwrite((0, *tag.value[1:]))
    with Slide(broken) as slide, pytest.raises(InputError) as err:
        slide.read(1, 0, 10, 0, 10)
    assert str(err.value) == f"{broken}: level 1 tile 0 (row 0, column 0) is missing (0 bytes)"


IMAGEJ = Path("/usr/share/java/ij.jar")


@pytest.mark.skipif(
    not (IMAGEJ.is_file() and shutil.which("xvfb-run") and shutil.which("java")),
    reason="ImageJ is not installed (`make test` installs it: apt-get install imagej xvfb xauth)",
)
def test_imagej_opens_a_crops_roi_set(svs, seam_run, tmp_path):
    """A 600² region across the junction of the four Kumar images, filled by ImageJ itself."""
    from nuclei_pa.slide.crop import export_crop

    out, _, _ = seam_run
    ann = export_crop(svs, out, tmp_path, 956, 956, 600, 600)
    assert len(ann.ids) > 100
    assert tifffile.imread(tmp_path / "kumar_956_956.tif").shape == (600, 600, 3)
    macro = Path(__file__).parent / "imagej" / "fill.ijm"
    arg = f"{tmp_path / 'kumar_956_956.zip'}|{tmp_path / 'ij.tif'}|{tmp_path / 'names.txt'}|600|600"
    done = subprocess.run(
        ["xvfb-run", "-a", "java", "-jar", str(IMAGEJ), "-batch", str(macro), arg],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    filled = tifffile.imread(tmp_path / "ij.tif")
    names = dict(
        line.split("\t") for line in (tmp_path / "names.txt").read_text().split("\n") if line
    )
    assert len(names) == len(ann.ids)  # ImageJ opened every ROI
    ious = []
    for value, name in names.items():
        ours, theirs = ann.labels == int(name.split("-")[1]), filled == int(value)
        ious.append((ours & theirs).sum() / (ours | theirs).sum())
    assert np.mean(ious) >= 0.9  # spline outlines of small pixelated masks: measured 0.95
