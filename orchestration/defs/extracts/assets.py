"""Extracts: the quarterly funder extract as an asset, with a check of its manifest."""

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from orchestration.defs.resources import WRITER_POOL, WarehouseResource


class ExtractConfig(dg.Config):
    as_of: str = ""  # ISO timestamp; empty: the last second of the previous quarter (site time)
    audience: str = "funder"


def previous_quarter_end(now: datetime, tz: str) -> datetime:
    local = now.astimezone(ZoneInfo(tz))
    first_month = 3 * ((local.month - 1) // 3) + 1
    quarter_start = local.replace(month=first_month, day=1, hour=0, minute=0, second=0, microsecond=0)
    return quarter_start - timedelta(seconds=1)


def manifest_mismatches(folder: Path) -> list[str]:
    """Files whose SHA-256 differs from the manifest's, or that are missing or unlisted."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    listed = manifest.get("files", {})
    bad = [name for name, meta in listed.items()
           if not (folder / name).is_file() or hashlib.sha256((folder / name).read_bytes()).hexdigest() != meta["sha256"]]
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != "manifest.json"}
    return sorted(bad + sorted(present - set(listed)))


@dg.asset(key="funder_extract", group_name="extracts", pool=WRITER_POOL,
          description="warehouse/extracts/<audience>/<as-of>/: the extract files, report and manifest.")
def funder_extract(context: dg.AssetExecutionContext, config: ExtractConfig,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    from orchestration.steps.extract import write_extract

    settings = warehouse.settings()
    as_of = config.as_of or previous_quarter_end(datetime.now(ZoneInfo(settings.site_tz)), settings.site_tz).isoformat()
    folder = write_extract(settings, as_of, config.audience)
    return dg.MaterializeResult(metadata={"folder": str(folder), "as_of": as_of, "audience": config.audience})


@dg.asset_check(asset=dg.AssetKey("funder_extract"), blocking=True,
                description="Every file of the latest extract matches the SHA-256 in its manifest.")
def extract_manifest_hashes_match(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    root = warehouse.settings().warehouse_dir / "extracts"
    manifests = sorted(root.glob("*/*/manifest.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not manifests:
        return dg.AssetCheckResult(passed=False, metadata={"detail": "no extract found"})
    bad = manifest_mismatches(manifests[-1].parent)
    return dg.AssetCheckResult(passed=not bad, metadata={"folder": manifests[-1].parent.name,
                                                         "mismatched_files": len(bad)})


quarterly_extract = dg.define_asset_job("quarterly_extract", selection=dg.AssetSelection.assets("funder_extract"),
                                        description="The funder extract as of the end of the previous quarter.")


@dg.definitions
def defs() -> dg.Definitions:
    import os

    tz = os.environ.get("ALLIANCE_SITE_TZ") or "America/New_York"
    schedule = dg.ScheduleDefinition(name="quarterly", job=quarterly_extract, cron_schedule="15 3 1 1,4,7,10 *",
                                     execution_timezone=tz, default_status=dg.DefaultScheduleStatus.STOPPED)
    return dg.Definitions(assets=[funder_extract], asset_checks=[extract_manifest_hashes_match],
                          jobs=[quarterly_extract], schedules=[schedule])
