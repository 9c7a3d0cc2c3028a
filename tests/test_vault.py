"""The identified store is encrypted at rest and the secret is handled with care."""

from __future__ import annotations

import stat

import duckdb
import pytest
from conftest import FIXTURES, land
from intake_rows import export, person

from ingestion.ingest import ingest_landing
from ingestion.settings import ConfigError, load_settings
from ingestion.vault import open_vault


def test_vault_is_unreadable_without_the_secret_and_holds_no_plain_identifier(wh, monkeypatch):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person("1", staff_notes="Zanzibarite")]))
    ingest_landing(wh)
    raw = wh.vault_path.read_bytes()
    for value in (b"Zebulon1", b"Quarternain1", b"Zanzibarite", b"555-0101"):
        assert value not in raw
    with pytest.raises(duckdb.Error):
        duckdb.connect(str(wh.vault_path), read_only=True)
    monkeypatch.setenv("ALLIANCE_SECRET_KEY", "another-secret-of-enough-length")
    with pytest.raises(ConfigError):
        open_vault(load_settings(), read_only=True)
    assert stat.S_IMODE(wh.vault_path.stat().st_mode) == 0o600


def test_a_key_file_is_created_owner_only_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("ALLIANCE_SECRET_KEY", raising=False)
    monkeypatch.setenv("ALLIANCE_WAREHOUSE_DIR", str(tmp_path / "wh"))
    first = load_settings()
    key_file = tmp_path / "wh" / ".secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_settings().vault_key == first.vault_key
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_settings()


@pytest.mark.parametrize("var, value", [
    ("ALLIANCE_SECRET_KEY", "short"), ("ALLIANCE_SITE_TZ", "Mars/Olympus"), ("ALLIANCE_MIN_CELL", "ten"),
    ("ALLIANCE_STUDY_PROFILE", "/nonexistent/profile.yaml"),
])
def test_bad_settings_are_configuration_errors(wh, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError):
        load_settings()
