"""Reading PyTorch files safely: ``weights_only`` (no code runs) and one error naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nuclei_pa.errors import InputError


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """The contents of a ``torch.save`` file on the CPU; a missing or unreadable file is an
    :class:`InputError` saying which ``what`` could not be read."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and torch errors all mean "not such a file"
        # torch's own message advises retrying with weights_only=False, i.e. running whatever
        # code the file holds: never repeated here, since that is exactly what is refused
        if "Unsupported global" in str(exc):  # a GLOBAL opcode: a class or function to import
            reason = "it holds Python objects or code, which are never loaded"
        else:
            reason = "it is corrupt, truncated or another kind of file"
        raise InputError(path, f"not a nuclei-pa {what}: {reason}") from exc
