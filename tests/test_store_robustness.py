"""The event store under stress: a writer killed mid-batch, and snapshot replay as a property.

* A batch lands in one transaction or not at all: ingestion of a large session
  log is SIGKILLed while staging it and while inside its commit transaction;
  the vault must still open, hold no partial batch, and a later run must
  apply every file exactly once, giving exactly what a clean run gives.
* Replaying the change events of any sequence of REDCap snapshots
  reconstructs each snapshot exactly (hypothesis).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import FIXTURES, SECRET, land
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from intake_rows import COLUMNS, export, person

from ingestion.ingest import accept_file, ingest_landing
from ingestion.settings import load_settings
from ingestion.store import sha256_of
from ingestion.vault import open_vault

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------------
# 1. Kill in the middle of a batch
# --------------------------------------------------------------------------------------------------

BIG_LINES = 300_000
BIG_NAME = "big-log.jsonl"

# The child: ingest_landing, announcing on stdout when each file's batch starts staging and when
# its commit transaction starts and ends, so the parent knows exactly which phase it kills. (A
# session log is first tried on the direct path: "direct-commit-start" ... "direct-commit-end";
# a log with lines to quarantine then comes back and is staged.)
CHILD = r"""
import sys
import ingestion.ingest as ingest
from ingestion.settings import load_settings

real_file, real_commit = ingest.ingest_file, ingest.commit_batch

def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()

def ingest_file(conn, settings, profile, source, kind, path, *args, **kw):
    say("file-start " + path.name)
    return real_file(conn, settings, profile, source, kind, path, *args, **kw)

def commit_batch(conn, **kw):
    tag = "direct-" if kw.get("direct") is not None else ""  # a session log appended without staging
    say(tag + "commit-start " + kw["path"].name)
    out = real_commit(conn, **kw)
    say(tag + "commit-end " + kw["path"].name)
    return out

ingest.ingest_file = ingest_file
ingest.commit_batch = commit_batch
ingest.ingest_landing(load_settings())
say("done")
"""


def _line(*parts) -> pl.Expr:
    """A JSON line from literal text and string expressions."""
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p.cast(pl.Utf8) for p in parts])


def write_big_log(path: Path, n: int) -> None:
    """``n`` lines: a mix of valid events, a few notes, repeated lines and unreadable lines."""
    i = pl.col("i")
    contact = lambda k: _line(  # noqa: E731
        '{"event_id":"k', k, '","event_type":"contact_attempt","record_id":"', k % 97,
        '","occurred_at":"2025-03-09T09:00:00-05:00","recorded_at":"2025-03-09T09:05:00-05:00",'
        '"staff_id":"CM02","note":"left a message for \\"her\\" at the caf\u00e9"}')
    line = (
        pl.when(i % 20_000 == 7).then(pl.lit("{not json"))
        .when(i % 3 == 0).then(_line(
            '{"event_id":"k', i, '","event_type":"treatment_visit","record_id":"', i % 97,
            '","occurred_at":"2025-03-10T10:', (i % 60).cast(pl.Utf8).str.zfill(2),
            ':00-04:00","program_id":', i % 8 + 1, ',"duration_min":45}'))
        .when(i % 1000 == 1).then(contact(i))
        .when(i % 5000 == 2).then(contact(i - 1))  # line i-1 again, byte for byte: a duplicate
        .otherwise(_line(
            '{"event_id":"k', i, '","event_type":"session_attended","record_id":"', i % 97,
            '","occurred_at":"2025-03-10T10:00:00-04:00","recorded_at":"2025-03-10T11:00:00-04:00",'
            '"service":"case_management","session_number":', i % 5 + 1, ',"mode":"phone","activities":["linkage"]}'))
    )
    pl.DataFrame({"i": pl.int_range(0, n, eager=True)}).select(line.alias("line")).write_csv(
        path, include_header=False, quote_style="never")


def make_landing(landing: Path) -> None:
    (landing / "intake").mkdir(parents=True)
    (landing / "sessions").mkdir(parents=True)
    (landing / "intake" / "data_dictionary.csv").write_bytes((FIXTURES / "intake_dictionary.csv").read_bytes())
    (landing / "intake" / "ALLIANCE_DATA_2025-03-05_2300.csv").write_bytes(
        export([person(str(i), staff_notes=f"note {i}") for i in range(1, 31)]))
    (landing / "sessions" / "small-log.jsonl").write_text(
        '{"event_id":"s1","event_type":"contact_attempt","record_id":"3","occurred_at":"2025-03-08T09:00:00Z"}\n')
    write_big_log(landing / "sessions" / BIG_NAME, BIG_LINES)


def child_env(landing: Path, warehouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_")}
    env.update(ALLIANCE_LANDING_DIR=str(landing), ALLIANCE_WAREHOUSE_DIR=str(warehouse),
               ALLIANCE_SECRET_KEY=SECRET)
    return env


def start_child(landing: Path, warehouse: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD], env=child_env(landing, warehouse), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)


def timed_clean_run(landing: Path, warehouse: Path) -> dict[str, float]:
    """A full run in a child; the moments (monotonic, parent's clock) each marker line arrived."""
    proc = start_child(landing, warehouse)
    marks: dict[str, float] = {}
    for line in proc.stdout:
        marks[line.strip()] = time.monotonic()
    assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    assert "done" in marks
    return marks


def kill_at(landing: Path, warehouse: Path, marker: str, delay: float) -> dict:
    """Run a child, SIGKILL it ``delay`` seconds after it prints ``marker``; what it had printed by then."""
    proc = start_child(landing, warehouse)
    seen: list[str] = []
    killed_alive = False
    try:
        for line in proc.stdout:
            seen.append(line.strip())
            if line.strip() == marker:
                time.sleep(delay)
                killed_alive = proc.poll() is None
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        rest = proc.stdout.read()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
    seen += rest.split()
    return {"alive_at_kill": killed_alive, "seen": seen, "returncode": proc.returncode}


def store_rows(settings, sql: str, params=None) -> list[tuple]:
    conn = open_vault(settings, read_only=True)
    try:
        return conn.execute(sql, params or []).fetchall()
    finally:
        conn.close()


def assert_no_partial_batch(settings) -> None:
    """Every batch holds exactly the events it counts; nothing exists outside a batch; seq has no gaps."""
    per_batch = store_rows(settings, """
        select b.file_name, b.events_appended, count(e.seq), b.first_seq, b.last_seq, min(e.seq), max(e.seq)
        from events.batches b left join events.events e using (batch_id)
        group by all order by b.file_name""")
    for name, counted, held, first, last, lo, hi in per_batch:
        assert held == counted, f"batch {name}: {held} events held, {counted} recorded in its batch row"
        assert (first, last) == (lo, hi), f"batch {name}: seq range {lo}..{hi}, batch row says {first}..{last}"
    orphans = store_rows(settings, """
        select 'events', count(*) from events.events where batch_id not in (select batch_id from events.batches)
        union all select 'quarantine', count(*) from events.quarantine
            where batch_id not in (select batch_id from events.batches)
        union all select 'dictionary', count(*) from events.dictionary_fields
            where batch_id not in (select batch_id from events.batches)
        union all select 'identifiers', count(*) from identified.identifier_values
            where batch_id not in (select batch_id from events.batches)
        union all select 'notes', count(*) from identified.session_notes
            where batch_id not in (select batch_id from events.batches)""")
    assert all(n == 0 for _, n in orphans), f"rows outside any batch: {orphans}"
    [(n, distinct, top)] = store_rows(settings, "select count(*), count(distinct seq), max(seq) from events.events")
    assert n == distinct == (top or 0), "event sequence numbers are not 1..n without gaps"


def event_set(settings) -> list[tuple]:
    return store_rows(settings, """select event_id, event_type, content_hash, seq from events.events
                                   order by seq""")


@pytest.mark.slow
def test_a_batch_killed_midway_leaves_no_trace_and_is_applied_once_on_rerun(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    make_landing(landing)
    files = sorted(p for p in landing.rglob("*") if p.is_file())

    # A clean, uninterrupted run over the same files: the reference, and the phase timings.
    clean_wh = tmp_path / "clean"
    marks = timed_clean_run(landing, clean_wh)
    staging = marks[f"commit-start {BIG_NAME}"] - marks[f"file-start {BIG_NAME}"]
    commit = marks[f"commit-end {BIG_NAME}"] - marks[f"commit-start {BIG_NAME}"]
    for var, value in child_env(landing, clean_wh).items():
        if var.startswith("ALLIANCE_"):
            monkeypatch.setenv(var, value)
    clean = load_settings()
    clean_events = event_set(clean)
    assert len(clean_events) > BIG_LINES * 0.9

    # The same landing zone, killed again and again inside the big batch, then run to the end.
    monkeypatch.setenv("ALLIANCE_WAREHOUSE_DIR", str(tmp_path / "killed"))
    wh = load_settings()
    plans = [
        (f"file-start {BIG_NAME}", 0.5 * staging),  # while the reader stages the file
        (f"commit-start {BIG_NAME}", 0.05 * commit),  # inside the commit transaction ...
        (f"commit-start {BIG_NAME}", 0.4 * commit),
        (f"commit-start {BIG_NAME}", 0.8 * commit),
    ]
    mid_commit = 0
    for marker, delay in plans:
        kill = kill_at(landing, tmp_path / "killed", marker, delay)
        print(f"kill {delay:.2f}s after {marker!r} (clean run: staging {staging:.2f}s, commit {commit:.2f}s): "
              f"alive={kill['alive_at_kill']}, last marker {kill['seen'][-1:]}, "
              f"vault file {(tmp_path / 'killed' / 'vault.duckdb').stat().st_size:,} bytes")
        if not kill["alive_at_kill"]:
            continue  # finished before the kill (a slow run, or a fast machine): nothing to check here
        # The vault opens, and holds whole batches only.
        assert_no_partial_batch(wh)
        big_held = store_rows(wh, "select count(*) from events.batches where file_name = ?", [BIG_NAME])[0][0]
        if big_held:
            break  # the kill came after the commit: the batch is whole (checked above); no more kills
        if f"commit-start {BIG_NAME}" in kill["seen"] and f"commit-end {BIG_NAME}" not in kill["seen"]:
            mid_commit += 1  # killed between `begin transaction` and `commit`, and nothing of it is held
    assert mid_commit >= 1, "no kill landed inside the big batch's transaction; the test proved nothing"

    # A later run applies every file exactly once and ends where the clean run ended.
    ingest_landing(wh)
    assert_no_partial_batch(wh)
    applied = dict(store_rows(wh, "select sha256, count(*) from events.batches group by 1"))
    assert applied == {sha256_of(p): 1 for p in files}
    assert event_set(wh) == clean_events
    same = ["select count(*) from events.quarantine", "select count(*) from identified.session_notes",
            "select count(*) from identified.identifier_values", "select count(*) from events.dictionary_fields"]
    for sql in same:
        assert store_rows(wh, sql) == store_rows(clean, sql), sql

    third = ingest_landing(wh)
    assert third.outcomes == [] and third.unchanged == len(files)
    assert event_set(wh) == clean_events


@pytest.mark.slow
def test_a_clean_log_killed_inside_its_direct_append_leaves_no_trace(tmp_path, monkeypatch):
    """A log of new, usable events is appended by one statement in one transaction: killed there, nothing."""
    landing = tmp_path / "landing"
    (landing / "sessions").mkdir(parents=True)
    big = landing / "sessions" / BIG_NAME
    i = pl.col("i")
    pl.DataFrame({"i": pl.int_range(0, BIG_LINES, eager=True)}).select(_line(
        '{"event_id":"c', i, '","event_type":"treatment_visit","record_id":"', i % 97,
        '","occurred_at":"2025-03-10T10:00:00-04:00","program_id":2,"duration_min":30}').alias("line")).write_csv(
        big, include_header=False, quote_style="never")
    marks = timed_clean_run(landing, tmp_path / "clean")
    direct = marks[f"direct-commit-end {BIG_NAME}"] - marks[f"direct-commit-start {BIG_NAME}"]
    assert f"commit-start {BIG_NAME}" not in marks  # appended directly, never staged
    for var, value in child_env(landing, tmp_path / "killed").items():
        if var.startswith("ALLIANCE_"):
            monkeypatch.setenv(var, value)
    wh = load_settings()
    inside = 0
    for fraction in (0.3, 0.6, 0.9):
        kill = kill_at(landing, tmp_path / "killed", f"direct-commit-start {BIG_NAME}", fraction * direct)
        if not kill["alive_at_kill"] or f"direct-commit-end {BIG_NAME}" in kill["seen"]:
            continue  # the append ended before the kill
        inside += 1
        assert_no_partial_batch(wh)
        assert store_rows(wh, "select count(*) from events.events")[0][0] == 0
    assert inside >= 1, "no kill landed inside the direct append; the test proved nothing"
    [out] = ingest_landing(wh).outcomes
    assert (out.events_appended, out.rows_quarantined) == (BIG_LINES, 0)
    assert_no_partial_batch(wh)


# --------------------------------------------------------------------------------------------------
# 2. Replaying the change events of any sequence of snapshots reconstructs each snapshot
# --------------------------------------------------------------------------------------------------

IDENTIFYING = {"record_id", "first_name", "last_name", "phone", "staff_notes"}  # key, identifiers, free text
VALUE_COLUMNS = [c for c in COLUMNS if c not in IDENTIFYING]

SAFE_TEXT = st.text(alphabet="abcXYZ019 ,\"'-/é", max_size=8)  # commas and quotes exercise CSV quoting
BLANKISH = st.sampled_from(["", " ", "  "])


def coded(*codes: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(codes), BLANKISH, st.sampled_from(codes).map(lambda c: f" {c} "))


FIELD_VALUES: dict[str, st.SearchStrategy[str]] = {
    "redcap_data_access_group": coded("north_intake", "south_intake"),
    "assessment_date": st.one_of(BLANKISH, st.dates().map(str)),
    "age": st.one_of(BLANKISH, st.integers(0, 99).map(str), SAFE_TEXT),  # validation is REDCap's job
    "sex": coded("1", "2", "3"),
    "ethnicity": coded("1", "2", "3"),
    **{f"race___{k}": coded("0", "1") for k in range(1, 7)},
    "homeless": coded("0", "1"),
    "drug_of_choice": coded(*[str(k) for k in range(1, 8)]),
    "intake_complete": coded("0", "1", "2"),
    "consent_date": st.one_of(BLANKISH, st.just("2025-03-03"), st.just("2025-03-04")),
    "consent_audio": coded("0", "1"),
    "consent_complete": coded("0", "1", "2"),
    "rand_arm": coded("1", "2", "3"),
    "rand_date": st.one_of(BLANKISH, st.just("2025-03-04")),
    "randomization_complete": coded("0", "1", "2"),
    "withdrawn": coded("0", "1"),
    "withdrawal_date": st.one_of(BLANKISH, st.just("2025-04-01")),
    "withdrawal_scope": coded("1", "2"),
    "study_status_complete": coded("0", "1", "2"),
}
assert set(FIELD_VALUES) == set(VALUE_COLUMNS)

RECORD_POOL = [str(i) for i in range(1, 13)]


@st.composite
def records(draw) -> dict[str, str]:
    row = {c: draw(FIELD_VALUES[c]) for c in VALUE_COLUMNS}
    row.update(first_name=draw(SAFE_TEXT), last_name=draw(SAFE_TEXT), phone=draw(SAFE_TEXT),
               staff_notes=draw(st.text(alphabet="ab ,\"\n", max_size=12)))
    return row


@st.composite
def snapshot_sequences(draw) -> list[dict[str, dict[str, str]]]:
    """1-5 snapshots, each a set of records from a small pool; a record changes some fields, or none."""
    snaps: list[dict[str, dict[str, str]]] = []
    for _ in range(draw(st.integers(1, 5))):
        ids = draw(st.lists(st.sampled_from(RECORD_POOL), unique=True, max_size=len(RECORD_POOL)))
        prev = snaps[-1] if snaps else {}
        snap = {}
        for rid in ids:
            if rid in prev and draw(st.booleans()):  # carried over, with a few fields changed
                row = dict(prev[rid])
                for col in draw(st.lists(st.sampled_from(VALUE_COLUMNS), max_size=3, unique=True)):
                    row[col] = draw(FIELD_VALUES[col])
            else:
                row = draw(records())
            snap[rid] = row
        snaps.append(snap)
    return snaps


def fold_intake(settings) -> dict[str, dict[str, str | None]]:
    """Fold the intake events held, in Python, independently of the reader's own SQL fold."""
    values: dict[str, dict[str, str | None]] = {}
    present: dict[str, bool] = {}
    for event_type, payload in store_rows(
        settings, "select event_type, payload::varchar from events.events where source = 'intake' order by seq"
    ):
        p = json.loads(payload)
        rid = p["record_id"]
        if event_type == "intake_recorded":
            present[rid] = True
            values.setdefault(rid, {}).update(p["values"])
        elif event_type == "intake_field_corrected":
            values.setdefault(rid, {})[p["field"]] = p["new"]
        elif event_type == "intake_record_removed":
            present[rid] = False
        else:  # pragma: no cover
            raise AssertionError(f"unexpected intake event {event_type}")
    return {rid: values[rid] for rid, here in present.items() if here}


def expected_state(snap: dict[str, dict[str, str]]) -> dict[str, dict[str, str | None]]:
    return {rid: {c: (row[c].strip() or None) for c in VALUE_COLUMNS} for rid, row in snap.items()}


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(snaps=snapshot_sequences())
def test_replaying_change_events_reconstructs_every_snapshot(wh, snaps):
    with tempfile.TemporaryDirectory(prefix="alliance-prop-") as tmp:
        s = dataclasses.replace(wh, landing_dir=Path(tmp) / "landing", warehouse_dir=Path(tmp) / "warehouse")
        land(s, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
        held: set[str] = set()
        previous: dict = {}
        landed: list[bytes] = []
        for step, snap in enumerate(snaps):
            rows = [{"record_id": rid, **row} for rid, row in sorted(snap.items())]
            data = export(rows)
            path = land(s, "intake", f"ALLIANCE_DATA_2025-03-{5 + step:02d}_2300.csv", data)
            landed.append(data)
            report = ingest_landing(s)
            # every snapshot is a delivery of its own export moment, even with the bytes of an earlier one
            [outcome] = [o for o in report.outcomes if o.file_name == path.name]
            removed = len(held - set(snap))
            assert outcome.rows_quarantined == 0 or outcome.status == "suspect", outcome.reasons
            if held and removed / len(held) > 0.05:
                assert outcome.status == "suspect" and outcome.events_appended == 0
                event("a suspect snapshot, accepted")
                assert fold_intake(s) == previous  # nothing applied while held back
                accept_file(s, path)
            else:
                assert outcome.status == "applied", (outcome.status, outcome.detail)
            assert fold_intake(s) == expected_state(snap), f"step {step}"
            event(f"{len(snaps)} snapshot(s)")
            held, previous = set(snap), expected_state(snap)


def test_a_snapshot_reverting_to_an_earlier_one_is_applied(wh):
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person("1", age="40")]))
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv", export([person("1", age="41")]))  # corrected
    land(wh, "intake", "ALLIANCE_DATA_2025-03-07_2300.csv", export([person("1", age="40")]))  # and reverted
    ingest_landing(wh)
    assert fold_intake(wh)["1"]["age"] == "40"  # the latest snapshot says 40; the store still says 41
