"""Reading a JSON file a user handed us: a missing or unparsable one is an error naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nuclei_pa.errors import InputError


def read_json(path: str | Path) -> Any:
    """The parsed contents of ``path``; :class:`InputError` if it is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
