"""Every real REDCap sample project (shared/samples/redcap, REDCapR's test projects) ingests.

Each is landed under REDCap's own download names with a minimal study profile (its profile in
ingestion/profiles when it has one), and what the store then holds is compared with counts
worked out by hand from the sample's CSV files. The longitudinal project is also diffed per
record and event, and its intake event folded by dbt.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import SAMPLES, land, vault_rows

from ingestion.ingest import accept_file, ingest_landing
from ingestion.profile import DictionaryView, check_profile, load_profile
from ingestion.redcap import parse_dictionary
from ingestion.settings import PROJECT_ROOT, load_settings
from ingestion.vault import attach_encrypted

REDCAP = SAMPLES / "redcap"
PROFILES = PROJECT_ROOT / "ingestion" / "profiles"
# the samples that carry sex, race or ethnicity and data: each has a study profile
PROFILED = ("dag", "longitudinal", "project-simple", "repeating-instruments-sparse", "survey")


@dataclass
class Expected:
    status: str  # of the snapshot's batch
    events: int  # appended by the snapshot
    records: int  # distinct records held as present
    rows: int  # rows (record, event, repeat instance) held as present
    reasons: dict[str, int] = field(default_factory=dict)  # quarantined rows by reason code


EXPECTED = {
    # data.csv: header + 4 one-line rows, records 1-4 (desired_result is quoted free text on
    # one line); check_two's codes are letters, its columns 0/1: nothing quarantined.
    "checkboxes-1": Expected("applied", 4, 4, 4),
    # 3 rows: 331-1 and 331-2 in DAG daga, 332-3 in dagb; one row each, non-longitudinal.
    "dag": Expected("applied", 3, 3, 3),
    # 4 rows, records 1-4; heights and weights written "1,54" (quoted: a comma inside).
    "decimal-comma": Expected("applied", 4, 4, 4),
    # data.csv is a single line break: no header, no rows: the export is empty (quarantined
    # whole, one line; not a snapshot removing every record).
    "empty-rows": Expected("quarantined", 0, 0, 0, {"empty_file": 1}),
    # 18 rows = 3 records x 6 events: 100 and 220 in arm 1 (enrollment, dose 1, visit 1,
    # dose 2, visit 2, final visit), 304 in arm 2 (enrollment, deadline to opt out, first
    # dose, first visit, final visit, deadline to return); each (record, event) one row.
    "longitudinal": Expected("applied", 18, 3, 18),
    # 3 rows, records a, b, c.
    "nonnumeric-record-id": Expected("applied", 3, 3, 3),
    # data.csv is a single line break, as in empty-rows; its dictionary (BOM, curly quotes,
    # bytes that are not UTF-8) still applies.
    "potentially-problematic-dictionary": Expected("quarantined", 0, 0, 0, {"empty_file": 1}),
    # 2 rows, records 1 and 2; values that fail their validation type are not checked here
    # (only coded fields are): both rows are read.
    "potentially-problematic-values": Expected("applied", 2, 2, 2),
    # 5 records on 16 lines (quoted multi-line addresses).
    "project-simple": Expected("applied", 5, 5, 5),
    # 9 rows: record 1 (its row + bp instances 1, 2, 3), record 2 (its row + bp 1), records
    # 3, 4, 5 (their rows only): 9 row keys, 5 records.
    "repeating-instruments-sparse": Expected("applied", 9, 5, 9),
    # no data dictionary: the export waits for one, with one line saying so.
    "russian": Expected("waiting", 0, 0, 0, {"no_dictionary": 1}),
    # 2 rows, participants 1 and 2, with survey timestamps and a blank survey identifier.
    "survey": Expected("applied", 2, 2, 2),
    # 1 row, record 1, every other field blank but the checkboxes (0) and form status.
    "validation-types-1": Expected("applied", 1, 1, 1),
}


def test_every_sample_project_has_expectations():
    assert sorted(p.name for p in REDCAP.iterdir() if p.is_dir()) == sorted(EXPECTED)


def dictionary_file(project: str) -> Path | None:
    # decimal-comma's dictionary is misspelt `dictionay.csv`, as in the source
    return next((REDCAP / project / n for n in ("dictionary.csv", "dictionay.csv") if (REDCAP / project / n).exists()),
                None)


def use_profile(monkeypatch, tmp_path: Path, project: str, text: str | None = None):
    """The settings with the project's study profile (or ``text``, or a minimal one: its record id field)."""
    path = PROFILES / f"{project}.yaml"
    if text is not None or not path.exists():
        path = tmp_path / f"{project}.yaml"
        path.write_text(text or f"name: {project} (sample)\nintake:\n  fields:\n    record_id: record_id\n")
    monkeypatch.setenv("ALLIANCE_STUDY_PROFILE", str(path))
    return load_settings()


def land_sample(settings, project: str, data: bytes | Path | None = None, stamp: str = "2024-01-02_1030"):
    """The project's dictionary and export under REDCap's download names."""
    name = project.upper().replace("-", "")
    if stamp == "2024-01-02_1030" and (d := dictionary_file(project)) is not None:
        land(settings, "intake", f"{name}_DataDictionary_2024-01-02.csv", d)
    land(settings, "intake", f"{name}_DATA_{stamp}.csv", data if data is not None else REDCAP / project / "data.csv")


def query(settings, sql: str) -> list[tuple]:
    return vault_rows(settings, sql)


def payloads(settings, where: str = "true") -> dict[str, dict]:
    """Each first-seen row's payload by its record (and event, instrument and instance)."""
    out = {}
    for (p,) in query(settings, f"select payload::varchar from events.events where event_type = 'intake_recorded'"
                                f" and {where} order by seq"):
        d = json.loads(p)
        key = "#".join(str(d[k]) for k in ("record_id", "event", "instrument", "instance") if d.get(k))
        out[key] = d
    return out


@pytest.mark.parametrize("project", sorted(EXPECTED))
def test_each_sample_project_lands_as_counted_by_hand(wh, monkeypatch, tmp_path, project):
    settings = use_profile(monkeypatch, tmp_path, project)
    land_sample(settings, project)
    report = ingest_landing(settings)  # raises nothing: a reader's failure would be a reader_error
    expected = EXPECTED[project]
    [snap] = [o for o in report.outcomes if "_DATA_" in o.file_name]
    assert (snap.status, snap.events_appended, snap.reasons) == (expected.status, expected.events, expected.reasons)
    assert snap.rows_quarantined == sum(expected.reasons.values())
    if dictionary_file(project) is not None:
        [d] = [o for o in report.outcomes if "_DataDictionary_" in o.file_name]
        assert d.status == "applied"
    if expected.status == "applied":
        held = query(settings, "select count(distinct record_id), count(*) from events.redcap_rows "
                               "where last_type = 'intake_recorded'")
        assert held == [(expected.records, expected.rows)]
    for (reason,) in query(settings, "select reason from events.quarantine"):
        assert "\n" not in reason and "Traceback" not in reason


def test_sample_details_land_where_they_belong(wh, monkeypatch, tmp_path):
    """Per sample: the value kept, and where identifiers go (the store is shared: one vault per sample)."""
    checks = {
        # the data access group is a value of the payload (participants.site under the dag profile)
        "dag": lambda s: {k: v["values"]["redcap_data_access_group"] for k, v in payloads(s).items()}
        == {"331-1": "daga", "331-2": "daga", "332-3": "dagb"},
        "decimal-comma": lambda s: payloads(s)["1"]["values"]["height"] == "1,54"
        and "name" not in payloads(s)["1"]["values"],  # `name` is flagged an identifier
        "checkboxes-1": lambda s: payloads(s)["2"]["values"]["check_two___b"] == "1",
        "nonnumeric-record-id": lambda s: query(s, "select list(stream order by stream) from events.events "
                                                   "where source = 'intake'")[0][0]
        == ["participant/a", "participant/b", "participant/c"],
        "potentially-problematic-values": lambda s: payloads(s)["2"]["values"]["date_before_validation"]
        == "before validation 2",
        "repeating-instruments-sparse": lambda s: sorted(payloads(s))
        == ["1", "1#bp#1", "1#bp#2", "1#bp#3", "2", "2#bp#1", "3", "4", "5"],
    }
    for project, check in checks.items():
        (tmp_path / project).mkdir()
        monkeypatch.setenv("ALLIANCE_WAREHOUSE_DIR", str(tmp_path / project / "warehouse"))
        monkeypatch.setenv("ALLIANCE_LANDING_DIR", str(tmp_path / project / "landing"))
        settings = use_profile(monkeypatch, tmp_path / project, project)
        land_sample(settings, project)
        ingest_landing(settings)
        assert check(settings), project


def test_survey_columns_need_no_dictionary_row_and_identifiers_stay_out(wh, monkeypatch, tmp_path):
    settings = use_profile(monkeypatch, tmp_path, "survey")
    land_sample(settings, "survey")
    [_, snap] = ingest_landing(settings).outcomes
    assert snap.detail == ""  # no column counted as undeclared: the survey columns are REDCap's own
    values = payloads(settings)["1"]["values"]
    assert values["prescreening_survey_timestamp"] == "2018-03-06 15:52:43"
    assert values["participant_morale_questionnaire_timestamp"] == "[not completed]"
    # the survey identifier, the flagged email, and dob (not flagged, but the profile's date of
    # birth, that age is derived from) are identified data only
    for kept_out in ("redcap_survey_identifier", "email", "dob", "first_name"):
        assert kept_out not in values
    held = dict(((r, f), v) for r, f, v in query(settings, "select record_id, field, value "
                                                           "from identified.identifier_values"))
    assert held[("1", "dob")] == "2018-03-06" and held[("2", "email")] == "ccc@ddd.com"


def test_russian_waits_for_its_dictionary_with_one_line(wh, monkeypatch, tmp_path):
    settings = use_profile(monkeypatch, tmp_path, "russian")
    land_sample(settings, "russian")
    [snap] = ingest_landing(settings).outcomes
    assert snap.status == "waiting" and snap.events_appended == 0
    [(code, reason)] = query(settings, "select reason_code, reason from events.quarantine")
    assert code == "no_dictionary" and "data dictionary" in reason and "\n" not in reason
    # it is tried again at the next run (still waiting), never taken as ingested
    [again] = ingest_landing(settings).outcomes
    assert again.status == "waiting"


# -- Longitudinal: keyed by record and event ---------------------------------------------------

def changed_export(updates: dict[tuple[str, str, str], str | None], drop: tuple[str, str] | None = None) -> bytes:
    """longitudinal/data.csv with (study_id, event, field) set to the value given (and a row dropped)."""
    df = pl.read_csv(REDCAP / "longitudinal" / "data.csv", infer_schema=False)
    if drop:
        df = df.filter((pl.col("study_id") != drop[0]) | (pl.col("redcap_event_name") != drop[1]))
    for (rid, event, col), value in updates.items():
        hit = (pl.col("study_id") == rid) & (pl.col("redcap_event_name") == event)
        assert df.filter(hit).height == 1
        df = df.with_columns(pl.when(hit).then(pl.lit(value, pl.Utf8)).otherwise(pl.col(col)).alias(col))
    buf = io.BytesIO()
    df.write_csv(buf)
    return buf.getvalue()


def new_events(settings, after: int) -> list[tuple[str, dict]]:
    return [(t, json.loads(p)) for t, p in query(
        settings, f"select event_type, payload::varchar from events.events where seq > {after} order by seq")]


def top(settings) -> int:
    return query(settings, "select max(seq) from events.events")[0][0]


def dbt_intake_fold(settings, profile_path: Path, work: Path) -> dict[tuple[str, str], str | None]:
    """(record, field) -> value of dbt's int_intake_values_state, built from the vault with the profile."""
    from orchestration.steps.dbt_setup import DBT_PROJECT_DIR, build_environment, dbt_executable, dbt_vars

    work.mkdir(parents=True, exist_ok=True)
    build = work / "fold.duckdb"
    variables = dbt_vars(settings, load_profile(profile_path), max_seq=None)
    env = {**os.environ, **build_environment(settings), "ALLIANCE_BUILD_DB": str(build)}
    proc = subprocess.run(
        [dbt_executable(), "run", "--select", "+int_intake_values_state", "--vars", json.dumps(variables),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(work / "target"), "--log-path", str(work)],
        env=env, cwd=DBT_PROJECT_DIR, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    conn = duckdb.connect()
    try:
        attach_encrypted(conn, build, "fold", settings.build_key, read_only=True)
        rows = conn.execute("select record_id, field, value from fold.main.int_intake_values_state "
                            "where field is not null").fetchall()
    finally:
        conn.close()
    return {(r, f): v for r, f, v in rows}


def test_longitudinal_rows_diff_per_record_and_event_and_the_intake_event_folds(wh, monkeypatch, tmp_path):
    settings = use_profile(monkeypatch, tmp_path, "longitudinal")
    land_sample(settings, "longitudinal")
    [_, first] = ingest_landing(settings).outcomes
    assert (first.events_appended, first.reasons) == (18, {})
    keys = payloads(settings)
    assert "100#enrollment_arm_1" in keys and "304#deadline_to_return_arm_2" in keys
    assert keys["100#dose_1_arm_1"]["values"]["pmq1"] == "2"
    # identifiers per event (the dob age is derived from among them), never in a payload
    held = {(r, f): v for r, f, v in query(settings, "select record_id, field, value from identified.identifier_values")}
    assert held[("100", "first_name#enrollment_arm_1")] == "Zharko"
    assert held[("220", "dob#enrollment_arm_1")] == "2011-02-12"
    assert all("first_name" not in p["values"] and "dob" not in p["values"] for p in keys.values())

    # a field of a non-intake event changes: one correction, of that record and event
    seq = top(settings)
    land_sample(settings, "longitudinal", changed_export({("100", "dose_1_arm_1", "pmq1"): "3"}), "2024-01-03_1030")
    ingest_landing(settings)
    assert new_events(settings, seq) == [("intake_field_corrected", {
        "record_id": "100", "event": "dose_1_arm_1", "instrument": None, "instance": None,
        "field": "pmq1", "old": "2", "new": "3"})]
    # a field of the intake event changes: one correction of that record's enrollment row
    seq = top(settings)
    land_sample(settings, "longitudinal", changed_export({("100", "dose_1_arm_1", "pmq1"): "3",
                                                          ("220", "enrollment_arm_1", "race"): "3"}), "2024-01-04_1030")
    ingest_landing(settings)
    assert [(t, p["record_id"], p["event"], p["field"], p["new"]) for t, p in new_events(settings, seq)] == [
        ("intake_field_corrected", "220", "enrollment_arm_1", "race", "3")]

    # dbt folds the intake events' rows only: 100 and 220 (enrollment_arm_1) and 304
    # (enrollment_arm_2: the profile names both arms' enrollment events)
    fold = dbt_intake_fold(settings, PROFILES / "longitudinal.yaml", tmp_path / "dbt")
    assert {r for r, _ in fold} == {"100", "220", "304"}
    assert (fold[("304", "sex")], fold[("304", "race")], fold[("304", "ethnicity")]) == ("0", "4", "2")
    assert (fold[("100", "sex")], fold[("100", "race")], fold[("100", "ethnicity")]) == ("1", "4", "0")
    assert (fold[("220", "sex")], fold[("220", "race")], fold[("220", "ethnicity")]) == ("0", "3", "2")
    assert fold[("100", "pmq1")] is None  # the enrollment row's pmq1 (blank), not dose 1's
    assert fold[("100", "date_enrolled")] == "2015-04-02"


@pytest.mark.parametrize("event, code", [(None, "no_intake_event"), ("enrolment_arm_1", "unknown_intake_event")])
def test_a_longitudinal_export_needs_the_profiles_intake_event(wh, monkeypatch, tmp_path, event, code):
    profile = "name: x\nintake:\n" + (f"  event: {event}\n" if event else "") + "  fields:\n    record_id: study_id\n"
    settings = use_profile(monkeypatch, tmp_path, "longitudinal", profile)
    land_sample(settings, "longitudinal")
    [_, snap] = ingest_landing(settings).outcomes
    # every row is stored all the same (a corrected profile needs no re-ingest); one line says why
    # no record becomes a participant
    assert (snap.status, snap.events_appended, snap.reasons) == ("applied", 18, {code: 1})
    [(location, reason)] = query(settings, "select location, reason from events.quarantine")
    assert location is None and "intake.event" in reason and "\n" not in reason


def test_longitudinal_rows_without_their_event_keep_their_state_and_removals_are_per_event(wh, monkeypatch, tmp_path):
    settings = use_profile(monkeypatch, tmp_path, "longitudinal")
    land_sample(settings, "longitudinal")
    ingest_landing(settings)
    seq = top(settings)
    # 100's dose 1 and dose 2 rows lose their event names: they cannot be placed, so no row of
    # 100 is removed (and the two are not duplicates of each other)
    land_sample(settings, "longitudinal", changed_export({("100", "dose_1_arm_1", "redcap_event_name"): "",
                                                          ("100", "dose_2_arm_1", "redcap_event_name"): ""}),
                "2024-01-03_1030")
    [snap] = ingest_landing(settings).outcomes
    assert (snap.status, snap.reasons) == ("applied", {"missing_event": 2})
    assert new_events(settings, seq) == []
    # 220's visit 1 row gone: 1 of 18 rows held (5.6%), held back as suspect (an export filtered
    # by event by mistake removes rows, not whole records); accepted, it removes that row alone
    path = land(settings, "intake", "LONGITUDINAL_DATA_2024-01-04_1030.csv",
                changed_export({}, drop=("220", "visit_1_arm_1")))
    [snap] = ingest_landing(settings).outcomes
    assert (snap.status, snap.detail) == ("suspect", "would remove 1 of 18 record events")
    accept_file(settings, path)
    assert new_events(settings, seq) == [("intake_record_removed", {
        "record_id": "220", "event": "visit_1_arm_1", "instrument": None, "instance": None})]


@pytest.mark.parametrize("project", PROFILED)
def test_each_sample_profile_fits_its_sample_dictionary(project):
    profile = load_profile(PROFILES / f"{project}.yaml")
    dictionary = DictionaryView.of(f"{project}/dictionary.csv", parse_dictionary(dictionary_file(project).read_bytes()))
    assert check_profile(profile, dictionary) == []
    # every code of sex, race and ethnicity the dictionary lists is mapped explicitly
    for concept in ("sex", "race", "ethnicity"):
        listed = {c for c, _ in dictionary.codes[profile.fields[concept]]}
        assert set(profile.codes[concept]) == listed, concept
    assert profile.all_consented and not profile.arms
    assert profile.dbt_vars()["intake_event"] == (["enrollment_arm_1", "enrollment_arm_2"]
                                                  if project == "longitudinal" else None)
    assert (PROFILES / f"{project}.yaml").read_text().startswith("# Study profile for REDCapR")
