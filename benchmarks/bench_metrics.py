"""Time the sparse metrics against the dense reference on realistic synthetic label images.

    python benchmarks/bench_metrics.py [--size 2048 --nuclei 3000 --seed 0]

The ground truth is a field of touching, jittered elliptical nuclei (each pixel belongs to the
nucleus of its nearest seed if it lies inside that nucleus' ellipse). The prediction re-draws it
with shifted centres and resized axes, and drops, merges, splits and invents some nuclei; its
ids are random and non-consecutive. Both implementations run in the same process on one thread
and must agree; the output is the times and their ratio, not a pass/fail on absolute times.
The dense reference needs one mask per instance, so when the full image would not fit its memory
budget it runs (together with the sparse one, for a like-for-like ratio) on a smaller image of
the same nucleus density, and the output says so.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, for both implementations

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from nuclei_pa.eval.dense import dense_image_metrics  # noqa: E402
from nuclei_pa.eval.matching import ImageMetrics, image_metrics  # noqa: E402

DENSE_MEMORY = 1 << 30  # bytes of float32 masks the dense reference may use


def _draw(
    shape: tuple[int, int],
    centres: np.ndarray,
    axes: np.ndarray,
    angles: np.ndarray,
    labels: np.ndarray,
) -> np.ndarray:
    """Label image: pixel -> label of its nearest centre, if inside that centre's ellipse."""
    seeds = np.ones(shape, bool)
    cy = np.clip(np.rint(centres[:, 0]).astype(int), 0, shape[0] - 1)
    cx = np.clip(np.rint(centres[:, 1]).astype(int), 0, shape[1] - 1)
    seeds[cy, cx] = False
    owner_of_seed = np.full(shape, -1, np.int64)
    owner_of_seed[cy, cx] = np.arange(len(centres))
    _, (iy, ix) = ndimage.distance_transform_edt(seeds, return_indices=True)
    owner = owner_of_seed[iy, ix]
    yy, xx = np.indices(shape, dtype=np.float32)
    dy = yy - centres[owner, 0].astype(np.float32)
    dx = xx - centres[owner, 1].astype(np.float32)
    cos, sin = np.cos(angles)[owner], np.sin(angles)[owner]
    u = (dy * cos + dx * sin) / axes[owner, 0]
    v = (-dy * sin + dx * cos) / axes[owner, 1]
    return np.where(u * u + v * v <= 1.0, labels[owner], 0).astype(np.int32)


def synth_pair(size: int, nuclei: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A (gt, pred) pair of size x size label images with about ``nuclei`` nuclei."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    mean_r = 0.55 * math.sqrt(size * size / nuclei / math.pi)  # ~30% foreground, touching
    centres = rng.uniform(0, size, (nuclei, 2))
    axes = mean_r * rng.uniform(0.75, 1.25, (nuclei, 2))
    angles = rng.uniform(0, np.pi, nuclei)
    gt = _draw(shape, centres, axes, angles, rng.permutation(nuclei) + 1)

    # prediction: jitter, drop 5%, merge 3% into their nearest neighbour, split 3%, add 3%
    keep = rng.random(nuclei) >= 0.05
    n = int(keep.sum())
    p_centres = centres[keep] + rng.normal(0, 0.12 * mean_r, (n, 2))
    p_axes = axes[keep] * rng.uniform(0.85, 1.2, (n, 2))
    p_angles = angles[keep] + rng.normal(0, 0.2, n)
    ids = np.arange(n)
    nearest = cKDTree(p_centres).query(p_centres, k=2)[1][:, 1]
    merge = np.flatnonzero(rng.random(n) < 0.03)
    ids[merge] = ids[nearest[merge]]
    p_axes[merge] *= 1.3
    split = np.flatnonzero(rng.random(n) < 0.03)
    offset = (
        0.45 * p_axes[split, :1] * np.stack([np.cos(p_angles[split]), np.sin(p_angles[split])], 1)
    )
    p_axes[split] *= [0.55, 0.9]
    extra = max(1, int(0.03 * nuclei))
    p_centres = np.concatenate(
        [p_centres, p_centres[split] + offset, rng.uniform(0, size, (extra, 2))]
    )
    p_centres[split] -= offset
    p_axes = np.concatenate([p_axes, p_axes[split], mean_r * rng.uniform(0.5, 1, (extra, 2))])
    p_angles = np.concatenate([p_angles, p_angles[split], rng.uniform(0, np.pi, extra)])
    ids = np.concatenate([ids, n + np.arange(len(split) + extra)])
    # random, non-consecutive ids (up to 65535 unless there are more nuclei than that)
    pool = np.arange(1, max(65536, 2 * len(ids)))
    new_ids = rng.choice(pool, size=ids.max() + 1, replace=False)
    pred = _draw(shape, p_centres, p_axes, p_angles, new_ids[ids])
    return gt, pred


def best_time(fn: Callable[[], ImageMetrics], repeat: int) -> tuple[float, ImageMetrics]:
    best, result = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    assert result is not None
    return best, result


def agree(a: ImageMetrics, b: ImageMetrics) -> bool:
    da, db = a.as_dict(), b.as_dict()
    return all(math.isclose(da[k], db[k], rel_tol=1e-9, abs_tol=1e-12) for k in da)


def dense_size(size: int, nuclei: int) -> int:
    """Largest size (halving) whose per-instance float32 masks fit DENSE_MEMORY."""
    s = size
    while s > 64 and 2.2 * nuclei * (s / size) ** 2 * s * s * 4 > DENSE_MEMORY:
        s //= 2
    return s


def fmt(m: ImageMetrics) -> str:
    return "  ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.as_dict().items()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--nuclei", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the sparse timing")
    args = ap.parse_args()

    gt, pred = synth_pair(args.size, args.nuclei, args.seed)
    t_sparse, m = best_time(lambda: image_metrics(gt, pred), args.repeat)
    print(f"image {args.size}x{args.size}, seed {args.seed}: {m.n_gt} gt, {m.n_pred} pred nuclei")
    print(f"  {fmt(m)}")
    print(f"sparse (full image):  {t_sparse * 1e3:9.1f} ms  (best of {args.repeat})")

    s = dense_size(args.size, args.nuclei)
    if s == args.size:
        g2, p2, t_sparse2 = gt, pred, t_sparse
        m2 = m
        where = "full image"
    else:
        n2 = max(1, round(args.nuclei * (s / args.size) ** 2))
        g2, p2 = synth_pair(s, n2, args.seed)
        t_sparse2, m2 = best_time(lambda: image_metrics(g2, p2), args.repeat)
        where = f"{s}x{s} image, {n2} nuclei, same density"
        print(
            f"dense masks for the full image would exceed {DENSE_MEMORY >> 20} MiB; "
            f"comparing both on a smaller {where}"
        )
        print(f"sparse ({s}x{s}):     {t_sparse2 * 1e3:9.1f} ms  (best of {args.repeat})")
    t_dense, md = best_time(lambda: dense_image_metrics(g2, p2), 1)
    print(f"dense  ({where}): {t_dense * 1e3:9.1f} ms")
    ok = agree(m2, md)
    print(f"sparse and dense agree: {ok}" + ("" if ok else f"\n  sparse {m2}\n  dense  {md}"))
    print(f"speed-up dense/sparse on the same image: {t_dense / t_sparse2:.1f}x")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
