"""The study profile held against the intake data dictionary in effect, before anything is written.

The dictionary in effect is the one the next ingest will leave as the latest:
the last new dictionary landed in ``intake/`` (in the order ingest applies
them), else the latest the vault holds. ``alliance-wh run`` and
``alliance-wh check-profile`` call :func:`checked_profile` first; every
problem is reported at once and nothing is written (exit 2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from ingestion import redcap
from ingestion.profile import (
    DictionaryView,
    ProfileError,
    StudyProfile,
    check_profile,
    load_profile,
    resolve_codes,
)
from ingestion.readers import ReadError, read_csv_strings
from ingestion.settings import ConfigError, Settings


def _landed_dictionaries(settings: Settings) -> list[Path]:
    folder = settings.landing_dir / "intake"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and redcap.is_dictionary_name(p.name)]
    return sorted(found, key=lambda p: redcap.dictionary_order(p.name))


def _held(conn: duckdb.DuckDBPyConnection | None, data: bytes) -> bool:
    if conn is None:
        return False
    sha = hashlib.sha256(data).hexdigest()
    return bool(conn.execute("select count(*) from events.batches where sha256 = ?", [sha]).fetchone()[0])


def _vault_reader(settings: Settings) -> duckdb.DuckDBPyConnection | None:
    """The vault, read-only, when it exists and the secret opens it (else None: nothing is held)."""
    if not settings.vault_path.exists() or not settings.secret_source:
        return None
    from ingestion.vault import open_vault

    try:
        return open_vault(settings, read_only=True)
    except (duckdb.Error, ConfigError):
        return None


def dictionary_in_effect(settings: Settings) -> DictionaryView | None:
    """The intake dictionary the next build will label with (None: no dictionary anywhere)."""
    conn = _vault_reader(settings)
    try:
        for path in reversed(_landed_dictionaries(settings)):
            data = path.read_bytes()
            if _held(conn, data):
                break  # this one and every earlier one are held: the vault's latest is in effect
            try:
                return DictionaryView.of(f"intake/{path.name}", redcap.parse_dictionary(data))
            except ReadError:
                continue  # ingest quarantines it with its reason; the one before stays in effect
        held = redcap.latest_dictionary(conn, "intake") if conn is not None else None
        return None if held is None else DictionaryView.of("the intake dictionary held in the vault", held)
    finally:
        if conn is not None:
            conn.close()


def _newest_snapshot(settings: Settings) -> Path | None:
    folder = settings.landing_dir / "intake"
    if not folder.is_dir():
        return None
    timed = [(t, p) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             if (t := redcap.snapshot_export_time(p.name, settings.site_tz)) is not None]
    return max(timed)[1] if timed else None


def event_problems(settings: Settings, profile: StudyProfile) -> list[str]:
    """A longitudinal export (redcap_event_name) needs `intake.event`, naming events it holds."""
    path = _newest_snapshot(settings)
    if path is None:
        return []
    try:
        export = read_csv_strings(path.read_bytes(), "REDCap export")
    except ReadError:
        return []  # ingest quarantines it with its reason
    if redcap.EVENT_NAME not in export.columns:
        return []
    where = profile.path.name if profile.path else "profile"
    held = sorted(export[redcap.EVENT_NAME].drop_nulls().str.strip_chars().unique().to_list())
    listed = ", ".join(held[:8]) + (", ..." if len(held) > 8 else "")
    if not profile.intake_events:
        return [f"{where}: intake.event: intake/{path.name} is longitudinal (redcap_event_name) but the profile "
                f"names no intake event; expected the event(s) holding the intake fields, among: {listed}"]
    return [f"{where}: intake.event: `{e}` is not an event of intake/{path.name} (its events: {listed})"
            for e in profile.intake_events if e not in held]


def checked_profile(settings: Settings, require_dictionary: bool = False) -> StudyProfile:
    """The study profile, validated and held against the dictionary in effect; raises ProfileError."""
    profile = load_profile(settings.study_profile)
    dictionary = dictionary_in_effect(settings)
    if dictionary is None:
        if require_dictionary:
            raise ProfileError([f"{settings.study_profile.name}: no intake data dictionary has landed "
                                f"(in {settings.landing_dir / 'intake'}) to check the profile against"])
        return profile
    problems = check_profile(profile, dictionary) + event_problems(settings, profile)
    if problems:
        raise ProfileError(problems)
    return profile


def resolved_codes(conn: duckdb.DuckDBPyConnection, profile: StudyProfile) -> dict[str, dict[str, str]]:
    """The profile's codes resolved against the latest intake dictionary the vault holds (for dbt)."""
    held = redcap.latest_dictionary(conn, "intake")
    if held is None:
        return dict(profile.codes)
    resolved, problems = resolve_codes(profile, DictionaryView.of("the intake dictionary held in the vault", held))
    if problems:
        raise ProfileError(problems)
    return resolved
