"""The benchmark harness (benchmarks/bench.py) at a tiny size: it measures, records and reports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module
    spec.loader.exec_module(module)
    return module


def test_landing_figures_floor_and_nightly_copy(tmp_path):
    """The parts that need no pipeline: counting a drop, the floor, and copying night 2 over night 1."""
    bench = _bench()
    gen = tmp_path / "gen"
    proc = subprocess.run([*bench.cli_command(), "generate", "--participants", "60", "--nights", "2",
                           "--out", str(gen)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    night1 = bench.landing_figures(gen / "night-01")
    night2 = bench.landing_figures(gen / "night-02")
    assert night1["session_events"] > 0 and night1["bytes"] > night2["bytes"] > 0
    assert set(night1["bytes_by_source"]) >= {"intake", "alliance", "sessions"}

    floor = bench.floor_seconds(gen / "night-01", repeats=2)
    assert floor["seconds"] > 0 and floor["repeats"] == 2 and floor["rows"] > night1["session_events"]
    assert floor["fallbacks"] == [] and all(p.endswith(".qdpx") for p in floor["left_out"])

    landing = tmp_path / "landing"
    first = bench.copy_drop(gen / "night-01", landing)
    assert first == {"new": night1["files"], "replaced": 0, "identical": 0}
    second = bench.copy_drop(gen / "night-02", landing)
    assert second["identical"] >= 2  # the dictionaries, re-exported unchanged
    assert second["new"] >= 3  # a new intake and alliance snapshot and a new session log
    assert sum(second.values()) == night2["files"]


def test_measure_records_a_failure(tmp_path):
    bench = _bench()
    ok = bench.measure([sys.executable, "-c", "x = b'x' * (50 * 2**20); import time; time.sleep(0.3)"],
                       {}, tmp_path / "ok.log")
    assert ok["exit_code"] == 0 and ok["peak_rss_mb"] >= 50 and ok["ru_maxrss_mb"] >= 50
    assert "output_tail" not in ok
    bad = bench.measure([sys.executable, "-c", "print('last words'); raise SystemExit(3)"], {}, tmp_path / "b.log")
    assert bad["exit_code"] == 3 and bad["output_tail"][-1] == "last words"


@pytest.mark.slow
def test_harness_at_a_tiny_size(tmp_path):
    """One full run of a 150-person study (no nightly run, no demo: the harness itself is under test)."""
    bench = _bench()
    out = tmp_path / "results"
    code = bench.main(["--sizes", "150", "--no-demo", "--no-nightly", "--repeat", "1",
                       "--out-dir", str(out), "--tmp", str(tmp_path)])
    assert code == 0
    results = json.loads((out / "bench.json").read_text())
    assert {"measured_at", "machine", "targets", "sizes", "demo"} <= set(results)
    assert {"cpus", "ram_gib", "python", "duckdb", "git_commit"} <= set(results["machine"])
    assert results["machine"]["cpus"] >= 1 and results["machine"]["ram_gib"] > 0
    [entry] = results["sizes"]
    assert entry["participants"] == 150
    assert {"generate", "landing", "events", "floor", "full", "ratios", "targets"} <= set(entry)
    assert entry["generate"]["exit_code"] == 0 and entry["generate"]["seconds"] > 0
    assert entry["events"]["night_01"] > 0 and entry["landing"]["night_01"]["bytes"] > 0
    assert entry["floor"]["seconds"] > 0 and entry["floor"]["rows"] > 0
    full = entry["full"]
    assert full["exit_code"] == 0, full.get("output_tail")
    assert 0 < entry["floor"]["seconds"] < full["seconds"] < 600
    assert 50 < full["peak_rss_mb"] < 64 * 1024 and full["ru_maxrss_mb"] > 0
    assert full["ru_maxrss_mb"] <= full["peak_rss_mb"] * 1.2  # one process never exceeds the tree's sum
    assert entry["ratios"]["full_over_floor"] > 1 and entry["ratios"]["nightly_over_full"] is None
    md = (out / "bench.md").read_text()
    assert "| 150 |" in md and "full run" in md
    assert not list(tmp_path.glob("alliance-bench-*"))  # the temporary study and warehouse are gone


def test_the_session_log_benchmark_runs_both_paths_and_records_them(tmp_path):
    """benchmarks/ingest_sessions.py at a tiny size: every event appended, the broken line quarantined."""
    out = tmp_path / "ingest_sessions.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ingest_sessions.py"), "--events", "3000",
                           "--repeat", "1", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert (result["events"], result["events_appended"], result["rows_quarantined"]) == (3000, 3000, 0)
    assert result["ours_staged_path_quarantined"] == 1
    assert result["floor_seconds"] > 0 and result["ours_seconds"] > 0 and result["ours_staged_path_seconds"] > 0
    assert "WARNING" not in proc.stdout and "staged path" in proc.stdout
