"""Automation: the nightly job, its schedule, and a sensor on the landing zone."""


import hashlib
import os

import dagster as dg

nightly_build = dg.define_asset_job(
    "nightly_build",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("extracts"),
    description="Ingest what has landed, build, check, publish.",
)


def _landing_signature(landing: str) -> str:
    h = hashlib.sha256()
    for root, _dirs, files in sorted(os.walk(landing)):
        for name in sorted(files):
            p = os.path.join(root, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dg.sensor(job=nightly_build, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_zone_sensor(context: dg.SensorEvaluationContext):
    """Requests a run when files in the landing zone were added or changed."""
    from ingestion.settings import PROJECT_ROOT

    landing = os.environ.get("ALLIANCE_LANDING_DIR") or str(PROJECT_ROOT / "landing")
    if not os.path.isdir(landing):
        return dg.SkipReason(f"no landing zone at {landing}")
    sig = _landing_signature(landing)
    if sig == context.cursor:
        return dg.SkipReason("nothing new has landed")
    context.update_cursor(sig)
    return dg.RunRequest(run_key=sig)


@dg.definitions
def defs() -> dg.Definitions:
    tz = os.environ.get("ALLIANCE_SITE_TZ") or "America/New_York"
    nightly = dg.ScheduleDefinition(
        name="nightly", job=nightly_build, cron_schedule="30 2 * * *", execution_timezone=tz,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(jobs=[nightly_build], schedules=[nightly], sensors=[landing_zone_sensor])
