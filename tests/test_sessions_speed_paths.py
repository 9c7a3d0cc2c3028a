"""The session log's fast reading path: bytes cut into lines without decoding them in Python.

Every awkward shape of a landed file must give what a plain LF / UTF-8 file
gives: a BOM, CRLF or lone-CR line breaks, blank and white-space lines, no
final line break, Windows-1252 text, a 2 MB line, lines that are not JSON
objects; line numbers in quarantine reasons stay those a person sees in an
editor; sequence numbers follow the file's order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os

import pyarrow as pa
import pytest
from conftest import land

from ingestion import ingest, sessions
from ingestion.ingest import ingest_landing
from ingestion.readers import ReadError
from ingestion.vault import open_vault


def line(**kw) -> str:
    base = {"event_id": "e1", "event_type": "session_attended", "record_id": "1",
            "occurred_at": "2025-03-10T10:00:00-04:00", "recorded_at": "2025-03-10T11:00:00-04:00",
            "service": "case_management", "session_number": 1}
    base.update(kw)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def rows(settings, sql, params=None):
    conn = open_vault(settings, read_only=True)
    try:
        return conn.execute(sql, params or []).fetchall()
    finally:
        conn.close()


def held(settings) -> list[tuple]:
    return rows(settings, "select seq, event_id, content_hash from events.events order by seq")


def quarantined(settings) -> list[tuple]:
    return rows(settings, "select location, reason_code from events.quarantine where location is not null "
                          "order by location")


# --- the line splitter itself ---------------------------------------------------------------------

def split(data: bytes) -> list[tuple[int, str]]:
    table = sessions._split_lines(data)
    return [(r["line_no"], r["line"]) for r in table.to_pylist() if r["is_line"]]


def test_lines_are_cut_at_every_kind_of_line_break_and_numbered_as_an_editor_shows_them():
    assert split(b"a\nb\n") == [(1, "a"), (2, "b")]
    assert split(b"a\nb") == [(1, "a"), (2, "b")]  # no final line break
    assert split(b"\xef\xbb\xbfa\r\nb\r\n\r\nc") == [(1, "a"), (2, "b"), (3, ""), (4, "c")]
    assert split(b"a\rb\r") == [(1, "a"), (2, "b")]  # old Mac line breaks
    assert split(b"\n\n") == [(1, ""), (2, "")]
    assert split(b"") == [] and split(b"\xef\xbb\xbf") == []
    assert split("caf\u00e9\n\u201cx\u201d\n".encode("cp1252")) == [(1, "caf\u00e9"), (2, "\u201cx\u201d")]


def memory(data: bytes) -> mmap.mmap:
    """The bytes in anonymous memory, as ``ingest.read_log`` hands a large log to the reader."""
    buf = mmap.mmap(-1, len(data), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf[:] = data
    return buf


def test_the_splitter_cuts_a_log_read_into_memory_as_it_cuts_bytes():
    for data in [b"a\nb", b"\xef\xbb\xbfa\r\nb\r\n\r\nc", b"a\rb\r", b"\n\n", b"\xef\xbb\xbf",
                 "caf\u00e9\n\u201cx\u201d\n".encode("cp1252"), "caf\u00e9\n".encode(),
                 (line(note="\u00e9t\u00e9") + "\n").encode()]:
        assert split(memory(data)) == split(data), data
    with pytest.raises(ReadError):
        sessions._split_lines(memory(b"a\x00b\n"))
    # valid UTF-8 in memory is not copied either: the lines are views into it
    buf = memory(("\n".join(line(event_id=f"e{i}", note="d\u00e9j\u00e0") for i in range(10)) + "\n").encode())
    values = sessions._split_lines(buf).column("line").chunk(0).buffers()[2]
    assert values.address == pa.py_buffer(buf).address


def test_utf8_lines_are_views_into_the_landed_bytes_not_copies():
    data = ("\n".join(line(event_id=f"e{i}") for i in range(10)) + "\n").encode()
    table = sessions._split_lines(data)
    values = table.column("line").chunk(0).buffers()[2]
    assert values.address == pa.py_buffer(data).address
    # many lines come in several batches (DuckDB scans them in parallel), numbered across batches
    big = sessions._split_lines(b"x\n" * 70_000)
    assert big.column("line").num_chunks > 1
    assert big.column("line_no").to_pylist()[-1] == 70_000


# --- through ingest_landing ------------------------------------------------------------------------

def test_bom_crlf_and_blank_lines_give_the_same_events_and_line_numbers_as_a_plain_file(wh):
    body = [line(event_id="a1"), "", line(event_id="a2"), "   \t", "{not json", line(event_id="a3")]
    land(wh, "sessions", "plain.jsonl", "\n".join(body) + "\n")
    [plain] = ingest_landing(wh).outcomes
    assert (plain.rows_read, plain.events_appended, plain.reasons) == (4, 3, {"not_json": 1})
    assert quarantined(wh) == [("line 5", "not_json")]
    # the same lines with a BOM, CRLF and white space that is not ASCII: the same content, so duplicates
    land(wh, "sessions", "windows.jsonl", ("\ufeff" + "\r\n".join(body).replace("   \t", "\u00a0\u3000")
                                           + "\r\n").encode())
    [win] = ingest_landing(wh).outcomes
    assert (win.rows_read, win.events_appended, win.duplicates, win.reasons) == (4, 0, 3, {"not_json": 1})
    assert quarantined(wh) == [("line 5", "not_json"), ("line 5", "not_json")]
    # session events are compared by their content, not by a hash of their line's bytes
    assert [h for _, _, h in held(wh)] == [None, None, None]


def test_a_file_without_a_final_line_break_and_one_with_lone_cr_breaks(wh):
    land(wh, "sessions", "a.jsonl", line(event_id="a1") + "\n" + line(event_id="a2"))
    land(wh, "sessions", "b.jsonl", line(event_id="b1") + "\r" + "{oops" + "\r" + line(event_id="b2"))
    a, b = ingest_landing(wh).outcomes
    assert (a.rows_read, a.events_appended) == (2, 2)
    assert (b.rows_read, b.events_appended, b.reasons) == (3, 2, {"not_json": 1})
    assert rows(wh, "select location from events.quarantine where file_name = 'b.jsonl'") == [("line 2",)]


def test_a_windows_1252_file_is_read_with_its_accents(wh):
    text = line(event_id="w1", note="Caf\u00e9 with \u201cM\u201d") + "\r\n" + line(event_id="w2") + "\r\n"
    land(wh, "sessions", "cp.jsonl", text.encode("cp1252"))
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.reasons) == (2, {})
    assert rows(wh, "select note from identified.session_notes") == [("Caf\u00e9 with \u201cM\u201d",)]
    [(payload,)] = rows(wh, "select payload::varchar from events.events where event_id = 'w1'")
    assert "note" not in json.loads(payload) and "Caf" not in payload


def test_a_2mb_line_is_quarantined_with_its_line_number_and_the_rest_goes_through(wh):
    huge = json.dumps({"event_id": "big", "event_type": "contact_attempt", "record_id": "1",
                       "occurred_at": "2025-03-10T10:00:00Z", "note": "y" * 2_000_000})
    land(wh, "sessions", "a.jsonl", "\n".join([line(event_id="a1"), huge, line(event_id="a3")]) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.rows_read, out.events_appended, out.reasons) == (3, 2, {"line_too_long": 1})
    assert quarantined(wh) == [("line 2", "line_too_long")]
    assert [e for _, e, _ in held(wh)] == ["a1", "a3"]


def test_a_line_of_exactly_the_limit_is_read_and_one_character_more_is_not(wh):
    def sized(event_id: str, chars: int, fill: str) -> str:
        head = line(event_id=event_id, note="")[:-len('""}')]
        return head + '"' + fill * (chars - len(head) - 3) + '"}'

    at_limit = sized("ok", sessions.MAX_LINE_CHARS, "\u00e9")  # 2 bytes a character: bytes are not characters
    over = sized("over", sessions.MAX_LINE_CHARS + 1, "y")
    assert len(at_limit) == sessions.MAX_LINE_CHARS and len(over) == sessions.MAX_LINE_CHARS + 1
    land(wh, "sessions", "a.jsonl", at_limit + "\r\n" + over + "\r\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.reasons) == (1, {"line_too_long": 1})
    assert quarantined(wh) == [("line 2", "line_too_long")]


def test_lines_that_are_not_json_objects_are_quarantined_and_white_space_before_an_object_is_not(wh):
    lines = ["[1, 2]", '"text"', "42", "null", "{", '{"a": 1} trailing', '{"a": 1}', "  \t" + line(event_id="sp"),
             line(event_id="ok") + "  "]
    land(wh, "sessions", "a.jsonl", "\n".join(lines) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert out.events_appended == 2
    assert out.reasons == {"not_json": 6, "missing_event_id": 1}
    assert quarantined(wh) == [(f"line {i}", "not_json") for i in range(1, 7)] + [("line 7", "missing_event_id")]


def test_a_file_with_nul_bytes_is_quarantined_whole(wh):
    land(wh, "sessions", "bin.jsonl", b"\x00\x01\x02" + line().encode())
    [out] = ingest_landing(wh).outcomes
    assert (out.status, out.events_appended, out.reasons) == ("quarantined", 0, {"binary_file": 1})


def _spy_on_the_order_check(monkeypatch) -> list[bool]:
    from ingestion import store

    seen: list[bool] = []
    real = store._stage_in_order

    def spy(conn):
        seen.append(real(conn))
        return seen[-1]

    monkeypatch.setattr(store, "_stage_in_order", spy)
    return seen


def test_sequence_numbers_follow_the_file_order_across_batches_and_skip_duplicates(wh, monkeypatch):
    seen = _spy_on_the_order_check(monkeypatch)
    n = 70_000  # more lines than one Arrow batch holds
    body = [line(event_id=f"k{n - i:06d}", session_number=1 + i % 5) for i in range(n)]
    body[50] = body[10]  # line 51 repeats line 11 byte for byte: a duplicate
    body[60_001] = "{broken"
    land(wh, "sessions", "big.jsonl", "\n".join(body) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.rows_read, out.events_appended, out.duplicates, out.reasons) == (n, n - 2, 1, {"not_json": 1})
    assert quarantined(wh) == [("line 60002", "not_json")]
    seqs = held(wh)
    assert [s for s, _, _ in seqs] == list(range(1, n - 1))
    # event ids count down, so a sort by event_id would reverse them: seq is the file's order
    expected = [f"k{n - i:06d}" for i in range(n) if i not in (50, 60_001)]
    assert [e for _, e, _ in seqs] == expected
    # in file order: the repeated line was left out of a copy and the events numbered by row
    assert seen == [True, True]


def test_a_grown_log_appends_only_the_new_lines_after_the_old_ones(wh, monkeypatch):
    seen = _spy_on_the_order_check(monkeypatch)
    first = [line(event_id=f"g{i}") for i in range(5)]
    land(wh, "sessions", "log.jsonl", "\n".join(first) + "\n")
    ingest_landing(wh)
    grown = first + [line(event_id="g9"), line(event_id="g2", session_number=4), line(event_id="g7")]
    land(wh, "sessions", "log.jsonl", "\n".join(grown) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.duplicates, out.reasons) == (2, 5, {"conflicting_event_id": 1})
    assert [(s, e) for s, e, _ in held(wh)][5:] == [(6, "g9"), (7, "g7")]
    assert rows(wh, "select location from events.quarantine where reason_code = 'conflicting_event_id'") == [
        ("event g2",)]
    # night 1 is appended directly (not staged); night 2, which holds events already held, is staged
    # and checked before and after leaving them out
    assert seen == [True, True]


def test_events_of_an_erased_participant_are_quarantined_not_stored(wh):
    land(wh, "sessions", "a.jsonl", line(event_id="x1") + "\n")
    ingest_landing(wh)  # creates the vault
    conn = open_vault(wh)
    try:
        conn.execute(
            """insert into events.events
               select 2, 'erase-7', 'erasure/' || participant_key('7'), 'participant_erased', 1, now(), now(),
                      now(), 'erasure-batch', 'erasure', 'h', json_object('participant_key', participant_key('7'))""")
    finally:
        conn.close()
    land(wh, "sessions", "b.jsonl", "\n".join([line(event_id="x2", record_id="7"), line(event_id="x3")]) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.reasons) == (1, {"erased_participant": 1})
    assert rows(wh, "select location from events.quarantine where reason_code = 'erased_participant'") == [
        ("line 1",)]
    assert rows(wh, "select event_id from events.events where event_id like 'x%' order by seq") == [("x1",), ("x3",)]


def test_quarantined_lines_leave_the_events_numbered_in_file_order_without_a_sort(wh, monkeypatch):
    seen = _spy_on_the_order_check(monkeypatch)
    n = 70_000
    body = [line(event_id=f"q{n - i:06d}") for i in range(n)]
    body[5] = "{broken"
    body[66_000] = line(event_id="bad", session_number=0)
    land(wh, "sessions", "q.jsonl", "\n".join(body) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.reasons) == (n - 2, {"not_json": 1, "bad_session_number": 1})
    assert seen == [True]  # the staged events kept their lines' order: numbered by row, no sort
    seqs = held(wh)
    assert [s for s, _, _ in seqs] == list(range(1, n - 1))
    assert [e for _, e, _ in seqs] == [f"q{n - i:06d}" for i in range(n) if i not in (5, 66_000)]


def test_the_stage_order_check_accepts_only_dense_rising_rows():
    import duckdb

    from ingestion import store

    conn = duckdb.connect()
    store.start_stage(conn)
    assert store._stage_in_order(conn)  # nothing staged
    conn.execute("insert into stage_events (event_id, ord) values ('a', 1), ('b', 2), ('c', 5)")
    assert store._stage_in_order(conn)
    conn.execute("insert into stage_events (event_id, ord) values ('d', 4)")  # out of order
    assert not store._stage_in_order(conn)
    store.start_stage(conn)
    conn.execute("insert into stage_events (event_id, ord) values ('a', 1), ('b', 1)")  # a tie
    assert not store._stage_in_order(conn)
    store.start_stage(conn)
    conn.execute("insert into stage_events (event_id, ord) values ('a', 1), ('b', null)")
    assert not store._stage_in_order(conn)
    store.start_stage(conn)
    conn.execute("insert into stage_events (event_id, ord) values ('a', 1), ('b', 2), ('c', 3)")
    conn.execute("delete from stage_events where event_id = 'b'")  # a gap in the row ids
    assert not store._stage_in_order(conn)


def test_a_payload_holds_the_fields_of_its_line_that_are_present_and_nothing_else(wh):
    land(wh, "sessions", "p.jsonl", "\n".join([
        line(event_id="p1", event_type="session_scheduled", scheduled_for="2025-03-12T09:30:00-04:00",
             staff_id='CM"01', note="call Zebulon"),
        line(event_id="p2", event_type="session_attended", duration_min="45", activities=["linkage", "transport"],
             mode="phone", recorded_at=None),
        line(event_id="p3", event_type="treatment_discharged", service=None, session_number=None, program_id=3,
             discharge_reason="completed"),
    ]) + "\n")
    [out] = ingest_landing(wh).outcomes
    assert out.events_appended == 3
    got = {e: (v, json.loads(p)) for e, v, p in rows(
        wh, "select event_id, event_version, payload::varchar from events.events order by seq")}
    assert got["p1"] == (3, {"scheduled_for": "2025-03-12T09:30:00-04:00",
                             "service": "case_management", "session_number": 1, "staff_id": 'CM"01'})
    assert got["p2"] == (3, {"service": "case_management", "session_number": 1, "mode": "phone",
                             "duration_min": 45, "activities": ["linkage", "transport"]})
    assert got["p3"] == (3, {"program_id": 3, "discharge_reason": "completed"})


def test_values_written_into_statements_read_back_as_bound_ones():
    from datetime import UTC, datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    import duckdb
    import pytest

    from ingestion.store import lit

    at = datetime(2025, 3, 10, 10, 0, 5, 123456, tzinfo=timezone(timedelta(hours=-4)))
    lmt = datetime(1880, 1, 1, 12, tzinfo=ZoneInfo("America/New_York"))  # local mean time: -04:56:02
    values = [None, True, False, 0, -12, 2**62, "it's \"quoted\" \\ ; --", "", "a\x00b\x00", at, datetime.now(UTC), lmt]
    conn = duckdb.connect()
    conn.execute("set timezone = 'UTC'")
    got = conn.execute("select " + ", ".join(lit(v) for v in values)).fetchone()
    assert list(got[:9]) == values[:9]
    assert conn.execute(f"select {lit('café ✓')}").fetchone() == ("café ✓",)
    assert got[9:] == tuple(values[9:])
    import numpy as np

    assert lit(np.int64(7)) == "7" and lit(np.uint32(3)) == "3"
    with pytest.raises(ValueError):
        lit(datetime(2025, 3, 10))  # no offset: refused, not guessed
    with pytest.raises(TypeError):
        lit(1.5)


def test_a_new_file_of_the_size_of_one_held_is_still_read(wh):
    a = line(event_id="s1") + "\n"
    b = line(event_id="s2") + "\n"
    assert len(a) == len(b)
    land(wh, "sessions", "a.jsonl", a)
    [first] = ingest_landing(wh).outcomes
    land(wh, "sessions", "b.jsonl", b)
    [second] = ingest_landing(wh).outcomes  # the same size: hashed before reading, and new
    assert (first.events_appended, second.events_appended) == (1, 1)
    assert rows(wh, "select file_name, sha256 from events.batches order by ingested_at") == [
        ("a.jsonl", hashlib.sha256(a.encode()).hexdigest()), ("b.jsonl", hashlib.sha256(b.encode()).hexdigest())]


def test_a_batch_staged_out_of_order_is_ranked_and_its_repeated_event_left_out(wh, tmp_path):
    from ingestion import store

    land(wh, "sessions", "a.jsonl", line(event_id="held") + "\n")
    ingest_landing(wh)  # one event held, seq 1
    conn = open_vault(wh)
    try:
        [(held_hash,)] = conn.execute(
            f"select {store.session_content_sql(note='null', extra='null')} from events.events").fetchall()
        store.start_stage(conn)
        # staged against their file order (ord falls), one of them already held, one repeated
        conn.execute(f"""insert into stage_events values
            ('c', 'participant/1', 'session_attended', 2, now(), now(), 'h3', '{{}}', 3),
            ('held', 'participant/1', 'session_attended', 2, now(), now(), '{held_hash}', '{{}}', 2),
            ('b', 'participant/1', 'session_attended', 2, now(), now(), 'h2', '{{}}', 1),
            ('c', 'participant/1', 'session_attended', 2, now(), now(), 'h3', '{{}}', 4)""")
        assert not store._stage_in_order(conn)
        f = tmp_path / "b.jsonl"
        f.write_text("x")
        out = store.commit_batch(conn, source="sessions", path=f, sha256="f" * 64, status="applied", rows_read=4)
        got = conn.execute("select seq, event_id from events.events order by seq").fetchall()
    finally:
        conn.close()
    assert (out.events_appended, out.duplicates) == (2, 2)
    assert got == [(1, "held"), (2, "b"), (3, "c")]  # file order (ord), the held and the repeated left out


# --- reading a large log ----------------------------------------------------------------------------

def test_a_large_log_is_read_whole_into_memory_on_two_threads(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    body = ("\n".join(line(event_id=f"e{i}") for i in range(500)) + "\n").encode()
    path.write_bytes(body)
    assert ingest.read_log(path) == body  # below the size worth two threads: plain bytes
    monkeypatch.setattr(ingest, "_PIECE", 1000)  # pieces of 1,000 bytes: the file is "large"
    data = ingest.read_log(path)
    assert isinstance(data, mmap.mmap) and bytes(data) == body
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(body).hexdigest()
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert ingest.read_log(tmp_path / "empty.jsonl") == b""


def test_a_log_that_changes_size_while_it_is_read_is_read_again_whole(tmp_path, monkeypatch):
    """The size seen when the file is opened is wrong once it grows or shrinks: what is returned is the
    file as one read finds it, never a buffer with a hole or a missing tail."""
    path = tmp_path / "log.jsonl"
    body = ("\n".join(line(event_id=f"e{i}") for i in range(500)) + "\n").encode()
    path.write_bytes(body)
    monkeypatch.setattr(ingest, "_PIECE", 1000)
    real_fstat = ingest.os.fstat
    for wrong in (len(body) - 5000, len(body) + 5000):  # grew since, shrank since
        monkeypatch.setattr(ingest.os, "fstat", lambda fd, size=wrong: os.stat_result(
            tuple(real_fstat(fd))[:6] + (size,) + tuple(real_fstat(fd))[7:]))
        data = ingest.read_log(path)
        assert bytes(data) == body, wrong


def test_a_log_read_into_memory_is_ingested_as_one_read_as_bytes(wh, tmp_path, monkeypatch):
    text = ("\ufeff" + "\r\n".join([line(event_id="m1", note="caf\u00e9"), "", line(event_id="m2"), "{broken",
                                    line(event_id="m3", staff_id="CM01")]) + "\r\n").encode()
    land(wh, "sessions", "log.jsonl", text)
    plain = ingest_landing(wh).outcomes[0]
    other = dataclasses.replace(wh, warehouse_dir=tmp_path / "memory-warehouse")
    monkeypatch.setattr(ingest, "_PIECE", 64)
    read = []
    real = ingest.read_log
    monkeypatch.setattr(ingest, "read_log", lambda p: read.append(type(real(p))) or real(p))
    in_memory = ingest_landing(other).outcomes[0]
    assert read == [mmap.mmap]
    assert (in_memory.events_appended, in_memory.reasons) == (plain.events_appended, plain.reasons) == (3, {"not_json": 1})
    for sql in ("select seq, event_id, payload::varchar from events.events order by seq",
                "select location, reason_code from events.quarantine order by 1",
                "select event_id, note from identified.session_notes order by 1",
                "select sha256, size_bytes, rows_read from events.batches"):
        assert rows(wh, sql) == rows(other, sql), sql
    assert rows(wh, "select sha256 from events.batches") == [(hashlib.sha256(text).hexdigest(),)]
