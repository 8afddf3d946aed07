"""H&E histopathology rendering of the synthetic generator.

Colour follows Beer–Lambert: each stain contributes an optical density map times its absorption
vector (Ruifrok & Johnston's hematoxylin and eosin vectors, perturbed per image for stain
variation), and the transmitted light is I0·10^(−OD). Hematoxylin marks nuclei (with a darker
membrane rim, chromatin clumps and nucleoli) and faintly the cytoplasm; eosin marks fibrous
stroma and cytoplasm; lumens, fat and tears stay white. Nuclei are epithelial (placed by the
style's arrangement), lymphocytes (small, round, dark) or fibroblasts (thin, elongated, along
the stroma fibres); all are labelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.data.synth_shapes import (
    Canvas,
    Crowds,
    Nucleus,
    Placer,
    Spaced,
    Uniform,
    blur,
    draw_count,
    fill,
    random_harmonics,
    smooth_noise,
)
from nuclei_pa.data.synth_styles import HEStyle

HEMATOXYLIN = np.array([0.65, 0.70, 0.29])
EOSIN = np.array([0.07, 0.99, 0.11])
# Scanned slides' eosin absorbs more blue and red than Ruifrok's purified-stain vector; without
# this shift the stroma renders magenta instead of pink.
EOSIN_SHIFT = np.array([0.12, 0.0, 0.35])


@dataclass
class Gland:
    """An elliptic lumen (semi-axes a ≥ b, rotated by angle) lined by epithelial nuclei."""

    cy: float
    cx: float
    a: float
    b: float
    angle: float
    gap: float  # apical cytoplasm between lumen and nuclei (px)

    def q(self, shape: tuple[int, int]) -> np.ndarray:
        """Elliptic radius: < 1 inside the lumen."""
        dy = np.arange(shape[0])[:, None] - self.cy
        dx = np.arange(shape[1])[None, :] - self.cx
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.hypot((dx * c + dy * s) / self.a, (dy * c - dx * s) / self.b)

    def lining(self, rng: np.random.Generator, radius: float) -> tuple[float, float, float]:
        """(cy, cx, angle) of a lining nucleus, its long axis along the lumen's normal."""
        t = rng.uniform(0, 2 * np.pi)
        depth = self.gap + radius * rng.uniform(0.8, 2.0)  # rows stack (pseudostratification)
        ra, rb = self.a + depth, self.b + depth
        c, s = np.cos(self.angle), np.sin(self.angle)
        u, v = ra * np.cos(t), rb * np.sin(t)
        nu, nv = np.cos(t) / ra, np.sin(t) / rb
        normal = np.arctan2(nu * s + nv * c, nu * c - nv * s)
        return self.cy + u * s + v * c, self.cx + u * c - v * s, normal + rng.normal(0, 0.2)


def _white_space(
    cfg: SynthConfig, rng: np.random.Generator, style: HEStyle, r_mid: float
) -> tuple[np.ndarray, list[Gland], np.ndarray]:
    """(white mask, glands, epithelial band weight) of one image."""
    shape = cfg.shape
    h, w = shape
    white = np.zeros(shape, dtype=bool)
    band = np.zeros(shape)
    glands: list[Gland] = []
    if style.arrangement == "gland":
        wobble = 0.08 * smooth_noise(rng, shape, 8.0)
        for _ in range(int(rng.integers(1, 3))):
            a = rng.uniform(3.0, 6.5) * r_mid
            g = Gland(
                rng.uniform(0.15 * h, 0.85 * h),
                rng.uniform(0.15 * w, 0.85 * w),
                a,
                a * rng.uniform(0.3, 0.9),
                rng.uniform(0, np.pi),
                rng.uniform(0.3, 1.5) * r_mid,
            )
            q = g.q(shape) + wobble
            white |= q < 1.0
            thick = (g.gap + 3.0 * r_mid) / g.b
            band = np.maximum(band, np.clip((1.0 + thick - q) / 0.3, 0, 1) * (q >= 1.0))
            glands.append(g)
    if style.lumen > 0:
        field_ = smooth_noise(rng, shape, 18.0) + 0.3 * smooth_noise(rng, shape, 4.0)
        white |= field_ > np.quantile(field_, 1.0 - style.lumen * rng.uniform(0.3, 1.7))
    return white, glands, band


class Lining(Placer):
    """Along the glands' lumens, long axis along the lumen's normal (palisading)."""

    def __init__(self, rng: np.random.Generator, glands: list[Gland]) -> None:
        self.rng, self.glands = rng, glands

    def place(self, nuc: Nucleus) -> bool:
        gland = self.glands[int(self.rng.integers(len(self.glands)))]
        nuc.cy, nuc.cx, nuc.angle = gland.lining(self.rng, nuc.radius)
        return True


def place_he(
    cfg: SynthConfig, rng: np.random.Generator, style: HEStyle
) -> tuple[Canvas, np.ndarray, np.ndarray, float]:
    """(canvas, white mask, epithelial band, fibre angle) of one H&E image.

    Counts per kind are drawn first and each kind is placed in turn (crowded epithelium first),
    so hard-to-place crowds are not under-represented.
    """
    h, w = shape = cfg.shape
    r_lo, r_hi = cfg.radius[0] * style.size, cfg.radius[1] * style.size
    r_mid = 0.5 * (r_lo + r_hi)
    white, glands, band = _white_space(cfg, rng, style, r_mid)
    canvas = Canvas(shape, cfg.min_area, forbidden=white)
    n = draw_count(rng, cfg.nuclei_per_image * style.density, cfg.count_spread)
    n_lymph = int(rng.binomial(n, style.lymphocytes))
    n_fib = int(rng.binomial(n - n_lymph, style.fibroblasts / max(1e-9, 1 - style.lymphocytes)))
    n_epi = n - n_lymph - n_fib
    n_grouped = int(rng.binomial(n_epi, style.grouped))
    fibre_angle = rng.uniform(0, np.pi)
    anywhere = Uniform(rng, shape, 0.5 * r_lo)

    def maker(kind: str) -> Callable[[], Nucleus]:
        def make() -> Nucleus:
            if kind == "lymphocyte":
                radius, aspect, irregularity = (
                    rng.uniform(0.5, 0.65) * r_mid,
                    rng.uniform(1.0, 1.15),
                    0.02,
                )
            elif kind == "fibroblast":
                radius, aspect, irregularity = (
                    rng.uniform(0.5, 0.75) * r_mid,
                    rng.uniform(2.5, 4.5),
                    0.04,
                )
            else:
                radius, aspect = rng.uniform(r_lo, r_hi), rng.uniform(*style.elongation)
                irregularity = style.irregularity
            angle = (
                fibre_angle + rng.normal(0, 0.25) if kind == "fibroblast" else rng.uniform(0, np.pi)
            )
            return Nucleus(
                0.0,
                0.0,
                radius,
                aspect,
                angle,
                random_harmonics(rng, irregularity),
                attrs={"kind": kind},
            )

        return make

    def centres(k: int) -> np.ndarray:
        return rng.uniform([0.1 * h, 0.1 * w], [0.9 * h, 0.9 * w], size=(max(1, k), 2))

    if style.arrangement == "gland" and glands:
        grouped: Placer = Lining(rng, glands)
    elif style.arrangement == "scattered":
        grouped = Spaced(rng, shape, 0.5 * r_lo, canvas, 3.2 * r_mid)
    elif style.arrangement == "sheet":
        grouped = Crowds(rng, canvas, centres(int(rng.integers(1, 3))), (0.85, 1.0), r_hi)
    else:
        grouped = Crowds(rng, canvas, centres(round(n_grouped / 8)), (0.85, 1.1), r_hi)
    placed = fill(canvas, n_grouped, maker("epithelial"), grouped, style.overlap)
    fill(canvas, n_epi - placed, maker("epithelial"), anywhere, style.overlap)
    fill(canvas, n_fib, maker("fibroblast"), anywhere, style.overlap)
    lymph = Crowds(rng, canvas, centres(n_lymph // 2), (0.9, 1.3), 0.25 * min(h, w))
    fill(canvas, n_lymph, maker("lymphocyte"), lymph, style.overlap)
    return canvas, white, band, fibre_angle


def _fibres(rng: np.random.Generator, shape: tuple[int, int], angle: float) -> np.ndarray:
    """Wavy collagen fibres in [0, 1]: ridges of anisotropic noise along ``angle``, bent by a
    smooth displacement field and faded in patches (stroma is not uniformly fibrous)."""
    h, w = shape
    # periodic noise stretched along x, read through a rotated and bent grid
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), (1.6, 12.0), mode="wrap")
    noise /= noise.std()
    y, x = np.mgrid[0:h, 0:w].astype(float)
    y += 7.0 * smooth_noise(rng, shape, 24.0) - h / 2
    x += 7.0 * smooth_noise(rng, shape, 24.0) - w / 2
    c, s = np.cos(angle), np.sin(angle)
    grid = np.stack([c * y - s * x + h / 2, s * y + c * x + w / 2])
    warped = ndimage.map_coordinates(noise, grid, order=1, mode="grid-wrap")
    patches = np.clip(0.6 + 0.5 * smooth_noise(rng, shape, 30.0), 0.0, 1.0)
    return np.exp(-((warped / 0.7) ** 2)) * patches


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.01, None)
    return v / np.linalg.norm(v)


def render_he(
    cfg: SynthConfig, rng: np.random.Generator, style: HEStyle
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, int32 labels) of one H&E field in ``style``."""
    canvas, white, band, fibre_angle = place_he(cfg, rng, style)
    shape = canvas.shape
    tissue = 1.0 - ndimage.gaussian_filter(white.astype(float), 1.2)
    # stroma: eosin-rich fibres with a faint hematoxylin counterstain
    fibres = _fibres(rng, shape, fibre_angle)
    e_level = style.eosin * rng.uniform(0.75, 1.25)
    grain = 1.0 + 0.1 * smooth_noise(rng, shape, 0.8)
    od_e = e_level * (0.55 + 0.4 * fibres + 0.12 * smooth_noise(rng, shape, 12.0)) * grain
    od_h = 0.03 * rng.uniform(0.5, 1.5) * (1.0 + 0.3 * smooth_noise(rng, shape, 6.0))
    # cytoplasm of epithelial cells: a pinker, slightly purple halo around their nuclei
    cells = np.zeros(shape)
    nuclear = np.zeros(shape)
    for nuc in canvas.nuclei:
        cov = nuc.coverage()
        nuclear[nuc.box] = np.maximum(nuclear[nuc.box], cov)
        if nuc.attrs["kind"] == "epithelial":
            cells[nuc.box] += cov
    r_mid = float(np.mean(cfg.radius)) * style.size
    cells = blur(cells, 1.5 * r_mid)
    cells = np.clip(cells / max(cells.max(), 1e-6) * 1.5, 0, 1)
    cyto = np.maximum(cells, band)
    od_e = od_e * (1.0 - 0.5 * cyto) + cyto * e_level * rng.uniform(0.8, 1.3)
    od_h = od_h + cyto * 0.05 * (1.0 + 0.3 * smooth_noise(rng, shape, 3.0))
    # nuclei: hematoxylin with a dark membrane, chromatin clumps and nucleoli
    clumps = smooth_noise(rng, shape, 1.0)
    speckle = smooth_noise(rng, shape, 0.6)
    nucleoli = np.zeros(shape)
    nuc_h = np.zeros(shape)
    h_level = style.hematoxylin * rng.uniform(0.8, 1.2)
    for nuc in canvas.nuclei:
        kind = nuc.attrs["kind"]
        box, s = nuc.box, np.minimum(nuc.s, 1.0)
        edge = nuc.edge_distance()
        if kind == "lymphocyte":
            density, vesicular, texture = 1.4 * rng.uniform(0.9, 1.2), 0.0, 0.12
        elif kind == "fibroblast":
            density, vesicular, texture = 1.2 * rng.uniform(0.85, 1.15), 0.1, 0.15
        else:
            density = rng.lognormal(0.0, 0.18)
            vesicular = style.chromatin * rng.uniform(0.6, 1.2)
            texture = 0.2 + 0.35 * style.chromatin
        interior = 1.0 - 0.55 * vesicular * (1.0 - s**2)  # vesicular nuclei are pale inside
        rim = 1.0 + (0.3 + 0.6 * vesicular) * np.exp(-((edge / 1.3) ** 2))
        grain = np.clip(1.0 + texture * (clumps[box] + 0.5 * speckle[box]), 0.2, None)
        nuc_h[box] += nuc.coverage() * h_level * density * interior * rim * grain
        if kind == "epithelial":
            inside = np.flatnonzero(nuc.s < 0.6)
            k = int(rng.poisson(style.nucleoli * (0.5 + vesicular)))
            if k and inside.size:
                ys, xs = np.unravel_index(rng.choice(inside, size=k), nuc.s.shape)
                np.add.at(
                    nucleoli, (ys + box[0].start, xs + box[1].start), rng.uniform(4.0, 8.0, k)
                )
    nuc_h += ndimage.gaussian_filter(nucleoli, 1.0) * h_level
    od_h = (od_h + nuc_h) * tissue
    od_e = (od_e * (1.0 - 0.6 * nuclear) + 0.1 * nuclear) * tissue
    focus = rng.uniform(0.5, 0.9)
    od_h, od_e = ndimage.gaussian_filter(od_h, focus), ndimage.gaussian_filter(od_e, focus)
    # per-image stain variation and illumination, Beer–Lambert, sensor noise
    h_vec = _unit(HEMATOXYLIN + rng.normal(0, cfg.stain_jitter, 3))
    e_vec = _unit(EOSIN + EOSIN_SHIFT + rng.normal(0, cfg.stain_jitter, 3))
    od = od_h[..., None] * h_vec + od_e[..., None] * e_vec + rng.uniform(0.0, 0.03)
    white_point = rng.uniform(232, 252) * (1.0 + rng.normal(0, 0.015, 3))
    rgb = white_point * np.power(10.0, -od)
    rgb += rng.normal(0, cfg.he_noise, rgb.shape)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8), canvas.labels
