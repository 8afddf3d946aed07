"""Checkpoints: atomic, plain-typed (``torch.load(weights_only=True)``), resumable.

``ckpt_{iteration:06d}.pt`` holds the weights an evaluation needs; ``last.pt`` additionally holds
the optimiser and RNG state to resume from. ``last.pt`` is written after the numbered file, so a
kill between the two only means redoing the last segment, which is deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nuclei_pa.errors import InputError
from nuclei_pa.io.atomic import atomic_path

LAST = "last.pt"


def checkpoint_path(out_dir: str | Path, iteration: int) -> Path:
    return Path(out_dir) / f"ckpt_{iteration:06d}.pt"


def save(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"not a readable checkpoint ({type(exc).__name__}: {exc})") from exc


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
