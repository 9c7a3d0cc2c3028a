"""The session log: validation, idempotency, conflicts, notes kept out of payloads."""

from __future__ import annotations

import json
from datetime import UTC

from conftest import land

from ingestion.ingest import ingest_landing
from ingestion.vault import open_vault


def line(**kw) -> str:
    base = {"event_id": "e1", "event_type": "session_attended", "record_id": "1",
            "occurred_at": "2025-03-10T10:00:00-04:00", "recorded_at": "2025-03-10T11:00:00-04:00",
            "service": "case_management", "session_number": 1}
    base.update(kw)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def rows(settings, sql):
    conn = open_vault(settings, read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_valid_lines_become_events_and_bad_lines_are_quarantined_with_reasons(wh):
    text = "\n".join([
        line(),
        line(event_id="e2", event_type="contact_attempt", service=None, session_number=None),
        line(event_id="e3", event_type="treatment_admitted", service=None, session_number=None, program_id=3),
        line(event_id="e4", event_type="teleported"),
        "{not json",
        line(event_id="e5", occurred_at="2035-03-10T10:00:00-04:00"),
        line(event_id="e6", occurred_at="2025-03-10T10:00:00"),  # no offset
        line(event_id="e7", event_type="treatment_discharged", service=None, session_number=None, program_id=3,
             discharge_reason="bored"),
        line(event_id="e8", mode="telepathy"),
        line(event_id="e9", event_type="event_voided", service=None, session_number=None),
        line(event_id="e10", record_id=None),
        "x" * 200_000,
        "",
    ]) + "\r\n"
    land(wh, "sessions", "log-2025-03-10.jsonl", text)
    [out] = ingest_landing(wh).outcomes
    assert out.events_appended == 3
    assert out.reasons == {
        "unknown_event_type": 1, "not_json": 1, "future_dated": 1, "bad_timestamp": 1,
        "bad_discharge_reason": 1, "bad_mode": 1, "missing_voids_event_id": 1, "missing_record_id": 1,
        "line_too_long": 1,
    }
    locations = [r[0] for r in rows(wh, "select location from events.quarantine order by location")]
    assert "line 4" in locations and "line 5" in locations


def test_a_duplicated_line_counts_once_and_a_changed_event_id_is_a_conflict(wh):
    land(wh, "sessions", "a.jsonl", line() + "\n" + line() + "\n")
    [a] = ingest_landing(wh).outcomes
    assert (a.events_appended, a.duplicates, a.rows_quarantined) == (1, 1, 0)
    # a log file that grew: only what is new is appended; the same event with new content is a conflict
    land(wh, "sessions", "a.jsonl", line() + "\n" + line() + "\n" + line(event_id="e2") + "\n"
         + line(session_number=2) + "\n")
    [b] = ingest_landing(wh).outcomes
    assert (b.events_appended, b.duplicates, b.reasons) == (1, 2, {"conflicting_event_id": 1})
    assert rows(wh, "select count(*) from events.events")[0][0] == 2


def test_notes_and_undeclared_keys_stay_in_the_identified_store(wh):
    land(wh, "sessions", "a.jsonl", line(note="Met Zebulon at 12 Elm St", client_name="Zebulon") + "\n")
    ingest_landing(wh)
    [(payload,)] = rows(wh, "select payload::varchar from events.events")
    assert "Zebulon" not in payload and "Elm" not in payload and "note" not in json.loads(payload)
    [(note, extra)] = rows(wh, "select note, extra::varchar from identified.session_notes")
    assert note == "Met Zebulon at 12 Elm St" and "client_name" in extra


def test_json_null_in_an_optional_field_is_absent(wh):
    land(wh, "sessions", "a.jsonl", line(activities=None, mode=None).replace("}", ', "activities": null, "mode": null}')
         + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.reasons) == (1, {})


def test_same_file_twice_appends_nothing(wh):
    land(wh, "sessions", "a.jsonl", line() + "\n")
    ingest_landing(wh)
    land(wh, "sessions", "copy-of-a.jsonl", line() + "\n")
    report = ingest_landing(wh)
    assert report.outcomes == [] and report.unchanged == 2


def test_as_of_reads_cut_on_recorded_at_and_position(wh):
    from datetime import datetime

    from ingestion.store import events_as_of, position

    land(wh, "sessions", "a.jsonl", line() + "\n" + line(event_id="late", occurred_at="2025-03-10T10:00:00-04:00",
                                                        recorded_at="2025-03-20T09:00:00-04:00") + "\n")
    ingest_landing(wh)
    land(wh, "sessions", "b.jsonl", line(event_id="e3", occurred_at="2025-03-11T10:00:00-04:00",
                                         recorded_at="2025-03-11T10:30:00-04:00") + "\n")
    ingest_landing(wh)
    conn = open_vault(wh, read_only=True)
    try:
        assert position(conn) == 3
        cut = datetime(2025, 3, 15, tzinfo=UTC)
        assert sorted(r[1] for r in events_as_of(conn, cut).fetchall()) == ["e1", "e3"]
        assert sorted(r[1] for r in events_as_of(conn, cut, position=2).fetchall()) == ["e1"]
        assert len(events_as_of(conn).fetchall()) == 3
    finally:
        conn.close()
