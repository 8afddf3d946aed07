"""The real-data guard: a missing ../shared/data skips its tests locally and fails them under CI."""

from __future__ import annotations

import pytest

from tests.realdata import require_real_data

MISSING = "no-such-folder-anywhere"


def test_missing_real_data_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="shared/data not found"):
        require_real_data(MISSING)


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_missing_real_data_fails_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI=true, so this fails"):
        require_real_data(MISSING)


def test_present_real_data_is_returned_under_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr("tests.realdata.SHARED_DATA", tmp_path)
    (tmp_path / "set").mkdir()
    assert require_real_data("set") == tmp_path / "set"
