"""Where the shared real data lives (../shared/data next to the repository), for tests using it.

Real files are never copied into the repository (licences), so tests read them in place and
skip, saying why, when the folder is absent; they never pass silently without it. Use either
``require_real_data("kumar-partial")`` inside a test, or the ``real_data`` fixture, imported
into the test module (``from tests.realdata import real_data  # noqa: F401``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA: Path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KUMAR: Path = SHARED_DATA / "kumar-partial"  # images/*.tif (RGB H&E), annotations/*.xml
DSB: Path = SHARED_DATA / "dsb-fluo"  # images/*.tif (grey), labels/*.tif (uint16 instances)


def require_real_data(*parts: str) -> Path:
    """``SHARED_DATA / parts``, or skip the calling test with the reason when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"../shared/data not found: real-data tests need the shared folder {path} "
            "(real images kept outside the repository; see its README.md)"
        )
    return path


@pytest.fixture
def real_data() -> Path:
    """The shared data folder; the test is skipped, with the reason, when it is missing."""
    return require_real_data()
