"""Seeded synthetic nucleus images with exact instance masks: the project's default data.

Without real data configured, every stage (training, evaluation, tables) runs on this generator,
so it must make a task on which a trained Mask R-CNN beats Otsu + watershed: dense crowds of
touching, slightly overlapping, irregular nuclei of uneven brightness, optical blur and camera
noise. Two modes:

- ``fluorescence``: DAPI-like single-channel **uint8** images (8-bit like most public nucleus
  sets, e.g. the DSB 2018 and the paper's DH100), rendered by ``synth_fluo``.
- ``he``: RGB uint8 H&E histopathology in several organ styles (``STYLES``), rendered by
  ``synth_he`` through Beer–Lambert optical densities of hematoxylin and eosin.

Labels are int32 partitions (0 = background, ids 1..n consecutive): where nuclei overlap, the one
on top owns the pixels, and every label is one connected region of at least ``min_area`` pixels.

Determinism: image k of a split depends only on (seed, split, k), never on how many images the
split has, so a dataset can grow without changing its first images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nuclei_pa.data.synth_config import SPLITS, Split, SynthConfig
from nuclei_pa.data.synth_fluo import render_fluorescence
from nuclei_pa.data.synth_he import render_he
from nuclei_pa.data.synth_styles import STYLES, HEStyle
from nuclei_pa.io.dataset import Sample, write_split

__all__ = ["STYLES", "HEStyle", "generate_image", "generate_split", "synthesize"]


def _rng(seed: int, split: Split, index: int) -> np.random.Generator:
    """The stream of image ``index`` of ``split``: independent of every other image's."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def _render(
    cfg: SynthConfig, rng: np.random.Generator, style: str | None
) -> tuple[np.ndarray, np.ndarray, str]:
    if cfg.mode == "fluorescence":
        if style not in (None, "dapi"):
            raise ValueError(f"style {style!r} is for H&E; fluorescence mode has none")
        image, labels = render_fluorescence(cfg, rng)
        style = "dapi"
    else:
        if style is None:
            style = str(cfg.train_styles[int(rng.integers(len(cfg.train_styles)))])
        if style not in STYLES:
            raise ValueError(f"unknown H&E style {style!r}; known: {sorted(STYLES)}")
        image, labels = render_he(cfg, rng, STYLES[style])
    return image, _consecutive(labels), style


def _consecutive(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size and ids[-1] == ids.size:
        return labels.astype(np.int32, copy=False)
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]


def generate_image(
    cfg: SynthConfig, rng: np.random.Generator, style: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One (image, labels) pair: image uint8 (H, W) or (H, W, 3), labels int32 (H, W).

    ``style`` picks an H&E organ (default: a random training style); it must be None in
    fluorescence mode.
    """
    image, labels, _ = _render(cfg, rng, style)
    return image, labels


def generate_split(cfg: SynthConfig, split: Split, seed: int) -> Iterator[Sample]:
    """The split's samples img000, img001, ...; H&E images cycle through the split's styles."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    styles = cfg.styles(split)
    for k in range(cfg.n_images(split)):
        image, labels, style = _render(cfg, _rng(seed, split, k), styles[k % len(styles)])
        yield Sample(f"img{k:03d}", image, labels, {"mode": cfg.mode, "style": style})


def synthesize(cfg: SynthConfig, out_dir: str | Path, seed: int = 0) -> dict[str, dict[str, int]]:
    """Write ``out_dir/train`` and ``out_dir/test``; returns {split: {"images", "instances"}}."""
    out_dir = Path(out_dir)
    config = dataclasses.asdict(cfg)
    return {
        split: write_split(
            out_dir / split,
            generate_split(cfg, split, seed),
            generator="nuclei_pa.data.synth",
            split=split,
            seed=seed,
            config=config,
        )
        for split in SPLITS
    }
