"""The session log's direct path: a file of new, usable events appended by the statement that checks them.

It must give exactly what the staged path gives (the same events, numbers,
payloads, notes and batch counts), and hand every other file to the staged
path, which quarantines, compares and skips as before. Session events are
compared by their content (not by the bytes of their line).
"""

from __future__ import annotations

import dataclasses
import json

import duckdb
import pytest
from conftest import land
from test_sessions_speed_paths import line, rows
from test_store_robustness import assert_no_partial_batch

from ingestion import sessions, store
from ingestion.ingest import ingest_landing
from ingestion.vault import open_vault


def spy_on_direct(monkeypatch, disable: bool = False) -> list[int | None]:
    """What each direct attempt returned (None: handed to the staged path); ``disable``: always None."""
    seen: list[int | None] = []
    real = sessions.DirectInsert.__call__

    def spy(self, *args):
        seen.append(None if disable else real(self, *args))
        return seen[-1]

    monkeypatch.setattr(sessions.DirectInsert, "__call__", spy)
    return seen


A_LOG = [
    line(event_id="s1", event_type="session_scheduled", scheduled_for="2025-03-17T09:30:00-04:00", staff_id="CM01",
         mode="phone", recorded_at=None),
    line(event_id="s2", duration_min=45, activities=["strengths_assessment", "goal_planning"],
         note='Met at "the shelter"; caf\u00e9 after'),
    "",
    line(event_id="s3", event_type="treatment_admitted", service=None, session_number=None, program_id=3,
         occurred_at="2025-03-11T14:00:00Z", recorded_at=None),
    line(event_id="s4", event_type="treatment_discharged", service=None, session_number=None, program_id=3,
         discharge_reason="completed", occurred_at="2025-03-12T09:00:00+01:00", recorded_at="2025-03-12T10:00:00+01:00"),
    line(event_id="s5", event_type="event_voided", service=None, session_number=None, voids_event_id="s1",
         staff_id='C\\M "7"'),
    line(event_id="s6", event_type="contact_attempt", record_id="2", occurred_at="2025-03-13T10:00:00-04:00",
         recorded_at=None, service=None, session_number=None, note="second note"),
    "",
    line(event_id="s7", event_type="session_missed", record_id="2", session_number=2),
    line(event_id="s8", record_id="3").replace('"event_id"', '"no\\u0074e": "key escaped", "event_id"'),
]


def snapshot(settings) -> dict:
    return {
        "events": rows(settings, """select seq, event_id, stream, event_type, event_version, occurred_at, recorded_at,
                                           source, content_hash, payload::varchar from events.events order by seq"""),
        "notes": rows(settings, "select event_id, record_id, note, extra::varchar from identified.session_notes order by 1"),
        "batches": rows(settings, """select file_name, status, rows_read, events_appended, duplicates, rows_quarantined,
                                            first_seq, last_seq from events.batches order by first_seq"""),
        "quarantine": rows(settings, "select location, reason_code from events.quarantine order by 1"),
    }


def test_a_clean_log_goes_direct_and_gives_exactly_what_the_staged_path_gives(wh, tmp_path, monkeypatch):
    land(wh, "sessions", "log.jsonl", "\r\n".join(A_LOG) + "\r\n")
    land(wh, "sessions", "log2.jsonl", line(event_id="t1", record_id="3") + "\n")
    seen = spy_on_direct(monkeypatch)
    ingest_landing(wh)
    assert seen == [8, 1]  # both files appended directly
    direct = snapshot(wh)

    staged_wh = dataclasses.replace(wh, warehouse_dir=tmp_path / "staged-warehouse")
    seen_staged = spy_on_direct(monkeypatch, disable=True)
    ingest_landing(staged_wh)
    assert seen_staged == [None, None]
    staged = snapshot(staged_wh)
    assert direct == staged
    assert [e[1] for e in direct["events"]] == ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "t1"]
    assert [e[0] for e in direct["events"]] == list(range(1, 10))
    assert direct["notes"] == [("s2", "1", 'Met at "the shelter"; caf\u00e9 after', None), ("s6", "2", "second note", None),
                               ("s8", "3", "key escaped", None)]
    assert all("note" not in json.loads(e[9]) and "shelter" not in e[9] for e in direct["events"])
    assert direct["batches"][0][2:] == (8, 8, 0, 0, 1, 8)
    assert_no_partial_batch(wh)


@pytest.mark.parametrize("extra_line, reason", [
    ('{"event_id": "x", "event_type": "session_attended"', "not_json"),  # the direct statement fails
    ("[1, 2]", "not_json"),
    ('"a JSON string"', "not_json"),  # JSON, not an object: parsed by the direct statement, not appended
    ("null", "not_json"),
    (line(event_id="x", staff_id="a" * 100_001), "line_too_long"),  # valid JSON, parsed there all the same
    (line(event_id="x", mode="telepathy"), "bad_mode"),
    (line(event_id="x", occurred_at="2025-03-10T10:00:00"), "bad_timestamp"),
    (line(event_id="x", activities=["linkage", "juggling"]), "bad_activities"),
    (line(event_id="x", activities="linkage"), "bad_activities"),  # not a list
    (line(event_id="x", recorded_at="2025-03-10T11:00:00-04:00x"), "bad_timestamp"),
    ("  \t", None),  # a blank line of white space: no event, no quarantine
    (line(event_id="x", client_name="Zebulon"), None),  # a key the contract does not define
    (A_LOG[1], None),  # a repeated line: a duplicate
    (line(event_id="s2", session_number=3), "conflicting_event_id"),
])
def test_any_other_file_is_handed_to_the_staged_path(wh, monkeypatch, extra_line, reason):
    body = A_LOG[:4] + [extra_line] + A_LOG[4:]
    land(wh, "sessions", "log.jsonl", "\n".join(body) + "\n")
    seen = spy_on_direct(monkeypatch)
    [out] = ingest_landing(wh).outcomes
    assert seen == [None]
    assert out.reasons == ({reason: 1} if reason else {})
    if reason and reason != "conflicting_event_id":
        assert rows(wh, "select location from events.quarantine") == [("line 5",)]
    assert [e[0] for e in rows(wh, "select event_id from events.events order by seq")] == [
        "s1", "s2", "s3", *(["x"] if reason is None and '"x"' in extra_line else []), "s4", "s5", "s6", "s7", "s8"]
    assert_no_partial_batch(wh)
    if "client_name" in extra_line:
        assert rows(wh, "select event_id, extra::varchar from identified.session_notes where extra is not null") == [
            ("x", '{"client_name":"Zebulon"}')]


def test_a_log_with_held_events_or_an_erased_participant_is_staged(wh, monkeypatch):
    seen = spy_on_direct(monkeypatch)
    land(wh, "sessions", "a.jsonl", line(event_id="h1") + "\n")
    ingest_landing(wh)
    land(wh, "sessions", "b.jsonl", line(event_id="h1") + "\n" + line(event_id="h2") + "\n")
    [b] = ingest_landing(wh).outcomes
    assert (b.events_appended, b.duplicates) == (1, 1)
    conn = open_vault(wh)
    try:
        conn.execute("""insert into events.events
                        select 3, 'erase-7', 'erasure/' || participant_key('7'), 'participant_erased', 1, now(), now(),
                               now(), 'erasure-batch', 'erasure', 'h', json_object('participant_key', participant_key('7'))""")
    finally:
        conn.close()
    land(wh, "sessions", "c.jsonl", line(event_id="h3", record_id="7") + "\n" + line(event_id="h4") + "\n")
    [c] = ingest_landing(wh).outcomes
    assert (c.events_appended, c.reasons) == (1, {"erased_participant": 1})
    # a log of new events only, none of the erased participant: direct again
    land(wh, "sessions", "d.jsonl", line(event_id="h5") + "\n")
    ingest_landing(wh)
    assert seen == [1, None, None, 1]
    assert rows(wh, "select seq, event_id from events.events where source = 'sessions' order by seq") == [
        (1, "h1"), (2, "h2"), (4, "h4"), (5, "h5")]


def test_the_same_event_written_otherwise_is_a_duplicate_and_any_change_a_conflict(wh):
    land(wh, "sessions", "a.jsonl", line(event_id="c1", note="first note") + "\n" + line(event_id="c2") + "\n")
    ingest_landing(wh)
    same = json.loads(line(event_id="c1", note="first note"))
    reordered = json.dumps(dict(reversed(list(same.items()))), indent=None, separators=(" , ", " : "))
    # the same instants at another UTC offset
    utc = line(event_id="c2", occurred_at="2025-03-10T14:00:00Z", recorded_at="2025-03-10T15:00:00+00:00")
    land(wh, "sessions", "b.jsonl", reordered + "\n" + utc + "\n")
    [b] = ingest_landing(wh).outcomes
    assert (b.events_appended, b.duplicates, b.reasons) == (0, 2, {})
    land(wh, "sessions", "c.jsonl", "\n".join([
        line(event_id="c1", note="another note"),  # the note changed
        line(event_id="c2", staff_id="CM02"),  # a field added
        line(event_id="c2", extra_key="x"),  # a key the contract does not define
        line(event_id="c2", recorded_at="2025-03-10T11:00:01-04:00"),  # a second later
    ]) + "\n")
    [c] = ingest_landing(wh).outcomes
    assert (c.events_appended, c.duplicates, c.reasons) == (0, 0, {"conflicting_event_id": 4})
    # nothing of the refused lines reached the identified store either
    assert rows(wh, "select event_id, note from identified.session_notes") == [("c1", "first note")]


def test_a_repeated_line_keeps_the_note_of_its_first_occurrence_only(wh):
    land(wh, "sessions", "a.jsonl", "\n".join([line(event_id="r1", note="kept"), line(event_id="r1", note="kept"),
                                               line(event_id="r1", note="refused")]) + "\n")
    [a] = ingest_landing(wh).outcomes
    assert (a.events_appended, a.duplicates, a.reasons) == (1, 1, {"conflicting_event_id": 1})
    assert rows(wh, "select event_id, note from identified.session_notes") == [("r1", "kept")]


def test_an_event_held_with_a_version_1_payload_is_recognised_when_delivered_again(wh):
    land(wh, "sessions", "a.jsonl", line(event_id="z0") + "\n")
    ingest_landing(wh)
    v1 = json.dumps({"event_id": "v1", "event_type": "session_attended", "record_id": "1",
                     "occurred_at": "2025-03-10T10:00:00-04:00", "scheduled_for": None,
                     "recorded_at": "2025-03-10T11:00:00-04:00", "service": "case_management", "session_number": 1,
                     "staff_id": None, "mode": None, "duration_min": 30, "activities": ["linkage"], "program_id": None,
                     "discharge_reason": None, "voids_event_id": None})
    conn = open_vault(wh)
    try:  # as the reader wrote events before payload version 2: every field, and an md5 of the line
        conn.execute(f"""insert into events.events select 2, 'v1', 'participant/1', 'session_attended', 1,
                         '2025-03-10T10:00:00-04:00', '2025-03-10T11:00:00-04:00', now(), 'old-batch', 'sessions',
                         md5('old line'), '{v1}'""")
        conn.execute("""insert into events.batches (batch_id, source, file_name, sha256, status, ingested_at, first_seq, last_seq,
                        events_appended) values ('old-batch', 'sessions', 'old.jsonl', 'x', 'applied', now(), 2, 2, 1)""")
    finally:
        conn.close()
    land(wh, "sessions", "b.jsonl", "\n".join([
        line(event_id="v1", duration_min=30, activities=["linkage"]),
        line(event_id="v1", duration_min=31, activities=["linkage"]),
    ]) + "\n")
    [b] = ingest_landing(wh).outcomes
    assert (b.events_appended, b.duplicates, b.reasons) == (0, 1, {"conflicting_event_id": 1})


def test_a_vault_whose_content_hash_was_required_is_altered_once(wh):
    land(wh, "sessions", "a.jsonl", line(event_id="m1") + "\n")
    conn = open_vault(wh)
    try:
        conn.execute(store.SCHEMA_SQL.replace("content_hash varchar,", "content_hash varchar not null,"))
        assert conn.execute("""select is_nullable from duckdb_columns() where database_name = current_database()
                               and table_name = 'events' and column_name = 'content_hash'""").fetchall() == [(False,)]
    finally:
        conn.close()
    [out] = ingest_landing(wh).outcomes
    assert out.events_appended == 1
    assert rows(wh, "select content_hash from events.events") == [(None,)]


def test_text_written_into_a_payload_cannot_add_a_key_to_it(wh):
    """Only values checked against the contract's codes (or as times) are written unescaped."""
    sneaky = 'x","note":"Zebulon at 12 Elm St'
    land(wh, "sessions", "a.jsonl", "\n".join([
        line(event_id="p1", event_type="contact_attempt", service=None, session_number=None, discharge_reason=sneaky),
        line(event_id="p2", staff_id=sneaky, voids_event_id=sneaky, record_id='7"'),
        line(event_id="p3", scheduled_for=sneaky),
        line(event_id="p4", mode=sneaky),
    ]) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.reasons) == (2, {"bad_timestamp": 1, "bad_mode": 1})
    payloads = {e: json.loads(p) for e, p in rows(wh, "select event_id, payload::varchar from events.events")}
    assert payloads["p1"]["discharge_reason"] == sneaky and "note" not in payloads["p1"]
    assert payloads["p2"]["staff_id"] == sneaky and "record_id" not in payloads["p2"]
    assert rows(wh, "select stream from events.events where event_id = 'p2'") == [('participant/7"',)]
    assert all("note" not in p for p in payloads.values())


def test_a_log_exported_again_whole_goes_straight_to_the_staged_path(wh, monkeypatch):
    """A log re-exported with its old events first is not appended directly and then rolled back."""
    statements: list[int] = []
    real = sessions.direct_insert_sql
    monkeypatch.setattr(sessions, "direct_insert_sql", lambda *args: statements.append(1) or real(*args))
    first = [line(event_id=f"w{i}") for i in range(3)]
    land(wh, "sessions", "log.jsonl", "\n".join(first) + "\n")
    ingest_landing(wh)
    assert statements == [1]
    land(wh, "sessions", "log.jsonl", "\n".join([*first, line(event_id="w3"), line(event_id="w4")]) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.duplicates) == (2, 3)
    assert statements == [1]  # the first lines are held: no direct statement this time
    # a new file of new events only is still appended directly
    land(wh, "sessions", "next.jsonl", line(event_id="w5") + "\n")
    ingest_landing(wh)
    assert statements == [1, 1]
    assert_no_partial_batch(wh)


def test_a_log_the_splitter_fails_on_is_quarantined_not_a_crash(wh, monkeypatch):
    """An unexpected error while cutting the file into lines reaches the staged path, which quarantines it."""
    def broken(data):
        raise ValueError("unexpected")

    monkeypatch.setattr(sessions, "_split_lines", broken)
    land(wh, "sessions", "a.jsonl", line(event_id="b1") + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.status, out.events_appended, out.reasons) == ("quarantined", 0, {"reader_error": 1})


@pytest.mark.parametrize("failing", ["_read_notes", "_checks_pass"])
def test_an_error_after_the_direct_append_hands_the_file_to_the_staged_path(wh, tmp_path, monkeypatch, failing):
    """The notes are read on a second connection while the ids are checked: an error in either is
    not a crash and leaves nothing behind; the staged path then appends the file, notes included."""
    def fail(*args):
        raise duckdb.IOException("disk trouble")

    if failing == "_read_notes":
        monkeypatch.setattr(sessions, "_read_notes", fail)
    else:
        monkeypatch.setattr(sessions.DirectInsert, "_checks_pass", fail)
    land(wh, "sessions", "log.jsonl", "\n".join(A_LOG) + "\n")
    seen = spy_on_direct(monkeypatch)
    [out] = ingest_landing(wh).outcomes
    assert seen == [None]
    assert (out.events_appended, out.rows_quarantined) == (8, 0)
    got = snapshot(wh)
    staged_wh = dataclasses.replace(wh, warehouse_dir=tmp_path / "staged-warehouse")
    spy_on_direct(monkeypatch, disable=True)
    ingest_landing(staged_wh)
    assert got == snapshot(staged_wh)
    assert [n[0] for n in got["notes"]] == ["s2", "s6", "s8"]
    assert_no_partial_batch(wh)
