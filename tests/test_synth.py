"""The synthetic generator: determinism, label validity, realism checks and config validation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import ndimage
from skimage.color import rgb2hed

from nuclei_pa.classical import otsu_watershed
from nuclei_pa.data.synth import STYLES, generate_image, generate_split, synthesize
from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.io.dataset import read_split

FLUO = SynthConfig(n_train=4, n_test=2)
HE = SynthConfig(mode="he", n_train=4, n_test=7)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_labels(labels: np.ndarray, min_area: int) -> None:
    """A partition with consecutive ids, each one connected region of at least min_area px."""
    assert labels.dtype == np.int32
    n = int(labels.max())
    assert n > 0
    assert np.array_equal(np.unique(labels), np.arange(n + 1))
    areas = np.bincount(labels.ravel())[1:]
    assert areas.min() >= min_area
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        assert ndimage.label(labels[sl] == k)[1] == 1, f"label {k} is in pieces"


@pytest.fixture(scope="module")
def fluo_samples():
    return list(generate_split(SynthConfig(n_train=24), "train", seed=3))


@pytest.fixture(scope="module")
def he_samples():
    return list(generate_split(SynthConfig(mode="he", n_test=7), "test", seed=3))


def test_output_types_and_shapes():
    image, labels = generate_image(FLUO, _rng(0))
    assert image.dtype == np.uint8 and image.shape == (256, 256)
    assert labels.dtype == np.int32 and labels.shape == (256, 256)
    image, labels = generate_image(HE, _rng(0), "colon")
    assert image.dtype == np.uint8 and image.shape == (256, 256, 3)
    assert labels.shape == (256, 256)
    cfg = SynthConfig(height=96, width=160, radius=(4.0, 8.0), nuclei_per_image=40)
    image, labels = generate_image(cfg, _rng(0))
    assert image.shape == labels.shape == (96, 160)


def test_same_seed_same_arrays_other_seed_different():
    for cfg, style in ((FLUO, None), (HE, "breast")):
        a_img, a_lab = generate_image(cfg, _rng(7), style)
        b_img, b_lab = generate_image(cfg, _rng(7), style)
        assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
        c_img, c_lab = generate_image(cfg, _rng(8), style)
        assert not np.array_equal(a_img, c_img) and not np.array_equal(a_lab, c_lab)


def test_synthesize_is_byte_identical_and_seeded(tmp_path):
    cfg = SynthConfig(n_train=2, n_test=1)
    counts = synthesize(cfg, tmp_path / "a", seed=5)
    synthesize(cfg, tmp_path / "b", seed=5)
    synthesize(cfg, tmp_path / "c", seed=6)
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert {str(f) for f in files} >= {
        "train/annotations.json", "train/images/img000.tif", "train/labels/img001.tif",
        "test/annotations.json", "test/images/img000.tif", "test/labels/img000.tif",
    }  # fmt: skip
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a/train/images/img000.tif").read_bytes() != (
        tmp_path / "c/train/images/img000.tif"
    ).read_bytes()
    assert counts["train"]["images"] == 2 and counts["test"]["images"] == 1
    back = list(read_split(tmp_path / "a" / "train"))
    assert [s.name for s in back] == ["img000", "img001"]
    assert sum(s.n_instances for s in back) == counts["train"]["instances"]
    assert back[0].meta == {"mode": "fluorescence", "style": "dapi"}


def test_image_k_does_not_depend_on_split_size():
    few = list(generate_split(dataclasses.replace(FLUO, n_train=2), "train", seed=1))
    many = list(generate_split(dataclasses.replace(FLUO, n_train=4), "train", seed=1))
    for a, b in zip(few, many, strict=False):
        assert a.name == b.name
        assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    # and the splits draw from different streams
    test0 = next(generate_split(FLUO, "test", seed=1))
    assert not np.array_equal(test0.image, many[0].image)


def test_counts_are_close_to_the_configured_mean(fluo_samples):
    counts = np.array([s.n_instances for s in fluo_samples])
    assert abs(counts.mean() / 35.0 - 1) < 0.15
    assert counts.std() > 2  # counts vary per image
    dense = SynthConfig(n_train=6, nuclei_per_image=60, image_scale=(1.0, 1.0))
    assert abs(np.mean([s.n_instances for s in generate_split(dense, "train", 0)]) / 60 - 1) < 0.2


def test_nucleus_sizes_vary_several_fold_between_and_within_images(fluo_samples):
    # as in real collections (../shared/data/dsb-fluo: ~11 to ~80 px): a model or anchor tuned
    # to one nucleus size must show its failure on the default data
    medians, spreads, diameters = [], [], []
    for s in fluo_samples:
        areas = np.bincount(s.labels.ravel())[1:]
        d = 2 * np.sqrt(areas[areas > 0] / np.pi)  # equivalent diameter, px
        medians.append(np.median(d))
        spreads.append(np.percentile(d, 90) / np.percentile(d, 10))
        diameters.extend(d)
    assert max(medians) / min(medians) > 2.2  # image scales 0.6..1.8: 3× at the extremes
    assert np.median(spreads) > 1.4  # radius 6..12 within an image
    assert np.percentile(diameters, 99) / np.percentile(diameters, 1) > 4


def test_labels_are_valid_partitions(fluo_samples, he_samples):
    for s in fluo_samples[:8] + he_samples:
        _check_labels(s.labels, min_area=15)


def test_fluorescence_labels_match_bright_nuclei(fluo_samples):
    for s in fluo_samples:
        img, lab = s.image.astype(float), s.labels
        background = img[~ndimage.binary_dilation(lab > 0, iterations=3)]
        means = ndimage.mean(img, lab, np.arange(1, lab.max() + 1))
        assert img[lab > 0].mean() > 3 * background.mean() + 10
        # every labelled nucleus is visible: brighter than 95 % of the background
        assert means.min() > np.percentile(background, 95), s.name


def test_he_labels_match_hematoxylin_rich_nuclei(he_samples):
    for s in he_samples:
        hema = rgb2hed(s.image)[..., 0]
        lab = s.labels
        outside = hema[~ndimage.binary_dilation(lab > 0, iterations=2)]
        means = ndimage.mean(hema, lab, np.arange(1, lab.max() + 1))
        assert hema[lab > 0].mean() > outside.mean() + 0.03
        assert means.min() > np.percentile(outside, 90), s.meta["style"]
        # colour: nuclei blue-purple (blue > red), stroma pink (red > green)
        rgb = s.image.astype(float)
        assert rgb[lab > 0][:, 2].mean() > rgb[lab > 0][:, 0].mean()
        tissue = (lab == 0) & (rgb.min(axis=2) < 200)
        assert rgb[tissue][:, 0].mean() > rgb[tissue][:, 1].mean()


def test_touching_nuclei_exist(fluo_samples, he_samples):
    def touching_pairs(lab: np.ndarray) -> int:
        pairs = set()
        for a, b in ((lab[:, 1:], lab[:, :-1]), (lab[1:, :], lab[:-1, :])):
            hit = (a > 0) & (b > 0) & (a != b)
            pairs |= {(min(x, y), max(x, y)) for x, y in zip(a[hit], b[hit], strict=True)}
        return len(pairs)

    fl = [touching_pairs(s.labels) for s in fluo_samples]
    assert np.mean(fl) >= 5 and min(fl) >= 1
    assert sum(touching_pairs(s.labels) for s in he_samples) >= 10


def test_otsu_watershed_is_clearly_imperfect(fluo_samples):
    """Touching nuclei merge under thresholding: the data is not trivially segmentable."""
    f1 = []
    for s in fluo_samples[:6]:
        gt, pred = s.labels, otsu_watershed(s.image)
        g, p = int(gt.max()), int(pred.max())
        joint = np.bincount(
            (gt.astype(np.int64) * (p + 1) + pred).ravel(), minlength=(g + 1) * (p + 1)
        )
        inter = joint.reshape(g + 1, p + 1)[1:, 1:]
        union = (
            np.bincount(gt.ravel())[1:, None] + np.bincount(pred.ravel(), minlength=p + 1)[None, 1:]
        )
        iou = inter / (union - inter)
        f1.append(2 * int((iou > 0.5).sum()) / (g + p))
    assert 0.3 < np.mean(f1) < 0.8


def test_he_splits_use_their_styles_and_test_has_unseen_organs(tmp_path, he_samples):
    train_styles = {s.meta["style"] for s in generate_split(HE, "train", seed=0)}
    assert train_styles == set(HE.train_styles)
    test_styles = {s.meta["style"] for s in he_samples}
    assert test_styles == set(HE.test_styles)
    assert {"bladder", "colon", "stomach"} <= test_styles - train_styles
    assert set(STYLES) >= test_styles and len(STYLES) >= 5
    synthesize(dataclasses.replace(HE, n_train=1, n_test=5), tmp_path, seed=0)
    doc = json.loads((tmp_path / "test" / "annotations.json").read_text())
    assert doc["images"][4]["style"] == "bladder" and doc["images"][4]["mode"] == "he"


def test_styles_differ_in_nucleus_size():
    def mean_area(style: str) -> float:
        labels = [generate_image(HE, _rng(k), style)[1] for k in range(2)]
        return float(np.mean([np.bincount(lab.ravel())[1:].mean() for lab in labels]))

    assert mean_area("breast") > 1.3 * mean_area("stomach")


def test_style_arguments_are_checked():
    with pytest.raises(ValueError, match="fluorescence"):
        generate_image(FLUO, _rng(0), "breast")
    with pytest.raises(ValueError, match="unknown H&E style"):
        generate_image(HE, _rng(0), "mars")
    with pytest.raises(ValueError, match="split"):
        next(generate_split(FLUO, "val", 0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "brightfield"),
        ("n_train", -1),
        ("n_test", 2.5),
        ("size", 8),
        ("width", 0),
        ("nuclei_per_image", 0),
        ("radius", (9.0, 5.0)),
        ("radius", (0.0, 5.0)),
        ("radius", (5.0, 100.0)),
        ("radius", 7.0),
        ("min_area", 0),
        ("elongation", (0.5, 1.0)),
        ("max_overlap", 0.9),
        ("clustered", 1.5),
        ("photons", (0.0, 10.0)),
        ("blur_sigma", float("nan")),
        ("train_styles", ()),
        ("train_styles", "breast"),
        ("test_styles", ("breast", "mars")),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"SynthConfig\.{field} must be"):
        SynthConfig(**{field: value})


def test_lists_from_yaml_become_tuples():
    cfg = SynthConfig(radius=[5, 9], test_styles=["colon", "liver"])
    assert cfg.radius == (5, 9) and cfg.test_styles == ("colon", "liver")
    hash(cfg)
