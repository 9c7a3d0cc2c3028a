"""As-of builds: the analyst tables as the sources had recorded them by a moment.

Used by extracts and database locks. The build is pinned to an event-store
position (the store's position at the time, or a manifest's), cut on each
event's recorded_at (a REDCap snapshot's export time, a log event's
recorded_at else occurred_at, a coded unit's coded_at else its ingest time),
built by dbt into its own encrypted file and guarded by the same checks as the
nightly build.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from expectations.checks import BLOCKING, CheckResult
from ingestion.profile import StudyProfile, load_profile
from ingestion.settings import ConfigError, Settings
from ingestion.store import position as store_position
from ingestion.vault import open_vault
from orchestration.steps.dbt_setup import dbt_vars, run_dbt_build
from orchestration.steps.quality import run_guard_checks


class Blocked(Exception):
    def __init__(self, failed: list[CheckResult]):
        super().__init__(", ".join(f.check_name for f in failed))
        self.failed = failed


@dataclass
class AsOfBuild:
    as_of: datetime
    position: int
    build_path: Path
    work_dir: Path
    results: list[CheckResult]
    profile: StudyProfile | None = None  # the study profile the build was made with (its arms name the extract's)

    def cleanup(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def parse_as_of(text: str, tz: str) -> datetime:
    """An ISO timestamp; without an offset it is read in the site's time zone."""
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--as-of must be an ISO-8601 timestamp, got {text!r}") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=ZoneInfo(tz))
    return ts


def as_of_label(ts: datetime) -> str:
    """The folder name of an as-of: its UTC instant, e.g. 2025-12-31T04-59-59Z."""
    from datetime import UTC

    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")


def current_position(settings: Settings) -> int:
    conn = open_vault(settings, read_only=True)
    try:
        return store_position(conn)
    finally:
        conn.close()


def build_as_of(settings: Settings, as_of: datetime, position: int | None = None) -> AsOfBuild:
    """Build and check the analyst tables as of ``as_of`` at ``position`` (default: the store's now)."""
    if not settings.vault_path.exists():
        raise ConfigError(f"no vault yet at {settings.vault_path}: run `alliance-wh run` first")
    pos = current_position(settings) if position is None else position
    work = settings.warehouse_dir / "build" / f"asof-{uuid.uuid4().hex[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o700)
    build_path = work / "build.duckdb"
    profile = load_profile(settings.study_profile)
    variables = dbt_vars(settings, profile, max_seq=pos, as_of=as_of.isoformat())
    try:
        run_dbt_build(settings, variables, build_path, work)
        results = run_guard_checks(settings, build_path=build_path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    failed = [r for r in results if r.severity == BLOCKING and not r.passed]
    build = AsOfBuild(as_of, pos, build_path, work, results, profile)
    if failed:
        build.cleanup()
        raise Blocked(failed)
    return build
