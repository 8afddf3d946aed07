"""One exception type for bad user input, so the CLI can report it cleanly and exit non-zero."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A user-supplied file or value is unusable; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class ConfigError(ValueError):
    """A configuration problem; the message starts with the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config key '{key}': {problem}")
