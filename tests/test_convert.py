"""Dataset converters on small fixture files written here in each source's real format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.io
import tifffile

from nuclei_pa.data.convert import (
    KUMAR_IMAGES,
    coco_to_samples,
    convert,
    tnbc_breast_split,
    tnbc_mask_to_labels,
)
from nuclei_pa.errors import InputError
from nuclei_pa.io.coco import encode_mask
from nuclei_pa.io.dataset import read_split
from nuclei_pa.io.imagescope import read_imagescope

# ---------------------------------------------------------------------------------------------
# fixture writers


def imagescope_xml(regions: list[list[tuple[float, float]]]) -> str:
    """Aperio ImageScope XML as Kumar et al. distribute it: one Region per nucleus."""
    out = ['<Annotations MicronsPerPixel="0.252">', '<Annotation Id="1" Type="4">', "<Regions>"]
    out.append('<RegionAttributeHeaders><AttributeHeader Id="9999" Name="Region"/>')
    out.append("</RegionAttributeHeaders>")
    for k, xy in enumerate(regions, start=1):
        out.append(f'<Region Id="{k}" Type="0" Zoom="1" Selected="0"><Attributes/><Vertices>')
        out += [f'<Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in xy]
        out.append("</Vertices></Region>")
    out += ["</Regions>", "<Plots/>", "</Annotation>", "</Annotations>"]
    return "\n".join(out)


def square(x0: float, y0: float, side: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side)]


def full_barcode(case: str) -> str:
    return f"{case}-01Z-00-DX1"


def write_kumar_tree(root: Path, cases: list[str] | None = None, size: int = 24) -> Path:
    """MoNuSeg 2018 training zip layout: two nuclei per image, images as RGB TIFF."""
    base = root / "MoNuSeg 2018 Training Data"
    (base / "Tissue Images").mkdir(parents=True)
    (base / "Annotations").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for case in KUMAR_IMAGES if cases is None else cases:
        stem = full_barcode(case)
        tifffile.imwrite(
            base / "Tissue Images" / f"{stem}.tif",
            rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
            photometric="rgb",
        )
        xml = imagescope_xml([square(2, 2, 6), square(12, 12, 8)])
        (base / "Annotations" / f"{stem}.xml").write_text(xml)
    return root


def write_tnbc_tree(root: Path, patients: int = 2, per_patient: int = 2) -> Path:
    """TNBC_NucleiSegmentation.zip layout: Slide_XX/XX_k.png RGBA images, GT_XX/XX_k.png masks.

    Mask k holds k + 1 separate blobs plus two blobs touching edge to edge (one component).
    """
    base = root / "TNBC_NucleiSegmentation"
    rng = np.random.default_rng(1)
    for p in range(1, patients + 1):
        slide, gt = base / f"Slide_{p:02d}", base / f"GT_{p:02d}"
        slide.mkdir(parents=True)
        gt.mkdir(parents=True)
        for k in range(1, per_patient + 1):
            image = rng.integers(0, 255, (32, 32, 4), dtype=np.uint8)
            image[..., 3] = 255
            mask = np.zeros((32, 32), dtype=np.uint8)
            for j in range(k + 1):
                mask[2 + 6 * j : 6 + 6 * j, 2:6] = 255
            mask[20:24, 20:24] = 255
            mask[20:24, 24:28] = 255  # touches the previous blob: merges
            skimage.io.imsave(slide / f"{p:02d}_{k}.png", image, check_contrast=False)
            skimage.io.imsave(gt / f"{p:02d}_{k}.png", mask, check_contrast=False)
    return root


def write_dh100_tree(root: Path) -> Path:
    """The authors' layout: DH100/{train,val,test}2019/*.png + annotations/instances_*.json.

    Images are grey DAPI saved as RGB (R = G = B). Each image has a polygon nucleus, an RLE
    nucleus, an empty polygon (dropped) and a crowd region (dropped).
    """
    base = root / "shared-folder" / "DH100"
    (base / "annotations").mkdir(parents=True)
    counts = {"train": 2, "val": 1, "test": 1}
    ann_id = 1
    for split, n in counts.items():
        (base / f"{split}2019").mkdir()
        images, anns = [], []
        for i in range(n):
            name = f"{split}_{i}.png"
            grey = np.full((30, 40), 10, dtype=np.uint8)
            grey[5:15, 5:15] = 200
            skimage.io.imsave(
                base / f"{split}2019" / name, np.dstack([grey] * 3), check_contrast=False
            )
            images.append({"id": i + 1, "file_name": name, "height": 30, "width": 40})
            rle_mask = np.zeros((30, 40), dtype=bool)
            rle_mask[18:26, 20:30] = True
            segs = [
                ([[5, 5, 15, 5, 15, 15, 5, 15]], 0),
                (encode_mask(rle_mask), 0),
                ([[30, 2, 30, 2, 30, 2]], 0),  # degenerate polygon: no pixel
                ([[0, 0, 40, 0, 40, 30, 0, 30]], 1),  # crowd
            ]
            for seg, crowd in segs:
                anns.append(
                    {
                        "id": ann_id,
                        "image_id": i + 1,
                        "category_id": 1,
                        "segmentation": seg,
                        "iscrowd": crowd,
                    }
                )
                ann_id += 1
        doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "n"}]}
        (base / "annotations" / f"instances_{split}2019.json").write_text(json.dumps(doc))
    return root


# ---------------------------------------------------------------------------------------------
# Kumar


def test_kumar_rasterisation_rules(tmp_path):
    star = [(20 + 10 * np.sin(a), 20 - 10 * np.cos(a)) for a in np.arange(5) * 4 * np.pi / 5]
    regions = [
        square(2, 2, 5),  # 1: plain 6×6 pixel centres
        star,  # 2: pentagram, self-intersecting; centre twice enclosed
        [(35, 35), (45, 35), (45, 45), (35, 45)],  # 3: crosses the 40×40 border
        [(10, 30), (12, 32), (14, 34)],  # collinear: zero area, dropped
        [(1, 1), (3, 3)],  # two vertices: dropped
        square(30, 2, 6),  # 4
        square(33, 5, 6),  # 5: overlaps 4, later → on top
        [(2, 30), (8, 36), (8, 30), (2, 36)],  # 6: bow tie, signed area 0, both lobes kept
    ]
    xml = tmp_path / "TCGA-XX-0000-01Z-00-DX1.xml"
    xml.write_text(imagescope_xml(regions))
    with pytest.raises(InputError, match="region 4 has all its vertices on one line"):
        read_imagescope(xml, (40, 40, 3))
    labels = read_imagescope(xml, (40, 40, 3), invalid="skip")
    assert labels.shape == (40, 40) and labels.dtype == np.int32
    assert labels.max() == 6
    assert (labels == 1).sum() == 36
    assert labels[20, 20] == 2  # even-odd alone would leave the star's centre empty
    assert labels[12, 20] == 2 and labels[17, 12] == 2  # top and left arms
    assert (labels == 3).sum() == 25  # rows/cols 35..39 kept, the rest clipped
    assert labels[5, 33] == 5 and labels[2, 30] == 4  # later region wins the overlap
    assert labels[31, 12] == 0
    assert labels[33, 3] == 6 and labels[33, 7] == 6 and labels[31, 5] == 0


def test_kumar_xml_errors(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<Annotations><Region><Vertices><Vertex X='1'/></Vertices>")
    with pytest.raises(InputError, match=r"bad.xml.*XML"):
        read_imagescope(bad, (10, 10))
    bad.write_text(
        "<Annotations><Region><Vertices><Vertex X='1' Y='a'/></Vertices></Region></Annotations>"
    )  # fmt: skip
    with pytest.raises(InputError, match="numeric X and Y"):
        read_imagescope(bad, (10, 10))
    bad.write_text("<svg/>")
    with pytest.raises(InputError, match="<svg>"):
        read_imagescope(bad, (10, 10))


def test_convert_kumar_splits_and_meta(tmp_path):
    raw = write_kumar_tree(tmp_path / "raw")
    other = raw / "MoNuSeg 2018 Training Data" / "Annotations" / "TCGA-2Z-A9J9-01A-01-TS1.xml"
    other.write_text(imagescope_xml([square(2, 2, 4)]))  # a later MoNuSeg image: skipped
    counts = convert("kumar", raw, tmp_path / "out")
    assert counts == {
        "train": {"images": 16, "instances": 32},
        "test": {"images": 14, "instances": 28},
    }
    test = list(read_split(tmp_path / "out" / "test"))
    meta = {s.name: s.meta for s in test}
    assert meta["TCGA-E2-A1B5-01Z-00-DX1"] == {
        "case": "TCGA-E2-A1B5",
        "organ": "breast",
        "group": "same organ",
    }
    assert meta["TCGA-RD-A8N9-01Z-00-DX1"]["group"] == "unseen organ"
    assert sum(m["group"] == "same organ" for m in meta.values()) == 8
    assert all(s.image.shape == (24, 24, 3) and s.n_instances == 2 for s in test)
    train = list(read_split(tmp_path / "out" / "train"))
    assert {s.meta["organ"] for s in train} == {"breast", "kidney", "liver", "prostate"}


def test_convert_kumar_missing_images(tmp_path):
    raw = write_kumar_tree(tmp_path / "raw", cases=["TCGA-E2-A1B5", "TCGA-A7-A13E"])
    with pytest.raises(InputError, match=r"28 listed image\(s\) not found: TCGA-18-5592"):
        convert("kumar", raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    counts = convert("kumar", raw, tmp_path / "out", require_all=False)
    assert counts["train"]["images"] == 1 and counts["test"]["images"] == 1
    (raw / "MoNuSeg 2018 Training Data/Tissue Images/TCGA-E2-A1B5-01Z-00-DX1.tif").unlink()
    with pytest.raises(InputError, match=r"TCGA-E2-A1B5-01Z-00-DX1\.xml: annotations for image"):
        convert("kumar", raw, tmp_path / "out2", require_all=False)


# ---------------------------------------------------------------------------------------------
# TNBC


def test_tnbc_mask_to_labels():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[1:3, 1:3] = 255
    mask[3, 3] = 255  # corner-touching: joins with 8-connectivity
    mask[6:9, 6:9] = 255
    assert tnbc_mask_to_labels(mask).max() == 2
    assert tnbc_mask_to_labels(mask, connectivity=1).max() == 3
    assert tnbc_mask_to_labels(mask, min_area=2, connectivity=1).max() == 2
    rgba = np.dstack([mask, mask, mask, np.full_like(mask, 255)])
    np.testing.assert_array_equal(tnbc_mask_to_labels(rgba), tnbc_mask_to_labels(mask))


def test_convert_tnbc_and_breast_split(tmp_path):
    raw = write_tnbc_tree(tmp_path / "raw")
    counts = convert("tnbc", raw, tmp_path / "tnbc")
    # per image k: k + 1 separate blobs + 1 merged pair → 3 and 4 instances; 2 patients
    assert counts == {
        "train": {"images": 4, "instances": 14},
        "test": {"images": 0, "instances": 0},
    }
    samples = list(read_split(tmp_path / "tnbc" / "train"))
    assert [s.name for s in samples] == ["01_1", "01_2", "02_1", "02_2"]
    assert samples[0].image.shape == (32, 32, 3)  # alpha dropped
    assert samples[3].meta == {"patient": "02", "organ": "breast"}
    assert list(read_split(tmp_path / "tnbc" / "test")) == []

    convert("kumar", write_kumar_tree(tmp_path / "kraw"), tmp_path / "kumar")
    counts = tnbc_breast_split(tmp_path / "tnbc", tmp_path / "kumar", tmp_path / "tnbc_breast")
    assert counts == {
        "train": {"images": 8, "instances": 22},
        "test": {"images": 2, "instances": 4},
    }
    test = [s.name for s in read_split(tmp_path / "tnbc_breast" / "test")]
    assert test == ["TCGA-E2-A14V-01Z-00-DX1", "TCGA-E2-A1B5-01Z-00-DX1"]
    train = [s.name for s in read_split(tmp_path / "tnbc_breast" / "train")]
    assert {n[:12] for n in train[4:]} == {
        "TCGA-A7-A13E",
        "TCGA-A7-A13F",
        "TCGA-AR-A1AK",
        "TCGA-AR-A1AS",
    }


def test_tnbc_missing_mask(tmp_path):
    raw = write_tnbc_tree(tmp_path / "raw", patients=1, per_patient=1)
    (raw / "TNBC_NucleiSegmentation" / "GT_01" / "01_1.png").unlink()
    with pytest.raises(InputError, match=r"no mask 01_1.png"):
        convert("tnbc", raw, tmp_path / "out")
    with pytest.raises(InputError, match="no Slide_XX"):
        convert("tnbc", raw / "TNBC_NucleiSegmentation" / "GT_01", tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# DH100 (COCO)


def test_convert_dh100(tmp_path):
    raw = write_dh100_tree(tmp_path / "raw")
    counts = convert("dh100", raw, tmp_path / "out")
    assert counts == {
        "train": {"images": 2, "instances": 4},
        "test": {"images": 1, "instances": 2},
        "val": {"images": 1, "instances": 2},
    }
    train = list(read_split(tmp_path / "out" / "train"))
    assert train[0].image.shape == (30, 40)  # grey kept grey
    assert train[0].meta == {"original_name": "train_0.png", "source_split": "train2019"}
    assert (train[0].labels > 0).sum() == 10 * 10 + 8 * 10  # polygon (pycocotools) + RLE
    merged = convert("dh100", raw, tmp_path / "merged", val="train")
    assert merged["train"]["images"] == 3 and "val" not in merged


def test_coco_to_samples_errors(tmp_path):
    raw = write_dh100_tree(tmp_path / "raw")
    base = raw / "shared-folder" / "DH100"
    ann = base / "annotations" / "instances_test2019.json"
    doc = json.loads(ann.read_text())
    doc["annotations"][0]["image_id"] = 99
    ann.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="missing image 99"):
        list(coco_to_samples(ann, base / "test2019"))
    (base / "test2019" / "test_0.png").unlink()
    with pytest.raises(InputError, match=r"'test_0.png' not found"):
        list(coco_to_samples(ann, base / "test2019"))
    with pytest.raises(InputError, match=r"instances_train2019.json found"):
        convert("dh100", tmp_path / "raw" / "shared-folder" / "DH100" / "train2019", tmp_path / "o")
