"""Upgrade: a vault built by the code before longitudinal REDCap keys keeps working.

The code of the commit before rows were keyed by REDCap event (OLD_COMMIT) is taken out of
git (``git archive``, read-only on the repository) and run in a subprocess with this venv's
python; it builds a vault from non-longitudinal intake and alliance (repeating-instrument)
snapshots. The code of this tree then ingests the next snapshots: their held state, keyed
the old way, must diff exactly as before (one correction each, no spurious first-seen or
removal events), and the state rebuilt from the old events must be the state held.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from conftest import FIXTURES, land, vault_rows
from intake_rows import export, person

from ingestion.ingest import ingest_landing
from ingestion.redcap import sync_state
from ingestion.settings import PROJECT_ROOT
from ingestion.vault import open_vault

# The last commit whose REDCap reader keyed rows by record (and repeat instrument and instance)
# only: the parent of the commit that added the event to the key.
OLD_COMMIT = "828e70b7a3521902366c5b1c550e0037d51f9987"
ALLIANCE_DICT = FIXTURES / "study" / "alliance" / "data_dictionary.csv"
ALLIANCE_COLUMNS = ["record_id", "redcap_repeat_instrument", "redcap_repeat_instance", "waic_date", "waic_1",
                    "waic_2", "wai_client_complete"]


def alliance_export(rows: list[tuple[str, str, str, str, str, str, str]]) -> bytes:
    lines = [",".join(ALLIANCE_COLUMNS)] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


# Records 1 and 2: a base row each (blank instrument: not a survey) and client surveys.
ALLIANCE_1 = [
    ("1", "", "", "", "", "", ""),
    ("1", "wai_client", "1", "2025-03-10", "4", "5", "2"),
    ("1", "wai_client", "2", "2025-03-17", "3", "3", "2"),
    ("2", "", "", "", "", "", ""),
    ("2", "wai_client", "1", "2025-03-11", "5", "5", "2"),
]


def old_code(tmp_path: Path) -> Path:
    """The `ingestion` package at OLD_COMMIT, unpacked under tmp_path (no git state is touched)."""
    # the upgrade is tested against the real old code: a clone without that history fails here, loudly
    proc = subprocess.run(["git", "archive", "--format=tar", OLD_COMMIT, "ingestion"], cwd=PROJECT_ROOT,
                          capture_output=True)
    assert proc.returncode == 0, f"the repository's history does not hold {OLD_COMMIT[:10]}: clone it whole"
    tar = proc.stdout
    root = tmp_path / "old-code"
    root.mkdir()
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(root, filter="data")
    return root


def ingest_with_old_code(root: Path) -> list[list]:
    script = ("import json; from ingestion.settings import load_settings; from ingestion.ingest import ingest_landing; "
              "r = ingest_landing(load_settings()); "
              "print(json.dumps([[o.file_name, o.status, o.events_appended] for o in r.outcomes]))")
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def query(settings, sql: str) -> list[tuple]:
    return vault_rows(settings, sql)


STATE_SQL = {
    "rows": "select source, row_key, record_id, instrument, instance, last_type, last_seq, row_hash "
            "from events.redcap_rows order by all",
    "values": "select source, row_key, record_id, field, value, last_seq from events.redcap_values order by all",
}


def test_a_vault_built_by_the_old_code_diffs_identically_with_the_new(wh, tmp_path):
    root = old_code(tmp_path)
    land(wh, "intake", "data_dictionary.csv", FIXTURES / "intake_dictionary.csv")
    land(wh, "intake", "ALLIANCE_DATA_2025-03-05_2300.csv", export([person(str(i)) for i in range(1, 41)]))
    land(wh, "alliance", "data_dictionary.csv", ALLIANCE_DICT)
    land(wh, "alliance", "ALLIANCE_WAI_DATA_2025-03-05_2300.csv", alliance_export(ALLIANCE_1))
    old = ingest_with_old_code(root)
    # 40 intake records; 3 surveys (the 2 base rows are not surveys of the alliance project)
    assert [tuple(o) for o in old if o[2]] == [
        ("ALLIANCE_DATA_2025-03-05_2300.csv", "applied", 40), ("ALLIANCE_WAI_DATA_2025-03-05_2300.csv", "applied", 3)]
    held = {k: query(wh, sql) for k, sql in STATE_SQL.items()}
    assert len(held["rows"]) == 43 and {r[1] for r in held["rows"] if r[0] == "alliance"} == {
        "1#wai_client#1", "1#wai_client#2", "2#wai_client#1"}
    top = query(wh, "select max(seq) from events.events")[0][0]

    # the new code: the same files are a no-op; the held state gains the (empty) event column
    assert ingest_landing(wh).outcomes == []
    # the next snapshots: record 3's age corrected; survey 1#2's waic_1 corrected; nothing else
    land(wh, "intake", "ALLIANCE_DATA_2025-03-06_2300.csv",
         export([person(str(i), age="41" if i == 3 else "40") for i in range(1, 41)]))
    changed = [r if r[:3] != ("1", "wai_client", "2") else (*r[:4], "2", *r[5:]) for r in ALLIANCE_1]
    land(wh, "alliance", "ALLIANCE_WAI_DATA_2025-03-06_2300.csv", alliance_export(changed))
    report = ingest_landing(wh)
    assert [(o.status, o.events_appended, o.rows_quarantined) for o in report.outcomes] == [
        ("applied", 1, 0), ("applied", 1, 0)]
    new = [(t, json.loads(p)) for t, p in query(
        wh, f"select event_type, payload::varchar from events.events where seq > {top} order by seq")]
    # the old payload form exactly (no `event` key in an export without redcap_event_name)
    assert new == [
        ("intake_field_corrected", {"record_id": "3", "instrument": None, "instance": None,
                                    "field": "age", "old": "40", "new": "41"}),
        ("survey_field_corrected", {"record_id": "1", "instrument": "wai_client", "instance": "2",
                                    "field": "waic_1", "old": "3", "new": "2"}),
    ]

    # the held state rebuilt by the new code from old and new events is the state kept up to date
    kept = {k: query(wh, sql) for k, sql in STATE_SQL.items()}
    assert query(wh, "select count(*) from events.redcap_rows where event is not null") == [(0,)]
    conn = open_vault(wh)
    try:
        for table in ("redcap_rows", "redcap_values", "redcap_synced"):
            conn.execute(f"drop table events.{table}")
        assert sync_state(conn, "intake") == 41 and sync_state(conn, "alliance") == 4
    finally:
        conn.close()
    assert {k: query(wh, sql) for k, sql in STATE_SQL.items()} == kept
    # the same export again, diffed against the rebuilt state: no events
    land(wh, "intake", "ALLIANCE_DATA_2025-03-07_2300.csv",
         export([person(str(i), age="41" if i == 3 else "40") for i in range(1, 41)]))
    again = ingest_landing(wh)
    assert [(o.status, o.events_appended) for o in again.outcomes] == [("applied", 0)]
    # ... and it is the old state with exactly the two corrected values moved on
    moved = {(r[0], r[1], r[3]) for r in kept["values"]} == {(r[0], r[1], r[3]) for r in held["values"]}
    diff = sorted(set(kept["values"]) - set(held["values"]))
    assert moved and [(s, k, f, v) for s, k, _, f, v, _ in diff] == [
        ("alliance", "1#wai_client#2", "waic_1", "2"), ("intake", "3", "age", "41")]
