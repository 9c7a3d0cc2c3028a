"""Coded transcript units -> ``coded_unit_recorded`` events.

The readers (:mod:`ingestion.transcripts`) turn a `.qdpx` or a coded-units CSV
into a frame of units; here they are staged as events. A unit's text and its
speaker's pseudonym stay in the identified store (keyed by unit_id): the
payload pairs no record_id with a pseudonym and carries no transcript text.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from ingestion import transcripts
from ingestion.catalogue import EVENT_VERSIONS


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


def stage_units(conn: duckdb.DuckDBPyConnection, batch: transcripts.TranscriptBatch, source_format: str) -> int:
    units = _drop_erased(conn, batch.units)
    _stage_quarantine(conn, batch.quarantine)
    if units.height:
        conn.register("tu", units)
        conn.execute(
            """
            insert into stage_events (event_id, stream, event_type, event_version, occurred_at, recorded_at, content_hash, payload)
            with p as (
                select *, json_object(
                    'unit_id', unit_id, 'transcript_id', transcript_id, 'transcript_kind', transcript_kind,
                    'record_id', record_id, 'coder_id', coder_id, 'code_path', code_path,
                    'start_char', start_char, 'end_char', end_char, 'coded_at', coded_at,
                    'coded_at_from_ingest', coded_at_from_ingest, 'text_sha256', sha256(coalesce(text, '')),
                    'source_format', $fmt) as payload
                from tu
            )
            select md5('transcripts|' || unit_id), 'transcript/' || transcript_id, 'coded_unit_recorded', $v,
                   coded_at, coded_at, md5(payload::varchar || '|' || coalesce(speaker, '')), payload
            from p
            """,
            {"fmt": source_format, "v": EVENT_VERSIONS["coded_unit_recorded"]},
        )
        conn.execute("insert into stage_units_text select unit_id, speaker, text from tu")
        conn.unregister("tu")
    return units.height + batch.quarantine.height


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
