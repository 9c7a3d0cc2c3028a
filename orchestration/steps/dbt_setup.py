"""The dbt project: where it is, its manifest, and the environment of a build."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingestion.profile import StudyProfile
from ingestion.settings import PROJECT_ROOT, ConfigError, Settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


def dbt_executable() -> str:
    """The dbt of this environment (the venv may not be on PATH)."""
    for folder in (Path(sys.prefix) / "bin", Path(sys.executable).parent):
        if (folder / "dbt").exists():
            return str(folder / "dbt")
    return shutil.which("dbt") or "dbt"


def manifest_is_stale() -> bool:
    if not MANIFEST.exists():
        return True
    built = MANIFEST.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    for folder in ("models", "macros", "tests", "seeds"):
        sources += list((DBT_PROJECT_DIR / folder).rglob("*"))
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


def ensure_manifest(force: bool = False) -> Path:
    """Parse the dbt project into target/manifest.json when it is missing or stale."""
    if force or manifest_is_stale():
        proc = subprocess.run(
            [dbt_executable(), "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
             "--profiles-dir", str(DBT_PROJECT_DIR)],
            capture_output=True, text=True, cwd=DBT_PROJECT_DIR,
        )
        if proc.returncode != 0 or not MANIFEST.exists():
            last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"dbt could not parse the project: {last[0][:300]}")
    return MANIFEST


def build_environment(settings: Settings) -> dict[str, str]:
    """Environment variables the dbt profile reads (secrets under DBT_ENV_SECRET_, which dbt masks)."""
    from ingestion.vault import open_vault, participant_hash_key, spill_dir

    settings.build_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.build_dir, 0o700)
    conn = open_vault(settings, read_only=True)
    try:
        hash_key = participant_hash_key(conn, settings)
    finally:
        conn.close()
    return {
        "ALLIANCE_BUILD_DB": str(settings.build_path),
        "ALLIANCE_VAULT_DB": str(settings.vault_path),
        "ALLIANCE_SPILL_DIR": str(spill_dir(settings)),
        "DBT_ENV_SECRET_BUILD_KEY": settings.build_key,
        "DBT_ENV_SECRET_VAULT_KEY": settings.vault_key,
        "DBT_ENV_SECRET_PARTICIPANT_KEY": hash_key,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


@contextlib.contextmanager
def build_env_applied(settings: Settings) -> Iterator[dict[str, str]]:
    """Set the build environment in this process for the duration of a dbt call."""
    env = build_environment(settings)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dbt_vars(settings: Settings, profile: StudyProfile, max_seq: int | None, as_of: str | None = None) -> dict[str, Any]:
    return {
        "as_of": as_of,
        "max_seq": max_seq,
        "site_tz": settings.site_tz,
        "profile": profile.dbt_vars(),
    }


def run_dbt_build(settings: Settings, variables: dict[str, Any], build_path: Path, work_dir: Path) -> None:
    """`dbt build` outside Dagster (extracts, locks): into ``build_path``, encrypted like the nightly build."""
    env = {**os.environ, **build_environment(settings), "ALLIANCE_BUILD_DB": str(build_path)}
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / "dbt.log"
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.run(
            [dbt_executable(), "build", "--vars", json.dumps(variables), "--project-dir", str(DBT_PROJECT_DIR),
             "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(work_dir / "target"),
             "--log-path", str(work_dir)],
            env=env, cwd=DBT_PROJECT_DIR, stdout=fh, stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        failed = [line.strip() for line in log.read_text(encoding="utf-8").splitlines()
                  if " ERROR " in line or line.strip().startswith(("Failure in", "Runtime Error", "Compilation Error"))]
        raise BuildFailed(failed[:10] or ["dbt build failed (see " + str(log) + ")"])


class BuildFailed(Exception):
    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines
