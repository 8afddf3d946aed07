"""Send a workflow job's prints, warnings and progress bars to its log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def redirect_output(log_path: str | Path) -> None:
    """Point stdout, stderr and the library's log lines (INFO and up: what a converter skipped,
    which listed images were missing) at ``log_path`` for the rest of the process."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO, stream=stream, format="%(levelname)s %(name)s: %(message)s", force=True
    )
