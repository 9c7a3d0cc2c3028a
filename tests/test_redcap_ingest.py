"""REDCap intake: dictionary-driven parsing and snapshot diffing into change events."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES, SAMPLES, land, vault_rows
from intake_rows import export, person

from ingestion.ingest import accept_file, ingest_landing
from ingestion.redcap import parse_dictionary
from ingestion.vault import open_vault


def events(settings, where: str = "true") -> list[tuple]:
    conn = open_vault(settings, read_only=True)
    try:
        return conn.execute(
            f"select event_type, payload::varchar from events.events where {where} order by seq"
        ).fetchall()
    finally:
        conn.close()


def query(settings, sql: str) -> list[tuple]:
    return vault_rows(settings, sql)


def test_first_snapshot_records_every_row_and_keeps_identifiers_out_of_payloads(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv",
         export([person("1", staff_notes="called her at home"), person("2")]))
    report = ingest_landing(wh)
    assert [o.status for o in report.outcomes] == ["applied", "applied"]
    evs = events(wh)
    assert [e[0] for e in evs] == ["intake_recorded", "intake_recorded"]
    payload = json.loads(evs[0][1])
    assert payload["record_id"] == "1"
    assert payload["values"]["sex"] == "1" and payload["values"]["race___4"] == "1"
    for leaked in ("first_name", "last_name", "phone", "staff_notes"):
        assert leaked not in payload["values"]
    raw = " ".join(e[1] for e in evs)
    assert "Zebulon1" not in raw and "Quarternain1" not in raw and "555-01" not in raw and "at home" not in raw
    held = dict(((r, f), v) for r, f, v in query(
        wh, "select record_id, field, value from identified.identifier_values"))
    assert held[("1", "last_name")] == "Quarternain1"
    assert held[("1", "staff_notes")] == "called her at home"


def test_second_snapshot_gives_corrections_removals_and_new_records(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    rows = [person(str(i)) for i in range(1, 41)]
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export(rows))
    ingest_landing(wh)
    later = [person(str(i)) for i in range(1, 41) if i != 7]  # record 7 removed (1 of 40 = 2.5%)
    later[0] = person("1", age="41")  # a correction
    later.append(person("41"))  # a new record
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv", export(later))
    report = ingest_landing(wh)
    assert report.outcomes[0].status == "applied"
    new = events(wh, "occurred_at > '2025-03-07 00:00:00+00'")
    kinds = sorted((t, json.loads(p)["record_id"]) for t, p in new)
    assert kinds == [("intake_field_corrected", "1"), ("intake_record_removed", "7"), ("intake_recorded", "41")]
    corr = next(json.loads(p) for t, p in new if t == "intake_field_corrected")
    assert (corr["field"], corr["old"], corr["new"]) == ("age", "40", "41")
    # The same files again append nothing.
    again = ingest_landing(wh)
    assert again.outcomes == [] and again.unchanged == 3


def test_bom_crlf_quoted_newlines_and_cp1252_are_read_not_quarantined(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    rows = [person("1", staff_notes="line one\r\nline two"), person("2", staff_notes="Café")]
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export(rows, line_ending="\r\n", bom=True) + b"\r\n\r\n")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv", export(rows, encoding="cp1252"))
    report = ingest_landing(wh)
    assert [o.status for o in report.outcomes] == ["applied", "applied", "applied"]
    assert all(o.rows_quarantined == 0 for o in report.outcomes)
    assert report.outcomes[1].events_appended == 2
    # the cp1252 export holds the same values: no correction (the note is identified data, compared there)
    assert report.outcomes[2].events_appended == 0
    notes = dict(query(wh, "select record_id, value from identified.identifier_values where field = 'staff_notes'"
                           " and value is not null order by recorded_at"))
    assert notes["2"] == "Café"


def test_unreadable_rows_are_quarantined_and_are_not_removals(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person(str(i)) for i in range(1, 6)]))
    ingest_landing(wh)
    bad = [person("1", sex="9"), person("2"), person("3"), person("4"), person("5"), person("", age="50")]
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv", export(bad))
    report = ingest_landing(wh)
    out = report.outcomes[0]
    assert out.status == "applied"
    assert out.reasons == {"missing_record_id": 1, "unknown_code": 1}
    assert events(wh, "occurred_at > '2025-03-07 00:00:00+00'") == []  # record 1 keeps its state: no removal, no change
    reasons = query(wh, "select reason from events.quarantine")
    assert all("9" not in r for (r,) in reasons)  # the reason names the field, never the value


def test_snapshot_removing_over_5_percent_is_held_until_accepted(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person(str(i)) for i in range(1, 21)]))
    ingest_landing(wh)
    path = land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv",
                export([person(str(i)) for i in range(1, 11)]))  # half the records gone
    report = ingest_landing(wh)
    assert report.outcomes[0].status == "suspect"
    assert report.outcomes[0].events_appended == 0
    assert ingest_landing(wh).outcomes == []  # still held, not re-recorded every night
    outcome = accept_file(wh, path)
    assert outcome.events_appended == 10
    assert len(events(wh, "event_type = 'intake_record_removed'")) == 10


def test_an_older_snapshot_is_recorded_as_stale_and_changes_nothing(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv", export([person("1", age="41")]))
    ingest_landing(wh)
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person("1", age="40")]))
    report = ingest_landing(wh)
    assert report.outcomes[0].status == "stale"
    assert len(events(wh)) == 1


def test_a_field_added_to_the_dictionary_flows_through_without_code(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person("1")]))
    ingest_landing(wh)
    dictionary = (FIXTURES / "intake_dictionary.csv").read_text() + \
        'housing_stability,intake,,radio,Housing,"1, Stable | 2, Unstable",,,,,,,,,,,,\n'
    land(wh, "intake", "data_dictionary.csv", dictionary)
    data = export([person("1")]).decode().splitlines()
    data[0] += ",housing_stability"
    data[1] += ",2"
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv", "\n".join(data) + "\n")
    ingest_landing(wh)
    [(kind, payload)] = events(wh, "occurred_at > '2025-03-07 00:00:00+00'")
    assert kind == "intake_field_corrected"
    assert json.loads(payload)["field"] == "housing_stability" and json.loads(payload)["new"] == "2"


@pytest.mark.parametrize("name, body, code", [
    ("ALLIANCE_DATA_2025-03-05_2300.csv", b"who,what\n1,2\n", "missing_record_id_column"),
    ("ALLIANCE_DATA_2025-03-05_2300.csv", b"\x00\x01\x02binary", "binary_file"),
    ("ALLIANCE_DATA_2025-03-05_2300.csv", b"", "empty_file"),
    ("notes.txt", b"hello", "unrecognised_file"),
])
def test_files_that_are_not_exports_are_quarantined_with_a_reason(wh, name, body, code):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", name, body)
    report = ingest_landing(wh)
    bad = [o for o in report.outcomes if o.file_name == name]
    assert bad and bad[0].status == "quarantined" and bad[0].reasons == {code: 1}


@pytest.mark.parametrize("project", ["project-simple", "repeating-instruments-sparse", "potentially-problematic-values"])
def test_real_redcap_dictionaries_and_exports_read_without_traceback(wh, project):
    folder = SAMPLES / "redcap" / project
    d = parse_dictionary((folder / "dictionary.csv").read_bytes())
    assert d.height > 3 and "record_id" in d["field_name"].to_list()
    land(wh, "intake", "data_dictionary.csv", folder / "dictionary.csv")
    land(wh, "intake", "PROJ_DATA_2024-01-02_1030.csv", folder / "data.csv")
    report = ingest_landing(wh)
    assert all(o.status in ("applied", "quarantined") for o in report.outcomes)
    assert report.outcomes[0].status == "applied"


def test_another_redcap_project_is_onboarded_by_a_profile_alone(wh, monkeypatch):
    """project-simple: TRUE/FALSE booleans, multi-line quoted addresses, checkbox race, its own codes."""
    import duckdb

    from ingestion.settings import PROJECT_ROOT, load_settings
    from orchestration.cli import run_pipeline

    monkeypatch.setenv("ALLIANCE_STUDY_PROFILE", str(PROJECT_ROOT / "ingestion" / "profiles" / "project-simple.yaml"))
    settings = load_settings()
    folder = SAMPLES / "redcap" / "project-simple"
    land(settings, "intake", "data_dictionary.csv", folder / "dictionary.csv")
    land(settings, "intake", "SIMPLE_DATA_2024-01-02_1030.csv", folder / "data.csv")
    assert run_pipeline(quiet=True) == 0
    conn = duckdb.connect(str(settings.analytics_path), read_only=True)
    rows = conn.execute("select age, sex, race, ethnicity, arm from participants order by age, sex").fetchall()
    # Expected by hand from the sample's data.csv and the profile's codes (the contract's labels):
    # sex FALSE/TRUE = 0 Female / 1 Male; race 1+6 is one race, "Unknown" counting only alone.
    assert rows == [
        (11, "Female", "White", "Not Hispanic or Latino", None),
        (11, "Male", "More than one race", "Not Hispanic or Latino", None),
        (59, "Male", "American Indian or Alaska Native", "Hispanic or Latino", None),
        (61, "Female", "More than one race", "Not Hispanic or Latino", None),
        (80, "Male", "More than one race", "Unknown or not reported", None),
    ]
    # ... and the study's own dictionary labels beside them
    own = conn.execute("select race_label, ethnicity_label from participants where age = 59").fetchone()
    assert own == ("American Indian/Alaska Native; Unknown / Not Reported", "Hispanic or Latino")  # boxes 1 and 6
    addresses = [b"Rose Cottage", b"Nutmouse", b"nutty@mouse.com"]
    raw = settings.analytics_path.read_bytes()
    assert not [a for a in addresses if a in raw]
    # a study without arms: engagement is computed over the 5 enrolled, in the one arm `All`
    assert conn.execute("select count(*), min(arm), max(arm) from engagement").fetchone() == (5, "All", "All")
    # the under-age records are reported by the plausibility check, which does not block
    assert conn.execute("select passed, failing_rows, severity from data_quality"
                        " where check_name = 'plausibility_age_18_to_100'").fetchone() == (False, 2, "reporting")


def test_a_file_cut_short_quarantines_its_last_row_which_keeps_its_state(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person("1"), person("2")]))
    ingest_landing(wh)
    full = export([person("1"), person("2", age="52")])
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv", full[: full.rindex(b",2025-03-03,") + 5])
    [out] = ingest_landing(wh).outcomes
    assert out.reasons == {"truncated_row": 1}
    assert events(wh, "occurred_at > '2025-03-07 00:00:00+00'") == []  # no spurious corrections to blank


def test_the_held_state_is_a_projection_rebuilt_from_the_events(wh):
    """Diffing uses a held state kept in step with the events; dropped, it is rebuilt identically."""
    from ingestion.redcap import sync_state

    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person(str(i)) for i in range(1, 41)]))
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv",
         export([person(str(i), age="50" if i == 3 else "40") for i in range(1, 41) if i != 7]))
    ingest_landing(wh)
    state_sql = ("select row_key, record_id, field, value from events.redcap_values where source = 'intake' "
                 "order by all")
    rows_sql = ("select row_key, last_type from events.redcap_rows where source = 'intake' order by all")
    conn = open_vault(wh)
    try:  # the state caught up at the end of the ingest, the last snapshot's events included
        assert sync_state(conn, "intake") == 0
        assert conn.execute("select seq from events.redcap_synced where source = 'intake'").fetchall() == \
            conn.execute("select max(seq) from events.events where source = 'intake'").fetchall()
    finally:
        conn.close()
    kept, kept_rows = query(wh, state_sql), query(wh, rows_sql)
    assert ("7", "intake_record_removed") in kept_rows and ("3", "intake_recorded") in kept_rows
    assert ("3", "3", "age", "50") in kept and len({r[0] for r in kept}) == 40

    conn = open_vault(wh)
    try:
        for table in ("redcap_rows", "redcap_values", "redcap_synced"):
            conn.execute(f"drop table events.{table}")
        applied = sync_state(conn, "intake")
        assert applied == len(conn.execute("select * from events.events where source = 'intake'").fetchall())
        assert sync_state(conn, "intake") == 0  # caught up: nothing to apply twice
    finally:
        conn.close()
    assert query(wh, state_sql) == kept and query(wh, rows_sql) == kept_rows

    # the next snapshot diffs against the rebuilt state: one correction, nothing else
    land(wh, "intake", "ALLIANCE_DATA_2025-03-07_2300.csv",
         export([person(str(i), age="51" if i == 3 else "40") for i in range(1, 41) if i != 7]))
    ingest_landing(wh)
    new = events(wh, "recorded_at > '2025-03-07 12:00:00+00'")
    assert [e[0] for e in new] == ["intake_field_corrected"]
    assert json.loads(new[0][1])["old"] == "50" and json.loads(new[0][1])["new"] == "51"
