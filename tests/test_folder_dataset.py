"""The `folder` dataset kind: a user's images + annotations in any format → train/test splits."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from nuclei_pa.cli import main
from nuclei_pa.data.convert import convert
from nuclei_pa.data.folder import FolderSpec, TestSplit, plan_folder, write_folder_dataset
from nuclei_pa.errors import ConfigError, InputError
from nuclei_pa.io.annotation import Annotation
from nuclei_pa.io.coco import coco_document, labels_to_annotations
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.geojson import write_geojson
from nuclei_pa.io.imagej import write_imagej_rois
from nuclei_pa.io.imagescope import read_imagescope
from nuclei_pa.plan.experiments import build_plan
from tests.conftest import disk_labels
from tests.realdata import require_real_data
from tests.test_convert import imagescope_xml, square

SIZE = 48
CENTRES = [(10, 10), (10, 36), (36, 10), (36, 36)]


def labels_of(k: int) -> np.ndarray:
    """Image k holds k + 1 disks (so every image is told apart by its count)."""
    return disk_labels((SIZE, SIZE), CENTRES[: k + 1], 5)


def image_of(labels: np.ndarray) -> np.ndarray:
    return np.where(labels > 0, 200, 30).astype(np.uint8)


def write_folder(root, formats=("tif", "zip", "geojson", "xml")):
    """images/img<k>.tif with annotations/img<k>.<format>, one format per image."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for k, fmt in enumerate(formats):
        labels = labels_of(k)
        tifffile.imwrite(root / "images" / f"img{k}.tif", image_of(labels))
        ann = Annotation.from_labels(labels)
        dest = root / "annotations" / f"img{k}.{fmt}"
        if fmt == "tif":
            tifffile.imwrite(dest, labels.astype(np.uint16))
        elif fmt == "zip":
            write_imagej_rois(dest, ann)
        elif fmt == "geojson":
            write_geojson(dest, ann)
        else:  # ImageScope polygons: squares around each disk centre
            sq = [square(cx - 4.0, cy - 4.0, 8) for cy, cx in CENTRES[: k + 1]]
            dest.write_text(imagescope_xml(sq))
    return root


def spec(root, **test) -> FolderSpec:
    return FolderSpec(root / "images", root / "annotations", TestSplit(**test))


def test_every_annotation_format_becomes_the_same_split(tmp_path):
    root = write_folder(tmp_path / "mine")
    counts = write_folder_dataset(spec(root, names=("img3",)), tmp_path / "out")
    assert counts == {
        "train": {"images": 3, "instances": 1 + 2 + 3},
        "test": {"images": 1, "instances": 4},
    }
    train = {s.name: s for s in read_split(tmp_path / "out" / "train")}
    assert np.array_equal(train["img0"].labels, labels_of(0))  # label TIFF: exact
    for name in ("img1", "img2"):  # spline ROI set and GeoJSON: the same nuclei, close
        k = int(name[-1])
        got, want = train[name].labels > 0, labels_of(k) > 0
        assert train[name].n_instances == k + 1
        assert (got & want).sum() / (got | want).sum() > 0.85
    test = next(read_split(tmp_path / "out" / "test"))
    assert test.name == "img3" and (test.labels == 1).sum() == 81  # 9×9 pixel centres


def test_one_coco_file_for_every_image(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for k in range(3):
        tifffile.imwrite(root / "images" / f"a{k}.tif", image_of(labels_of(k)))
        images.append({"id": k + 1, "file_name": f"a{k}.tif", "height": SIZE, "width": SIZE})
        anns += labels_to_annotations(labels_of(k), k + 1, first_id=len(anns) + 1)
    (root / "all.json").write_text(json.dumps(coco_document(images, anns)))
    s = FolderSpec(root / "images", root / "all.json", TestSplit(glob="a2*"))
    assert write_folder_dataset(s, tmp_path / "out")["test"] == {"images": 1, "instances": 3}
    # a COCO entry without its image file is named
    images.append({"id": 9, "file_name": "gone.tif", "height": SIZE, "width": SIZE})
    (root / "all.json").write_text(json.dumps(coco_document(images, anns)))
    with pytest.raises(InputError, match=r"all.json: annotations for image 'gone'"):
        plan_folder(s)


def test_test_split_selectors(tmp_path):
    root = write_folder(tmp_path / "mine", formats=("tif",) * 6)
    by_names = plan_folder(spec(root, names=("img1", "img4")))
    assert [e.name for e in by_names.test] == ["img1", "img4"] and len(by_names.train) == 4
    by_glob = plan_folder(spec(root, glob="img[0-2]"))
    assert [e.name for e in by_glob.test] == ["img0", "img1", "img2"]
    a = plan_folder(spec(root, fraction=0.5, seed=3))
    b = plan_folder(spec(root, fraction=0.5, seed=3))
    c = plan_folder(spec(root, fraction=0.5, seed=4))
    assert [e.name for e in a.test] == [e.name for e in b.test] and len(a.test) == 3
    assert {e.name for e in a.test} != {e.name for e in c.test}
    other = write_folder(tmp_path / "held", formats=("tif",))
    (other / "images" / "img0.tif").rename(other / "images" / "new0.tif")
    (other / "annotations" / "img0.tif").rename(other / "annotations" / "new0.tif")
    two = plan_folder(spec(root, images=other / "images", annotations=other / "annotations"))
    assert [e.name for e in two.test] == ["new0"] and len(two.train) == 6
    with pytest.raises(ConfigError, match="leaves no training image"):
        plan_folder(spec(root, glob="img*"))
    with pytest.raises(ConfigError, match="leaves no test image"):
        plan_folder(spec(root, glob="nothing*"))
    with pytest.raises(ConfigError, match="exactly one of"):
        TestSplit(glob="a", fraction=0.2)


def test_metadata_csv_travels_with_each_image(tmp_path, caplog):
    root = write_folder(tmp_path / "mine", formats=("tif",) * 3)
    csv = tmp_path / "meta.csv"
    csv.write_text("image,organ,group\nimg0.tif,breast,train\nimg1,colon,unseen organ\n")
    s = FolderSpec(root / "images", root / "annotations", TestSplit(names=("img1",)), csv)
    with pytest.raises(InputError, match=r"meta.csv: no metadata row for image img2"):
        plan_folder(s)
    csv.write_text(csv.read_text() + "img2,kidney,same organ\nimg9,lung,train\n")
    with pytest.raises(InputError, match=r"meta.csv: 1 listed image\(s\) not found: img9"):
        plan_folder(s)
    partial = FolderSpec(**{**s.__dict__, "allow_missing": True})
    with caplog.at_level(logging.WARNING):
        write_folder_dataset(partial, tmp_path / "out")
    assert "missing, used without them: img9" in caplog.text
    test = next(read_split(tmp_path / "out" / "test"))
    assert test.meta == {"organ": "colon", "group": "unseen organ"}


def test_bad_folders_name_the_file_and_write_nothing(tmp_path):
    root = write_folder(tmp_path / "mine", formats=("tif", "tif", "xml"))
    ann = root / "annotations"
    (ann / "img9.tif").write_bytes((ann / "img0.tif").read_bytes())
    with pytest.raises(InputError, match=r"img9.tif: annotations for image 'img9', which is not"):
        plan_folder(spec(root, names=("img1",)))
    (root / "annotations" / "img9.tif").unlink()
    (root / "annotations" / "img1.tif").unlink()
    with pytest.raises(InputError, match=r"no annotations for image img1.tif"):
        plan_folder(spec(root, names=("img0",)))
    tifffile.imwrite(root / "annotations" / "img1.tif", labels_of(1).astype(np.uint16))
    (root / "annotations" / "img2.xml").write_text(imagescope_xml([[(1, 1), (5, 5)]]))
    with pytest.raises(InputError, match=r"img2.xml: region 1 has 2 vertices"):
        write_folder_dataset(spec(root, names=("img0",)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (root / "annotations" / "img2.xml").write_text(imagescope_xml([square(60, 60, 5)]))
    with pytest.raises(InputError, match=r"region 1 lies entirely outside the 48×48 image"):
        write_folder_dataset(spec(root, names=("img0",)), tmp_path / "out")
    (root / "annotations" / "img2.xml").write_text(imagescope_xml([square(6, 6, 5)]))
    (root / "images" / "img2.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match=r"img2.tif: unreadable"):
        write_folder_dataset(spec(root, names=("img0",)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_import_command(tmp_path, capsys):
    root = write_folder(tmp_path / "mine")
    out = tmp_path / "out"
    argv = ["import", str(root / "images"), "--annotations", str(root / "annotations")]
    assert main([*argv, "-o", str(out), "--test-fraction", "0.25"]) == 0
    assert "1 images" in capsys.readouterr().out and (out / "test" / "annotations.json").is_file()
    assert main([*argv, "-o", str(tmp_path / "o2"), "--test-glob", "img*"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--test: the split leaves no training image" in err
    assert not (tmp_path / "o2").exists()


def folder_config(root, annotations: str = "annotations", **test) -> dict:
    """A workflow config with one folder dataset (``root/images``), Mine100 and Mine25."""
    return {
        "datasets": {
            "mine": {
                "kind": "folder",
                "folder": {
                    "images": str(root / "images"),
                    "annotations": str(root / annotations),
                    "test": test,
                },
            }
        },
        "trainsets": {
            "Mine100": {"dataset": "mine"},
            "Mine25": {"dataset": "mine", "derive": "remove", "fraction": 0.25},
        },
        "models": {"Mine25-pa": {"trainset": "Mine25", "variant": "pa"}},
    }


def test_plan_checks_folder_datasets_before_any_job(tmp_path):
    root = write_folder(tmp_path / "mine")
    assert build_plan(folder_config(root, names=["img0"])).datasets["mine"].kind == "folder"
    bad = [
        (folder_config(root, glob="img*"), "datasets.mine.folder.test"),
        (folder_config(root, names=["nope"]), "datasets.mine.folder.test.names"),
        (folder_config(root, fraction=0.3, names=["img0"]), "datasets.mine.folder.test"),
        (folder_config(tmp_path / "missing", names=["img0"]), "datasets.mine.folder"),
    ]
    cfg = folder_config(root, names=["img0"])
    cfg["datasets"]["mine"]["folder"]["metadata"] = str(tmp_path / "none.csv")
    bad.append((cfg, "datasets.mine.folder"))
    cfg = copy.deepcopy(cfg)
    del cfg["datasets"]["mine"]["folder"]
    bad.append((cfg, "datasets.mine.folder"))
    for config, key in bad:
        with pytest.raises(ConfigError) as err:
            build_plan(config)
        assert f"config key '{key}'" in str(err.value), (key, str(err.value))
    assert yaml.safe_dump(folder_config(root, names=["img0"]))  # plain data, as in YAML


# --------------------------------------------------------------------------------------------
# real files


def test_real_kumar_partial_copy_gives_the_papers_groups(tmp_path, caplog):
    raw = require_real_data("kumar-partial")
    with pytest.raises(InputError, match="17 listed image"):
        convert("kumar", raw, tmp_path / "strict")
    assert not (tmp_path / "strict").exists()
    with caplog.at_level(logging.INFO):
        counts = convert("kumar", raw, tmp_path / "out", require_all=False)
    assert counts["train"]["images"] == 5 and counts["test"]["images"] == 8
    assert "17 listed image(s) missing, used without them: TCGA-18-5592" in caplog.text
    assert "region 180 has 2 vertices" in caplog.text  # the release's quirk, skipped and said

    test = json.loads((tmp_path / "out" / "test" / "annotations.json").read_text())
    groups = [img["group"] for img in test["images"]]
    assert groups.count("same organ") == 7 and groups.count("unseen organ") == 1
    organs = {img["case"]: img["organ"] for img in test["images"]}
    assert organs["TCGA-NH-A8F7"] == "colon"


def test_real_imagescope_xml_counts_every_valid_region(tmp_path):
    raw = require_real_data("kumar-partial")
    xml = raw / "annotations" / "TCGA-21-5784-01Z-00-DX1.xml"
    labels = read_imagescope(xml, (1000, 1000))
    n_regions = xml.read_text().count("<Region ")
    assert labels.shape == (1000, 1000) and labels.max() == n_regions == 398
    # vertices run past the border (to ~1002): clipped, never wrapped or dropped
    assert (labels[-1] > 0).any() and (labels[:, -1] > 0).any()


@pytest.mark.slow
def test_workflow_runs_on_two_real_images(tmp_path):
    """The `folder` kind end to end: two real fluorescence images (one to train, one to test),
    every table the config asks for, Table 3's groups from the metadata CSV."""
    from tests.test_workflow import snakemake

    dsb = require_real_data("dsb-fluo")
    meta = tmp_path / "meta.csv"
    meta.write_text("image,group\n76c44d1addac,small nuclei\n1d4a5e729bb9,small nuclei\n")
    test_cfg = yaml.safe_load((Path(__file__).parents[1] / "config" / "test.yaml").read_text())
    config = folder_config(dsb, "labels", names=["1d4a5e729bb9"])
    config["datasets"]["mine"]["folder"].update(metadata=str(meta), only_listed=True)
    config.update(
        results=str(tmp_path / "results"),
        device="cpu",
        model=test_cfg["model"],
        train={**test_cfg["train"], "crop_size": 128},
        models={
            "Mine100-baseline": {"trainset": "Mine100", "variant": "baseline"},
            "Mine25-pa": {"trainset": "Mine25", "variant": "pa"},
        },
        report={
            "table1": ["Mine100-baseline", "Mine25-pa"],
            "table3": {"dataset": "mine", "ours": "Mine25-pa", "compare": ["Mine100-baseline"]},
        },
    )
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(config))
    out = snakemake("--configfile", str(path), "--cores", "2", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    results = tmp_path / "results"
    log = (results / "logs" / "data" / "mine.log").read_text()
    assert "7 image(s) not in the metadata, skipped" in log
    train = list(read_split(results / "data" / "mine" / "train"))
    assert [s.name for s in train] == ["76c44d1addac"] and train[0].n_instances == 35
    table1 = (results / "tables" / "table1.md").read_text()
    assert "Mine25-pa" in table1 and "Mine100-baseline" in table1
    table3 = (results / "tables" / "table3.csv").read_text()
    assert "1d4a5e729bb9" in table3 and "small nuclei" in table3
