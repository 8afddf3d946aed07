"""Fluorescence (DAPI-like) rendering of the synthetic generator.

The image model follows a widefield microscope: nuclei emit light additively (overlaps are
brighter, as in a projection), chromatin is textured with bright chromocentres, a few nuclei lie
out of the focal plane (dim and blurred), the optics blur everything, out-of-focus haze and a
smooth background are added, illumination falls off towards the corners, and the camera adds
Poisson (shot) and Gaussian (read) noise before 8-bit quantisation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nuclei_pa.data.synth_config import SynthConfig
from nuclei_pa.data.synth_shapes import (
    Canvas,
    Crowds,
    Nucleus,
    Uniform,
    blur,
    draw_count,
    fill,
    random_harmonics,
    smooth_noise,
)


def place_fluorescence(cfg: SynthConfig, rng: np.random.Generator) -> Canvas:
    """Crowds of touching nuclei first, then scattered ones (which may land on crowds)."""
    h, w = cfg.shape
    canvas = Canvas((h, w), cfg.min_area)
    lo, hi = cfg.image_scale
    scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if lo < hi else lo
    n = draw_count(rng, cfg.nuclei_per_image / scale**2, cfg.count_spread)
    n_crowded = int(rng.binomial(n, cfg.clustered))
    r_lo, r_hi = cfg.radius[0] * scale, cfg.radius[1] * scale

    def make() -> Nucleus:
        u = rng.random()
        kind = "defocus" if u < cfg.out_of_focus else "normal"
        if cfg.out_of_focus <= u < cfg.out_of_focus + cfg.mitotic:
            kind = "mitotic"
        radius = rng.uniform(r_lo, r_hi)
        irregularity = cfg.irregularity
        if kind == "mitotic":  # condensed chromatin: small, bright, ragged
            radius = max(0.6 * radius, 0.8 * r_lo)
            irregularity *= 2.0
        return Nucleus(
            0.0,
            0.0,
            radius,
            rng.uniform(*cfg.elongation),
            rng.uniform(0, np.pi),
            random_harmonics(rng, irregularity),
            attrs={"kind": kind},
        )

    if n_crowded:
        n_crowds = max(1, round(n_crowded / cfg.cluster_size * rng.uniform(0.7, 1.3)))
        centres = rng.uniform([0.1 * h, 0.1 * w], [0.9 * h, 0.9 * w], size=(n_crowds, 2))
        crowds = Crowds(rng, canvas, centres, squeeze=(0.8, 1.0), spread=r_hi)
        fill(canvas, n_crowded, make, crowds, cfg.max_overlap)
    fill(canvas, n - len(canvas), make, Uniform(rng, (h, w), 0.5 * r_lo), cfg.max_overlap)
    return canvas


MIN_APPARENT = 0.4  # dimmest nucleus after illumination fall-off, relative to an average one


def _illumination(cfg: SynthConfig, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Vignetting around an off-centre optical axis times a slight linear tilt."""
    yy = (np.arange(shape[0])[:, None] + 0.5) / shape[0] - 0.5 - rng.normal(0, 0.1)
    xx = (np.arange(shape[1])[None, :] + 0.5) / shape[1] - 0.5 - rng.normal(0, 0.1)
    ramp = rng.normal(0, 0.1, 2)
    field_ = (1.0 - cfg.vignetting * 2.0 * (yy**2 + xx**2)) * (1.0 + ramp[0] * yy + ramp[1] * xx)
    return np.clip(field_, 0.1, None)


def render_fluorescence(
    cfg: SynthConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 grey image, int32 labels) of one DAPI-like field of view."""
    canvas = place_fluorescence(cfg, rng)
    shape = canvas.shape
    fine, coarse = smooth_noise(rng, shape, 0.8), smooth_noise(rng, shape, 2.5)
    illumination = _illumination(cfg, rng, shape)
    focus = np.zeros(shape)
    defocus = np.zeros(shape)
    spots = np.zeros(shape)
    for nuc in canvas.nuclei:
        kind = nuc.attrs["kind"]
        bright = float(np.clip(rng.lognormal(0.0, cfg.brightness_spread), 0.5, 2.5))  # DNA: 2N-4N
        if kind == "defocus":
            bright *= rng.uniform(0.45, 0.75)
        elif kind == "mitotic":
            bright *= rng.uniform(1.4, 2.0)
        # labelled means visible: no nucleus fades below MIN_APPARENT in a dark corner
        iy = min(max(int(nuc.cy), 0), shape[0] - 1)
        ix = min(max(int(nuc.cx), 0), shape[1] - 1)
        bright = max(bright, MIN_APPARENT / illumination[iy, ix])
        box, s = nuc.box, np.minimum(nuc.s, 1.0)
        dy, dx = nuc.local_coords()
        # thicker centre (dome) or peripheral heterochromatin (rim), and a tilt across the nucleus
        dome = rng.uniform(-0.15, 0.35)
        rim = rng.uniform(0.0, 0.25)
        profile = 1.0 - dome * s**2 + rim * np.exp(-((nuc.edge_distance() / 1.5) ** 2))
        tilt = rng.uniform(0, 0.3) / nuc.radius
        bearing = rng.uniform(0, 2 * np.pi)
        profile *= 1.0 + tilt * (dx * np.cos(bearing) + dy * np.sin(bearing))
        amp = cfg.texture * rng.uniform(0.5, 1.5) * (1.6 if kind == "mitotic" else 1.0)
        texture = np.clip(1.0 + amp * (0.6 * fine[box] + 0.6 * coarse[box]), 0.15, None)
        value = bright * nuc.coverage() * np.clip(profile, 0.2, None) * texture
        (defocus if kind == "defocus" else focus)[box] += value
        n_spots = rng.poisson(cfg.spots * (nuc.radius / 9.0) ** 2) if kind == "normal" else 0
        inside = np.flatnonzero(nuc.s < 0.85)
        if n_spots and inside.size:
            pick = rng.choice(inside, size=n_spots)
            ys, xs = np.unravel_index(pick, nuc.s.shape)
            np.add.at(
                spots,
                (ys + box[0].start, xs + box[1].start),
                bright * rng.uniform(1.5, 4.0, n_spots),
            )
    focus += ndimage.gaussian_filter(spots, 0.8)
    image = blur(focus, cfg.blur_sigma) + blur(defocus, cfg.blur_sigma + rng.uniform(1.0, 2.0))
    # out-of-focus haze, uneven background, illumination fall-off
    image += blur(image, 10.0) * rng.uniform(0.1, 0.3)
    image += (
        cfg.background
        * rng.uniform(0.5, 1.5)
        * np.clip(1.0 + 0.4 * smooth_noise(rng, shape, 40.0), 0.2, None)
    )
    image *= illumination
    # camera: shot noise at a random exposure, read noise, 8-bit with a random gain
    photons = np.exp(rng.uniform(np.log(cfg.photons[0]), np.log(cfg.photons[1])))
    image = rng.poisson(image * photons) / photons + rng.normal(0, cfg.read_noise, shape)
    gain = rng.uniform(110.0, 190.0)
    out = np.clip(np.round(image * gain), 0, 255).astype(np.uint8)
    return out, canvas.labels
