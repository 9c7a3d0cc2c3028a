"""Scan the landing zone and append every new file to the event store."""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingestion import redcap, sessions, transcript_events
from ingestion.profile import StudyProfile, load_profile
from ingestion.readers import ReadError
from ingestion.screening import ScreeningReport, screen_units
from ingestion.settings import Settings
from ingestion.store import (
    BatchOutcome,
    already_ingested,
    commit_batch,
    ensure_schema,
    lit,
    quarantine_file,
    sha256_of,
    start_stage,
)
from ingestion.vault import open_vault, writer_lock

log = logging.getLogger(__name__)

# Sources whose readers exist in this version. Files in other source folders
# are left untouched (not recorded), so a later version ingests them.
SOURCES = ("intake", "sessions", "alliance", "transcripts")
WAITING_SOURCES: tuple[str, ...] = ()
REDCAP_SOURCES = ("intake", "alliance")


@dataclass
class IngestReport:
    outcomes: list[BatchOutcome] = field(default_factory=list)
    unchanged: int = 0
    waiting: int = 0
    screening: ScreeningReport | None = None

    @property
    def events_appended(self) -> int:
        return sum(o.events_appended for o in self.outcomes)

    @property
    def rows_quarantined(self) -> int:
        return sum(o.rows_quarantined for o in self.outcomes)


def _landing_files(settings: Settings) -> list[tuple[str, str, Path]]:
    """(source, kind, path) in the order they must be applied."""
    out: list[tuple[str, str, Path]] = []
    for source in REDCAP_SOURCES:
        folder = settings.landing_dir / source
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        dicts = sorted((p for p in files if redcap.is_dictionary_name(p.name)), key=lambda p: redcap.dictionary_order(p.name))
        snaps = [p for p in files if p not in dicts]
        snaps.sort(key=lambda p: (redcap.snapshot_export_time(p.name, settings.site_tz) or datetime.max.replace(tzinfo=UTC), p.name))
        out += [(source, "dictionary", p) for p in dicts]
        out += [(source, "snapshot", p) for p in snaps]
    logs = settings.landing_dir / "sessions"
    if logs.is_dir():
        out += [("sessions", "log", p) for p in sorted(logs.iterdir()) if p.is_file() and not p.name.startswith(".")]
    coded = settings.landing_dir / "transcripts"
    if coded.is_dir():
        files = sorted(p for p in coded.iterdir() if p.is_file() and not p.name.startswith("."))
        # the pseudonym list first, then transcripts in name order
        files.sort(key=lambda p: (p.name.lower() != "pseudonyms.csv", p.name))
        out += [("transcripts", "transcripts", p) for p in files]
    return out


_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_READERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="read-log")
_PIECE = 1 << 24


def read_log(path: Path) -> bytes | mmap.mmap:
    """A session log's bytes, read on two threads into fresh anonymous memory.

    Reading a file costs little but the faulting-in of the memory it is read into
    (236 MB: 0.10 s on one thread); two threads reading a half each take 0.055 s.
    The memory is private and anonymous (a copy of the file: what was read stays
    as it was read, whatever happens to the file; its SHA-256 is taken from it).
    A file whose size changes while it is read (still being written, or replaced)
    is read again, whole, by ``Path.read_bytes``.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < _PIECE or not hasattr(os, "preadv"):
            return path.read_bytes()
        buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        with memoryview(buf) as view:
            def read(start: int, end: int) -> int:
                at = start
                while at < end:
                    n = os.preadv(fd, [view[at:min(end, at + _PIECE)]], at)
                    if not n:
                        break
                    at += n
                return at - start

            half = size // 2
            first, second = _READERS.submit(read, 0, half), _READERS.submit(read, half, size)
            got_first, got_second = first.result(), second.result()
        more = os.pread(fd, 1, size)  # a byte past the size seen: the file grew
        if got_first == half and got_second == size - half and not more:
            return buf
    finally:
        os.close(fd)
    buf.close()  # the file changed size while it was read: read again, whole, at once
    return path.read_bytes()


def _size_seen(conn: duckdb.DuckDBPyConnection, size: int) -> bool:
    """Whether any batch recorded a file of this many bytes (else the file cannot be one held)."""
    return bool(conn.execute(f"select count(*) from events.batches where size_bytes = {size}").fetchone()[0])


def ingest_file(conn: duckdb.DuckDBPyConnection, settings: Settings, profile: StudyProfile,
                source: str, kind: str, path: Path, force: bool = False) -> BatchOutcome | None:
    data = read_log(path) if kind == "log" and path.suffix.lower() == ".jsonl" else path.read_bytes()
    # A REDCap snapshot is a delivery of its export moment: the same bytes exported at another
    # time (a correction reverted: A, B, A) are a new snapshot. Any other file is known by its bytes.
    snapshot_time = redcap.snapshot_export_time(path.name, settings.site_tz) if kind == "snapshot" else None
    hashing: Future[str] | None = None
    if force or _size_seen(conn, len(data)):
        sha = _sha256_hex(data)
        if not force and already_ingested(conn, sha, snapshot_time):
            return None
        if not force:
            suspect = conn.execute(
                f"select count(*) from events.batches where sha256 = {lit(sha)} and status = 'suspect'"
            ).fetchone()[0]
            if suspect:
                return None  # still held back; `alliance-wh accept FILE` applies it
    else:
        # No batch has this size, so these bytes are new: their SHA-256 (for the batch record)
        # is worked out on another core while the file is read (hashlib releases the GIL).
        hashing = _HASHER.submit(_sha256_hex, data)
    if kind == "log" and path.suffix.lower() == ".jsonl":
        # A session log whose every line is a new, usable event is appended by the statement
        # that checks it; any other file comes back (None) and is staged below.
        try:
            direct = sessions.DirectInsert(data)
        except Exception:  # noqa: BLE001 - a file the splitter cannot cut: the staged path reports why
            direct = None
        if direct is not None:
            start_stage(conn)
            outcome = commit_batch(
                conn, source=source, path=path, sha256=hashing.result if hashing is not None else sha,
                status="applied", rows_read=direct.expected, detail="", size_bytes=len(data), direct=direct)
            if outcome is not None:
                return outcome
    start_stage(conn)
    exported_at = None
    now = datetime.now(UTC)
    try:
        if kind == "dictionary":
            n = redcap.stage_dictionary(conn, data)
            status, rows, detail = "applied", n, ""
        elif kind == "snapshot":
            exported_at = redcap.snapshot_export_time(path.name, settings.site_tz)
            if exported_at is None:
                raise ReadError("unrecognised_file", "the name is not a REDCap export name <PROJECT>_DATA_<YYYY-MM-DD>_<HHMM>.csv")
            status, rows, detail = redcap.stage_snapshot(
                conn, data, source=source, exported_at=exported_at, profile=profile, force=force
            )
        elif kind == "transcripts":
            status, rows, detail = transcript_events.stage_transcript_file(conn, data, path.name, now)
        elif kind == "log":
            if path.suffix.lower() != ".jsonl":
                raise ReadError("unrecognised_file", "the session log takes only *.jsonl files")
            status, rows, detail = sessions.stage_session_log(conn, data, now)
        else:  # pragma: no cover - guarded by _landing_files
            raise ReadError("unrecognised_file", f"no reader for {kind}")
    except ReadError as err:
        start_stage(conn)
        quarantine_file(conn, err.code, err.reason)
        # A snapshot that arrived before its dictionary waits and is tried again next run.
        status = "waiting" if err.code == "no_dictionary" else "quarantined"
        rows, detail = 0, err.reason
    except Exception as err:  # a reader's failure quarantines the file; it never stops the run
        start_stage(conn)
        quarantine_file(conn, "reader_error", f"the file could not be read ({type(err).__name__})")
        status, rows, detail = "quarantined", 0, f"reader error ({type(err).__name__})"
        log.warning("reader error on %s: %s", path.name, type(err).__name__)
    if hashing is not None:
        sha = hashing.result()
    return commit_batch(
        conn, source=source, path=path, sha256=sha, status=status, rows_read=rows,
        exported_at=exported_at, detail=detail, apply_events=status in ("applied", "accepted"),
        size_bytes=len(data),  # the bytes hashed and read (the file may have grown since)
    )


def ingest_landing(settings: Settings) -> IngestReport:
    """Ingest every new landed file; one batch per file, each in one transaction."""
    profile = load_profile(settings.study_profile)
    report = IngestReport()
    files = _landing_files(settings)
    with writer_lock(settings):
        conn = open_vault(settings)
        try:
            ensure_schema(conn)
            for source, kind, path in files:
                outcome = ingest_file(conn, settings, profile, source, kind, path)
                if outcome is None:
                    report.unchanged += 1
                else:
                    report.outcomes.append(outcome)
            # The held REDCap state catches up now rather than at the next snapshot (a projection:
            # sync_state also runs first thing in every diff, so a run killed here loses nothing).
            for source in sorted({o.source for o in report.outcomes if o.events_appended} & set(redcap.EVENT_NAMES)):
                redcap.sync_state(conn, source)
            # Rule 4: every coded unit is screened again (new identifiers may reveal old units).
            report.screening = screen_units(conn)
            for source in WAITING_SOURCES:
                folder = settings.landing_dir / source
                if folder.is_dir():
                    report.waiting += sum(1 for p in folder.iterdir() if p.is_file())
            conn.execute("checkpoint")
        finally:
            conn.close()
    return report


def accept_file(settings: Settings, file: Path) -> BatchOutcome:
    """Apply a snapshot held back as suspect."""
    from ingestion.settings import ConfigError

    path = file if file.is_absolute() else (Path.cwd() / file)
    if not path.is_file():
        candidate = settings.landing_dir / "intake" / file.name
        path = candidate if candidate.is_file() else path
    if not path.is_file():
        raise ConfigError(f"no such file: {file}")
    profile = load_profile(settings.study_profile)
    sha = sha256_of(path)
    with writer_lock(settings):
        conn = open_vault(settings)
        try:
            ensure_schema(conn)
            held = conn.execute(
                "select source from events.batches where sha256 = ? and status = 'suspect' limit 1", [sha]
            ).fetchone()
            if not held:
                raise ConfigError(f"{path.name} is not a snapshot held back as suspect")
            outcome = ingest_file(conn, settings, profile, held[0], "snapshot", path, force=True)
            conn.execute("update events.batches set status = 'suspect-accepted' where sha256 = ? and status = 'suspect'", [sha])
            conn.execute("checkpoint")
        finally:
            conn.close()
    assert outcome is not None
    return outcome
