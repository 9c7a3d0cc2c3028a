"""Incremental builds give the numbers of a full rebuild (issue 7).

The hand-built fixture study lands in two nights: night 1 holds the first half of
its session log and an intake snapshot; night 2 the rest of the log (voids of
night-1 events among it) and a later snapshot with one correction. The second run
builds incrementally (its incremental models parse only night 2's events, after the
erasure of night 1 purged the kept build database); every published table must then
equal, row for row, a full rebuild of the same event store and a single run over
all the files at once.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import warehouse_env
from test_fixture_study import (
    ALLIANCE_COLUMNS,
    SECRET,
    alliance_csv,
    intake_csv,
    session_lines,
    survey,
    write_landing,
)

from orchestration.cli import run_pipeline

pytestmark = pytest.mark.slow


def published_tables(settings) -> dict[str, list[tuple]]:
    conn = duckdb.connect(str(settings.analytics_path), read_only=True)
    try:
        out = {}
        for (name,) in conn.execute("select table_name from duckdb_tables() order by 1").fetchall():
            cols = [c for (c,) in conn.execute(
                "select column_name from duckdb_columns() where table_name = ? order by column_index", [name]).fetchall()
                if c not in ("built_at", "detail")]  # the wall clock of the build; run-specific check text
            if name == "data_quality":
                cols = [c for c in cols if c in ("check_name", "passed", "failing_rows")]
            out[name] = conn.execute(f"select {', '.join(cols)} from {name} order by all").fetchall()
        return out
    finally:
        conn.close()


def last_build(settings) -> dict:
    runs = sorted(settings.runs_dir.glob("*/build.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(runs[-1].read_text())


def corrected_intake() -> bytes:
    df = pl.read_csv(io.BytesIO(intake_csv()), infer_schema=False)
    df = df.with_columns(pl.when(pl.col("record_id") == "1015").then(pl.lit("39")).otherwise(pl.col("age")).alias("age"))
    return df.write_csv().encode()


def later_alliance() -> bytes:
    """Night 2's alliance export: a correction and a new survey (a removal of one of these ten
    surveys would be more than 5% of the records: a suspect snapshot, held back)."""
    df = pl.read_csv(io.BytesIO(alliance_csv()), infer_schema=False)
    first_of_a2 = (pl.col("record_id") == "1001") & (pl.col("redcap_repeat_instrument") == "wai_client") & (
        pl.col("redcap_repeat_instance") == "2")
    df = df.with_columns(pl.when(first_of_a2).then(pl.lit("5")).otherwise(pl.col("waic_4")).alias("waic_4"))
    new = survey("1003", "wai_staff", 1, "2025-03-20", 2, goal=(4, 4, 4, 4), task=(3, 3, 3, 3), bond=(5, 5, 5, 5))
    df = pl.concat([df, pl.DataFrame([new], schema={c: pl.String for c in ALLIANCE_COLUMNS})])
    return df.write_csv().encode()


def land_night(landing: Path, night: int) -> None:
    lines = session_lines()
    half = len(lines) // 2
    # The participant who withdraws all data (1017) is erased after night 1 with the facts held
    # then (CONSORT's received_intervention); later lines of theirs would be refused. So all of
    # their lines land on night 1, for the one-run comparison to hold.
    first = lines[:half] + [ln for ln in lines[half:] if '"1017"' in ln]
    if night == 1:
        write_landing(landing)
        (landing / "sessions" / "sessions_2025-06-30.jsonl").write_text("\n".join(first) + "\n")
    else:
        rest = [ln for ln in lines[half:] if '"1017"' not in ln]
        (landing / "sessions" / "sessions_2025-07-01.jsonl").write_text("\n".join(rest) + "\n")
        (landing / "intake" / "ALLIANCE_DATA_2025-07-01_2305.csv").write_bytes(corrected_intake())
        (landing / "alliance" / "ALLIANCE_WAI_DATA_2025-07-01_2310.csv").write_bytes(later_alliance())


def kept_record_ids(settings) -> dict[str, set[str]]:
    """The participants each incremental model of the kept (encrypted) build database holds."""
    from ingestion.vault import attach_encrypted, secure_connection
    from orchestration.steps.dbt_setup import incremental_models

    conn = secure_connection()
    try:
        attach_encrypted(conn, settings.build_path, "kept", settings.build_key, read_only=True)
        held = {r[0] for r in conn.execute(
            "select table_name from duckdb_tables() where database_name = 'kept' and schema_name = 'main'").fetchall()}
        return {name: {r[0] for r in conn.execute(f'select distinct record_id from kept.main."{name}"').fetchall()}
                for name in incremental_models() if name in held}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    from ingestion.settings import load_settings

    tmp = tmp_path_factory.mktemp("incremental")
    out = {}
    with warehouse_env(tmp / "nightly", SECRET):
        settings = load_settings()
        land_night(settings.landing_dir, 1)
        assert run_pipeline(quiet=True) == 0
        out["night1"] = last_build(settings)
        kept = settings.build_path.exists()
        out["kept_record_ids"] = kept_record_ids(settings) if kept else {}
        out["night1_tables"] = published_tables(settings)
        land_night(settings.landing_dir, 2)
        assert run_pipeline(quiet=True) == 0
        out["night2"] = last_build(settings)
        out["kept_after_night1"] = kept
        out["incremental"] = published_tables(settings)
        assert run_pipeline(quiet=True, full_refresh=True) == 0
        out["refresh"] = last_build(settings)
        out["full_refresh"] = published_tables(settings)
    with warehouse_env(tmp / "once", SECRET):
        settings = load_settings()
        land_night(settings.landing_dir, 1)
        land_night(settings.landing_dir, 2)
        assert run_pipeline(quiet=True) == 0
        out["at_once"] = published_tables(settings)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def test_the_second_night_builds_incrementally_after_the_erasure_purge(builds):
    assert builds["night1"]["incremental"] is False  # a fresh warehouse
    assert builds["kept_after_night1"]  # purged of the erased participant, not deleted
    assert builds["night2"]["incremental"] is True
    assert builds["refresh"]["incremental"] is False
    # the event-level data tests of night 2 read only the events after night 1's build
    assert builds["night1"]["tested_after_seq"] == 0 and builds["refresh"]["tested_after_seq"] == 0
    assert builds["night2"]["tested_after_seq"] == builds["night1"]["event_store_position"] > 0


def test_the_erasure_purge_leaves_no_row_of_the_erased_participant_in_the_kept_build(builds):
    kept = builds["kept_record_ids"]
    assert {"int_session_events", "int_intake_field_events"} <= set(kept)
    assert all("1017" not in ids for ids in kept.values()), "an erased participant survived the purge"
    assert len(kept["int_session_events"]) >= 5 and "1015" in kept["int_intake_field_events"]  # the others kept


def test_incremental_and_full_refresh_publish_identical_tables(builds):
    inc, full = builds["incremental"], builds["full_refresh"]
    assert set(inc) == set(full) and {"participants", "sessions", "engagement", "retention", "table1"} <= set(inc)
    for name in sorted(inc):
        assert inc[name] == full[name], f"{name} differs between the incremental and the full build"


def test_two_nights_publish_what_one_run_over_all_files_publishes(builds):
    inc, once = builds["incremental"], builds["at_once"]
    for name in sorted(inc):
        if name == "build_info":  # positions differ: two nights hold more batches
            continue
        assert inc[name] == once[name], f"{name} differs between two nights and one run"
    # the corrections of night 2 reached the marts
    assert any(39 in row or "39" in row for row in inc["participants"])
    assert inc["alliance_scores"] != builds["night1_tables"]["alliance_scores"]


def test_event_level_data_tests_read_only_the_events_after_the_kept_build(tmp_path):
    """In an incremental build the tests of the event store's own rows read the new events only;
    tests of every other model read everything, and a build with tested_after_seq = 0 reads all."""
    import os
    import subprocess

    from ingestion.vault import attach_encrypted, secure_connection
    from orchestration.steps.dbt_setup import DBT_PROJECT_DIR, dbt_executable

    conn = secure_connection()
    try:  # empty encrypted databases for dbt to attach: compiling needs no data
        attach_encrypted(conn, tmp_path / "build.duckdb", "b", "build-key-0123456789")
        attach_encrypted(conn, tmp_path / "vault.duckdb", "v", "vault-key-0123456789")
    finally:
        conn.close()
    env = {**os.environ, "ALLIANCE_BUILD_DB": str(tmp_path / "build.duckdb"),
           "ALLIANCE_VAULT_DB": str(tmp_path / "vault.duckdb"),
           "DBT_ENV_SECRET_BUILD_KEY": "build-key-0123456789", "DBT_ENV_SECRET_VAULT_KEY": "vault-key-0123456789"}

    def compiled(after: int) -> dict[str, str]:
        target = tmp_path / f"target-{after}"
        subprocess.run([dbt_executable(), "compile", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
                        "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target),
                        "--vars", json.dumps({"tested_after_seq": after}),
                        "--select", "stg_sessions__session_attended,resource_type:test",
                        "participants,resource_type:test"],
                       env=env, cwd=DBT_PROJECT_DIR, check=True, capture_output=True)
        return {p.stem: p.read_text() for p in target.rglob("*.sql")}

    scoped, everything = compiled(4242), compiled(0)
    event_tests = [n for n in scoped if "stg_sessions__session_attended" in n]
    other_tests = [n for n in scoped if "participants" in n and "stg_" not in n]
    assert event_tests and other_tests and set(scoped) == set(everything)
    assert all("seq > 4242" in scoped[n] for n in event_tests)
    assert not any("seq > " in scoped[n] for n in other_tests)
    assert not any("seq > " in sql for sql in everything.values())
