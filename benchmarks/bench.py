"""Benchmark: the whole nightly run (`alliance-wh run`) at four study sizes, against DuckDB's bare readers.

    .venv/bin/python benchmarks/bench.py                          # 1k, 10k, 100k, 200k participants + the demo
    .venv/bin/python benchmarks/bench.py --sizes 1000 10000       # any sizes (also: make bench SIZES="1000 10000")
    .venv/bin/python benchmarks/bench.py --sizes 100000 --merge   # add or replace one size in the saved results
    .venv/bin/python benchmarks/bench.py --profile                # + a pyinstrument profile of the largest size

For each size N it

1. generates a study with ``alliance-wh generate --participants N --nights 2``:
   ``night-01`` is the history so far, ``night-02`` one night's new arrivals
   (new intake and alliance snapshots, a new session-log file, new coded units);
2. counts the session events (lines of the session-log files) and the bytes of
   every landing file;
3. measures the **floor**: DuckDB's bare ``read_csv``/``read_json`` loading the
   same night-01 files into plain tables of an in-memory database, best of 3, in
   process (the ``.qdpx`` zips have no DuckDB reader and are left out; their
   bytes are recorded);
4. the **full** run: a fresh warehouse (every ``ALLIANCE_*`` setting under a
   temporary folder), night-01 copied into the landing zone, ``alliance-wh run``
   in a subprocess: wall time, peak resident memory of the whole process tree
   (psutil, every 50 ms, the RSS of the process and all its descendants
   summed: dbt runs as a child process) and, as a cross-check, the child's
   ``ru_maxrss`` (the largest single process of the tree, from ``os.wait4``);
5. the **nightly** run: night-02 copied into the same landing zone (new
   snapshots and a new session log beside the old files; the dictionaries and
   the pseudonym list are re-exported whole under the same names and replace
   theirs) and ``alliance-wh run`` again: wall time and peak memory.

It also times ``alliance-wh demo`` (600 participants, the demo's own
parameters) on a fresh landing zone and warehouse, prints a table with the
targets (at 200,000 participants: full <= 6x floor, nightly <= 40% of full,
peak memory <= 4 GiB; the demo < 30 s), and writes
``benchmarks/results/bench.json`` and ``benchmarks/results/bench.md``.
A run that fails is recorded (exit code, last lines of its output) and the
benchmark carries on with the next size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECRET = "benchmark-secret-0123456789"
DEFAULT_SIZES = (1_000, 10_000, 100_000, 200_000)
DEMO_PARTICIPANTS = 600  # `alliance-wh demo`'s default (orchestration/cli.py)
NIGHTS = 2
POLL_SECONDS = 0.05
GIB = 1024**3
MIB = 1024**2

TARGET_AT = 200_000
TARGETS = {
    "full_over_floor_max": 6.0,
    "nightly_over_full_max": 0.40,
    "peak_rss_gib_max": 4.0,
    "demo_seconds_max": 30.0,
}
# Settings that must not leak from the caller's environment into the measured runs.
CLEARED_ENV = ("ALLIANCE_SITE_TZ", "ALLIANCE_STUDY_PROFILE", "ALLIANCE_MIN_CELL", "ALLIANCE_K_ANON",
               "ALLIANCE_DEBUG", "ALLIANCE_NEW_SECRET_KEY", "ALLIANCE_PROGRESS")
QUIET_ENV = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1",
             "GX_ANALYTICS_ENABLED": "False", "DAGSTER_DISABLE_TELEMETRY": "1"}


# ------------------------------------------------------------------ processes
def cli_command() -> list[str]:
    """`alliance-wh` of this environment (the venv's entry point; else the module)."""
    script = Path(sys.executable).parent / "alliance-wh"
    return [str(script)] if script.exists() else [sys.executable, "-m", "orchestration.cli"]


def warehouse_env(work: Path) -> dict[str, str]:
    """The environment of one measured warehouse: landing zone, warehouse folder and secret under ``work``."""
    env = {**os.environ, **QUIET_ENV}
    for var in CLEARED_ENV:
        env.pop(var, None)
    env.update({
        "ALLIANCE_LANDING_DIR": str(work / "landing"),
        "ALLIANCE_WAREHOUSE_DIR": str(work / "warehouse"),
        "ALLIANCE_SECRET_KEY": SECRET,
    })
    return env


def _tree_rss(proc: psutil.Process) -> int:
    """RSS of ``proc`` and all its descendants, summed (0 when it is gone)."""
    total = 0
    try:
        family = [proc, *proc.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0
    for p in family:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return total


def measure(cmd: list[str], env: dict[str, str], log: Path, timeout: float | None = None,
            tail_lines: int = 25, run_log: Path | None = None) -> dict:
    """Run ``cmd`` to completion: wall time, exit code, peak RSS of its process tree, the child's ru_maxrss.

    The process runs in its own session (so a timeout can end its whole group);
    its output goes to ``log``, of which the last lines are kept when it fails,
    with the error lines of ``run_log`` (the run's own log, where dbt's output goes).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        ps = psutil.Process(proc.pid)
        peak, samples, timed_out = 0, 0, False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss(ps))
            samples += 1
            if timeout is not None and time.perf_counter() - t0 > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # the group of the process started above, only
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped by wait4: tell Popen, so it does not wait again
    output = log.read_text(encoding="utf-8", errors="replace")
    result = {
        "exit_code": code,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak / MIB, 1),
        "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB; the largest process of the tree
        "rss_samples": samples,
    }
    published = [m.group(1) for line in output.splitlines() if (m := re.match(r"published \S+ (in .*)", line))]
    if published:
        result["cli_says"] = published[-1]  # the CLI's own timing: the run without interpreter start-up
    if timed_out:
        result["timed_out_after_s"] = timeout
    if code != 0 or timed_out:
        result["output_tail"] = output.strip().splitlines()[-tail_lines:]
        if run_log is not None and run_log.exists():
            text = run_log.read_text(encoding="utf-8", errors="replace").splitlines()
            errors = [line.strip()[:400] for line in text if re.search(r"error|fail|exception", line, re.I)]
            result["run_log_errors"] = errors[-tail_lines:]
    return result


# ---------------------------------------------------------------- the landing files
def count_lines(path: Path) -> int:
    n, last = 0, b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def landing_figures(zone: Path) -> dict:
    """Bytes per source and in all, files, and session events (lines of the session logs) of one drop."""
    files = sorted(p for p in zone.rglob("*") if p.is_file())
    by_source: dict[str, int] = {}
    for p in files:
        source = p.relative_to(zone).parts[0]
        by_source[source] = by_source.get(source, 0) + p.stat().st_size
    return {
        "files": len(files),
        "bytes": sum(by_source.values()),
        "bytes_by_source": dict(sorted(by_source.items())),
        "session_events": sum(count_lines(p) for p in files if p.suffix == ".jsonl"),
    }


def copy_drop(drop: Path, landing: Path) -> dict:
    """Copy one nightly drop into the landing zone, as the exporters would drop it (same names replace)."""
    counts = {"new": 0, "replaced": 0, "identical": 0}
    for src in sorted(p for p in drop.rglob("*") if p.is_file()):
        dst = landing / src.relative_to(drop)
        if dst.exists():
            counts["identical" if dst.read_bytes() == src.read_bytes() else "replaced"] += 1
        else:
            counts["new"] += 1
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return counts


# ----------------------------------------------------------------------- the floor
def _reader(path: Path, fallback: bool) -> str:
    p = str(path).replace("'", "''")
    if path.suffix == ".jsonl":
        return f"read_json('{p}', format='newline_delimited'" + (", sample_size=-1)" if fallback else ")")
    return f"read_csv('{p}'" + (", all_varchar=true)" if fallback else ")")


def floor_seconds(zone: Path, repeats: int = 3) -> dict:
    """DuckDB's bare readers loading every CSV and JSON Lines file of ``zone`` into tables, best of ``repeats``.

    One in-memory database per repeat, one plain table per file, nothing else.
    A file the auto-detected reader cannot load is retried with every column as
    text (CSV) or a full-file schema sample (JSON), and named in ``fallbacks``.
    """
    files = sorted(p for p in zone.rglob("*") if p.is_file() and p.suffix in (".csv", ".jsonl"))
    skipped = sorted(p for p in zone.rglob("*") if p.is_file() and p.suffix not in (".csv", ".jsonl"))
    fallback: set[Path] = set()
    best, rows, counted = float("inf"), 0, 0
    for _ in range(2 * max(1, repeats) + 1):  # a repeat that had to fall back is not counted
        conn = duckdb.connect()
        fell_back = False
        t0 = time.perf_counter()
        for i, path in enumerate(files):
            try:
                conn.execute(f"create table t{i} as select * from {_reader(path, path in fallback)}")
            except duckdb.Error:
                if path in fallback:
                    raise
                fallback.add(path)
                fell_back = True
                conn.execute(f"create or replace table t{i} as select * from {_reader(path, True)}")
        seconds = time.perf_counter() - t0
        rows = sum(conn.execute(f"select count(*) from t{i}").fetchone()[0] for i in range(len(files)))
        conn.close()
        if not fell_back:
            best = min(best, seconds)
            counted += 1
            if counted == max(1, repeats):
                break
    return {
        "seconds": round(best, 3),
        "repeats": counted,
        "files": len(files),
        "rows": rows,
        "bytes": sum(p.stat().st_size for p in files),
        "left_out": [str(p.relative_to(zone)) for p in skipped],
        "left_out_bytes": sum(p.stat().st_size for p in skipped),
        "fallbacks": [str(p.relative_to(zone)) for p in sorted(fallback)],
    }


# -------------------------------------------------------------------------- one size
def _ratio(a: dict | None, b: dict | None, key: str = "seconds") -> float | None:
    if not a or not b or a.get("exit_code", 0) != 0 or b.get("exit_code", 0) != 0 or not b.get(key):
        return None
    return round(a[key] / b[key], 3)


def evaluate(entry: dict) -> dict:
    """The targets, measured against this entry (they are binding at TARGET_AT participants)."""
    runs = [r for r in (entry.get("full"), entry.get("nightly")) if r and "peak_rss_mb" in r]
    ratios = entry.get("ratios", {})

    def verdict(value, limit):
        return {"value": value, "target": limit, "met": None if value is None else value <= limit}

    peak = verdict(round(max(r["peak_rss_mb"] for r in runs) * MIB / GIB, 3) if runs else None,
                   TARGETS["peak_rss_gib_max"])
    if any(r.get("exit_code") != 0 for r in runs):  # the peak until a failure is only a lower bound
        peak["lower_bound"] = True
        if peak["met"]:
            peak["met"] = None
    return {
        "binding": entry["participants"] == TARGET_AT,
        "full_over_floor": verdict(ratios.get("full_over_floor"), TARGETS["full_over_floor_max"]),
        "nightly_over_full": verdict(ratios.get("nightly_over_full"), TARGETS["nightly_over_full_max"]),
        "peak_rss_gib": peak,
    }


def bench_size(n: int, base: Path, *, repeats: int, nightly: bool, profile_to: Path | None,
               timeout: float | None, seed: int | None) -> dict:
    entry: dict = {"participants": n, "nights": NIGHTS, "measured_at": now(),
                   "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    gen = base / "gen"
    cmd = [*cli_command(), "generate", "--participants", str(n), "--nights", str(NIGHTS), "--out", str(gen)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    say(f"[{n:,}] generating {NIGHTS} nights ...")
    entry["generate"] = measure(cmd, warehouse_env(base / "unused"), base / "logs" / "generate.log", timeout)
    summary = {}
    for line in (base / "logs" / "generate.log").read_text(encoding="utf-8", errors="replace").splitlines():
        if m := re.fullmatch(r"\s+(\w+): (\d+)", line):
            summary[m.group(1)] = int(m.group(2))
    entry["generate"]["summary"] = summary
    if entry["generate"]["exit_code"] != 0:
        say(f"[{n:,}] generate FAILED (exit {entry['generate']['exit_code']})")
        return entry
    night1, night2 = gen / "night-01", gen / "night-02"
    entry["landing"] = {"night_01": landing_figures(night1), "night_02": landing_figures(night2)}
    entry["events"] = {"night_01": entry["landing"]["night_01"]["session_events"],
                       "night_02": entry["landing"]["night_02"]["session_events"]}
    say(f"[{n:,}] generated in {entry['generate']['seconds']:.1f}s: {entry['events']['night_01']:,} + "
        f"{entry['events']['night_02']:,} session events, "
        f"{entry['landing']['night_01']['bytes'] / 1e6:.1f} + {entry['landing']['night_02']['bytes'] / 1e6:.2f} MB")

    try:
        entry["floor"] = floor_seconds(night1, repeats)
        say(f"[{n:,}] floor (read_csv/read_json into memory, best of {repeats}): "
            f"{entry['floor']['seconds']:.2f}s, {entry['floor']['rows']:,} rows")
    except duckdb.Error as exc:  # recorded; the runs are still measured
        entry["floor"] = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        say(f"[{n:,}] floor FAILED: {entry['floor']['error']}")

    work = base / "run"
    (work / "landing").mkdir(parents=True)
    copy_drop(night1, work / "landing")
    env = warehouse_env(work)
    say(f"[{n:,}] full run ...")
    run_log = work / "warehouse" / "logs" / "last_run.log"
    entry["full"] = measure([*cli_command(), "run"], env, base / "logs" / "full.log", timeout, run_log=run_log)
    say(f"[{n:,}] full run: exit {entry['full']['exit_code']}, {entry['full']['seconds']:.1f}s, "
        f"peak {entry['full']['peak_rss_mb']:,.0f} MB")
    if nightly:
        if entry["full"]["exit_code"] != 0:
            entry["nightly"] = None
            entry["nightly_skipped"] = "the full run failed"
        else:
            entry["night_02_copied"] = copy_drop(night2, work / "landing")
            say(f"[{n:,}] nightly run ...")
            entry["nightly"] = measure([*cli_command(), "run"], env, base / "logs" / "nightly.log", timeout,
                                       run_log=run_log)
            say(f"[{n:,}] nightly run: exit {entry['nightly']['exit_code']}, {entry['nightly']['seconds']:.1f}s, "
                f"peak {entry['nightly']['peak_rss_mb']:,.0f} MB")
    entry["ratios"] = {
        "full_over_floor": _ratio(entry["full"], entry["floor"]),
        "nightly_over_full": _ratio(entry.get("nightly"), entry["full"]),
    }
    entry["targets"] = evaluate(entry)
    entry["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if profile_to is not None:
        entry["profile"] = profile_full_run(n, night1, base / "profiled", profile_to, timeout)
    return entry


def profile_full_run(n: int, night1: Path, work: Path, out_dir: Path, timeout: float | None) -> dict:
    """One more full run of the same drop, on a fresh warehouse, under pyinstrument (the main process only)."""
    (work / "landing").mkdir(parents=True)
    copy_drop(night1, work / "landing")
    session = work / "run.pyisession"
    say(f"[{n:,}] full run under pyinstrument ...")
    cmd = [sys.executable, "-m", "pyinstrument", "-r", "pyisession", "-o", str(session),
           "-m", "orchestration.cli", "run"]
    result = measure(cmd, warehouse_env(work), work / "profile.log", timeout)
    if session.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"profile-{n}.txt"
        subprocess.run([sys.executable, "-m", "pyinstrument", "--load", str(session), "-r", "text",
                        "--no-color", "--unicode", "-o", str(target)], cwd=ROOT, check=False, capture_output=True)
        if target.exists():
            result["text_file"] = rel(target)
        say(f"[{n:,}] profile: {result.get('text_file')}")
    result["note"] = "wall time includes the profiler's overhead; dbt (a child process) shows as waiting"
    return result


def bench_demo(base: Path, timeout: float | None) -> dict:
    """`alliance-wh demo` (its own parameters) on an empty landing zone and a fresh warehouse."""
    say(f"[demo] alliance-wh demo ({DEMO_PARTICIPANTS} participants) ...")
    result = measure([*cli_command(), "demo"], warehouse_env(base), base / "demo.log", timeout,
                     run_log=base / "warehouse" / "logs" / "last_run.log")
    result.update(participants=DEMO_PARTICIPANTS, measured_at=now(), target_seconds=TARGETS["demo_seconds_max"],
                  met=result["exit_code"] == 0 and result["seconds"] < TARGETS["demo_seconds_max"],
                  what="wall time of the whole `alliance-wh demo`: generate 600 participants, ingest, build, "
                       "check, publish, example query")
    say(f"[demo] exit {result['exit_code']}, {result['seconds']:.1f}s, peak {result['peak_rss_mb']:,.0f} MB")
    return result


# ------------------------------------------------------------------------ reporting
def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def say(msg: str) -> None:
    print(msg, flush=True)


def git_commit() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / GIB, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _s(run: dict | None) -> str:
    if not run:
        return "-"
    if run.get("exit_code") != 0:
        after = f", after {run['seconds']:.0f} s" if "seconds" in run else ""
        return f"FAILED (exit {run.get('exit_code')}{after})"
    return f"{run['seconds']:.1f}" if run["seconds"] >= 10 else f"{run['seconds']:.2f}"


def _gib(run: dict | None) -> str:
    """Peak memory; of a run that failed, the peak until it failed (a lower bound)."""
    if not run or "peak_rss_mb" not in run:
        return "-"
    value = f"{run['peak_rss_mb'] * MIB / GIB:.2f}"
    return value if run.get("exit_code") == 0 else f">= {value}"


def _x(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.0f}%" if pct else f"{value:.1f}x"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Measured {results['measured_at'][:10]} on {m['cpus']} CPUs, {m['ram_gib']} GiB RAM, Python {m['python']}, "
        f"DuckDB {m['duckdb']}, commit `{(m['git_commit'] or 'unknown')[:10]}`; {NIGHTS} nights per study. "
        "Peak memory: RSS of the whole process tree (dbt included), sampled every 50 ms.",
    ]
    commits = {e.get("git_commit") for e in results["sizes"]} | (
        {results["demo"].get("git_commit")} if results.get("demo") else set())
    if len(commits - {None}) > 1:
        rows = [f"{e['participants']:,} at `{(e.get('git_commit') or '?')[:10]}`" for e in results["sizes"]]
        if results.get("demo"):
            rows.append(f"demo at `{(results['demo'].get('git_commit') or '?')[:10]}`")
        lines.append("Rows measured at different commits (`--merge`): " + ", ".join(rows) + ".")
    lines += [
        "",
        "| participants | session events (night 1 + 2) | landing MB (night 1 + 2) | generate s | floor s "
        "| **full run s** | full / floor | **nightly run s** | nightly / full | peak GiB full | peak GiB nightly |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in results["sizes"]:
        if "landing" not in e:
            why = e.get("error") or f"generate FAILED (exit {e['generate']['exit_code']})"
            lines.append(f"| {e['participants']:,} | {why} | | | | | | | | | |")
            continue
        ev, ld = e["events"], e["landing"]
        lines.append(
            f"| {e['participants']:,} | {ev['night_01']:,} + {ev['night_02']:,} "
            f"| {ld['night_01']['bytes'] / 1e6:,.1f} + {ld['night_02']['bytes'] / 1e6:,.2f} "
            f"| {_s(e['generate'])} | {_s(e['floor'] | {'exit_code': 0 if 'seconds' in e['floor'] else 'error'})} "
            f"| **{_s(e['full'])}** "
            f"| {_x(e['ratios']['full_over_floor'])} | **{_s(e.get('nightly'))}** "
            f"| {_x(e['ratios']['nightly_over_full'], pct=True)} | {_gib(e['full'])} | {_gib(e.get('nightly'))} |"
        )
    demo = results.get("demo")
    if demo:
        lines.append(f"| demo: {demo['participants']} (`alliance-wh demo`) | | | | | **{_s(demo)}** | | | "
                     f"| {_gib(demo)} | |")
    lines += ["", "Targets:", ""]
    at = [e for e in results["sizes"] if e["participants"] == TARGET_AT and "targets" in e]
    if at:
        t = at[-1]["targets"]

        def line(name: str, key: str, fmt) -> str:
            v = t[key]
            if v["value"] is None:
                return f"* {name}: not measured, a run failed (target {fmt(v['target'])})"
            mark = "not known" if v["met"] is None else ("met" if v["met"] else "**missed**")
            bound = "at least " if v.get("lower_bound") else ""
            return f"* {name}: {bound}{fmt(v['value'])} (target {fmt(v['target'])}): {mark}"

        lines += [
            line(f"full run / floor at {TARGET_AT:,}", "full_over_floor", _x),
            line(f"nightly run / full run at {TARGET_AT:,}", "nightly_over_full", lambda v: _x(v, pct=True)),
            line(f"peak memory at {TARGET_AT:,}", "peak_rss_gib",
                 lambda v: "-" if v is None else f"{v:.2f} GiB"),
        ]
    else:
        lines.append(f"* full <= {TARGETS['full_over_floor_max']:.0f}x floor, nightly <= "
                     f"{TARGETS['nightly_over_full_max']:.0%} of full, peak memory <= "
                     f"{TARGETS['peak_rss_gib_max']:.0f} GiB: binding at {TARGET_AT:,} participants, not measured "
                     "in this run")
    if demo:
        mark = "met" if demo["met"] else "**missed**"
        lines.append(f"* demo ({demo['participants']} participants): {_s(demo)} s "
                     f"(target < {TARGETS['demo_seconds_max']:.0f} s): {mark}")
    return "\n".join(lines) + "\n"


def save(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out_dir / "bench.md").write_text(markdown(results), encoding="utf-8")


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=list(DEFAULT_SIZES),
                    help="participants per study (default: 1000 10000 100000 200000)")
    ap.add_argument("--repeat", type=int, default=3, help="best of how many floor loads (default 3)")
    ap.add_argument("--no-demo", dest="demo", action="store_false", help="skip the demo-size row")
    ap.add_argument("--no-nightly", dest="nightly", action="store_false",
                    help="skip the second (nightly) run (quick checks only)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile one more full run of the largest size with pyinstrument "
                         "(results/profile-<N>.txt)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the saved entries of sizes not measured now (each entry has its own date)")
    ap.add_argument("--seed", type=int, help="generator seed (default: the generator's)")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds before one run is killed")
    ap.add_argument("--tmp", type=Path, help="where the temporary studies and warehouses go (default: system)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders (printed)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where bench.json and bench.md go")
    args = ap.parse_args(argv)
    sizes = sorted(dict.fromkeys(args.sizes))
    if any(n < 1 for n in sizes):
        ap.error("--sizes must be positive")

    results: dict = {"benchmark": "bench", "measured_at": now(), "machine": machine(),
                     "targets": {**TARGETS, "binding_at_participants": TARGET_AT},
                     "floor_repeats": args.repeat, "sizes": [], "demo": None}
    previous: dict[int, dict] = {}
    old_path = args.out_dir / "bench.json"
    if args.merge and old_path.exists():
        old = json.loads(old_path.read_text(encoding="utf-8"))
        previous = {e["participants"]: e for e in old.get("sizes", [])}
        for e in previous.values():
            e.setdefault("git_commit", old.get("machine", {}).get("git_commit"))
        results["demo"] = old.get("demo")

    def collect(entries: dict[int, dict]) -> None:
        results["sizes"] = [entries[k] for k in sorted(entries)]

    entries = dict(previous)
    tmp_root = Path(tempfile.mkdtemp(prefix="alliance-bench-", dir=args.tmp))
    try:
        for n in sizes:
            base = tmp_root / f"n{n}"
            try:
                entry = bench_size(n, base, repeats=args.repeat, nightly=args.nightly,
                                   profile_to=args.out_dir if args.profile and n == sizes[-1] else None,
                                   timeout=args.timeout, seed=args.seed)
            except Exception as exc:  # record it and go on with the next size
                entry = {"participants": n, "measured_at": now(), "error": f"{type(exc).__name__}: {exc}"}
                say(f"[{n:,}] benchmark error: {entry['error']}")
            entry["git_commit"] = results["machine"]["git_commit"]
            entries[n] = entry
            collect(entries)
            save(results, args.out_dir)
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
        if args.demo:
            results["demo"] = bench_demo(tmp_root / "demo", args.timeout)
            results["demo"]["git_commit"] = results["machine"]["git_commit"]
    finally:
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        collect(entries)
        save(results, args.out_dir)
        if args.keep:
            say(f"kept {tmp_root}")
        else:
            shutil.rmtree(tmp_root, ignore_errors=True)

    say("")
    say(markdown(results))
    say(f"saved {rel(args.out_dir / 'bench.json')} and {rel(args.out_dir / 'bench.md')}")
    failed = [e for e in results["sizes"] if e["participants"] in sizes and (
        "error" in e or any(r and r.get("exit_code") != 0 for r in (e.get("generate"), e.get("full"), e.get("nightly"))))]
    demo_failed = args.demo and results["demo"] and results["demo"]["exit_code"] != 0
    return 1 if failed or demo_failed else 0


if __name__ == "__main__":
    sys.exit(main())
