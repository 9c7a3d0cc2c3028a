"""`alliance-wh lock --as-of TS --name NAME`: the trial's database lock.

A frozen analyst database as of TS in ``warehouse/locks/NAME.duckdb`` (with a
manifest), which no later run changes: an existing lock is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import duckdb

from ingestion.settings import ConfigError, Settings
from orchestration.steps.asof import build_as_of, parse_as_of
from orchestration.steps.publish import PUBLISHED_MARTS, code_version, publish

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lock_database(settings: Settings, as_of_text: str, name: str) -> Path:
    if not NAME.match(name):
        raise ConfigError("--name must be letters, digits, '.', '_' or '-' (at most 81 characters)")
    locks = settings.warehouse_dir / "locks"
    target = locks / f"{name}.duckdb"
    if target.exists():
        raise ConfigError(f"a lock named {name} exists already: locks are never overwritten")
    as_of = parse_as_of(as_of_text, settings.site_tz)
    locks.mkdir(parents=True, exist_ok=True)
    build = build_as_of(settings, as_of)
    try:
        publish(settings, f"lock-{name}", build.results, build.position, as_of.isoformat(), target=target,
                build_path=build.build_path, built_at=as_of)
    finally:
        build.cleanup()
    conn = duckdb.connect(str(target), read_only=True)
    try:
        counts = {t: conn.execute(f"select count(*) from {t}").fetchone()[0]
                  for t in [*PUBLISHED_MARTS, "data_quality", "build_info"]}
    finally:
        conn.close()
    manifest = {
        "lock": name, "as_of": as_of.isoformat(), "event_store_position": build.position,
        "code_version": code_version(), "file": target.name, "sha256": sha256_file(target), "row_counts": counts,
    }
    (locks / f"{name}.manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(target, 0o444)  # read-only: no later run changes it
    return target
