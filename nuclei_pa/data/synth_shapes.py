"""Nucleus geometry and placement for the synthetic generator.

A nucleus is star-convex: an ellipse (radius, aspect ratio, angle) whose radial profile is bent by
a few low-frequency Fourier harmonics, which gives the dents and bulges of real nuclei without
self-intersections. Shapes are evaluated only in their bounding box.

``Canvas`` keeps the instance label image a partition while nuclei are added on top of each
other: a nucleus that would hide too much of one underneath, cut it in two, or shrink it below
the minimum area is refused, so every label stays one visible connected region.

Placers decide where candidates go (uniformly, evenly spaced, or grown into crowds of touching
nuclei); ``fill`` draws candidates until a count is reached. ``smooth_noise`` and ``blur`` are the
random fields and filters both renderers texture with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

MAX_HARMONIC = 5


@dataclass
class Nucleus:
    """One nucleus' shape, plus free-form rendering attributes in ``attrs``."""

    cy: float
    cx: float
    radius: float
    aspect: float = 1.0  # long / short axis (area is kept that of a disc of ``radius``)
    angle: float = 0.0  # orientation of the long axis, radians
    harmonics: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (amp, phase), k≥2
    attrs: dict = field(default_factory=dict)
    box: tuple[slice, slice] | None = None  # set by Canvas.add
    s: np.ndarray | None = None  # radial coordinate in box: <1 inside, 1 on the outline

    @property
    def extent(self) -> float:
        """Radius of a circle that surely contains the nucleus."""
        amp = float(np.abs(self.harmonics[:, 0]).sum()) if len(self.harmonics) else 0.0
        return self.radius * np.sqrt(self.aspect) * (1.0 + amp) + 1.5

    def radial(self, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """(box, s): the clipped bounding box and the normalised radius s there, or None."""
        e = self.extent
        y0, y1 = max(0, int(np.floor(self.cy - e))), min(shape[0], int(np.ceil(self.cy + e)) + 1)
        x0, x1 = max(0, int(np.floor(self.cx - e))), min(shape[1], int(np.ceil(self.cx + e)) + 1)
        if y1 <= y0 or x1 <= x0:
            return None
        dy = np.arange(y0, y1, dtype=np.float64)[:, None] - self.cy
        dx = np.arange(x0, x1, dtype=np.float64)[None, :] - self.cx
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = np.sqrt(self.aspect)
        u = (dx * c + dy * s) / k
        v = (dy * c - dx * s) * k
        rho = np.hypot(u, v)
        r = np.full(rho.shape, self.radius)
        if len(self.harmonics):
            theta = np.arctan2(v, u)
            bend = np.ones_like(theta)
            for order, (amp, phase) in enumerate(self.harmonics, start=2):
                bend += amp * np.cos(order * theta + phase)
            r = r * bend
        return (slice(y0, y1), slice(x0, x1)), rho / r

    def local_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(dy, dx) grids of the box relative to the centre (for gradients across a nucleus)."""
        assert self.box is not None
        dy = np.arange(self.box[0].start, self.box[0].stop)[:, None] - self.cy
        dx = np.arange(self.box[1].start, self.box[1].stop)[None, :] - self.cx
        return dy, dx

    def coverage(self) -> np.ndarray:
        """Anti-aliased fraction of each box pixel inside the outline (0.5 on the label edge)."""
        assert self.s is not None
        return np.clip((1.0 - self.s) * self.radius + 0.5, 0.0, 1.0)

    def edge_distance(self) -> np.ndarray:
        """Approximate distance in pixels from each box pixel to the outline (positive inside)."""
        assert self.s is not None
        return (1.0 - self.s) * self.radius


def random_harmonics(rng: np.random.Generator, irregularity: float) -> np.ndarray:
    """Outline harmonics 2..MAX_HARMONIC with amplitudes decaying as 1/(k-1), capped so r > 0."""
    orders = np.arange(2, MAX_HARMONIC + 1)
    amp = irregularity * rng.standard_normal(orders.size) / (orders - 1)
    total = np.abs(amp).sum()
    if total > 0.4:
        amp *= 0.4 / total
    phase = rng.uniform(0, 2 * np.pi, orders.size)
    return np.stack([amp, phase], axis=1)


class Canvas:
    """The instance label image under construction; new nuclei are added on top."""

    def __init__(
        self,
        shape: tuple[int, int],
        min_area: int,
        forbidden: np.ndarray | None = None,
        forbidden_tolerance: float = 0.05,
    ) -> None:
        self.shape = shape
        self.min_area = min_area
        self.labels = np.zeros(shape, dtype=np.int32)
        self.nuclei: list[Nucleus] = []
        self._area: list[int] = []  # visible pixels per label (index = label - 1)
        self._area0: list[int] = []  # pixels when it was added
        self.forbidden = forbidden
        self.forbidden_tolerance = forbidden_tolerance

    def __len__(self) -> int:
        return len(self.nuclei)

    def add(self, nuc: Nucleus, max_overlap: float) -> bool:
        """Put ``nuc`` on top if every label stays visible, whole and ≥ min_area; else False."""
        # cheap early refusal: centred on another nucleus or on forbidden ground
        iy, ix = int(np.floor(nuc.cy)), int(np.floor(nuc.cx))
        inside = 0 <= iy < self.shape[0] and 0 <= ix < self.shape[1]
        if inside and (
            self.labels[iy, ix] or (self.forbidden is not None and self.forbidden[iy, ix])
        ):
            return False
        found = nuc.radial(self.shape)
        if found is None:
            return False
        box, s = found
        mask = s < 1.0
        area = int(mask.sum())
        if area < self.min_area:
            return False
        if (
            self.forbidden is not None
            and self.forbidden[box][mask].mean() > self.forbidden_tolerance
        ):
            return False
        region = self.labels[box]
        under = region[mask]
        hit = under[under > 0]
        new_id = len(self.nuclei) + 1
        if hit.size:
            if hit.size > max_overlap * area:
                return False
            ids, counts = np.unique(hit, return_counts=True)
            for i, c in zip(ids, counts, strict=True):
                left = self._area[i - 1] - c
                if left < self.min_area or left < (1.0 - max_overlap) * self._area0[i - 1]:
                    return False
            saved = region.copy()
            region[mask] = new_id
            for i in ids:
                other = self.nuclei[i - 1].box
                if ndimage.label(self.labels[other] == i)[1] != 1:
                    region[...] = saved
                    return False
            for i, c in zip(ids, counts, strict=True):
                self._area[i - 1] -= int(c)
        else:
            region[mask] = new_id
        nuc.box, nuc.s = box, s
        self.nuclei.append(nuc)
        self._area.append(area)
        self._area0.append(area)
        return True


def draw_count(rng: np.random.Generator, mean: float, spread: float) -> int:
    """Nuclei in one image: Poisson around a per-image mean that varies by ``spread`` (rel. sd)."""
    if spread > 0:
        mean = mean * rng.lognormal(-0.5 * spread**2, spread)
    return max(1, int(rng.poisson(mean)))


class Placer:
    """Chooses where a new nucleus goes; ``commit`` hears which proposals were accepted."""

    def place(self, nuc: Nucleus) -> bool:
        """Set ``nuc.cy, nuc.cx`` (and maybe ``angle``); False to skip this attempt."""
        raise NotImplementedError

    def commit(self, index: int) -> None:
        """``canvas.nuclei[index]`` is the nucleus last placed."""


class Uniform(Placer):
    """Anywhere, including partly outside the image (nuclei are cut by the border)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], margin: float) -> None:
        self.rng, self.shape, self.margin = rng, shape, margin

    def place(self, nuc: Nucleus) -> bool:
        m = self.margin
        nuc.cy = self.rng.uniform(-m, self.shape[0] + m)
        nuc.cx = self.rng.uniform(-m, self.shape[1] + m)
        return True


class Spaced(Uniform):
    """Anywhere at least ``distance`` from every accepted centre (evenly spread cells)."""

    def __init__(
        self,
        rng: np.random.Generator,
        shape: tuple[int, int],
        margin: float,
        canvas: Canvas,
        distance: float,
    ) -> None:
        super().__init__(rng, shape, margin)
        self.canvas, self.distance = canvas, distance

    def place(self, nuc: Nucleus) -> bool:
        super().place(nuc)
        return all(
            np.hypot(o.cy - nuc.cy, o.cx - nuc.cx) >= self.distance for o in self.canvas.nuclei
        )


class Crowds(Placer):
    """Grows crowds of touching nuclei: each new one is put against a random member of a random
    crowd (the most central of three), at a random bearing, at a distance of both outline radii
    times ``squeeze`` (< 1 overlaps, 1 just touches). An empty crowd starts near its centre."""

    def __init__(
        self,
        rng: np.random.Generator,
        canvas: Canvas,
        centres: np.ndarray,
        squeeze: tuple[float, float],
        spread: float,
    ) -> None:
        self.rng, self.canvas, self.centres = rng, canvas, centres
        self.squeeze, self.spread = squeeze, spread
        self.members: list[list[int]] = [[] for _ in centres]
        self._last = 0

    def place(self, nuc: Nucleus) -> bool:
        rng = self.rng
        self._last = c = int(rng.integers(len(self.members)))
        if not self.members[c]:
            nuc.cy, nuc.cx = self.centres[c] + rng.normal(0, self.spread, 2)
            return True
        # the most central of a few random members: crowds grow as compact nests, not chains
        picks = rng.choice(self.members[c], size=min(3, len(self.members[c])), replace=False)
        cy, cx = self.centres[c]
        anchor = min(
            (self.canvas.nuclei[i] for i in picks),
            key=lambda o: (o.cy - cy) ** 2 + (o.cx - cx) ** 2,
        )
        bearing = rng.uniform(0, 2 * np.pi)
        d = outline_radius(anchor, bearing) + outline_radius(nuc, bearing + np.pi)
        d *= rng.uniform(*self.squeeze)
        nuc.cy, nuc.cx = anchor.cy + d * np.sin(bearing), anchor.cx + d * np.cos(bearing)
        return True

    def commit(self, index: int) -> None:
        self.members[self._last].append(index)


def outline_radius(nuc: Nucleus, bearing: float) -> float:
    """Distance from the centre to the outline along ``bearing`` (image angle, radians)."""
    c, s = np.cos(bearing - nuc.angle), np.sin(bearing - nuc.angle)
    k = np.sqrt(nuc.aspect)
    u, v = c / k, s * k
    theta = np.arctan2(v, u)
    bend = 1.0 + sum(
        amp * np.cos(order * theta + ph) for order, (amp, ph) in enumerate(nuc.harmonics, start=2)
    )
    return float(nuc.radius * bend / np.hypot(u, v))


def fill(
    canvas: Canvas,
    count: int,
    make: Callable[[], Nucleus],
    placer: Placer,
    max_overlap: float,
    tries: int = 40,
) -> int:
    """Add up to ``count`` nuclei from ``make`` placed by ``placer``; returns how many.

    Gives up after ``tries`` × ``count`` attempts, or ``10 * tries`` failures in a row (the
    placer's room is full).
    """
    added = failures = 0
    for _ in range(tries * count):
        if added >= count or failures >= 10 * tries:
            break
        nuc = make()
        if placer.place(nuc) and canvas.add(nuc, max_overlap):
            placer.commit(len(canvas) - 1)
            added += 1
            failures = 0
        else:
            failures += 1
    return added


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide kernels run on a downsampled copy (they only carry smooth content)."""
    if sigma <= 0:
        return image
    factor = int(sigma // 3)
    if factor < 2:
        return ndimage.gaussian_filter(image, sigma, mode="reflect")
    h, w = image.shape
    ph, pw = (-h) % factor, (-w) % factor
    padded = np.pad(image, ((0, ph), (0, pw)), mode="reflect")
    small = padded.reshape(padded.shape[0] // factor, factor, -1, factor).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, sigma / factor, mode="reflect")
    return _upsample(small, factor)[:h, :w]


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]
) -> np.ndarray:
    """Zero-mean, unit-sd Gaussian random field with correlation length ``sigma`` (px)."""
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (2,))
    factor = max(1, int(sig.min() // 3))
    small_shape = (shape[0] // factor + 3, shape[1] // factor + 3)
    field_ = ndimage.gaussian_filter(rng.standard_normal(small_shape), sig / factor, mode="wrap")
    if factor > 1:
        field_ = _upsample(field_, factor)
    field_ = field_[: shape[0], : shape[1]]
    sd = field_.std()
    return (field_ - field_.mean()) / (sd if sd > 0 else 1.0)


def _upsample(small: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upsampling by an integer factor (pixel centres aligned, edges clamped).

    Separable gathers rather than interpolation matrices: a BLAS matmul would start threads,
    which costs more than it saves on these small arrays (and fights other processes for cores).
    """
    for axis in (0, 1):
        n = small.shape[axis]
        pos = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
        lo = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
        hi = np.minimum(lo + 1, n - 1)
        frac = pos - lo
        shape = (-1, 1) if axis == 0 else (1, -1)
        small = np.take(small, lo, axis=axis) * (1.0 - frac).reshape(shape) + np.take(
            small, hi, axis=axis
        ) * frac.reshape(shape)
    return small
