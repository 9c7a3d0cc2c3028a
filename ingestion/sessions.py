"""The case-management / treatment session log (JSON Lines) -> session events.

Every line is validated in one DuckDB statement: JSON object, required fields
per type, known codes, ISO-8601 timestamps with an offset, nothing dated after
its own recording. Notes (and keys the contract does not define) go to the
identified store only; the payload is built from an allow-list of fields.

The file's bytes are never decoded into Python text: numpy finds the line
breaks and the lines reach DuckDB as zero-copy Arrow views of the bytes (a
file that is not UTF-8 is decoded first, as ``readers.decode_text`` does).
"""

from __future__ import annotations

import mmap
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

# DuckDB imports pyarrow.dataset (and with it pandas: about 0.25 s) the first time it scans an
# Arrow table; imported here, with the reader, so that it is not paid in the middle of an ingest.
import pyarrow.dataset  # noqa: F401  isort: skip

from ingestion.catalogue import (
    ACTIVITIES,
    DISCHARGE_REASONS,
    EVENT_VERSIONS,
    SESSION_EVENT_TYPES,
    SESSION_MODES,
    SESSION_PAYLOAD_FIELDS,
    SESSION_SERVICES,
)
from ingestion.readers import ReadError, decode_text
from ingestion.store import lit, session_content_sql
from ingestion.vault import sql_str

MAX_LINE_CHARS = 100_000
KNOWN_KEYS = (
    "event_id", "event_type", "record_id", "occurred_at", "scheduled_for", "recorded_at", "service",
    "session_number", "staff_id", "mode", "duration_min", "activities", "program_id", "discharge_reason",
    "voids_event_id", "note",
)
SESSION_TYPES = ("session_scheduled", "session_attended", "session_missed", "session_cancelled")
TREATMENT_TYPES = ("treatment_admitted", "treatment_visit", "treatment_discharged")


# ISO-8601 with a UTC offset. The three times of a line are checked in one match of the three
# joined by '|' (each may be absent) rather than in three matches (0.03 s less per million lines).
_TS_BODY = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)"
_TIMES_OK = (f"regexp_matches(concat(v.occurred_at, '|', v.recorded_at, '|', v.scheduled_for), "
             f"'^({_TS_BODY})?\\|({_TS_BODY})?\\|({_TS_BODY})?$')")
_STRUCT = "{" + ", ".join(f'"{k}": "VARCHAR"' for k in KNOWN_KEYS if k != "activities") + ', "activities": "JSON"}'


def _list(values: tuple[str, ...]) -> str:
    """A SQL list literal: tested with list_contains, not IN (...), which DuckDB turns into a join
    that costs more and gives up the lines' order (the store numbers events in that order)."""
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


_KNOWN_LIST = _list(KNOWN_KEYS)

_WS = r"'^[\s\x0b\x{85}\pZ]*$'"  # a blank line (any Unicode white space, as str.strip() sees it)
# Every session event type has the same payload version (one constant rather than a CASE per line).
(_VERSION,) = {EVENT_VERSIONS[t] for t in SESSION_EVENT_TYPES}
_PRESENT = "(" + " + ".join(f"(v.{k} is not null)::int" for k in KNOWN_KEYS) + ")"
_NULLS = ", ".join(f"'{k}', null" for k in KNOWN_KEYS)


def _payload_member(key: str) -> str:
    """'"key":value' when the field is present, else null (dropped by concat_ws): every value
    below is null when its field is, and so is the concatenation (no CASE needed)."""
    column = "scheduled_raw" if key == "scheduled_for" else key  # the time as written, with its offset
    if key in ("session_number", "duration_min", "program_id", "activities"):
        value = f"{column}::varchar"  # an integer, or the activities array (JSON, checked)
    elif key in ("service", "mode", "scheduled_for"):
        # one of the contract's codes, or a time checked to be ISO-8601 (checked whatever the event's
        # type): nothing in them to escape. (A discharge_reason is checked on a discharge only.)
        value = f"""'"' || {column} || '"'"""
    else:
        value = f"to_json({column})::varchar"  # free text (record_id, staff_id, ...): escaped
    return f"""'"{key}":' || {value}"""


# Version 3 of a session event's payload (see ingestion.catalogue): the fields of the line that
# are present, besides the envelope (event_id, event_type, occurred_at, recorded_at, and the
# record_id in the stream: columns of the store) and the note. Written as text: concat_ws leaves
# the absent fields out.
_PAYLOAD = "'{' || concat_ws(',', " + ", ".join(_payload_member(k) for k in SESSION_PAYLOAD_FIELDS) + ") || '}'"

# The checks every line goes through: the line is checked as JSON (json_valid), parsed once into
# a struct of the contract's fields (values as text), its keys counted, typed and given a reason
# code when it cannot be used. In PARSE_SQL a line that is too long or not a JSON object is never
# handed to the JSON parser (direct_insert_sql parses every line: see there). ``r`` has a row per
# line that is not blank (``idx``: its rank among the lines that are not empty). Two statements
# read it: PARSE_SQL and direct_insert_sql.
PARSE_CTES = f"""
with l as (
    select line_no, idx, line,
           case when strlen(line) > {MAX_LINE_CHARS} then length(line) > {MAX_LINE_CHARS} else false end as too_long
    from sl_lines
    where is_line and (starts_with(line, '{{') or not regexp_matches(line, {_WS}))
),
o as (
    select line_no, idx, line, too_long,
           not too_long and __JSON_VALID__
           and (starts_with(line, '{{') or regexp_matches(line, '^[ \\t\\r\\n]*\\{{')) as is_object
    from l
),
f as (
    select line_no, idx, line, too_long, is_object,
           __IF_OBJECT__ from_json(line, '{_STRUCT}') __END_IF__ as v,
           __IF_OBJECT__ len(json_keys(line)) __END_IF__ as n_keys
    from o
),
t as (
    select line_no, idx, line, too_long, not is_object as not_object,
        -- a key the contract does not define: only a line with more keys than known fields holding
        -- a value can have one (a known key set to null, or a key twice, also make more), and only
        -- such a line has its keys listed and looked up
        case when n_keys > {_PRESENT}
             then not list_has_all({_KNOWN_LIST}, json_keys(line))
             else false end as has_extra,
        v.event_id, v.event_type, v.record_id, v.occurred_at as occurred_raw, v.recorded_at as recorded_raw,
        v.scheduled_for as scheduled_raw, v.service, v.mode, v.discharge_reason, v.voids_event_id, v.staff_id,
        v.duration_min as duration_raw,
        case when json_type(v.activities) <> 'NULL' then v.activities end as activities, v.note,
        -- when one of the three is not ISO-8601 with an offset, none is read (the line is quarantined)
        case when times_ok then try_cast(v.occurred_at as timestamptz) end as occurred_at,
        case when times_ok then try_cast(v.recorded_at as timestamptz) end as recorded_at,
        case when times_ok then try_cast(v.scheduled_for as timestamptz) end as scheduled_for,
        try_cast(v.session_number as integer) as session_number,
        try_cast(v.program_id as integer) as program_id,
        try_cast(v.duration_min as integer) as duration_min
    from (select *, {_TIMES_OK} as times_ok from f)
),
r as (
    select *,
        case
            when too_long then 'line_too_long'
            when not_object then 'not_json'
            when coalesce(event_id, '') = '' then 'missing_event_id'
            when coalesce(event_type, '') = '' then 'missing_event_type'
            when not list_contains({_list(SESSION_EVENT_TYPES)}, event_type) then 'unknown_event_type'
            when coalesce(record_id, '') = '' then 'missing_record_id'
            when occurred_raw is null then 'missing_occurred_at'
            when occurred_at is null then 'bad_timestamp'
            when recorded_raw is not null and recorded_at is null then 'bad_timestamp'
            when scheduled_raw is not null and scheduled_for is null then 'bad_timestamp'
            when occurred_at > coalesce(recorded_at, __NOW__) then 'future_dated'
            when list_contains({_list(SESSION_TYPES)}, event_type) and (service is null or not list_contains({_list(SESSION_SERVICES)}, service)) then 'bad_service'
            when list_contains({_list(SESSION_TYPES)}, event_type) and (session_number is null or session_number < 1 or session_number > 99) then 'bad_session_number'
            when service is not null and not list_contains({_list(SESSION_SERVICES)}, service) then 'bad_service'
            when list_contains({_list(TREATMENT_TYPES)}, event_type) and (program_id is null or program_id < 1 or program_id > 99) then 'bad_program_id'
            when event_type = 'treatment_discharged' and not list_contains({_list(DISCHARGE_REASONS)}, coalesce(discharge_reason, '')) then 'bad_discharge_reason'
            when event_type = 'event_voided' and coalesce(voids_event_id, '') = '' then 'missing_voids_event_id'
            when mode is not null and not list_contains({_list(SESSION_MODES)}, mode) then 'bad_mode'
            when duration_raw is not null and (duration_min is null or duration_min < 0) then 'bad_duration'
            when activities is not null and (json_type(activities) <> 'ARRAY'
                 or not list_has_all({_list(ACTIVITIES)}, from_json(activities, '["VARCHAR"]'))) then 'bad_activities'
        end as reason_code
    from t
)
"""

# stage_events from every line, usable or not: besides the event's columns, the line's reason code,
# record_id, note and unknown keys (``extra``), which ``stage_session_log`` moves to the quarantine
# and the notes and then drops. No content hash: a session event is compared by its content
# (store.session_content_sql), and only when its event_id is held already or repeated.
PARSE_SQL = "create or replace temp table stage_events as " + PARSE_CTES.replace("__JSON_VALID__", "json_valid(line)").replace(
    "__IF_OBJECT__", "case when is_object then").replace("__END_IF__", "end") + f"""
select
    event_id::varchar as event_id, ('participant/' || record_id)::varchar as stream, event_type::varchar as event_type,
    ({_VERSION})::integer as event_version, occurred_at::timestamptz as occurred_at,
    coalesce(recorded_at, occurred_at)::timestamptz as recorded_at,
    null::varchar as content_hash,
    (case when reason_code is null then {_PAYLOAD} end)::json as payload,
    line_no::bigint as ord,
    -- the line's own columns, dropped once the quarantine and the notes are staged
    reason_code, record_id, note,
    case when reason_code is null and has_extra then json_merge_patch(line::json, json_object({_NULLS})) end as extra
from r
"""

REASONS = {
    "erased_participant": "the participant withdrew all data: the event is not ingested (remove it at the source)",
    "line_too_long": f"the line is longer than {MAX_LINE_CHARS:,} characters",
    "not_json": "the line is not a JSON object",
    "missing_event_id": "the event has no event_id",
    "missing_event_type": "the event has no event_type",
    "unknown_event_type": "the event_type is not one the contract defines",
    "missing_record_id": "the event has no record_id",
    "missing_occurred_at": "the event has no occurred_at",
    "bad_timestamp": "a timestamp is not ISO-8601 with a UTC offset",
    "future_dated": "occurred_at is later than recorded_at (or than the moment of ingestion): dated in the future",
    "bad_service": "the service is missing or not one of case_management, motivational_interviewing, standard_referral",
    "bad_session_number": "the session_number is missing or not a positive integer",
    "bad_program_id": "the program_id is missing or not a program number",
    "bad_discharge_reason": "the discharge_reason is missing or not one the contract defines",
    "missing_voids_event_id": "an event_voided needs voids_event_id",
    "bad_mode": "the mode is not in_person, phone or community",
    "bad_duration": "duration_min is not a whole number of minutes",
    "bad_activities": "activities is not a list of the contract's activity codes",
}


_SPLITTERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="split-lines")


def _split_lines(data: bytes | mmap.mmap) -> pa.Table:
    """The file's lines as an Arrow table: ``line_no`` (from 1), ``line`` (without its line break), ``is_line``,
    and ``idx``, the line's rank among the lines that are not empty (the sequence a file without
    unusable lines gives its events).

    Valid UTF-8 (with or without a BOM) is neither decoded into Python text nor
    copied: the lines are views into ``data``, cut at each LF (found by numpy).
    So that the views need no copy, every line break is an element of its own
    (``is_line`` false) between two lines. Anything that is not UTF-8 is decoded
    as ``decode_text`` decodes it (Windows-1252, else Latin-1) and re-encoded.
    CRLF and a lone CR end a line, as LF does. ``data`` is bytes, or the memory
    ``ingest.read_log`` read the file into: only what both offer is used here
    (``find``, not ``in``, which is slow on that memory).
    """
    if b"\x00" in data[:4096]:
        raise ReadError("binary_file", "the file holds binary data (NUL bytes), not a text export")
    if data.find(b"\r") >= 0:
        data = bytes(data).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    start = 3 if data[:3] == b"\xef\xbb\xbf" else 0
    if not (isinstance(data, bytes) and data.isascii()):  # ASCII is UTF-8; the rest is checked (without a copy) by Arrow
        whole = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), 1, [None, pa.py_buffer(np.array([start, len(data)], dtype=np.int64)), pa.py_buffer(data)])
        try:
            whole.cast(pa.large_string())  # only checks that the bytes are UTF-8
        except pa.ArrowInvalid:
            data, start = decode_text(bytes(data)).encode("utf-8"), 0
        del whole
    raw = np.frombuffer(data, dtype=np.uint8)
    step = 1 << 24  # LF positions, 16 MB at a time (no file-sized temporary), on both cores (numpy
    # lets go of the GIL): 0.03 s instead of 0.07 s for 236 MB

    def chunk(i: int) -> np.ndarray:
        return np.flatnonzero(raw[i:i + step] == 10) + i

    breaks = np.concatenate([np.zeros(0, dtype=np.int64), *_SPLITTERS.map(chunk, range(start, len(data), step))])
    # Elements: line 1, LF, line 2, LF, ..., and the last line if the file does not end with a break.
    tail = len(data) > (breaks[-1] + 1 if len(breaks) else start)
    offsets = np.empty(2 * len(breaks) + 1 + tail, dtype=np.int64)
    offsets[0] = start
    offsets[1:2 * len(breaks):2] = breaks
    offsets[2:2 * len(breaks) + 1:2] = breaks + 1
    if tail:
        offsets[-1] = len(data)
    n = len(offsets) - 1
    line_no = np.arange(n, dtype=np.int64)
    line_no >>= 1
    line_no += 1
    is_line = np.zeros(n, dtype=bool)
    is_line[::2] = True
    empty = offsets[1::2] == offsets[0:n:2][:len(offsets) // 2]  # line k spans offsets[2k]..offsets[2k+1]
    if empty.any():  # rank among the lines that are not empty (each break element: its line's)
        idx = np.repeat(np.cumsum(~empty, dtype=np.int64), 2)[:n]
    else:
        idx = line_no
    # Arrays made from their buffers (pa.array of a numpy array would import pandas: 0.2 s).
    table = pa.Table.from_arrays([
        pa.Int64Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(line_no)]),
        pa.Int64Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(idx)]),
        pa.BooleanArray.from_buffers(pa.bool_(), n, [None, pa.py_buffer(np.packbits(is_line, bitorder="little"))]),
        pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)),
    ], names=["line_no", "idx", "is_line", "line"])
    # In batches, so that DuckDB scans them in parallel (one batch would be read by one thread):
    # 16,384 lines a batch. Batches twice as large left one core idle at the end of the direct
    # statement (0.05 s more per million lines); half as large cost more than they saved.
    return pa.Table.from_batches(table.to_batches(max_chunksize=1 << 15), table.schema)


def stage_session_log(conn: duckdb.DuckDBPyConnection, data: bytes | mmap.mmap, ingest_time: datetime) -> tuple[str, int, str]:
    lines = _split_lines(data)
    conn.register("sl_lines", lines)
    try:
        # stage_events is rebuilt with every line of the file, usable or not, and the line's
        # reason code, record_id, note and unknown keys; what is not an event goes below.
        conn.execute(PARSE_SQL.replace("__NOW__", lit(ingest_time)))
    finally:
        conn.unregister("sl_lines")
        del lines
    # Participants who withdrew all data never come back (their events are not stored).
    from ingestion.erasure import erased_keys_sql

    if conn.execute("select count(*) from events.events where event_type = 'participant_erased'").fetchone()[0]:
        conn.execute(
            f"""update stage_events set reason_code = 'erased_participant'
                where reason_code is null and record_id in (
                    select record_id from (select distinct record_id from stage_events where record_id is not null)
                    where participant_key(record_id) in ({erased_keys_sql()}))"""
        )
    reasons = ", ".join(f"('{code}', {sql_str(reason)})" for code, reason in REASONS.items())
    conn.execute(
        f"""insert into stage_quarantine
            select 'line ' || s.ord, s.reason_code, r.reason
            from stage_events s join (values {reasons}) r(code, reason) on r.code = s.reason_code
            where s.reason_code is not null
            order by s.ord"""
    )
    conn.execute(
        """
        insert into stage_notes
        select event_id, record_id, note, extra, ord from stage_events
        where reason_code is null and (note is not null or extra is not null)
        """
    )
    # The events the store must compare (their event_id is held already, or repeated in the file)
    # get the hash of their content, note and unknown keys included; the others need none.
    conn.execute(
        f"""update stage_events set content_hash = {session_content_sql()}
            where reason_code is null and (
                event_id in (select event_id from events.events)
                or event_id in (select event_id from stage_events where reason_code is null
                                group by event_id having count(*) > 1))"""
    )
    rows, quarantined, extra = conn.execute(
        """select count(*), count(reason_code), count(*) filter (where reason_code is null and extra is not null)
           from stage_events"""
    ).fetchone()
    line_columns = ("reason_code", "record_id", "note", "extra")
    if quarantined:
        # Copied rather than deleted from: the events keep dense row ids in the order of their
        # lines, so that the store can number them without sorting (store.commit_batch).
        conn.execute(f"""create or replace temp table stage_events as
                         select * exclude ({", ".join(line_columns)}) from stage_events
                         where reason_code is null""")
    else:
        for column in line_columns:
            conn.execute(f"alter table stage_events drop column {column}")
    detail = f"{extra} line(s) carried keys the contract does not define; kept in the identified store only" if extra else ""
    return "applied", rows, detail


def direct_insert_sql(seq0: int, now: datetime, batch_id: str, source: str) -> str:
    """One statement that checks every line and appends its event to the store, numbered ``seq0 + idx``.

    Only a line that is a usable event and carries no key the contract does not define is
    appended: any other line leaves a gap that ``DirectInsert`` sees in the count. The line
    is not checked with json_valid first: a line that is not JSON makes the statement fail,
    which sends the whole file down the staged path as well.
    """
    # Nor is the JSON parsed only when the line is an object: a line that is JSON but not an
    # object gives null fields, and is not appended (missing_event_id), and the CASE that would
    # skip it costs 0.03 s per million lines.
    ctes = (PARSE_CTES.replace("__JSON_VALID__", "true").replace("__IF_OBJECT__", "").replace("__END_IF__", "")
            .replace("__NOW__", lit(now)))
    return "insert into events.events " + ctes + f"""
select {seq0} + idx, event_id, 'participant/' || record_id, event_type, {_VERSION}, occurred_at,
       coalesce(recorded_at, occurred_at), {lit(now)}, {lit(batch_id)}, {lit(source)}, null, {_PAYLOAD}
from r
where reason_code is null and not has_extra
"""


# The lines with a note are read again for it: a line has one only if it holds the text note, or
# a \u escape (the only way to escape a letter: "no\u0074e"). A needle that starts with a quote
# takes twice as long to look for (quotes are everywhere). (Referring to the note in the direct
# statement itself made it 0.15 s slower per million lines.) They are read on another connection
# while this one checks the appended event_ids (a check that keeps one core busy), then inserted.
_NOTES_SQL = f"""
select v.event_id, v.record_id, v.note
from (select from_json(line, '{_STRUCT}') as v from sl_note_lines
      where is_line and (contains(line, 'note') or contains(line, '\\u'))) as x
where v.note is not null
"""
_NOTE_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-notes")


def _read_notes(cursor: duckdb.DuckDBPyConnection, lines: pa.Table) -> pa.Table:
    """The event_id, record_id and note of every line with a note (on ``cursor``, its own connection)."""
    try:
        cursor.register("sl_note_lines", lines)
        return cursor.execute(_NOTES_SQL).to_arrow_table()
    finally:
        cursor.close()


_SAMPLE_LINES = 64


class DirectInsert:
    """The fast path of a session log: its events appended in the statement that checks them.

    ``store.commit_batch`` calls it inside the batch's transaction. It returns the number of
    events appended, or None when the file needs the staged path (``stage_session_log``): a
    line that cannot be used (it is quarantined there, with its reason), a line with a key the
    contract does not define, an event_id already held or repeated in the file (compared there),
    a participant who withdrew all data. The caller then rolls the transaction back.
    """

    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.lines = _split_lines(data)
        self.expected = int(self.lines.column("idx")[-1].as_py()) if len(self.lines) else 0

    def _starts_with_held_events(self, conn: duckdb.DuckDBPyConnection) -> bool:
        """Whether one of the file's first lines is an event the store holds: a log exported again
        whole (the old events, then the new) goes straight to the staged path, which skips the
        held events, rather than being appended here first and then rolled back."""
        conn.register("sl_sample", self.lines.slice(0, 2 * _SAMPLE_LINES))
        try:
            return bool(conn.execute(
                """select count(*) from events.events where event_id in (
                       select try(json_extract_string(line, '$.event_id')) from sl_sample where is_line)"""
            ).fetchone()[0])
        finally:
            conn.unregister("sl_sample")

    def __call__(self, conn: duckdb.DuckDBPyConnection, seq0: int, batch_id: str, source: str, now: datetime) -> int | None:
        if not self.expected or (seq0 and self._starts_with_held_events(conn)):
            return None
        conn.register("sl_lines", self.lines)
        try:
            try:
                (appended,) = conn.execute(direct_insert_sql(seq0, now, batch_id, source)).fetchone()
            except duckdb.Error:  # a line that is not JSON (or anything else): the staged path decides
                return None
            if appended != self.expected:
                return None
            notes = _NOTE_READER.submit(_read_notes, conn.cursor(), self.lines)
            try:
                usable = self._checks_pass(conn, seq0)
            except duckdb.Error:
                usable = False
            finally:
                wait([notes])  # the other connection has finished before this one goes on
            if not usable:
                return None
            try:
                note_rows = notes.result()
            except duckdb.Error:  # (every line was parsed above) the staged path decides, as for any error here
                return None
            conn.register("sl_notes", note_rows)
            try:
                conn.execute(f"insert into identified.session_notes select event_id, record_id, note, null, {lit(batch_id)} from sl_notes")
            finally:
                conn.unregister("sl_notes")
            return appended
        finally:
            conn.unregister("sl_lines")

    def _checks_pass(self, conn: duckdb.DuckDBPyConnection, seq0: int) -> bool:
        """No event_id appended twice or held already, and nobody in the file withdrew all data."""
        # two lines with one event_id (counted by the ids' 64-bit hashes: as many hashes as events
        # proves the ids distinct; two ids that share a hash, about one chance in 37 million for a
        # million events, only send the file down the staged path), or an event_id held already
        new = f"select event_id from events.events where seq > {seq0}"
        clashes = conn.execute(f"select count(*) - count(distinct hash(event_id)) from ({new})").fetchone()[0]
        if not clashes and seq0:  # (an empty store holds nothing to clash with)
            clashes = conn.execute(
                f"select count(*) from ({new}) where event_id in (select event_id from events.events where seq <= {seq0})"
            ).fetchone()[0]
        if clashes:
            return False
        from ingestion.erasure import erased_keys_sql

        return not (conn.execute(f"select count(*) from events.events where seq <= {seq0} and event_type = 'participant_erased'"
                                 ).fetchone()[0] and conn.execute(
            f"""select count(*) from (select distinct stream from events.events where seq > {seq0})
                where participant_key(substr(stream, {len('participant/') + 1})) in ({erased_keys_sql()})"""
        ).fetchone()[0])
