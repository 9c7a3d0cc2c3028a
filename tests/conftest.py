"""Shared fixtures: an isolated warehouse (landing, warehouse folder, secret) per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
SECRET = "test-secret-0123456789-abcdef"


@pytest.fixture
def wh(tmp_path, monkeypatch):
    """Settings for a fresh warehouse in tmp_path."""
    landing = tmp_path / "landing"
    warehouse = tmp_path / "warehouse"
    landing.mkdir()
    monkeypatch.setenv("ALLIANCE_LANDING_DIR", str(landing))
    monkeypatch.setenv("ALLIANCE_WAREHOUSE_DIR", str(warehouse))
    monkeypatch.setenv("ALLIANCE_SECRET_KEY", SECRET)
    for var in ("ALLIANCE_SITE_TZ", "ALLIANCE_STUDY_PROFILE", "ALLIANCE_MIN_CELL", "ALLIANCE_K_ANON"):
        monkeypatch.delenv(var, raising=False)
    from ingestion.settings import load_settings

    return load_settings()


def land(settings, source: str, name: str, content: bytes | str | Path) -> Path:
    folder = settings.landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, Path):
        shutil.copyfile(content, path)
    else:
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path
