"""The thin slice end to end: a generated study -> vault -> dbt -> guard -> analyst database.

The published numbers are checked against an independent computation from the
landing files themselves (polars), following CONTRACT 3.1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import warehouse_env

from ingestion.synth import generate_study
from orchestration.cli import run_pipeline

pytestmark = pytest.mark.slow
TZ = "America/New_York"


def latest_intake(landing: Path) -> pl.DataFrame:
    snaps = sorted((landing / "intake").glob("*_DATA_*.csv"))
    return pl.read_csv(snaps[-1], infer_schema=False)


def key(settings, record_id: str) -> str:
    return hmac.new(settings.participant_hash_key.encode(), record_id.encode(), hashlib.sha256).hexdigest()[:24]


def expected_sessions_attended(landing: Path, intake: pl.DataFrame) -> dict[str, int]:
    lines = []
    for f in sorted((landing / "sessions").glob("*.jsonl")):
        lines += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    ev = pl.DataFrame(lines, infer_schema_length=None).unique(subset="event_id", keep="first")
    voided = set(ev.filter(pl.col("event_type") == "event_voided")["voids_event_id"].to_list())
    ev = ev.filter((pl.col("event_type") == "session_attended") & ~pl.col("event_id").is_in(list(voided)))
    ev = ev.with_columns(
        pl.col("occurred_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%:z").dt.convert_time_zone(TZ).dt.date().alias("day")
    )
    people = intake.filter(
        pl.col("consent_date").is_not_null() & pl.col("rand_arm").is_not_null() & pl.col("rand_date").is_not_null()
        & ~((pl.col("withdrawn") == "1") & (pl.col("withdrawal_scope") == "2"))
    ).select(
        "record_id", "rand_arm",
        pl.col("rand_date").str.to_date().alias("rand_date"),
        pl.when((pl.col("withdrawn") == "1") & (pl.col("withdrawal_scope") == "1"))
        .then(pl.col("withdrawal_date").str.to_date()).alias("censor"),
    )
    service = {"1": "case_management", "2": "motivational_interviewing"}
    j = ev.join(people, on="record_id").with_columns(
        (pl.col("day") - pl.col("rand_date")).dt.total_days().alias("d"),
        pl.col("rand_arm").replace_strict(service, default=None).alias("own"),
    ).filter(
        (pl.col("service") == pl.col("own")) & pl.col("d").is_between(0, 60)
        & (pl.col("censor").is_null() | (pl.col("day") <= pl.col("censor")))
    )
    counts = j.group_by("record_id").agg(pl.col("session_number").n_unique().alias("n"))
    out = {r: 0 for r in people["record_id"].to_list()}
    out.update(dict(counts.iter_rows()))
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One generated study, run twice; yields (settings, first-run code, second-run code)."""
    tmp = tmp_path_factory.mktemp("pipeline")
    with warehouse_env(tmp, "pipeline-test-secret-123456"):
        generate_study(tmp / "landing", 300, seed=7)
        from ingestion.settings import load_settings

        settings = load_settings()
        first = run_pipeline(quiet=True)
        conn = duckdb.connect(str(settings.analytics_path), read_only=True)
        position_1 = conn.execute("select event_store_position from build_info").fetchone()[0]
        conn.close()
        second = run_pipeline(quiet=True)
        yield settings, first, second, position_1


def test_the_run_publishes_and_a_second_run_appends_nothing(published):
    settings, first, second, position_1 = published
    assert (first, second) == (0, 0)
    conn = duckdb.connect(str(settings.analytics_path), read_only=True)
    # the second run appended nothing but the erasure events the first run recorded after publishing
    erased = erased_people(settings).height
    assert conn.execute("select event_store_position from build_info").fetchone()[0] == position_1 + erased
    tables = {r[0] for r in conn.execute("select table_name from information_schema.tables").fetchall()}
    assert tables == {"participants", "sessions", "engagement", "retention", "alliance_scores", "alliance_trajectory",
                      "coded_units", "code_matrix", "coder_agreement", "table1", "consort_flow", "data_quality",
                      "build_info"}
    assert conn.execute("select count(*) from data_quality where not passed").fetchone()[0] == 0
    last_run = sorted(settings.runs_dir.glob("*/ingest.json"), key=lambda p: p.stat().st_mtime)[-1]
    assert json.loads(last_run.read_text())["files"] == []


def test_every_consented_participant_appears_once_and_the_unconsented_nowhere(published):
    settings = published[0]
    intake = latest_intake(settings.landing_dir)
    consented = intake.filter(pl.col("consent_date").is_not_null())
    erased = consented.filter((pl.col("withdrawn") == "1") & (pl.col("withdrawal_scope") == "2"))
    assert erased.height >= 1  # the generator's scope-2 withdrawal
    expected = {key(settings, r) for r in consented["record_id"].to_list()} - \
        {key(settings, r) for r in erased["record_id"].to_list()}
    conn = duckdb.connect(str(settings.analytics_path), read_only=True)
    keys = [r[0] for r in conn.execute("select participant_key from participants").fetchall()]
    assert len(keys) == len(set(keys)) and set(keys) == expected
    outsiders = {key(settings, r) for r in intake.filter(pl.col("consent_date").is_null())["record_id"].to_list()}
    outsiders |= {key(settings, r) for r in erased["record_id"].to_list()}
    assert outsiders
    for table in ("participants", "engagement", "sessions", "retention", "alliance_scores", "coded_units"):
        found = {r[0] for r in conn.execute(f"select participant_key from {table}").fetchall()}
        assert not (found & outsiders)


def test_no_identifier_value_or_record_id_reaches_the_analyst_database(published):
    settings = published[0]
    intake = latest_intake(settings.landing_dir)
    values = set()
    for col in ("first_name", "last_name", "phone", "email", "street_address", "dob"):
        values |= {v for v in intake[col].drop_nulls().to_list() if len(v) >= 4}
    # A surname that is also a word of the dictionary's labels (Black, White) is not a leak
    # when it appears inside "Black or African American".
    dictionary = (settings.landing_dir / "intake" / "data_dictionary.csv").read_text()
    label_words = {w.strip(",.|()\"") for w in dictionary.split()}
    values = {v for v in values if v not in label_words}
    assert values
    # every byte of every file the warehouse wrote: vault, build database, analyst database,
    # run results, logs (the vault and build files are encrypted)
    written = [p for p in settings.warehouse_dir.rglob("*") if p.is_file() and p.name != ".secret.key"]
    assert settings.vault_path in written
    # the build database is kept for incremental builds, encrypted with its own key
    assert settings.build_path in written
    with pytest.raises(duckdb.Error):
        duckdb.connect(str(settings.build_path), read_only=True).execute("select 1 from int_session_events")
    for path in written:
        raw = path.read_bytes()
        # The vault and build files are ciphertext: 4 random bytes spell a 4-letter name now and then
        # (a 10 MB file holds ~0.2% odds per value), so there only values of 6+ characters prove anything.
        shortest = 6 if path in (settings.vault_path, settings.build_path) else 4
        leaked = [v for v in values if len(v) >= shortest and v.encode() in raw]
        assert not leaked, f"identifier values readable in {path.name}"
    conn = duckdb.connect(str(settings.analytics_path), read_only=True)
    columns = {r[0] for r in conn.execute("select column_name from information_schema.columns").fetchall()}
    assert not columns & {"record_id", "first_name", "last_name", "phone", "email", "dob", "staff_notes"}


def test_engagement_matches_an_independent_count_from_the_landing_files(published):
    settings = published[0]
    intake = latest_intake(settings.landing_dir)
    expected = expected_sessions_attended(settings.landing_dir, intake)
    conn = duckdb.connect(str(settings.analytics_path), read_only=True)
    got = dict(conn.execute("select participant_key, sessions_attended from engagement").fetchall())
    assert len(got) == len(expected)
    assert got == {key(settings, r): n for r, n in expected.items()}
    arms = dict(conn.execute("select arm, count(*) from engagement group by arm").fetchall())
    assert set(arms) == {"SBCM", "MI", "Standard"} and max(arms.values()) - min(arms.values()) <= 12
    assert conn.execute("select count(*) from engagement where arm = 'Standard' and sessions_attended > 0"
                        ).fetchone()[0] == 0
    assert conn.execute("select bool_and(attended_any = (sessions_attended >= 1)) from engagement").fetchone()[0]


def test_data_cut_is_the_latest_counted_session_event(published):
    settings = published[0]
    conn = duckdb.connect(str(settings.analytics_path), read_only=True)
    cut = conn.execute(f"select cast(timezone('{TZ}', data_cut) as date) from build_info").fetchone()[0]
    assert isinstance(cut, date) and date(2024, 1, 1) < cut < date(2030, 1, 1)


def test_a_blocking_failure_keeps_the_previous_database(published, monkeypatch):
    settings = published[0]
    before = settings.analytics_path.read_bytes()
    from expectations.checks import BLOCKING, Check
    from expectations.consent import rule_1_suite

    bad = Check(name="consent_rule_1_injected_violation", area="consent", rule="1", severity=BLOCKING,
                asset="participants", suite=rule_1_suite,
                query="select 'participants' as mart, false as is_consented, false as is_erased")
    import expectations.runner
    import orchestration.defs.publish.assets
    import orchestration.defs.quality.checks
    import orchestration.steps.quality

    patched = lambda: [*expectations.runner.all_checks.__wrapped__(), bad]  # noqa: E731
    for module in (orchestration.defs.quality.checks, orchestration.steps.quality):
        monkeypatch.setattr(module, "all_checks", patched)
    code = run_pipeline(quiet=True)
    assert code == 1
    assert settings.analytics_path.read_bytes() == before
    blocked = sorted(settings.runs_dir.glob("*/data_quality.json"), key=lambda p: p.stat().st_mtime)[-1]
    result = json.loads(blocked.read_text())
    assert result["published"] is False
    assert any(c["check_name"] == bad.name and not c["passed"] for c in result["checks"])


def erased_people(settings) -> pl.DataFrame:
    intake = latest_intake(settings.landing_dir)
    return intake.filter((pl.col("withdrawn") == "1") & (pl.col("withdrawal_scope") == "2"))


def test_scope_2_withdrawals_are_erased_from_every_table_of_the_vault(published):
    from ingestion.vault import open_vault

    settings = published[0]
    gone = erased_people(settings)["record_id"].to_list()
    assert gone
    conn = open_vault(settings, read_only=True)
    try:
        conn.register("gone", pl.DataFrame({"record_id": gone}))
        assert conn.execute("select count(*) from events.events where stream in "
                            "(select 'participant/' || record_id from gone)").fetchone()[0] == 0
        assert conn.execute("select count(*) from events.events where event_type = 'participant_erased'"
                            ).fetchone()[0] == len(gone)
        for table in ("identifier_values", "session_notes", "pseudonyms"):
            n = conn.execute(f"select count(*) from identified.{table} where record_id in (select record_id from gone)"
                             ).fetchone()[0]
            assert n == 0, table
        assert conn.execute("select count(*) from events.events where event_type = 'coded_unit_recorded' and "
                            "((payload->>'record_id') in (select record_id from gone))").fetchone()[0] == 0
        # every text column of every table: none holds their record_id as a value
        tables = conn.execute("select schema_name, table_name from duckdb_tables() where database_name = 'vault'"
                              ).fetchall()
        for schema, table in tables:
            cols = [r[0] for r in conn.execute(
                "select column_name from duckdb_columns() where database_name = 'vault' and schema_name = ? "
                "and table_name = ? and data_type = 'VARCHAR'", [schema, table]).fetchall()]
            for col in cols:
                n = conn.execute(f'select count(*) from {schema}."{table}" where "{col}" in '
                                 "(select record_id from gone)").fetchone()[0]
                assert n == 0, f"{schema}.{table}.{col}"
    finally:
        conn.close()


def test_scope_2_identifier_values_are_in_no_file_the_warehouse_wrote(published):
    settings = published[0]
    intake = latest_intake(settings.landing_dir)
    gone = erased_people(settings)
    others = intake.join(gone.select("record_id"), on="record_id", how="anti")
    mine = set()
    for col in ("first_name", "last_name", "phone", "email", "street_address"):
        mine |= set(gone[col].drop_nulls().to_list()) - set(others[col].drop_nulls().to_list())
    mine = {v for v in mine if len(v) >= 5}
    assert mine
    for path in (p for p in settings.warehouse_dir.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        assert not [v for v in mine if v.encode() in raw], path.name
    # and the vault opened with the key holds none of them either
    from ingestion.vault import open_vault

    conn = open_vault(settings, read_only=True)
    try:
        held = {r[0] for r in conn.execute("select value from identified.identifier_values").fetchall()}
    finally:
        conn.close()
    assert not (held & mine)


def test_a_later_snapshot_still_holding_them_does_not_bring_them_back(published):
    import shutil

    from orchestration.cli import main

    settings = published[0]
    snaps = sorted((settings.landing_dir / "intake").glob("*_DATA_*.csv"))
    later = snaps[-1].with_name("ALLIANCE_DATA_2030-01-01_0900.csv")
    shutil.copyfile(snaps[-1], later)
    try:
        assert run_pipeline(quiet=True) == 0
        conn = duckdb.connect(str(settings.analytics_path), read_only=True)
        keys = {r[0] for r in conn.execute("select participant_key from participants").fetchall()}
        assert not keys & {key(settings, r) for r in erased_people(settings)["record_id"].to_list()}
        flow = dict(conn.execute("select stage || '/' || arm, n from consort_flow where reason is null").fetchall())
        assert flow["assessed/All"] == latest_intake(settings.landing_dir).height
    finally:
        later.unlink()
    assert main(["status"]) == 0
