"""Where the shared real data lives (../shared/data next to the repository), for tests using it.

Real files are never copied into the repository (licences), so tests read them in place and
skip, saying why, when the folder is absent; they never pass silently without it. Under CI
(``CI=true`` in the environment) a missing folder fails them instead: a CI run that skipped
the real-data tests would look green without having checked them. Use either
``require_real_data("kumar-partial")`` inside a test, or the ``real_data`` fixture, imported
into the test module (``from tests.realdata import real_data  # noqa: F401``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA: Path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KUMAR: Path = SHARED_DATA / "kumar-partial"  # images/*.tif (RGB H&E), annotations/*.xml
DSB: Path = SHARED_DATA / "dsb-fluo"  # images/*.tif (grey), labels/*.tif (uint16 instances)


def require_real_data(*parts: str) -> Path:
    """``SHARED_DATA / parts``; when it is missing, skip the calling test with the reason (fail
    it under CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        reason = (
            f"../shared/data not found: real-data tests need the shared folder {path} "
            "(real images kept outside the repository; see its README.md)"
        )
        if in_ci():
            pytest.fail(f"{reason}; CI=true, so this fails instead of skipping")
        pytest.skip(reason)
    return path


def in_ci() -> bool:
    """Whether the environment says this is a CI run (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture
def real_data() -> Path:
    """The shared data folder; the test is skipped (failed under CI), with the reason, when it
    is missing."""
    return require_real_data()
