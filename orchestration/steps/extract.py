"""`alliance-wh extract --as-of TS [--audience funder|public]` and `--replay manifest.json`.

An extract is built from an as-of build (see :mod:`orchestration.steps.asof`),
written into a temporary folder and renamed into place as
``warehouse/extracts/<audience>/<as-of>/``. Every data file is deterministic:
sorted rows, fixed number formats, fixed workbook metadata; the manifest holds
the as-of, audience, event-store position, code and package versions, row
counts, SHA-256 of every file and what was suppressed or generalised (counts
only, never values).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb
import polars as pl

from ingestion.profile import load_profile
from ingestion.settings import ConfigError, Settings
from ingestion.vault import (
    attach_encrypted,
    make_participant_key,
    open_vault,
    participant_hash_key,
    secure_connection,
    spill_dir,
)
from orchestration.steps.asof import AsOfBuild, as_of_label, build_as_of, parse_as_of
from orchestration.steps.publish import code_version

AUDIENCES = ("funder", "public")
PACKAGES = ("dbt-core", "dbt-duckdb", "duckdb", "polars", "dagster", "great-expectations", "xlsxwriter")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def csv_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_csv(buf, line_terminator="\n", null_value="")
    return buf.getvalue()


def read_tables(settings: Settings, build: AsOfBuild) -> dict[str, pl.DataFrame]:
    """The as-of analyst tables an extract is made from, plus the participant-level frame."""
    conn = secure_connection(temp_dir=spill_dir(settings))
    try:
        attach_encrypted(conn, build.build_path, "build", settings.build_key, read_only=True)
        vault = open_vault(settings, read_only=True)
        try:
            hash_key = participant_hash_key(vault, settings)
        finally:
            vault.close()
        from duckdb.sqltypes import VARCHAR

        conn.create_function("participant_key", make_participant_key(hash_key), [VARCHAR], VARCHAR, type="arrow",
                             null_handling="special")
        conn.create_function("share_id", make_participant_key(settings.derive("alliance/share-id/v1")), [VARCHAR],
                             VARCHAR, type="arrow", null_handling="special")
        tables = {t: conn.execute(f"select * from build.main.{t}").pl() for t in (
            "participants", "engagement", "retention", "alliance_scores", "alliance_trajectory", "consort_flow",
            "table1")}
        tables["participant_level"] = participant_level(conn)
        tables["shared_ids"] = conn.execute(
            """select share_id(record_id) as share_id from build.main.int_participants_projected
               where is_consented and not is_erased and consent_share"""
        ).pl()
        tables["alliance_by_session"] = conn.execute(
            """select e.arm, s.session_number, count(*) as surveys, avg(s.total) as mean_total
               from build.main.alliance_scores s join build.main.engagement e using (participant_key)
               where s.respondent = 'client' and s.total is not null and s.session_number is not null
               group by all order by e.arm, s.session_number"""
        ).pl()
    finally:
        conn.close()
    return tables


def participant_level(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """De-identified participant-level rows (consent_share = 1), before k-anonymity."""
    return conn.execute(
        """
        with p as (
            select x.record_id, participant_key(x.record_id) as participant_key, x.consent_share,
                   x.prior_tx_episodes
            from build.main.int_participants_projected x
            where x.is_consented and not x.is_erased
        )
        select
            share_id(p.record_id) as share_id,
            m.arm, m.site,
            case
                when m.age is null then null
                when m.age >= 90 then '90+'
                when m.age < 18 then 'under 18'
                when m.age < 30 then '18-29'
                else cast(m.age // 10 * 10 as varchar) || '-' || cast(m.age // 10 * 10 + 9 as varchar)
            end as age_band,
            m.sex, m.race, m.ethnicity, m.homeless, m.employed, m.drug_class,
            case when p.prior_tx_episodes is null then null when p.prior_tx_episodes = 0 then 'None'
                 when p.prior_tx_episodes = 1 then 'Once' else 'Multiple' end as prior_treatment,
            e.sessions_attended, e.attended_any, e.linked, e.days_to_linkage, e.iet_initiation, e.iet_engagement,
            r.days_in_treatment, r.censored, r.dropped_out,
            t.first_total as first_client_alliance_total, t.last_total as last_client_alliance_total
        from p
        join build.main.participants m on m.participant_key = p.participant_key
        left join build.main.engagement e on e.participant_key = p.participant_key
        left join build.main.retention r on r.participant_key = p.participant_key
        left join build.main.alliance_trajectory t on t.participant_key = p.participant_key and t.respondent = 'client'
        where p.consent_share
        order by share_id
        """
    ).pl()


def guard_participant_level(data: bytes, shared: pl.DataFrame, k: int) -> None:
    """Consent rule 5 on the file as written: only consent_share participants, k-anonymous. Blocks."""
    from expectations.checks import BLOCKING
    from expectations.consent import rule_5_checks
    from expectations.runner import run_checks
    from orchestration.steps.asof import Blocked

    conn = duckdb.connect()
    try:
        conn.register("level", pl.read_csv(io.BytesIO(data), infer_schema=False))
        conn.register("shared", shared)
        results = run_checks(conn, rule_5_checks(k))
    finally:
        conn.close()
    failed = [r for r in results if r.severity == BLOCKING and not r.passed]
    if failed:
        raise Blocked(failed)


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def erasures_after(settings: Settings, position: int) -> int:
    conn = open_vault(settings, read_only=True)
    try:
        return conn.execute("select count(*) from events.events where event_type = 'participant_erased' and seq > ?",
                            [position]).fetchone()[0]
    finally:
        conn.close()


def write_extract(settings: Settings, as_of_text: str, audience: str, position: int | None = None,
                  replay_of: dict | None = None) -> Path:
    from orchestration.extracts.arms import StudyArms
    from orchestration.extracts.files import extract_files

    if audience not in AUDIENCES:
        raise ConfigError(f"--audience must be one of {', '.join(AUDIENCES)}")
    as_of = parse_as_of(as_of_text, settings.site_tz)
    label = as_of_label(as_of)
    root = settings.warehouse_dir / "extracts" / audience
    target = root / (f"{label}-replay" if replay_of else label)
    if target.exists():
        raise ConfigError(f"{target} exists already: an extract is never overwritten")
    build = build_as_of(settings, as_of, position)
    try:
        tables = read_tables(settings, build)
    finally:
        build.cleanup()
    profile = build.profile or load_profile(settings.study_profile)
    files, facts = extract_files(tables, arms=StudyArms.from_profile(profile), audience=audience, as_of=as_of,
                                 min_cell=settings.min_cell, k_anon=settings.k_anon, study_name=profile.name,
                                 site_tz=settings.site_tz, position=build.position)
    if "participant_level.csv" in files:
        guard_participant_level(files["participant_level.csv"], tables["shared_ids"], settings.k_anon)
    manifest = {
        "as_of": as_of.isoformat(),
        "audience": audience,
        "event_store_position": build.position,
        "code_version": code_version(),
        "packages": package_versions(),
        "min_cell": settings.min_cell if audience == "public" else None,
        "k_anon": settings.k_anon if audience == "funder" else None,
        "files": {name: {"sha256": sha256_bytes(data), "bytes": len(data)} for name, data in sorted(files.items())},
        "row_counts": facts.get("row_counts", {}),
        "disclosure_control": facts.get("disclosure_control", {}),
    }
    if replay_of is not None:
        erased = erasures_after(settings, int(replay_of["event_store_position"]))
        manifest["replay_of"] = {"as_of": replay_of["as_of"], "event_store_position": replay_of["event_store_position"]}
        manifest["participants_erased_since"] = erased
        manifest["identical_to_original"] = all(
            replay_of.get("files", {}).get(n, {}).get("sha256") == m["sha256"] for n, m in manifest["files"].items())
    tmp = root / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def replay_extract(settings: Settings, manifest_path: Path) -> Path:
    try:
        manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
        as_of, audience, position = manifest["as_of"], manifest["audience"], int(manifest["event_store_position"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{manifest_path} is not an extract manifest") from None
    return write_extract(settings, as_of, audience, position=position, replay_of=manifest)

