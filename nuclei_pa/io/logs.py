"""Send a workflow job's prints, warnings and progress bars to its log file."""

from __future__ import annotations

import sys
from pathlib import Path


def redirect_output(log_path: str | Path) -> None:
    """Point stdout and stderr at ``log_path`` for the rest of the process (a job's lifetime)."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr = stream
