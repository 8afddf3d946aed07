"""The GPU slot allocator, simulated with processes (no GPU needed)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from nuclei_pa.gpu_slots import claim_gpu, visible_gpus


def _hold(lock_dir, gpus, seconds, queue):
    with claim_gpu(lock_dir, gpus) as gpu:
        queue.put((os.getpid(), gpu, os.environ.get("CUDA_VISIBLE_DEVICES"), time.monotonic()))
        time.sleep(seconds)


def test_concurrent_jobs_get_distinct_gpus(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_hold, args=(tmp_path, ["0", "1", "2", "3"], 1.0, queue))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    got = [queue.get(timeout=20) for _ in procs]
    for p in procs:
        p.join(timeout=20)
    assert sorted(g for _, g, _, _ in got) == ["0", "1", "2", "3"]
    assert all(gpu == env for _, gpu, env, _ in got)  # each job sees only its own GPU


def test_fifth_job_waits_for_a_free_gpu(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    holders = [ctx.Process(target=_hold, args=(tmp_path, ["0", "1"], 1.5, queue)) for _ in range(2)]
    for p in holders:
        p.start()
    first = [queue.get(timeout=20) for _ in holders]
    late = ctx.Process(target=_hold, args=(tmp_path, ["0", "1"], 0.0, queue))
    late.start()
    _, gpu, _, t = queue.get(timeout=20)
    assert gpu in {"0", "1"} and t >= min(f[3] for f in first) + 1.4
    for p in [*holders, late]:
        p.join(timeout=20)


def test_killed_job_releases_its_gpu(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    victim = ctx.Process(target=_hold, args=(tmp_path, ["0"], 60, queue))
    victim.start()
    queue.get(timeout=20)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=20)
    with claim_gpu(tmp_path, ["0"], timeout=5) as gpu:
        assert gpu == "0"


def test_no_gpu_means_cpu_and_no_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    with claim_gpu(tmp_path / "locks") as gpu:
        assert gpu is None
    assert not (tmp_path / "locks").exists()


def test_environment_restored_and_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == ["2", "3"]
    with claim_gpu(tmp_path) as gpu:
        assert gpu == "2" and os.environ["CUDA_VISIBLE_DEVICES"] == "2"
        with pytest.raises(TimeoutError), claim_gpu(tmp_path, ["2"], timeout=0.3, poll=0.1):
            pass
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_slurm_jobs_use_the_scheduler_gpu_without_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with claim_gpu(tmp_path / "locks") as gpu:
        assert gpu is None and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert not (tmp_path / "locks").exists()
