"""Checkpoints: atomic, plain-typed (``torch.load(weights_only=True)``), each one resumable.

``ckpt_{iteration:06d}.pt`` holds the weights, the optimiser, the iteration, the RNG and sampler
states, the model configuration to rebuild the network (``model_config``, with ``init: none`` so
prediction never downloads or needs the initial weights) and the one it was trained from
(``trained_model_config``), and the training configuration. ``last.pt`` is a hard link to the
newest one (a copy where links are unsupported), replaced atomically after it, so it always
names a complete checkpoint and costs no disk. Only the newest numbered checkpoint keeps the
optimiser (the momentum, as large as the weights): resuming needs it from the newest alone, so
older ones are rewritten without it, halving the disk a run takes.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_path
from nuclei_pa.io.torchfile import load_torch_file
from nuclei_pa.model import ModelConfig

LAST = "last.pt"
FORMAT = "nuclei-pa-checkpoint/1"
_NAME = re.compile(r"ckpt_(\d{6,})\.pt")


def checkpoint_path(out_dir: str | Path, iteration: int) -> Path:
    return Path(out_dir) / f"ckpt_{iteration:06d}.pt"


def list_checkpoints(out_dir: str | Path) -> dict[int, Path]:
    """Numbered checkpoints in ``out_dir`` by iteration (temporary files excluded)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return {}
    found = {}
    for p in out_dir.iterdir():
        m = _NAME.fullmatch(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def remove_stale_temporaries(out_dir: str | Path) -> None:
    """Delete half-written files a killed run left (named as :func:`atomic_path` names them)."""
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        for pattern in (".ckpt_*.tmp.pt", f".{Path(LAST).stem}.*.tmp.pt", ".train_log.*.tmp.csv"):
            for p in out_dir.glob(pattern):
                p.unlink(missing_ok=True)


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write atomically: a kill at any moment leaves the old file or the new one, never half."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # temp files are private; a checkpoint is an ordinary output


def point_last(checkpoint: str | Path) -> Path:
    """Make ``last.pt`` beside ``checkpoint`` the same file, atomically."""
    checkpoint = Path(checkpoint)
    last = checkpoint.with_name(LAST)
    with atomic_path(last) as tmp:
        tmp.unlink()
        try:
            os.link(checkpoint, tmp)
        except OSError:
            shutil.copyfile(checkpoint, tmp)
    return last


def drop_optimizer(path: str | Path) -> None:
    """Rewrite an older checkpoint without its optimiser state (atomically; no-op if gone)."""
    state = load(path)
    if state.pop("optimizer", None) is not None:
        save(path, state)


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents on CPU; an unreadable file is an :class:`InputError` naming it."""
    state = load_torch_file(path)
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(path, "not a nuclei-pa checkpoint (no 'model' entry)")
    return state


def rebuild_config(cfg: ModelConfig) -> ModelConfig:
    """The configuration that rebuilds the trained network without its initial weights.

    ``norm: auto`` depends on ``init`` (group norm from scratch, frozen batch norm when
    pretrained), so it is resolved before ``init`` becomes ``none``. Which stages were frozen
    in training says nothing about the trained network (and ``init: none`` with frozen stages
    is refused as random weights that cannot learn), so the rebuilt model trains every stage.
    """
    from nuclei_pa.model.build import resolve_norm  # a checkpoint init keeps its own norm

    return dataclasses.replace(cfg, init="none", norm=resolve_norm(cfg), trainable_layers=5)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states, as plain types and tensors."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def _tuples(value: Any) -> Any:
    """random.setstate wants the nested tuples it gave, whatever a round trip made of them."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value
