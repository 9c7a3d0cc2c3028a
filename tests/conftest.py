"""Shared fixtures: an isolated warehouse (landing, warehouse folder, secret) per test."""

from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def warehouse_env(tmp: Path, secret: str, **extra: str):
    """ALLIANCE_* variables for a warehouse in ``tmp`` (other settings at their defaults), restored after."""
    env = {"ALLIANCE_LANDING_DIR": str(tmp / "landing"), "ALLIANCE_WAREHOUSE_DIR": str(tmp / "warehouse"),
           "ALLIANCE_SECRET_KEY": secret, **extra}
    cleared = [k for k in ("ALLIANCE_SITE_TZ", "ALLIANCE_STUDY_PROFILE", "ALLIANCE_MIN_CELL", "ALLIANCE_K_ANON")
               if k not in env]
    saved = {k: os.environ.get(k) for k in (*env, *cleared)}
    os.environ.update(env)
    for k in cleared:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def vault_rows(settings, sql: str) -> list[tuple]:
    """The rows of a query on the vault, opened read-only."""
    from ingestion.vault import open_vault

    conn = open_vault(settings, read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
