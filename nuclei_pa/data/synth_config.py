"""What the synthetic generator draws from (:class:`SynthConfig`), checked on construction.

Its own module so the renderers (``synth_fluo``, ``synth_he``) and the generator
(:mod:`nuclei_pa.data.synth`) all sit above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nuclei_pa.data.synth_styles import STYLES

__all__ = ["SPLITS", "Mode", "Split", "SynthConfig"]

Mode = Literal["fluorescence", "he"]
Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
TRAIN_ORGANS = ("breast", "kidney", "liver", "prostate")
UNSEEN_ORGANS = ("bladder", "colon", "stomach")


@dataclass(frozen=True)
class SynthConfig:
    """Everything the generator draws from; defaults mimic DH100 (60 + 23 images, ~35 nuclei).

    Fields marked (fl.) act in fluorescence mode only, (H&E) in H&E mode only; H&E styles carry
    their own shape and colour parameters (see ``STYLES``), scaled by ``radius`` and
    ``nuclei_per_image``.
    """

    mode: Mode = "fluorescence"
    n_train: int = 60  # images in the training split
    n_test: int = 23  # images in the test split
    size: int = 256  # side of square images
    height: int | None = None  # overrides ``size`` for non-square images
    width: int | None = None
    nuclei_per_image: float = 35.0  # mean count per image (H&E: times the style density)
    count_spread: float = 0.2  # relative sd of the per-image mean count
    radius: tuple[float, float] = (6.0, 12.0)  # nucleus radius range (px, disc of equal area)
    # per-image magnification, log-uniform, times ``radius`` (count ÷ its square, so coverage
    # stays): real collections mix objectives and cell types, nuclei differ several-fold between
    # images as well as within one (fl.)
    image_scale: tuple[float, float] = (0.6, 1.8)
    min_area: int = 15  # smallest visible part of a labelled nucleus (px)
    # shapes and placement (fl.)
    elongation: tuple[float, float] = (1.0, 1.7)  # aspect-ratio range
    irregularity: float = 0.1  # amplitude of outline harmonics
    clustered: float = 0.65  # fraction of nuclei grown into touching crowds
    cluster_size: float = 7.0  # mean nuclei per crowd
    max_overlap: float = 0.15  # largest fraction of a nucleus that others may hide
    # appearance (fl.)
    brightness_spread: float = 0.3  # log-sd of brightness between nuclei
    texture: float = 0.2  # chromatin texture amplitude within a nucleus
    spots: float = 2.0  # mean bright chromocentres per average-size nucleus
    out_of_focus: float = 0.08  # fraction of dim, blurred nuclei outside the focal plane
    mitotic: float = 0.03  # fraction of small, bright, condensed nuclei
    blur_sigma: float = 1.0  # optical blur (px)
    background: float = 0.06  # background level relative to an average nucleus
    vignetting: float = 0.3  # illumination loss at the corners (fraction)
    photons: tuple[float, float] = (30.0, 300.0)  # photon range of an average nucleus pixel
    read_noise: float = 0.012  # camera read noise relative to an average nucleus
    # H&E
    train_styles: tuple[str, ...] = TRAIN_ORGANS
    test_styles: tuple[str, ...] = TRAIN_ORGANS + UNSEEN_ORGANS  # 3 organs unseen in training
    stain_jitter: float = 0.05  # per-image perturbation of the stain vectors
    he_noise: float = 2.5  # sd of the RGB noise (grey levels)

    def __post_init__(self) -> None:
        for name in (
            "radius",
            "image_scale",
            "elongation",
            "photons",
            "train_styles",
            "test_styles",
        ):
            value = getattr(self, name)
            if isinstance(value, list):  # YAML gives lists; keep the config hashable
                object.__setattr__(self, name, tuple(value))
        _validate(self)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return (self.height or self.size, self.width or self.size)

    def n_images(self, split: Split) -> int:
        return self.n_train if split == "train" else self.n_test

    def styles(self, split: Split) -> tuple[str, ...]:
        """The styles cycled through by a split's images ("dapi" in fluorescence mode)."""
        if self.mode == "fluorescence":
            return ("dapi",)
        return self.train_styles if split == "train" else self.test_styles


def _validate(cfg: SynthConfig) -> None:
    def bad(name: str, expectation: str) -> ValueError:
        return ValueError(f"SynthConfig.{name} must be {expectation}, got {getattr(cfg, name)!r}")

    def number(name: str, lo: float, hi: float = np.inf, lo_open: bool = False) -> None:
        v = getattr(cfg, name)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
        if not ok or v > hi or v < lo or (lo_open and v == lo):
            side = "(" if lo_open else "["
            raise bad(name, f"a number in {side}{lo}, {hi}]")

    def integer(name: str, lo: int, optional: bool = False) -> None:
        v = getattr(cfg, name)
        if optional and v is None:
            return
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < lo:
            raise bad(name, f"an integer ≥ {lo}")

    def interval(name: str, lo: float, lo_open: bool = True) -> None:
        v = getattr(cfg, name)
        try:
            a, b = (float(x) for x in v)
        except (TypeError, ValueError):
            raise bad(name, "a pair (low, high)") from None
        if not (np.isfinite(a) and np.isfinite(b)) or a > b or a < lo or (lo_open and a == lo):
            raise bad(name, f"a pair (low, high) with {lo} {'<' if lo_open else '≤'} low ≤ high")

    if cfg.mode not in ("fluorescence", "he"):
        raise bad("mode", "'fluorescence' or 'he'")
    integer("n_train", 0)
    integer("n_test", 0)
    integer("size", 32)
    integer("height", 32, optional=True)
    integer("width", 32, optional=True)
    integer("min_area", 1)
    number("nuclei_per_image", 0.0, 10_000.0, lo_open=True)
    number("count_spread", 0.0, 2.0)
    interval("radius", 1.0, lo_open=False)
    interval("image_scale", 0.0)
    if cfg.radius[1] * cfg.image_scale[1] > min(cfg.shape) / 4:
        raise bad(
            "radius",
            f"at most a quarter of the image side ({min(cfg.shape) / 4:g} px) at the largest "
            f"image_scale ({cfg.image_scale[1]:g}): raise size, or lower radius or image_scale",
        )
    if np.pi * (cfg.radius[0] * cfg.image_scale[0]) ** 2 < cfg.min_area:
        raise bad(
            "image_scale",
            f"large enough for min_area={cfg.min_area} px at the smallest radius "
            "(π·(radius low·scale low)² ≥ min_area)",
        )
    if np.pi * cfg.radius[1] ** 2 < cfg.min_area:
        raise bad("radius", f"large enough for min_area={cfg.min_area} px (π·high² ≥ min_area)")
    interval("elongation", 1.0, lo_open=False)
    number("irregularity", 0.0, 1.0)
    number("clustered", 0.0, 1.0)
    number("cluster_size", 1.0, 1000.0)
    number("max_overlap", 0.0, 0.5)
    number("brightness_spread", 0.0, 2.0)
    number("texture", 0.0, 2.0)
    number("spots", 0.0, 100.0)
    number("out_of_focus", 0.0, 1.0)
    number("mitotic", 0.0, 1.0)
    if cfg.out_of_focus + cfg.mitotic > 1.0:
        raise bad("mitotic", "at most 1 - out_of_focus")
    number("blur_sigma", 0.0, 20.0)
    number("background", 0.0, 10.0)
    number("vignetting", 0.0, 0.9)
    interval("photons", 0.0)
    number("read_noise", 0.0, 10.0)
    for name in ("train_styles", "test_styles"):
        v = getattr(cfg, name)
        if isinstance(v, str) or not isinstance(v, tuple) or not v:
            raise bad(name, f"a non-empty tuple of style names from {sorted(STYLES)}")
        unknown = [s for s in v if s not in STYLES]
        if unknown:
            raise bad(name, f"made of known styles {sorted(STYLES)} (unknown: {unknown})")
    number("stain_jitter", 0.0, 0.5)
    number("he_noise", 0.0, 50.0)
