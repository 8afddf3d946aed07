"""Shared fixtures: tiny hand-made datasets, so tests do not depend on the synthetic generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nuclei_pa.io.dataset import Sample, write_split

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: more torch threads than cores would make every
    # worker wait on the others' spinning threads.
    import torch

    torch.set_num_threads(1)


#: The suite's longest chain: the tiny workflow run (every rule, two seeds, then the sweep).
LONGEST_FILE = "test_workflow.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest file first, then the other files holding a ``slow`` test, so that with one
    worker per core (``make test``: ``-n CORES --dist loadfile``) the long workflow runs start
    at once instead of after everything else."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path.name != LONGEST_FILE, item.path not in slow_files))


def disk_labels(shape: tuple[int, int], centres: list[tuple[int, int]], radius: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return labels


# The slim preset with even narrower heads: the same code paths, a fraction of the time.
TINY = {
    "fpn_channels": 16,
    "representation_size": 32,
    "mask_head_channels": 8,
    "center_head_channels": 8,
    "attention_channels": 8,
}


def grid_sample(name: str, n_side: int = 4, size: int = 64, radius: int = 5) -> Sample:
    step = size // n_side
    centres = [
        (step // 2 + i * step, step // 2 + j * step) for i in range(n_side) for j in range(n_side)
    ]
    labels = disk_labels((size, size), centres, radius)
    image = np.where(labels > 0, 200, 20).astype(np.uint8)
    return Sample(name, image, labels)


@pytest.fixture
def tiny_split(tmp_path):
    """A split folder of 3 images with 16 disk nuclei each."""
    folder = tmp_path / "split"
    write_split(folder, [grid_sample(f"img{k:03d}") for k in range(3)])
    return folder


def dry_run(tmp_path: Path, config: dict, *args: str, base: Path | None = None) -> str:
    """``snakemake -n`` of the workflow with ``config`` (written to ``tmp_path``, after ``base``
    when given): the jobs it would run, as Snakemake prints them; fails the test on an error."""
    import subprocess
    import sys

    import yaml

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "dry_run.yaml").write_text(yaml.safe_dump(config))
    configs = [*([str(base)] if base else []), str(tmp_path / "dry_run.yaml")]
    out = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "-s", str(root / "workflow" / "Snakefile")),
            *("-n", "--configfile", *configs, "--cores", "1", *args),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout
