"""Give each concurrently running job its own GPU.

Snakemake's ``--resources gpu=4`` caps how many GPU jobs run at once but does not say *which* GPU
each should use, so without help four training jobs all land on GPU 0. A job claims a slot by
taking an exclusive ``flock`` on ``<lock_dir>/gpu<i>.lock``; the kernel drops the lock when the
process exits, however it exits (``kill -9`` included), so a crashed job never leaks its GPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else every CUDA device."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # torch missing or CUDA broken: behave as a CPU machine
        return []


@contextlib.contextmanager
def claim_gpu(
    lock_dir: str | Path,
    gpus: list[str] | None = None,
    timeout: float = 24 * 3600,
    poll: float = 0.5,
) -> Iterator[str | None]:
    """Hold one free GPU for the duration of the block and expose only it to CUDA.

    Yields the claimed GPU id (and sets ``CUDA_VISIBLE_DEVICES`` to it inside the block), or
    ``None`` when there are no GPUs (the job runs on CPU) or inside a SLURM job (the scheduler
    assigned the GPU); then nothing is locked.
    """
    if gpus is None and os.environ.get("SLURM_JOB_ID"):
        # Under SLURM the scheduler already gave this job its own GPU(s); a lock on the shared
        # filesystem would make jobs on different nodes (all seeing "GPU 0") wait for each other.
        yield None
        return
    gpus = visible_gpus() if gpus is None else gpus
    if not gpus:
        yield None
        return
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for gpu in gpus:
            fd = os.open(lock_dir / f"gpu{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            previous = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            try:
                yield gpu
            finally:
                if previous is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = previous
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {gpus} in {lock_dir} after {timeout:.0f} s")
        time.sleep(poll)
