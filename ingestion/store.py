"""The event store: append-only events, batches and quarantine, in the vault.

A batch (one landed file) is appended in one transaction or not at all; the
same bytes twice append nothing; an event id already held with the same
content is skipped, with other content it is quarantined as a conflict.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np

from ingestion.catalogue import SESSION_PAYLOAD_FIELDS
from ingestion.vault import sql_str


def lit(value: object) -> str:
    """``value`` as a SQL literal (None, bool, int, str, aware datetime).

    The ingest path writes its few values into its statements rather than binding
    them: DuckDB's Python client imports pandas (0.2 s) at the first bound parameter.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):  # int, and numpy's integers (counts from readers)
        return str(int(value))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a timestamp written into a statement must carry its UTC offset")
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, str):
        if "\x00" in value:  # a NUL cannot stand in a SQL string literal
            return "(" + " || chr(0) || ".join(sql_str(part) for part in value.split("\x00")) + ")"
        return sql_str(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


SCHEMA_SQL = """
create schema if not exists events;
create schema if not exists identified;
create table if not exists events.events (
    seq bigint not null,
    event_id varchar not null using compression zstd,
    stream varchar not null,
    event_type varchar not null,
    event_version integer not null,
    occurred_at timestamptz,
    recorded_at timestamptz,
    ingested_at timestamptz not null,
    batch_id varchar not null,
    source varchar not null,
    content_hash varchar,  -- null for a session event (compared by its content: session_content_sql)
    payload json using compression zstd  -- cheaper to write than the default (dictionary + FSST), and smaller
);
create table if not exists events.batches (
    batch_id varchar not null,
    source varchar not null,
    file_name varchar not null,
    sha256 varchar not null,
    size_bytes bigint,
    exported_at timestamptz,
    status varchar not null,
    rows_read bigint,
    events_appended bigint,
    duplicates bigint,
    rows_quarantined bigint,
    first_seq bigint,
    last_seq bigint,
    ingested_at timestamptz not null,
    detail varchar
);
create table if not exists events.quarantine (
    batch_id varchar not null,
    file_name varchar not null,
    location varchar,
    reason_code varchar not null,
    reason varchar not null,
    quarantined_at timestamptz not null
);
create table if not exists events.dictionary_fields (
    batch_id varchar not null,
    source varchar not null,
    ordinal integer not null,
    field_name varchar not null,
    form_name varchar,
    field_type varchar,
    field_label varchar,
    choices varchar,
    validation varchar,
    identifier boolean
);
create table if not exists identified.identifier_values (
    record_id varchar not null,
    source varchar not null,
    field varchar not null,
    value varchar,
    kind varchar not null,
    batch_id varchar not null,
    recorded_at timestamptz
);
create table if not exists identified.transcript_units (
    unit_id varchar not null,
    speaker varchar,
    text varchar,
    batch_id varchar not null
);
create table if not exists identified.pseudonyms (
    record_id varchar not null,
    pseudonym varchar not null,
    batch_id varchar not null,
    recorded_at timestamptz not null
);
create table if not exists identified.unit_holds (
    unit_id varchar not null,
    reason_code varchar not null,
    reason varchar not null,
    screened_at timestamptz not null
);
create table if not exists identified.session_notes (
    event_id varchar not null,
    record_id varchar,
    note varchar,
    extra json,
    batch_id varchar not null
);
"""

# Staging tables every reader fills before ``commit_batch`` moves them into the
# store in one transaction (all temp, so nothing half-done survives a crash).
STAGE_SQL = """
create or replace temp table stage_events (
    event_id varchar, stream varchar, event_type varchar, event_version integer,
    occurred_at timestamptz, recorded_at timestamptz, content_hash varchar, payload json,
    ord bigint  -- the order of the events in their file (line or row); ties broken by event_id
);
create or replace temp table stage_quarantine (location varchar, reason_code varchar, reason varchar);
create or replace temp table stage_identified (
    record_id varchar, field varchar, value varchar, kind varchar, recorded_at timestamptz
);
create or replace temp table stage_notes (event_id varchar, record_id varchar, note varchar, extra json, ord bigint);
create or replace temp table stage_units_text (unit_id varchar, speaker varchar, text varchar);
create or replace temp table stage_pseudonyms (record_id varchar, pseudonym varchar);
create or replace temp table stage_dictionary (
    ordinal integer, field_name varchar, form_name varchar, field_type varchar, field_label varchar,
    choices varchar, validation varchar, identifier boolean
);
"""


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(SCHEMA_SQL)
    # Vaults made before session events went without a content hash had the column not null.
    if conn.execute(
        """select count(*) from duckdb_columns() where database_name = current_database() and schema_name = 'events'
           and table_name = 'events' and column_name = 'content_hash' and not is_nullable"""
    ).fetchone()[0]:
        conn.execute("alter table events.events alter column content_hash drop not null")


def session_content_sql(stream: str = "stream", event_type: str = "event_type", occurred_at: str = "occurred_at",
                        recorded_at: str = "recorded_at", payload: str = "payload", note: str = "note",
                        extra: str = "extra") -> str:
    """The hash of a session event's content, to tell a repeated event from a conflicting one.

    Its stream, type and times (as instants), the payload's fields (any payload version),
    its note and the keys the contract does not define: the same event written with other
    spacing, key order or UTC offset is the same event; any field, note or key changed is not.
    """
    parts = [stream, event_type, f"epoch_us({occurred_at})::varchar", f"epoch_us({recorded_at})::varchar",
             *(f"({payload} ->> '{f}')" for f in SESSION_PAYLOAD_FIELDS), note, f"{extra}::varchar"]
    return "md5(concat_ws(chr(31), " + ", ".join(f"coalesce({p}, chr(0))" for p in parts) + "))"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class BatchOutcome:
    file_name: str
    source: str
    status: str
    rows_read: int = 0
    events_appended: int = 0
    duplicates: int = 0
    rows_quarantined: int = 0
    detail: str = ""
    reasons: dict[str, int] = field(default_factory=dict)


def already_ingested(conn: duckdb.DuckDBPyConnection, sha256: str, exported_at: datetime | None = None) -> bool:
    """Whether these bytes (of this export moment, for a snapshot) were processed already."""
    sql = f"select count(*) from events.batches where sha256 = {lit(sha256)} and status not in ('suspect', 'waiting')"
    if exported_at is not None:
        sql += f" and exported_at = {lit(exported_at)}"
    row = conn.execute(sql).fetchone()
    return bool(row and row[0])


def start_stage(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(STAGE_SQL)


def quarantine_file(conn: duckdb.DuckDBPyConnection, code: str, reason: str) -> None:
    conn.execute(f"insert into stage_quarantine values (null, {lit(code)}, {lit(reason)})")


def _stage_in_order(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether stage_events' row ids are 0, 1, 2, ... and its ord rises strictly along them."""
    cols = conn.execute("select rowid, ord from stage_events").fetchnumpy()
    rowid, ord_ = cols["rowid"], cols["ord"]
    if not len(rowid):
        return True
    if np.ma.isMaskedArray(ord_) and np.ma.getmaskarray(ord_).any():
        return False  # an event without a place in its file
    ord_ = np.asarray(ord_)
    return bool(np.array_equal(rowid, np.arange(len(rowid))) and (np.diff(ord_) > 0).all())


def commit_batch(
    conn: duckdb.DuckDBPyConnection,
    *,
    source: str,
    path: Path,
    sha256: str | Callable[[], str],
    status: str,
    rows_read: int,
    exported_at: datetime | None = None,
    detail: str = "",
    apply_events: bool = True,
    size_bytes: int | None = None,
    direct: Callable[[duckdb.DuckDBPyConnection, int, str, str, datetime], int | None] | None = None,
) -> BatchOutcome | None:
    """Move the staged batch into the store, in one transaction.

    Events whose id is already held with the same content are skipped
    (duplicates); with other content they are quarantined as conflicts; an id
    repeated inside the batch keeps its first occurrence.

    With ``direct``, the events are not staged: ``direct(conn, seq0, batch_id, source, now)``
    appends them itself, inside the transaction, numbered from ``seq0 + 1``, and returns how
    many; when it returns None the transaction is rolled back and so is returned (the caller
    stages the file instead). ``sha256`` may be a callable, called when the batch is recorded.
    """
    now = datetime.now(UTC)
    name = path.name
    batch_id = hashlib.sha256(f"{source}|{name}|{size_bytes}|{now.isoformat()}".encode()).hexdigest()[:20]
    duplicates = 0
    in_order = False
    kept = "select ord from stage_events"  # the staged events appended (their notes are kept)
    if apply_events and direct is None:
        # Staging work, before the transaction (temp tables only; the writer lock keeps the
        # store still). Only the events whose id is already held, or repeated inside the
        # batch, need comparing (on a fresh log: none). They are ranked in a narrow table of
        # their own, not with the whole batch.
        conn.execute(
            f"""
            create or replace temp table stage_clash as
            with held as (
                select e.event_id, any_value(case when e.source = 'sessions' then {session_content_sql("e.stream", "e.event_type",
                    "e.occurred_at", "e.recorded_at", "e.payload", "n.note", "n.extra")} else e.content_hash end) as held_hash
                from events.events e
                left join identified.session_notes n on n.event_id = e.event_id and n.batch_id = e.batch_id
                where e.event_id in (select event_id from stage_events) group by e.event_id
            ),
            repeated as (select event_id from stage_events group by event_id having count(*) > 1)
            select s.rowid as rid, s.event_id, s.content_hash, h.held_hash,
                   row_number() over w as dup_rank,
                   first_value(s.content_hash) over w as first_hash
            from stage_events s
            left join held h using (event_id)
            where h.held_hash is not null or s.event_id in (select event_id from repeated)
            window w as (partition by s.event_id order by s.ord, s.content_hash)
            """
        )
        conn.execute(
            """
            insert into stage_quarantine
            select 'event ' || event_id, 'conflicting_event_id',
                   'an event with this event_id is already held with different content; '
                   || 'the source must issue a new event_id (or an event_voided) to correct it'
            from stage_clash
            where (held_hash is not null and held_hash <> content_hash)
               or (held_hash is null and dup_rank > 1 and content_hash <> first_hash)
            order by rid
            """
        )
        duplicates = conn.execute(
            """select count(*) from stage_clash
               where held_hash = content_hash or (held_hash is null and dup_rank > 1 and content_hash = first_hash)"""
        ).fetchone()[0]
        # Sequence numbers follow (ord, event_id). When the staged rows are already in that
        # order (row ids 0, 1, 2, ... with ord rising), an event's number is its row id, once
        # the events skipped (duplicates, conflicts) are deleted and the rest copied: a plain
        # copy keeps the order and makes the row ids dense again (done here, outside the
        # transaction: a table copied inside it is slower to insert from). Otherwise the order
        # is worked out on the keys alone (row id, ord, event_id) and joined back to the rows
        # (ordering the whole rows costs far more).
        skip = "select rid from stage_clash where held_hash is not null or dup_rank > 1"
        left_out = "where rowid not in (" + skip + ")"
        in_order = _stage_in_order(conn)
        if in_order and conn.execute(f"select count(*) from ({skip})").fetchone()[0]:
            conn.execute(f"delete from stage_events where rowid in ({skip})")
            conn.execute("create or replace temp table stage_events as select * from stage_events")
            left_out, in_order = "", _stage_in_order(conn)
        kept = f"select ord from stage_events {left_out}"
    conn.execute("begin transaction")
    try:
        seq0 = conn.execute("select coalesce(max(seq), 0) from events.events").fetchone()[0]
        if direct is not None:
            if direct(conn, seq0, batch_id, source, now) is None:
                conn.execute("rollback")
                return None
        elif apply_events:
            if in_order:
                numbered = f"select {seq0} + rowid + 1 as seq, * from stage_events"
            else:
                numbered = f"""
                    select {seq0} + o.seq as seq, s.*
                    from stage_events s
                    join (
                        select rowid as rid, row_number() over (order by ord, event_id) as seq
                        from stage_events {left_out}
                    ) o on s.rowid = o.rid"""
            conn.execute(
                f"""
                insert into events.events
                select seq, event_id, stream, event_type, event_version, occurred_at,
                       recorded_at, {lit(now)}, {lit(batch_id)}, {lit(source)},
                       {"null" if source == "sessions" else "content_hash"}, payload
                from ({numbered})
                """
            )
        appended, last_seq = conn.execute(
            f"select count(*), max(seq) from events.events where batch_id = {lit(batch_id)}"
        ).fetchone()
        conn.execute(
            f"""insert into events.quarantine
                select {lit(batch_id)}, {lit(name)}, location, reason_code, reason, {lit(now)} from stage_quarantine"""
        )
        conn.execute(
            f"""insert into identified.identifier_values
                select record_id, {lit(source)}, field, value, kind, {lit(batch_id)}, recorded_at from stage_identified"""
        )
        # the notes of the events appended (not of a line skipped as a duplicate or a conflict)
        conn.execute(
            f"""insert into identified.session_notes select event_id, record_id, note, extra, {lit(batch_id)}
                from stage_notes where ord in ({kept})"""
        )
        conn.execute("drop table if exists stage_clash")
        conn.execute(
            f"""insert into identified.transcript_units
                select t.unit_id, t.speaker, t.text, {lit(batch_id)} from stage_units_text t
                where t.unit_id in (select payload->>'unit_id' from events.events
                                    where batch_id = {lit(batch_id)} and event_type = 'coded_unit_recorded')"""
        )
        conn.execute(
            f"insert into identified.pseudonyms select record_id, pseudonym, {lit(batch_id)}, {lit(now)} from stage_pseudonyms"
        )
        conn.execute(
            f"""insert into events.dictionary_fields
                select {lit(batch_id)}, {lit(source)}, ordinal, field_name, form_name, field_type, field_label, choices,
                       validation, identifier
                from stage_dictionary"""
        )
        quarantined = conn.execute("select count(*) from stage_quarantine").fetchone()[0]
        reasons = dict(
            conn.execute("select reason_code, count(*) from stage_quarantine group by 1 order by 1").fetchall()
        )
        values = [
            batch_id, source, name, sha256 if isinstance(sha256, str) else sha256(), path.stat().st_size if size_bytes is None else size_bytes, exported_at, status, rows_read,
            appended, duplicates, quarantined, (seq0 + 1) if appended else None, last_seq, now, detail,
        ]
        conn.execute(f"insert into events.batches values ({', '.join(lit(v) for v in values)})")
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return BatchOutcome(
        file_name=name, source=source, status=status, rows_read=rows_read, events_appended=appended,
        duplicates=duplicates, rows_quarantined=quarantined, detail=detail, reasons=reasons,
    )


def events_as_of(conn: duckdb.DuckDBPyConnection, as_of: datetime | None = None,
                 position: int | None = None) -> duckdb.DuckDBPyRelation:
    """The events the store held at ``position`` that their sources had recorded by ``as_of``.

    (recorded_at is the export time of a REDCap snapshot, a log event's recorded_at
    else its occurred_at.) The dbt staging models apply the same cut.
    """
    sql = "select * from events.events where true"
    params: list = []
    if as_of is not None:
        sql += " and recorded_at <= ?"
        params.append(as_of)
    if position is not None:
        sql += " and seq <= ?"
        params.append(position)
    return conn.sql(sql + " order by seq", params=params)


def position(conn: duckdb.DuckDBPyConnection) -> int:
    """The event store's position: the sequence number of its last event."""
    return int(conn.execute("select coalesce(max(seq), 0) from events.events").fetchone()[0])
