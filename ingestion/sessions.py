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
_STRUCT = "{" + ", ".join(f'"{k}": "VARCHAR"' for k in KNOWN_KEYS if k != "activities") + ', "activities": "JSON"}'
_KNOWN_LIST = "[" + ", ".join(f"'{k}'" for k in KNOWN_KEYS) + "]"

# One pass: each line is parsed once into a struct of the contract's fields
# (values as text), then typed and given a reason code when it cannot be used.
PARSE_SQL = f"""
create or replace temp table sl_checked as
with l as (
    select line_no, length(line) > {MAX_LINE_CHARS} as too_long,
           case when length(line) <= {MAX_LINE_CHARS} then try_cast(line as json) end as j
    from sl_lines
),
o as (
    select line_no, too_long,
           case when json_type(j) = 'OBJECT' then j end as j
    from l
),
f as (
    select line_no, too_long, j, from_json(j, '{_STRUCT}') as v,
           len(list_filter(json_keys(j), k -> not list_contains({_KNOWN_LIST}, k))) > 0 as has_extra
    from o
),
t as (
    select line_no, too_long, j is null as not_object, md5(j::varchar) as content_hash, has_extra,
        v.event_id, v.event_type, v.record_id, v.occurred_at as occurred_raw, v.recorded_at as recorded_raw,
        v.scheduled_for as scheduled_raw, v.service, v.mode, v.discharge_reason, v.voids_event_id, v.staff_id,
        v.session_number as session_number_raw, v.program_id as program_id_raw, v.duration_min as duration_raw,
        case when json_type(v.activities) <> 'NULL' then v.activities end as activities, v.note,
        case when regexp_matches(coalesce(v.occurred_at, ''), {_TS}) then try_cast(v.occurred_at as timestamptz) end as occurred_at,
        case when regexp_matches(coalesce(v.recorded_at, ''), {_TS}) then try_cast(v.recorded_at as timestamptz) end as recorded_at,
        case when regexp_matches(coalesce(v.scheduled_for, ''), {_TS}) then try_cast(v.scheduled_for as timestamptz) end as scheduled_for,
        try_cast(v.session_number as integer) as session_number,
        try_cast(v.program_id as integer) as program_id,
        try_cast(v.duration_min as integer) as duration_min
    from f
)
select *,
    case
        when too_long then 'line_too_long'
        when not_object then 'not_json'
        when coalesce(event_id, '') = '' then 'missing_event_id'
        when coalesce(event_type, '') = '' then 'missing_event_type'
        when event_type not in {tuple(SESSION_EVENT_TYPES)} then 'unknown_event_type'
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
from t
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


def stage_session_log(conn: duckdb.DuckDBPyConnection, data: bytes, ingest_time: datetime) -> tuple[str, int, str]:
    text = decode_text(data)
    lines = (
        pl.Series("line", [text]).str.split("\n").explode().to_frame()
        .with_row_index("line_no", offset=1)
        .filter(pl.col("line").str.strip_chars() != "")
    )
    del text
    conn.register("sl_lines", lines)
    conn.execute(PARSE_SQL, {"now": ingest_time})
    # Participants who withdrew all data never come back (their events are not stored).
    from ingestion.erasure import erased_keys_sql

    if conn.execute("select count(*) from events.events where event_type = 'participant_erased'").fetchone()[0]:
        conn.execute(
            f"""update sl_checked set reason_code = 'erased_participant'
                where reason_code is null and record_id in (
                    select record_id from (select distinct record_id from sl_checked where record_id is not null)
                    where participant_key(record_id) in ({erased_keys_sql()}))"""
        )
    reasons = pl.DataFrame({"code": list(REASONS), "reason": list(REASONS.values())})
    conn.register("sl_reasons", reasons)
    conn.execute(
        """insert into stage_quarantine
           select 'line ' || c.line_no, c.reason_code, r.reason
           from sl_checked c join sl_reasons r on r.code = c.reason_code where c.reason_code is not null
           order by c.line_no"""
    )
    conn.unregister("sl_reasons")
    versions = pl.DataFrame({"event_type": list(EVENT_VERSIONS), "version": list(EVENT_VERSIONS.values())})
    conn.register("sl_versions", versions)
    conn.execute(
        """
        insert into stage_events
        select event_id, 'participant/' || record_id, c.event_type, v.version, occurred_at,
               coalesce(recorded_at, occurred_at), content_hash,
               json_object(
                'event_id', event_id, 'event_type', c.event_type, 'record_id', record_id,
                'occurred_at', occurred_raw, 'scheduled_for', scheduled_raw, 'recorded_at', recorded_raw,
                'service', service, 'session_number', session_number, 'staff_id', staff_id, 'mode', mode,
                'duration_min', duration_min, 'activities', activities, 'program_id', program_id,
                'discharge_reason', discharge_reason, 'voids_event_id', voids_event_id),
               line_no
        from sl_checked c join sl_versions v on v.event_type = c.event_type
        where reason_code is null
        """
    )
    conn.unregister("sl_versions")
    nulls = ", ".join(f"'{k}', null" for k in KNOWN_KEYS)
    conn.execute(
        f"""
        insert into stage_notes
        select c.event_id, c.record_id, c.note,
               case when c.has_extra then json_merge_patch(l.line::json, json_object({nulls})) end
        from sl_checked c join sl_lines l using (line_no)
        where c.reason_code is null and (c.note is not null or c.has_extra)
        """
    )
    conn.unregister("sl_lines")
    del lines
    rows, extra = conn.execute(
        "select count(*), count(*) filter (where reason_code is null and has_extra) from sl_checked"
    ).fetchone()
    conn.execute("drop table sl_checked")
    detail = f"{extra} line(s) carried keys the contract does not define; kept in the identified store only" if extra else ""
    return "applied", rows, detail
