"""Scope-2 withdrawal: erase a participant's data from every file the warehouse writes.

After a build has published, every participant whose current intake record says
"withdrawn, withdraw all data" and who has not been erased yet is erased:

* a ``participant_erased`` event keeps only the fact of the withdrawal and what
  the CONSORT flow needs (consented, randomized, arm, dates, whether they received
  the intervention, lost to follow-up), keyed by participant_key, plus the names
  of the landing files that held their data;
* their events (intake, survey, session-log and coded-unit events), identifier
  values, notes, transcript text and pseudonym are deleted;
* the vault file is then rewritten (DuckDB keeps deleted blocks until a file is
  rewritten); the caller then purges the build database kept for incremental
  builds (orchestration.steps.dbt_setup.purge_build).

Later deliveries that still carry them are filtered at ingestion (quarantined
with reason ``erased_participant``, never stored).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import polars as pl

from ingestion.redcap import STATE_DDL
from ingestion.settings import Settings
from ingestion.store import ensure_schema
from ingestion.vault import attach_encrypted, copy_vault, open_vault, replace_vault

ERASED_REASON = ("the participant withdrew all data: the row is not ingested "
                 "(remove it from the source export)")


@dataclass
class ErasureReport:
    erased: int = 0
    files_holding_data: list[str] = field(default_factory=list)
    # who was erased (identified: for purging derived files, never logged or written)
    record_ids: list[str] = field(default_factory=list, repr=False)


def erased_keys_sql() -> str:
    return ("select payload->>'participant_key' as participant_key from events.events "
            "where event_type = 'participant_erased'")


def erased_pseudonym_keys_sql() -> str:
    return ("select unnest(from_json(payload->'pseudonym_keys', '[\"VARCHAR\"]')) as pseudonym_key "
            "from events.events where event_type = 'participant_erased'")


def erased_record_ids(conn: duckdb.DuckDBPyConnection, record_ids: pl.Series) -> set[str]:
    """Which of these record_ids belong to erased participants (matched by participant_key)."""
    if conn.execute("select count(*) from events.events where event_type = 'participant_erased'").fetchone()[0] == 0:
        return set()
    conn.register("er_ids", pl.DataFrame({"record_id": record_ids.drop_nulls().unique()}))
    try:
        rows = conn.execute(
            f"select record_id from er_ids where participant_key(record_id) in ({erased_keys_sql()})"
        ).fetchall()
    finally:
        conn.unregister("er_ids")
    return {r[0] for r in rows}


def erase_withdrawn(settings: Settings) -> ErasureReport:
    """Erase every participant the last build marked as having withdrawn all data."""
    report = ErasureReport()
    if not settings.build_path.exists():
        return report
    conn = open_vault(settings)
    try:
        ensure_schema(conn)
        attach_encrypted(conn, settings.build_path, "build", settings.build_key, read_only=True)
        candidates = conn.execute(
            f"""
            select p.record_id, p.is_consented, p.is_randomized, p.rand_arm, p.consent_date, p.rand_date,
                   p.withdrawal_date, p.is_lost_to_followup, p.decline_reason,
                   coalesce(a.received_intervention, false) as received_intervention
            from build.main.int_participants_projected p
            left join build.main.int_attendance a using (record_id)
            where p.is_erased and participant_key(p.record_id) not in ({erased_keys_sql()})
            """
        ).pl()
        conn.execute("detach build")
        if candidates.is_empty():
            return report
        conn.register("erase_ids", candidates.select("record_id"))
        conn.execute(
            """
            create or replace temp table erase_units as
            select payload->>'unit_id' as unit_id, r.record_id
            from events.events e join erase_ids r
              on e.event_type = 'coded_unit_recorded'
             and ((e.payload->>'record_id') = r.record_id
                  or regexp_full_match(e.payload->>'transcript_id', 'INT-' || r.record_id || '-[0-9]+'))
            union
            select t.unit_id, r.record_id
            from identified.transcript_units t
            join identified.pseudonyms p on lower(trim(t.speaker)) = lower(trim(p.pseudonym))
            join erase_ids r on p.record_id = r.record_id
            """
        )
        now = datetime.now(UTC)
        facts = conn.execute(
            """
            with files as (
                select r.record_id, b.file_name
                from erase_ids r
                join events.events e on e.stream = 'participant/' || r.record_id
                join events.batches b on b.batch_id = e.batch_id
                union
                select u.record_id, b.file_name
                from erase_units u
                join events.events e on e.event_type = 'coded_unit_recorded' and (e.payload->>'unit_id') = u.unit_id
                join events.batches b on b.batch_id = e.batch_id
                union
                select p.record_id, b.file_name
                from identified.pseudonyms p join erase_ids r using (record_id)
                join events.batches b on b.batch_id = p.batch_id
            ),
            firsts as (
                select r.record_id, min(e.recorded_at) as first_recorded_at
                from erase_ids r join events.events e on e.stream = 'participant/' || r.record_id and e.source = 'intake'
                group by 1
            ),
            pkeys as (
                select record_id, list(distinct participant_key('pseudonym:' || lower(trim(pseudonym)))) as pseudonym_keys
                from identified.pseudonyms where record_id in (select record_id from erase_ids) group by 1
            )
            select r.record_id, participant_key(r.record_id) as participant_key, f.first_recorded_at,
                   (select list(distinct x.file_name order by x.file_name) from files x where x.record_id = r.record_id)
                       as files,
                   k.pseudonym_keys
            from erase_ids r
            left join firsts f using (record_id)
            left join pkeys k using (record_id)
            """
        ).pl()
        rows = candidates.join(facts, on="record_id")
        events = []
        for r in rows.iter_rows(named=True):  # a handful of participants: not a hot path
            payload = {
                "participant_key": r["participant_key"],
                "consented": bool(r["is_consented"]),
                "randomized": bool(r["is_randomized"]),
                "arm": r["rand_arm"],
                "consent_date": r["consent_date"].isoformat() if r["consent_date"] else None,
                "rand_date": r["rand_date"].isoformat() if r["rand_date"] else None,
                "withdrawal_date": r["withdrawal_date"].isoformat() if r["withdrawal_date"] else None,
                "received_intervention": bool(r["is_randomized"]) and bool(r["received_intervention"]),
                "lost_to_followup": bool(r["is_lost_to_followup"]),
                "first_recorded_at": r["first_recorded_at"].isoformat() if r["first_recorded_at"] else None,
                "landing_files": r["files"] or [],
                "pseudonym_keys": r["pseudonym_keys"] or [],
            }
            text = json.dumps(payload, sort_keys=True)
            events.append({
                "event_id": hashlib.md5(f"erasure|{r['participant_key']}".encode()).hexdigest(),
                "stream": f"erased/{r['participant_key']}", "payload": text,
                "content_hash": hashlib.md5(text.encode()).hexdigest(),
            })
            report.files_holding_data += payload["landing_files"]
        conn.register("tomb", pl.DataFrame(events))
        batch_id = hashlib.sha256(f"erasure|{now.isoformat()}".encode()).hexdigest()[:20]
        conn.execute("begin transaction")
        try:
            seq0 = conn.execute("select coalesce(max(seq), 0) from events.events").fetchone()[0]
            conn.execute(
                """insert into events.events
                   select ? + row_number() over (order by event_id), event_id, stream, 'participant_erased', 1,
                          ?::timestamptz, ?::timestamptz, ?::timestamptz, ?, 'erasure', content_hash, payload::json
                   from tomb""",
                [seq0, now, now, now, batch_id],
            )
            conn.execute("delete from events.events where stream in (select 'participant/' || record_id from erase_ids)")
            for ddl in STATE_DDL:
                conn.execute(ddl)
            for table in ("redcap_rows", "redcap_values"):  # the held REDCap state (ingestion.redcap.sync_state)
                conn.execute(f"delete from events.{table} where record_id in (select record_id from erase_ids)")
            conn.execute("delete from events.events where event_type = 'coded_unit_recorded' "
                         "and (payload->>'unit_id') in (select unit_id from erase_units)")
            conn.execute("delete from identified.transcript_units where unit_id in (select unit_id from erase_units)")
            conn.execute("delete from identified.unit_holds where unit_id in (select unit_id from erase_units)")
            for table in ("identifier_values", "session_notes", "pseudonyms"):
                conn.execute(f"delete from identified.{table} where record_id in (select record_id from erase_ids)")
            conn.execute(
                """insert into events.batches values (?, 'erasure', '(scope-2 withdrawal)', '', 0, null, 'applied',
                   ?, ?, 0, 0, ?, ?, ?::timestamptz, 'participants who withdrew all data erased')""",
                [batch_id, len(events), len(events), seq0 + 1, seq0 + len(events), now],
            )
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
        report.erased = len(events)
    finally:
        conn.close()
    rewrite_vault(settings)
    report.record_ids = candidates["record_id"].to_list()
    report.files_holding_data = sorted(set(report.files_holding_data))
    return report


def rewrite_vault(settings: Settings) -> None:
    """Copy the vault into a fresh encrypted file and replace it, leaving no deleted blocks behind."""
    replace_vault(settings, copy_vault(settings, settings.vault_key))


def landing_files_holding_erased(settings: Settings, conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Landing files that still hold rows of erased participants (matched by participant_key)."""
    keys = {r[0] for r in conn.execute(erased_keys_sql()).fetchall()}
    if not keys or not settings.landing_dir.is_dir():
        return []
    from ingestion.readers import read_csv_strings

    found = []
    for path in sorted(p for p in settings.landing_dir.rglob("*") if p.is_file()):
        ids: list[str] = []
        try:
            if path.suffix.lower() == ".csv":
                df = read_csv_strings(path.read_bytes(), "file")
                if "record_id" in df.columns:
                    ids = df["record_id"].drop_nulls().unique().to_list()
            elif path.suffix.lower() == ".jsonl":
                ids = [r[0] for r in conn.execute(
                    "select distinct json_extract_string(line, '$.record_id') from "
                    "(select unnest(string_split(content, chr(10))) as line from read_text(?)) "
                    "where json_valid(line)", [str(path)]).fetchall() if r[0]]
            elif path.suffix.lower() == ".qdpx":
                from datetime import UTC, datetime

                from ingestion import transcripts

                units = transcripts.read_qdpx(path.read_bytes(), path.name, datetime.now(UTC)).units
                ids = units["record_id"].drop_nulls().unique().to_list() + [
                    t.split("-")[1] for t in units["transcript_id"].unique().to_list() if t.startswith("INT-")]
        except Exception:  # an unreadable file is reported by ingestion, not here
            continue
        if ids:
            conn.register("lf_ids", pl.DataFrame({"record_id": ids}, schema={"record_id": pl.Utf8}))
            hit = conn.execute("select count(*) from lf_ids where participant_key(record_id) in "
                               f"({erased_keys_sql()})").fetchone()[0]
            conn.unregister("lf_ids")
            if hit:
                found.append(str(path.relative_to(settings.landing_dir)))
    return found
