"""Ingest: every new landed file into the event store."""


import dagster as dg

from ingestion.ingest import ingest_landing
from ingestion.profile_check import checked_profile
from orchestration.defs.resources import WRITER_POOL, WarehouseResource, progress

EVENT_STORE_TABLES = {
    "events": "The append-only events (payloads without identifiers).",
    "batches": "One row per landed file processed, with counts and status.",
    "dictionary_fields": "Every REDCap data dictionary delivered.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["event_store", table], description=text, group_name="ingest", kinds={"duckdb"})
        for table, text in EVENT_STORE_TABLES.items()
    ],
    pool=WRITER_POOL,
    description="Appends every file landed since the last run to the event store in the encrypted vault.",
)
def event_store(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    settings = warehouse.settings()
    checked_profile(settings)  # a profile that does not fit the dictionary stops the run before any write
    report = ingest_landing(settings)
    files = len(report.outcomes)
    progress(f"ingest: {files} new file(s), {report.events_appended} event(s) appended, "
             f"{report.rows_quarantined} row(s) quarantined, {report.unchanged} file(s) unchanged")
    for o in report.outcomes:
        if o.rows_quarantined:
            # reason codes and counts only: never a value from the data
            context.log.info(f"{o.file_name}: {o.status}, quarantined {o.reasons}")
    if report.screening is not None:
        sc = report.screening
        progress(f"screen: {sc.units} coded unit(s), {sc.held} held back for identifiers {sc.by_reason}")
        if sc.pseudonyms_that_are_real_names:
            context.log.warning(f"{sc.pseudonyms_that_are_real_names} pseudonym(s) are also a participant's real "
                                "name: units that use them are held back; choose other pseudonyms")
            progress(f"WARNING: {sc.pseudonyms_that_are_real_names} pseudonym(s) are also a participant's real name")
    warehouse.write_run_json(context.run_id, "ingest.json", {
        "files": [o.__dict__ for o in report.outcomes], "unchanged": report.unchanged, "waiting": report.waiting,
    })
    yield dg.MaterializeResult(asset_key=dg.AssetKey(["event_store", "events"]), metadata={
        "new_files": files,
        "events_appended": report.events_appended,
        "rows_quarantined": report.rows_quarantined,
        "files_unchanged": report.unchanged,
        "files_waiting_for_a_reader": report.waiting,
    })
    yield dg.MaterializeResult(asset_key=dg.AssetKey(["event_store", "batches"]), metadata={"new_batches": files})
    yield dg.MaterializeResult(asset_key=dg.AssetKey(["event_store", "dictionary_fields"]))
