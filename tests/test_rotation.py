"""Key rotation re-encrypts the vault; participant_key values do not change."""

from __future__ import annotations

import duckdb
import pytest
from conftest import FIXTURES, land
from intake_rows import export, person

from ingestion.ingest import ingest_landing
from ingestion.rotation import rotate_key
from ingestion.settings import ConfigError, load_settings
from ingestion.vault import open_vault


def keys(settings):
    conn = open_vault(settings, read_only=True)
    try:
        return conn.execute("select participant_key('1'), count(*) from events.events").fetchone()
    finally:
        conn.close()


def test_rotation_with_an_environment_secret(wh, monkeypatch):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person("1"), person("2")]))
    ingest_landing(wh)
    before = keys(wh)
    with pytest.raises(ConfigError):
        rotate_key(wh, None)  # with ALLIANCE_SECRET_KEY, the new secret must be given
    rotate_key(wh, "a-brand-new-secret-0123456789")
    with pytest.raises(ConfigError):
        open_vault(wh, read_only=True)  # the old secret no longer opens it
    monkeypatch.setenv("ALLIANCE_SECRET_KEY", "a-brand-new-secret-0123456789")
    after_settings = load_settings()
    assert keys(after_settings) == before  # same events, same participant_key
    with pytest.raises(duckdb.Error):
        duckdb.connect(str(wh.vault_path), read_only=True)


def test_rotation_with_a_key_file(tmp_path, monkeypatch):
    monkeypatch.delenv("ALLIANCE_SECRET_KEY", raising=False)
    monkeypatch.setenv("ALLIANCE_WAREHOUSE_DIR", str(tmp_path / "wh"))
    monkeypatch.setenv("ALLIANCE_LANDING_DIR", str(tmp_path / "landing"))
    settings = load_settings()
    land(settings, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(settings, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person("1")]))
    ingest_landing(settings)
    before = keys(settings)
    old_secret = (tmp_path / "wh" / ".secret.key").read_text()
    rotate_key(settings, None)
    assert (tmp_path / "wh" / ".secret.key").read_text() != old_secret
    assert (tmp_path / "wh" / ".secret.key.previous").read_text() == old_secret
    assert keys(load_settings()) == before
