"""Run the guard checks over the build database and record their results."""

from __future__ import annotations

import json
from pathlib import Path

from expectations.checks import BLOCKING, Check, CheckResult
from expectations.runner import all_checks, run_checks
from ingestion.settings import Settings
from ingestion.vault import attach_encrypted, secure_connection, spill_dir


def run_guard_checks(settings: Settings, checks: list[Check] | None = None,
                     build_path: Path | None = None) -> list[CheckResult]:
    conn = secure_connection(temp_dir=spill_dir(settings))
    try:
        attach_encrypted(conn, build_path or settings.build_path, "build", settings.build_key, read_only=True)
        conn.execute("use build")
        return run_checks(conn, checks if checks is not None else all_checks())
    finally:
        conn.close()


def run_dir(settings: Settings, run_id: str) -> Path:
    path = settings.runs_dir / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_results(settings: Settings, run_id: str, results: list[CheckResult]) -> None:
    folder = run_dir(settings, run_id) / "checks"
    folder.mkdir(exist_ok=True)
    for r in results:
        (folder / f"{r.check_name}.json").write_text(json.dumps(r.as_dict(), indent=2), encoding="utf-8")


def load_results(settings: Settings, run_id: str) -> list[CheckResult]:
    folder = settings.runs_dir / run_id / "checks"
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        d = json.loads(p.read_text(encoding="utf-8"))
        out.append(CheckResult(**d))
    return out


def missing_and_failed(results: list[CheckResult]) -> tuple[list[str], list[CheckResult]]:
    """Blocking checks with no result (fail closed) and blocking checks that failed."""
    have = {r.check_name for r in results}
    missing = [c.name for c in all_checks() if c.severity == BLOCKING and c.name not in have]
    failed = [r for r in results if r.severity == BLOCKING and not r.passed]
    return missing, failed


def write_data_quality_json(settings: Settings, run_id: str, results: list[CheckResult], published: bool) -> Path:
    path = run_dir(settings, run_id) / "data_quality.json"
    path.write_text(json.dumps({"run_id": run_id, "published": published,
                                "checks": [r.as_dict() for r in results]}, indent=2), encoding="utf-8")
    return path
