"""`alliance-wh`: the command line of the warehouse.

Exit status: 0 published (quarantined rows included), 1 a blocking check failed
(nothing new published), 2 a usage or configuration error. No traceback
reaches the user: unexpected errors print one line (and the log file keeps
the details).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ingestion.profile import ProfileError
from ingestion.settings import ConfigError, load_settings

EXAMPLE_QUERY = (
    "select arm, count(*) as randomized, round(avg(sessions_attended), 2) as mean_sessions_attended, "
    "count(*) filter (where linked) as linked from engagement group by arm order by arm"
)


def _print(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- run
def run_pipeline(quiet: bool = False, full_refresh: bool = False) -> int:
    """Execute the nightly asset graph in-process; returns the exit status."""
    from ingestion.profile_check import checked_profile

    # The profile is held against the dictionary first: a misfit writes nothing (no key, no vault).
    checked_profile(load_settings(require_secret=False))
    settings = load_settings()
    if full_refresh:
        from ingestion.vault import writer_lock
        from orchestration.steps.dbt_setup import discard_build

        with writer_lock(settings):
            discard_build(settings)  # every model is rebuilt from the event store
    from orchestration.steps.dbt_setup import ensure_manifest

    ensure_manifest()
    os.environ["ALLIANCE_PROGRESS"] = "0" if quiet else "1"
    import dagster as dg

    from orchestration.definitions import defs

    started = time.monotonic()
    job = defs().resolve_job_def("nightly_build")
    for name in ("dagster", "great_expectations"):
        logging.getLogger(name).setLevel(logging.WARNING)
    log_path = settings.warehouse_dir / "logs" / "last_run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # dbt's own progress lines go to the log file; the CLI shows one line per step.
    with log_path.open("w", encoding="utf-8") as log_file, contextlib.redirect_stdout(log_file):
        result = job.execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
    run_id = result.run_id
    from orchestration.steps.quality import load_results, write_data_quality_json

    evaluations = result.get_asset_check_evaluations()
    failed_checks = [e for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    if result.success:
        ingest = _read_json(settings.runs_dir / run_id / "ingest.json")
        _print(f"published {settings.analytics_path} in {time.monotonic() - started:.1f} s "
               f"({len(ingest.get('files', []))} new file(s), {len(evaluations)} check(s) passed)")
        quarantined = sum(f.get("rows_quarantined", 0) for f in ingest.get("files", []))
        if quarantined:
            _print(f"{quarantined} row(s) or file(s) quarantined: see `alliance-wh status`")
        return 0
    results = load_results(settings, run_id)
    write_data_quality_json(settings, run_id, results, published=False)
    if failed_checks:
        for e in failed_checks:
            rule = (e.metadata.get("rule").value if e.metadata.get("rule") else "a dbt test")
            rows = e.metadata.get("failing_rows") or e.metadata.get("dagster_dbt/failed_row_count")
            count = f", {rows.value} failing row(s)" if rows is not None else ""
            _print(f"BLOCKED {e.asset_key.to_user_string()}: check {e.check_name} ({rule}){count}")
        _print(f"nothing published; the previous analyst database stays in place. Results: "
               f"{settings.runs_dir / run_id / 'data_quality.json'}")
        return 1
    for event in result.all_events:
        if event.is_step_failure:
            err = event.step_failure_data.error
            while err is not None and err.cause is not None:  # the innermost cause says what happened
                err = err.cause
            message = (err.message if err else "unknown error").strip().splitlines()
            _print(f"FAILED step {event.step_key}: {message[0][:300] if message else 'unknown error'}")
    _print("nothing published; the previous analyst database stays in place.")
    return 1


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------------- generate
def cmd_generate(args: argparse.Namespace) -> int:
    from ingestion.synth import generate_study

    if args.participants < 1:
        raise ConfigError("--participants must be at least 1")
    if args.nights is not None and args.nights < 1:
        raise ConfigError("--nights must be at least 1")
    started = time.monotonic()
    summary = generate_study(Path(args.out), args.participants, nights=args.nights, seed=args.seed)
    _print(f"generated a synthetic study in {args.out} ({time.monotonic() - started:.1f} s)")
    for k, v in summary.items():
        if isinstance(v, int | float | str):
            _print(f"  {k}: {v}")
    return 0


# -------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    settings = load_settings()
    landing = settings.landing_dir
    if landing.exists() and any(p.is_file() for p in landing.rglob("*")):
        _print(f"the landing zone {landing} already holds files: using them")
    else:
        from ingestion.synth import generate_study

        _print(f"generating a synthetic study of {args.participants} people into {landing} ...")
        generate_study(landing, args.participants, nights=None, seed=args.seed)
    _print("running the pipeline: ingest -> build -> check -> publish")
    code = run_pipeline()
    if code != 0:
        return code
    import duckdb

    conn = duckdb.connect(str(settings.analytics_path), read_only=True)
    try:
        rows = conn.execute(EXAMPLE_QUERY).fetchall()
        cols = [d[0] for d in conn.description]
    finally:
        conn.close()
    _print()
    _print(f"analyst database: {settings.analytics_path}")
    _print("open it read-only:  duckdb -readonly " + str(settings.analytics_path))
    _print("example query:")
    _print("  " + EXAMPLE_QUERY + ";")
    _print("  " + " | ".join(cols))
    for r in rows:
        _print("  " + " | ".join(str(v) for v in r))
    return 0


# ------------------------------------------------------------------------ status
def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings(create_key=False)
    from ingestion.vault import open_vault

    if not settings.vault_path.exists():
        _print(f"nothing ingested yet (no vault at {settings.vault_path})")
    else:
        conn = open_vault(settings, read_only=True)
        try:
            _print("ingested files:")
            rows = conn.execute(
                """select source, file_name, status, rows_read, events_appended, duplicates, rows_quarantined,
                          strftime(ingested_at, '%Y-%m-%d %H:%M'), coalesce(detail, '')
                   from events.batches order by ingested_at, batch_id"""
            ).fetchall()
            for src, name, status, read, appended, dups, quar, at, detail in rows:
                _print(f"  {at}  {src:<9} {name:<42} {status:<11} read {read or 0:>7}  appended {appended or 0:>7}"
                       f"  duplicates {dups or 0:>5}  quarantined {quar or 0:>5}" + (f"  ({detail})" if detail else ""))
            q = conn.execute(
                """select file_name, reason_code, any_value(reason), count(*) from events.quarantine
                   group by 1, 2 order by 1, 2"""
            ).fetchall()
            if q:
                _print("quarantine (per file and reason):")
                for name, code, reason, n in q:
                    _print(f"  {name}: {n} x {code} - {reason}")
        finally:
            conn.close()
    _status_erasures(settings)
    _status_published(settings)
    return 0


def _status_erasures(settings) -> None:
    """Landing files that still hold data of participants who withdrew all data."""
    if not settings.vault_path.exists():
        return
    from ingestion.erasure import landing_files_holding_erased
    from ingestion.vault import open_vault

    conn = open_vault(settings, read_only=True)
    try:
        erased = conn.execute("select count(*) from events.events where event_type = 'participant_erased'").fetchone()[0]
        present = landing_files_holding_erased(settings, conn) if erased else []
    finally:
        conn.close()
    if not erased:
        return
    _print(f"erased: {erased} participant(s) withdrew all data. Landing files that still hold their data "
           f"(remove them at the source):")
    for name in present:
        _print(f"  {name}")
    if not present:
        _print("  (none left in the landing zone)")


def _status_published(settings) -> None:
    import duckdb

    if settings.analytics_path.exists():
        conn = duckdb.connect(str(settings.analytics_path), read_only=True)
        try:
            built_at, cut, pos = conn.execute(
                "select built_at, data_cut, event_store_position from build_info").fetchone()
            failing = conn.execute("select count(*) from data_quality where not passed").fetchone()[0]
        finally:
            conn.close()
        age = datetime.now(UTC) - built_at
        _print(f"published: {settings.analytics_path}, built {built_at:%Y-%m-%d %H:%M %Z} "
               f"({age.total_seconds() / 3600:.1f} h ago), data cut {cut}, event-store position {pos}, "
               f"{failing} reporting check(s) failing")
    else:
        _print("published: nothing yet")
    runs = sorted(settings.runs_dir.glob("*/data_quality.json"), key=lambda p: p.stat().st_mtime) \
        if settings.runs_dir.is_dir() else []
    if runs:
        last = _read_json(runs[-1])
        if not last.get("published", True):
            _print(f"last run {last.get('run_id')} was BLOCKED:")
            for c in last.get("checks", []):
                if not c["passed"]:
                    _print(f"  {c['check_name']} (rule {c['rule']}, {c['severity']}): {c['failing_rows']} failing row(s)")


# ------------------------------------------------------------------------ accept
def cmd_accept(args: argparse.Namespace) -> int:
    from ingestion.ingest import accept_file

    settings = load_settings()
    outcome = accept_file(settings, Path(args.file))
    _print(f"accepted {outcome.file_name}: {outcome.events_appended} event(s) appended")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from ingestion.rotation import rotate_key

    settings = load_settings(create_key=False)
    where = rotate_key(settings, os.environ.get("ALLIANCE_NEW_SECRET_KEY") or None)
    _print(f"the vault is re-encrypted under the new secret ({where}); back it up now. "
           "participant_key values are unchanged.")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Generate the dbt documentation site (offline, one static HTML file)."""
    import subprocess
    import tempfile

    from ingestion.profile import load_profile
    from orchestration.steps.dbt_setup import DBT_PROJECT_DIR, build_environment, dbt_executable, dbt_vars

    settings = load_settings()
    if not settings.vault_path.exists():
        raise ConfigError("run `alliance-wh run` (or `make demo`) first: the docs describe the built project")
    target = DBT_PROJECT_DIR / "target" / "docs"
    with tempfile.TemporaryDirectory(dir=settings.build_dir if settings.build_dir.exists() else None) as tmp:
        env = {**os.environ, **build_environment(settings), "ALLIANCE_BUILD_DB": str(Path(tmp) / "docs.duckdb")}
        variables = dbt_vars(settings, load_profile(settings.study_profile), max_seq=None)
        proc = subprocess.run(
            [dbt_executable(), "docs", "generate", "--static", "--vars", json.dumps(variables),
             "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
             "--target-path", str(target), "--log-path", tmp],
            env=env, cwd=DBT_PROJECT_DIR, capture_output=True, text=True,
        )
    if proc.returncode != 0:
        _print("dbt docs generate failed: " + (proc.stdout + proc.stderr).strip().splitlines()[-1][:300])
        return 1
    _print(f"documentation: open {target / 'static_index.html'} in a browser (one self-contained file)")
    return 0


def _blocked(blocked, outcome: str) -> int:
    for f in blocked.failed:
        _print(f"BLOCKED check {f.check_name} ({f.rule}), {f.failing_rows} failing row(s)")
    _print(outcome)
    return 1


def cmd_extract(args: argparse.Namespace) -> int:
    from orchestration.steps.asof import Blocked
    from orchestration.steps.extract import replay_extract, write_extract

    settings = load_settings()
    if bool(args.as_of) == bool(args.replay):
        raise ConfigError("give either --as-of TS or --replay MANIFEST")
    try:
        if args.replay:
            folder = replay_extract(settings, Path(args.replay))
        else:
            folder = write_extract(settings, args.as_of, args.audience)
    except Blocked as blocked:
        return _blocked(blocked, "no extract was written")
    manifest = _read_json(folder / "manifest.json")
    _print(f"extract written to {folder} ({len(manifest.get('files', {}))} file(s) and manifest.json)")
    if "identical_to_original" in manifest:
        same = manifest["identical_to_original"]
        _print(f"replay {'identical to the original, byte for byte' if same else 'DIFFERS from the original'}"
               f"; participants erased since: {manifest.get('participants_erased_since', 0)}")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    from orchestration.steps.asof import Blocked
    from orchestration.steps.lock import lock_database

    settings = load_settings()
    try:
        path = lock_database(settings, args.as_of, args.name)
    except Blocked as blocked:
        return _blocked(blocked, "no lock was written")
    _print(f"locked {path} (manifest beside it)")
    return 0


def cmd_check_profile(args: argparse.Namespace) -> int:
    from ingestion.profile_check import checked_profile

    settings = load_settings(require_secret=False)
    profile = checked_profile(settings, require_dictionary=True)
    arms = ", ".join(profile.arms.values()) if profile.randomized else "none (not randomized)"
    _print(f"{settings.study_profile}: fits the intake data dictionary "
           f"({len(profile.fields)} concept(s) mapped; arms: {arms})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return run_pipeline(full_refresh=args.full_refresh)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alliance-wh", description="Alliance Warehouse: ingest, build, check, publish.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="generate a synthetic study into the landing zone and run the whole pipeline")
    d.add_argument("--participants", type=int, default=600)
    d.add_argument("--seed", type=int, default=20260101)
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("run", help="ingest what has landed, build, check, publish")
    r.add_argument("--full-refresh", action="store_true",
                   help="rebuild every model from the event store (else new events only, where valid)")
    r.set_defaults(func=cmd_run)
    g = sub.add_parser("generate", help="write a realistic synthetic study in the landing formats")
    g.add_argument("--participants", type=int, required=True)
    g.add_argument("--nights", type=int)
    g.add_argument("--seed", type=int, default=20260101)
    g.add_argument("--out", required=True)
    g.set_defaults(func=cmd_generate)
    sub.add_parser("status", help="what has been ingested, quarantined and published").set_defaults(func=cmd_status)
    sub.add_parser("check-profile", help="check the study profile against the landed data dictionary; "
                   "writes nothing").set_defaults(func=cmd_check_profile)
    sub.add_parser("docs", help="generate the dbt documentation site (offline)").set_defaults(func=cmd_docs)
    ex = sub.add_parser("extract", help="funder extracts as of a moment (or replay one from its manifest)")
    ex.add_argument("--as-of")
    ex.add_argument("--audience", default="funder", choices=["funder", "public"])
    ex.add_argument("--replay")
    ex.set_defaults(func=cmd_extract)
    lk = sub.add_parser("lock", help="the database lock: a frozen analyst database as of TS")
    lk.add_argument("--as-of", required=True)
    lk.add_argument("--name", required=True)
    lk.set_defaults(func=cmd_lock)
    sub.add_parser("rotate-key", help="re-encrypt the vault under a new secret (ALLIANCE_NEW_SECRET_KEY, "
                   "or a new key file)").set_defaults(func=cmd_rotate_key)
    a = sub.add_parser("accept", help="apply a snapshot held back as suspect")
    a.add_argument("file")
    a.set_defaults(func=cmd_accept)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)  # libraries that raise their own loggers' levels stay quiet
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ProfileError as exc:
        print(f"alliance-wh: the study profile does not fit ({len(exc.problems)} problem(s)); "
              "nothing was written:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"alliance-wh: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alliance-wh: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, no traceback
        print(f"alliance-wh: unexpected {type(exc).__name__}; nothing was published. "
              f"Run with ALLIANCE_DEBUG=1 for details.", file=sys.stderr)
        if os.environ.get("ALLIANCE_DEBUG") == "1":
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
