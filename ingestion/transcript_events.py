"""Coded transcript units -> ``coded_unit_recorded`` events.

The readers (:mod:`ingestion.transcripts`) turn a `.qdpx` or a coded-units CSV
into a frame of units; here they are staged as events. A unit's text and its
speaker's pseudonym stay in the identified store (keyed by unit_id, stored once,
from the unit's first delivery): the payload pairs no record_id with a pseudonym
and carries no transcript text.

Event ids are deterministic:

* QDPX: ``md5('transcripts|' || unit_id)``, the unit_id being ``<selection>:<coding>`` (one coding).
* CSV: a CSV ``unit_id`` names a span, and a row is known by (unit_id, coder_id, code_path) in
  its transcript: ``md5('transcripts|csv|' || json_array(transcript_id, unit_id, coder_id,
  code_path))``. The content hash leaves out the ingest time that stands in for a missing
  coded_at, so a later file repeating a row appends nothing, and one repeating its key with
  other content is a conflict the store quarantines.
* CSV rows held in the earlier form (one event per CSV unit_id, id ``md5('transcripts|' ||
  unit_id)``, written before a unit could hold several rows): a row with the same transcript,
  unit_id, coder and code is staged under that id, with the held content hash when its content
  is the same (a duplicate: nothing appended) and its own when not (a conflict). So a
  re-exported file brings in the rows the earlier form quarantined without repeating the rows
  it held.

Across files a CSV unit_id keeps the span it was first held with: a row whose transcript,
positions or text differ from those of its unit as held is quarantined (``held_unit_mismatch``).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from ingestion import transcripts
from ingestion.catalogue import EVENT_VERSIONS

# A transcript_id as the readers now give it (a held one may still carry a text-file extension).
_NORMAL_TID = r"regexp_replace({col}, '(.)\.(txt|docx?|rtf|odt|pdf)$', '\1', 'i')"

_PAYLOAD = """json_object(
    'unit_id', unit_id, 'transcript_id', transcript_id, 'transcript_kind', transcript_kind,
    'record_id', record_id, 'coder_id', coder_id, 'code_path', code_path,
    'start_char', start_char, 'end_char', end_char, 'coded_at', coded_at,
    'coded_at_from_ingest', coded_at_from_ingest, 'text_sha256', sha256(coalesce(text, '')),
    'source_format', $fmt)"""


def _stage_quarantine(conn: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> None:
    if frame.height:
        conn.register("tq", frame.select("location", "reason_code", "reason"))
        conn.execute("insert into stage_quarantine select location, reason_code, reason from tq")
        conn.unregister("tq")


def _drop_erased(conn: duckdb.DuckDBPyConnection, units: pl.DataFrame) -> pl.DataFrame:
    """Units of participants who withdrew all data (by record_id, interview name or speaker) are not stored."""
    from ingestion.erasure import ERASED_REASON, erased_keys_sql, erased_pseudonym_keys_sql

    if units.is_empty() or not conn.execute(
            "select count(*) from events.events where event_type = 'participant_erased'").fetchone()[0]:
        return units
    conn.register("tu_all", units.with_row_index("row_no", offset=1))
    gone = conn.execute(
        f"""select row_no, unit_id from tu_all
            where participant_key(coalesce(record_id, regexp_extract(transcript_id, '^INT-(.+)-[0-9]+$', 1)))
                  in ({erased_keys_sql()})
               or participant_key('pseudonym:' || lower(trim(speaker))) in ({erased_pseudonym_keys_sql()})"""
    ).pl()
    conn.unregister("tu_all")
    if gone.height:
        conn.register("tu_gone", gone)
        conn.execute("insert into stage_quarantine select 'unit ' || row_no, 'erased_participant', ? from tu_gone",
                     [ERASED_REASON])
        conn.unregister("tu_gone")
    return units.filter(~pl.col("unit_id").is_in(gone["unit_id"].implode()))


def _drop_held_mismatches(conn: duckdb.DuckDBPyConnection, units: pl.DataFrame) -> pl.DataFrame:
    """CSV rows whose unit_id is held from an earlier file with another transcript, span or text."""
    if units.is_empty():
        return units
    conn.register("tu_rows", units.select("unit_id", "transcript_id", "start_char", "end_char", "text", "location"))
    bad = conn.execute(
        f"""
        with held as (
            select payload->>'unit_id' as unit_id,
                   arg_min({_NORMAL_TID.format(col="payload->>'transcript_id'")}, seq) as transcript_id,
                   arg_min(cast(payload->>'start_char' as bigint), seq) as start_char,
                   arg_min(cast(payload->>'end_char' as bigint), seq) as end_char,
                   arg_min(payload->>'text_sha256', seq) as text_sha256
            from events.events
            where event_type = 'coded_unit_recorded' and (payload->>'source_format') = 'csv'
              and (payload->>'unit_id') in (select unit_id from tu_rows)
            group by 1
        )
        select t.location
        from tu_rows as t
        inner join held as h on t.unit_id = h.unit_id
        where h.transcript_id <> t.transcript_id or h.start_char <> t.start_char or h.end_char <> t.end_char
           or h.text_sha256 <> sha256(coalesce(t.text, ''))
        """
    ).pl()
    conn.unregister("tu_rows")
    if bad.is_empty():
        return units
    reason = transcripts.REASONS["held_unit_mismatch"]
    _stage_quarantine(conn, bad.with_columns(pl.lit("held_unit_mismatch").alias("reason_code"),
                                             pl.lit(reason).alias("reason")))
    return units.filter(~pl.col("location").is_in(bad["location"].implode()))


def _stage_qdpx_events(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(
        f"""
        insert into stage_events (event_id, stream, event_type, event_version, occurred_at, recorded_at, content_hash, payload)
        with p as (select *, {_PAYLOAD} as payload from tu)
        select md5('transcripts|' || unit_id), 'transcript/' || transcript_id, 'coded_unit_recorded', $v,
               coded_at, coded_at, md5(payload::varchar || '|' || coalesce(speaker, '')), payload
        from p
        """,
        {"fmt": "qdpx", "v": EVENT_VERSIONS["coded_unit_recorded"]},
    )


def _stage_csv_events(conn: duckdb.DuckDBPyConnection) -> None:
    """CSV rows as events under their row key; a row held in the earlier form keeps its id (module doc)."""
    conn.execute(
        f"""
        insert into stage_events (event_id, stream, event_type, event_version, occurred_at, recorded_at, content_hash, payload)
        with p as (
            select *, {_PAYLOAD} as payload,
                   md5('transcripts|csv|' || json_array(transcript_id, unit_id, coder_id, code_path)::varchar) as new_id,
                   md5(json_array(transcript_kind, record_id, start_char, end_char, sha256(coalesce(text, '')),
                                  case when not coded_at_from_ingest then coded_at end,
                                  coalesce(speaker, ''))::varchar) as new_hash,
                   md5('transcripts|' || unit_id) as earlier_id
            from tu
        ),
        earlier as (
            select e.event_id, e.content_hash, e.payload, s.speaker
            from events.events as e
            left join (
                select unit_id, any_value(speaker) as speaker from identified.transcript_units
                where unit_id in (select unit_id from tu) group by 1
            ) as s on (e.payload->>'unit_id') = s.unit_id
            where e.event_id in (select earlier_id from p) and e.event_type = 'coded_unit_recorded'
              and (e.payload->>'source_format') = 'csv'
        ),
        matched as (
            select p.*, o.event_id as held_id, o.content_hash as held_hash,
                   (o.payload->>'transcript_kind') = p.transcript_kind
                   and (o.payload->>'record_id') is not distinct from p.record_id
                   and cast(o.payload->>'start_char' as bigint) = p.start_char
                   and cast(o.payload->>'end_char' as bigint) = p.end_char
                   and (o.payload->>'text_sha256') = sha256(coalesce(p.text, ''))
                   and coalesce(o.speaker, '') = coalesce(p.speaker, '')
                   and case when (o.payload->>'coded_at_from_ingest') = 'true' then p.coded_at_from_ingest
                            else not p.coded_at_from_ingest
                                 and cast(o.payload->>'coded_at' as timestamptz) = p.coded_at end as held_same
            from p
            left join earlier as o
                on o.event_id = p.earlier_id and (o.payload->>'coder_id') = p.coder_id
               and (o.payload->>'code_path') = p.code_path
               and {_NORMAL_TID.format(col="o.payload->>'transcript_id'")} = p.transcript_id
        )
        select coalesce(held_id, new_id), 'transcript/' || transcript_id, 'coded_unit_recorded', $v,
               coded_at, coded_at, case when held_same then held_hash else new_hash end, payload
        from matched
        """,
        {"fmt": "csv", "v": EVENT_VERSIONS["coded_unit_recorded"]},
    )


def stage_units(conn: duckdb.DuckDBPyConnection, batch: transcripts.TranscriptBatch, source_format: str) -> int:
    units = _drop_erased(conn, batch.units)
    rows = units.height + batch.quarantine.height
    _stage_quarantine(conn, batch.quarantine)
    if source_format == "csv":
        units = _drop_held_mismatches(conn, units)
    if units.height:
        conn.register("tu", units)
        (_stage_csv_events if source_format == "csv" else _stage_qdpx_events)(conn)
        # the text and speaker of a unit are stored once, from its first delivery (the rows of a CSV
        # unit share them; the store keeps only those of units with an event appended by this batch)
        conn.execute(
            """insert into stage_units_text
               select unit_id, any_value(speaker), any_value(text) from tu
               where unit_id not in (select unit_id from identified.transcript_units)
               group by unit_id"""
        )
        conn.unregister("tu")
    return rows


def stage_transcript_file(conn: duckdb.DuckDBPyConnection, data: bytes, name: str,
                          ingested_at: datetime) -> tuple[str, int, str]:
    lower = name.lower()
    if lower == "pseudonyms.csv":
        pseudonyms, quarantine = transcripts.read_pseudonyms(data)
        _stage_quarantine(conn, quarantine)
        conn.register("tp", pseudonyms.select("record_id", "pseudonym"))
        conn.execute("insert into stage_pseudonyms select record_id, pseudonym from tp")
        conn.unregister("tp")
        return "applied", pseudonyms.height + quarantine.height, ""
    if lower.endswith(".qdpx"):
        batch = transcripts.read_qdpx(data, name, ingested_at)
        fmt = "qdpx"
    elif lower.endswith(".csv"):
        batch = transcripts.read_units_csv(data, name, ingested_at)
        fmt = "csv"
    else:
        from ingestion.readers import ReadError

        raise ReadError("unrecognised_file", "transcripts/ takes *.qdpx, coded-unit *.csv files and pseudonyms.csv")
    rows = stage_units(conn, batch, fmt)
    detail = "; ".join(batch.warnings)[:500]
    return "applied", rows, detail
