"""Publication: allow-listed marts copied into a fresh file, renamed over the old."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from expectations.checks import CheckResult
from ingestion.settings import PROJECT_ROOT, Settings
from ingestion.vault import attach_encrypted, secure_connection, spill_dir, sql_str

# The analyst database holds these marts and nothing else (plus data_quality, build_info).
# table -> its sort order (every published table is written in a stable order)
PUBLISHED_MARTS = {
    "participants": "participant_key",
    "sessions": "participant_key, occurred_at, event_type, service, session_number",
    "engagement": "participant_key",
    "retention": "participant_key",
    "alliance_scores": "participant_key, respondent, session_number, surveyed_on, total",
    "alliance_trajectory": "participant_key, respondent",
    "coded_units": "transcript_key, start_char, end_char, code_path, coder_id, unit_key",
    "code_matrix": "code_path, attribute, value",
    "coder_agreement": "code_path, coder_a, coder_b",
    "table1": "cohort, stratum, characteristic_order, level_order, level",
    "consort_flow": "stage_order, arm_order, reason_order, reason",
}


def code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("alliance-warehouse")
    except PackageNotFoundError:
        return "unknown"


def data_cut(conn: duckdb.DuckDBPyConnection) -> datetime | None:
    """The build's data cut (dbt model int_data_cut: the as-of, else the latest counted event)."""
    return conn.execute("select data_cut from build.main.int_data_cut").fetchone()[0]


def publish(settings: Settings, run_id: str, results: list[CheckResult], position: int,
            as_of: str | None = None, target: Path | None = None, build_path: Path | None = None,
            built_at: datetime | None = None) -> Path:
    """Write a new analyst database and atomically replace the published one."""
    target = target or settings.analytics_path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{run_id}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    conn = secure_connection(temp_dir=spill_dir(settings))
    try:
        attach_encrypted(conn, build_path or settings.build_path, "build", settings.build_key, read_only=True)
        conn.execute(f"ATTACH {sql_str(str(tmp))} AS out")
        for mart, key in PUBLISHED_MARTS.items():
            conn.execute(f"create table out.main.{mart} as select * from build.main.{mart} order by {key}")
        dq = pl.DataFrame(
            [r.as_dict() for r in results],
            schema={"check_name": pl.Utf8, "rule": pl.Utf8, "severity": pl.Utf8, "passed": pl.Boolean,
                    "failing_rows": pl.Int64, "detail": pl.Utf8},
            orient="row",
        )
        conn.register("dq", dq)
        conn.execute("create table out.main.data_quality as select * from dq order by check_name")
        cut = data_cut(conn)
        conn.execute(
            """create table out.main.build_info as
               select ?::timestamptz as built_at, ?::timestamptz as data_cut, ?::bigint as event_store_position,
                      ?::timestamptz as as_of, ? as code_version""",
            [built_at or datetime.now(UTC), cut, position, as_of, code_version()],
        )
        conn.execute("detach out")
    finally:
        conn.close()
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target
