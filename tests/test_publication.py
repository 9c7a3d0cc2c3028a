"""Publication never breaks a reader: the analyst file is replaced whole, atomically."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ingestion.synth import generate_study
from orchestration.cli import run_pipeline

pytestmark = pytest.mark.slow

READER = textwrap.dedent("""
    import sys, time, duckdb, pathlib
    db, stop = sys.argv[1], pathlib.Path(sys.argv[2])
    reads = errors = 0
    while not stop.exists():
        try:
            con = duckdb.connect(db, read_only=True)
            n = con.execute("select count(*) from participants").fetchone()[0]
            m = con.execute("select count(*) from engagement join participants using (participant_key)").fetchone()[0]
            con.close()
            assert n > 0 and m > 0
            reads += 1
        except Exception as exc:
            errors += 1
            print("ERROR", type(exc).__name__, str(exc)[:200], flush=True)
        time.sleep(0.01)
    print("READS", reads, "ERRORS", errors, flush=True)
""")


def test_readers_see_no_error_while_runs_publish(wh, tmp_path):
    generate_study(wh.landing_dir, 150, seed=11)
    assert run_pipeline(quiet=True) == 0
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(wh.analytics_path), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(2):
            assert run_pipeline(quiet=True) == 0
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    last = out.strip().splitlines()[-1].split()
    assert last[0] == "READS" and int(last[1]) > 20, out
    assert int(last[3]) == 0, out
