"""The case-management / treatment session log (JSON Lines) -> session events.

Every line is validated in one DuckDB pass: JSON object, required fields per
type, known codes, ISO-8601 timestamps with an offset, nothing dated after its
own recording. Notes (and keys the contract does not define) go to the
identified store only; the payload is built from an allow-list of fields.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from ingestion.catalogue import (
    ACTIVITIES,
    DISCHARGE_REASONS,
    EVENT_VERSIONS,
    SESSION_EVENT_TYPES,
    SESSION_MODES,
    SESSION_SERVICES,
)
from ingestion.readers import decode_text

MAX_LINE_CHARS = 100_000
KNOWN_KEYS = (
    "event_id", "event_type", "record_id", "occurred_at", "scheduled_for", "recorded_at", "service",
    "session_number", "staff_id", "mode", "duration_min", "activities", "program_id", "discharge_reason",
    "voids_event_id", "note",
)
SESSION_TYPES = ("session_scheduled", "session_attended", "session_missed", "session_cancelled")
TREATMENT_TYPES = ("treatment_admitted", "treatment_visit", "treatment_discharged")


def _sql_list(values) -> str:
    return "[" + ", ".join("'" + v + "'" for v in values) + "]"


_TS = r"'^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$'"

VALIDATE_SQL = f"""
create or replace temp table sl_parsed as
with l as (
    select line_no, line, length(line) > {MAX_LINE_CHARS} as too_long from sl_lines
),
j as (
    select line_no, too_long,
           case when not too_long and json_valid(line) and json_type(line::json) = 'OBJECT' then line::json end as j
    from l
),
f as (
    select line_no, too_long, j,
        j->>'event_id' as event_id, j->>'event_type' as event_type, j->>'record_id' as record_id,
        j->>'occurred_at' as occurred_raw, j->>'recorded_at' as recorded_raw, j->>'scheduled_for' as scheduled_raw,
        j->>'service' as service, j->>'mode' as mode, j->>'discharge_reason' as discharge_reason,
        j->>'voids_event_id' as voids_event_id, j->>'staff_id' as staff_id,
        j->>'session_number' as session_number_raw, j->>'program_id' as program_id_raw,
        j->>'duration_min' as duration_raw,
        case when json_type(j->'activities') <> 'NULL' then j->'activities' end as activities, j->>'note' as note
    from j
)
select *,
    case when regexp_matches(coalesce(occurred_raw, ''), {_TS}) then try_cast(occurred_raw as timestamptz) end as occurred_at,
    case when regexp_matches(coalesce(recorded_raw, ''), {_TS}) then try_cast(recorded_raw as timestamptz) end as recorded_at,
    case when regexp_matches(coalesce(scheduled_raw, ''), {_TS}) then try_cast(scheduled_raw as timestamptz) end as scheduled_for,
    try_cast(session_number_raw as integer) as session_number,
    try_cast(program_id_raw as integer) as program_id,
    try_cast(duration_raw as integer) as duration_min
from f
"""

REASON_SQL = f"""
create or replace temp table sl_checked as
select *,
    case
        when too_long then 'line_too_long'
        when j is null then 'not_json'
        when coalesce(event_id, '') = '' then 'missing_event_id'
        when coalesce(event_type, '') = '' then 'missing_event_type'
        when event_type not in {_sql_list(SESSION_EVENT_TYPES).replace('[', '(').replace(']', ')')} then 'unknown_event_type'
        when coalesce(record_id, '') = '' then 'missing_record_id'
        when occurred_raw is null then 'missing_occurred_at'
        when occurred_at is null then 'bad_timestamp'
        when recorded_raw is not null and recorded_at is null then 'bad_timestamp'
        when scheduled_raw is not null and scheduled_for is null then 'bad_timestamp'
        when occurred_at > coalesce(recorded_at, $now) then 'future_dated'
        when event_type in {tuple(SESSION_TYPES)} and (service is null or service not in {tuple(SESSION_SERVICES)}) then 'bad_service'
        when event_type in {tuple(SESSION_TYPES)} and (session_number is null or session_number < 1 or session_number > 99) then 'bad_session_number'
        when service is not null and service not in {tuple(SESSION_SERVICES)} then 'bad_service'
        when event_type in {tuple(TREATMENT_TYPES)} and (program_id is null or program_id < 1 or program_id > 99) then 'bad_program_id'
        when event_type = 'treatment_discharged' and coalesce(discharge_reason, '') not in {tuple(DISCHARGE_REASONS)} then 'bad_discharge_reason'
        when event_type = 'event_voided' and coalesce(voids_event_id, '') = '' then 'missing_voids_event_id'
        when mode is not null and mode not in {tuple(SESSION_MODES)} then 'bad_mode'
        when duration_raw is not null and (duration_min is null or duration_min < 0) then 'bad_duration'
        when activities is not null and (json_type(activities) <> 'ARRAY'
             or len(list_filter(from_json(activities, '["VARCHAR"]'), a -> a not in {tuple(ACTIVITIES)})) > 0) then 'bad_activities'
    end as reason_code
from sl_parsed
"""

REASONS = {
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


def stage_session_log(conn: duckdb.DuckDBPyConnection, data: bytes, ingest_time: datetime) -> tuple[str, int, str]:
    text = decode_text(data)
    lines = text.split("\n")
    df = pl.DataFrame({"line": lines}).with_row_index("line_no", offset=1).filter(pl.col("line").str.strip_chars() != "")
    conn.register("sl_lines", df)
    conn.execute(VALIDATE_SQL)
    conn.execute(REASON_SQL, {"now": ingest_time})
    conn.unregister("sl_lines")
    reasons = pl.DataFrame({"code": list(REASONS), "reason": list(REASONS.values())})
    conn.register("sl_reasons", reasons)
    conn.execute(
        """insert into stage_quarantine
           select 'line ' || c.line_no, c.reason_code, r.reason
           from sl_checked c join sl_reasons r on r.code = c.reason_code order by c.line_no"""
    )
    conn.unregister("sl_reasons")
    versions = pl.DataFrame({"event_type": list(EVENT_VERSIONS), "version": list(EVENT_VERSIONS.values())})
    conn.register("sl_versions", versions)
    conn.execute(
        """
        insert into stage_events
        with ok as (
            select c.*, json_object(
                'event_id', event_id, 'event_type', event_type, 'record_id', record_id,
                'occurred_at', occurred_raw, 'scheduled_for', scheduled_raw, 'recorded_at', recorded_raw,
                'service', service, 'session_number', session_number, 'staff_id', staff_id, 'mode', mode,
                'duration_min', duration_min, 'activities', activities, 'program_id', program_id,
                'discharge_reason', discharge_reason, 'voids_event_id', voids_event_id) as payload
            from sl_checked c where reason_code is null
        )
        select event_id, 'participant/' || record_id, ok.event_type, v.version, occurred_at,
               coalesce(recorded_at, occurred_at), md5(j::varchar), payload
        from ok join sl_versions v using (event_type)
        """
    )
    conn.unregister("sl_versions")
    known = "[" + ", ".join(f"'{k}'" for k in KNOWN_KEYS) + "]"
    conn.execute(
        f"""
        insert into stage_notes
        select event_id, record_id, note,
               case when len(list_filter(json_keys(j), k -> not list_contains({known}, k))) > 0
                    then json_merge_patch(j, json_object({', '.join(f"'{k}', null" for k in KNOWN_KEYS)})) end
        from sl_checked
        where reason_code is null
          and (note is not null or len(list_filter(json_keys(j), k -> not list_contains({known}, k))) > 0)
        """
    )
    rows = conn.execute("select count(*) from sl_checked").fetchone()[0]
    extra = conn.execute(
        f"select count(*) from sl_checked where reason_code is null and len(list_filter(json_keys(j), k -> not list_contains({known}, k))) > 0"
    ).fetchone()[0]
    detail = f"{extra} line(s) carried keys the contract does not define; kept in the identified store only" if extra else ""
    return "applied", rows, detail
