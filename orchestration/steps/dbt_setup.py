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
    """The build's variables: its cut, the site's time zone, and the profile with its codes resolved
    against the latest intake dictionary the vault holds (dictionaries are not cut)."""
    resolved = None
    if settings.vault_path.exists():
        from ingestion.profile_check import resolved_codes
        from ingestion.vault import open_vault

        conn = open_vault(settings, read_only=True)
        try:
            resolved = resolved_codes(conn, profile)
        finally:
            conn.close()
    return {
        "as_of": as_of,
        "max_seq": max_seq,
        "site_tz": settings.site_tz,
        "profile": profile.dbt_vars(resolved),
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


# -- Incremental builds -------------------------------------------------------------------------
# The build database is kept between nightly builds (encrypted with the build key, in an
# owner-only folder): its incremental models hold the typed events already parsed. It is
# reused only when the code and settings that built it are unchanged and the event store
# still holds exactly the events it was built from; otherwise it is deleted and the build
# starts from scratch (a full refresh). Erasure purges it (ingestion.erasure).
BUILD_STATE = "build-state.json"


def build_state_path(settings: Settings) -> Path:
    return settings.build_dir / BUILD_STATE


# The variables that say where a build stands in the event store, not what its models are.
POSITION_VARS = ("max_seq", "tested_after_seq")


def code_fingerprint(variables: dict[str, Any]) -> str:
    """What the models are: every file of the dbt project and the build's variables (not its position)."""
    import hashlib

    h = hashlib.sha256()
    files = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    for folder in ("models", "macros", "seeds", "tests"):
        files += sorted(p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file())
    for path in files:
        h.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(json.dumps({k: v for k, v in variables.items() if k not in POSITION_VARS}, sort_keys=True).encode())
    return h.hexdigest()


def store_signature(settings: Settings, position: int) -> dict[str, Any]:
    """The events a build at ``position`` read: their count and a checksum of their ids."""
    from ingestion.vault import open_vault

    conn = open_vault(settings, read_only=True)
    try:
        n, checksum = conn.execute(
            "select count(*), coalesce(sum(hash(event_id)), 0)::varchar from events.events where seq <= ?",
            [position]).fetchone()
    finally:
        conn.close()
    return {"position": position, "events": n, "checksum": checksum}


def discard_build(settings: Settings) -> None:
    for path in (settings.build_path, settings.build_path.with_name(settings.build_path.name + ".wal"),
                 build_state_path(settings)):
        path.unlink(missing_ok=True)


def prepare_build(settings: Settings, variables: dict[str, Any], full_refresh: bool = False) -> bool:
    """Keep the build database for an incremental build when it is still valid; return whether kept.

    When kept, ``variables["tested_after_seq"]`` becomes the position it was built to: the data tests of
    the event-level relations then read only the events after it (dbt_project/macros/tests.sql)."""
    state_file = build_state_path(settings)
    keep = False
    if not full_refresh and variables.get("as_of") is None and settings.build_path.exists() and state_file.exists():
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            keep = (state.get("code") == code_fingerprint(variables)
                    and int(state["store"]["position"]) <= int(variables.get("max_seq") or 0)
                    and store_signature(settings, int(state["store"]["position"])) == state["store"])
        except (ValueError, KeyError, TypeError, OSError):
            keep = False
    if not keep:
        discard_build(settings)
    variables["tested_after_seq"] = int(state["store"]["position"]) if keep else 0
    return keep


def record_build(settings: Settings, variables: dict[str, Any]) -> None:
    """After a successful nightly build: what it was built from (for the next incremental build)."""
    state = {"code": code_fingerprint(variables), "store": store_signature(settings, int(variables["max_seq"] or 0))}
    build_state_path(settings).write_text(json.dumps(state, sort_keys=True), encoding="utf-8")


def incremental_models() -> list[str]:
    """The names of the dbt models materialized incrementally (from the manifest)."""
    manifest = json.loads(ensure_manifest().read_text(encoding="utf-8"))
    return sorted(n["name"] for n in manifest["nodes"].values()
                  if n.get("resource_type") == "model" and n.get("config", {}).get("materialized") == "incremental")


def purge_build(settings: Settings, record_ids: list[str]) -> None:
    """Remove participants from the kept build database: a fresh file holding only the incremental
    models, without their rows (the other models are rebuilt by the next build anyway)."""
    from ingestion.vault import attach_encrypted, secure_connection, spill_dir

    state_file = build_state_path(settings)
    if not settings.build_path.exists() or not state_file.exists():
        discard_build(settings)
        return
    fresh = settings.build_path.with_name(".build.fresh.duckdb")
    fresh.unlink(missing_ok=True)
    try:
        conn = secure_connection(temp_dir=spill_dir(settings))
        try:
            attach_encrypted(conn, settings.build_path, "old", settings.build_key, read_only=True)
            attach_encrypted(conn, fresh, "fresh", settings.build_key)
            held = {r[0] for r in conn.execute(
                "select table_name from duckdb_tables() where database_name = 'old' and schema_name = 'main'").fetchall()}
            conn.execute("create temp table purge_ids (record_id varchar)")
            conn.executemany("insert into purge_ids values (?)", [[r] for r in record_ids])
            for name in incremental_models():
                if name in held:
                    conn.execute(f'create table fresh.main."{name}" as select * from old.main."{name}" '
                                 "where record_id is null or record_id not in (select record_id from purge_ids)")
            conn.execute("detach fresh")
            conn.execute("detach old")
        finally:
            conn.close()
        os.chmod(fresh, 0o600)
        os.replace(fresh, settings.build_path)
        settings.build_path.with_name(settings.build_path.name + ".wal").unlink(missing_ok=True)
        state = json.loads(state_file.read_text(encoding="utf-8"))
        state["store"] = store_signature(settings, int(state["store"]["position"]))
        state_file.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
    except Exception:
        fresh.unlink(missing_ok=True)
        discard_build(settings)  # the next build is a full one
