"""Publish: the analyst database, only when every blocking check has passed."""


import dagster as dg

from expectations.checks import CheckResult
from expectations.runner import all_checks
from orchestration.defs.resources import WRITER_POOL, WarehouseResource, progress
from orchestration.steps.publish import PUBLISHED_MARTS, publish
from orchestration.steps.quality import load_results, missing_and_failed, write_data_quality_json

_GUARDED = sorted({c.asset for c in all_checks()} | set(PUBLISHED_MARTS))


@dg.asset(
    key="analytics_database",
    group_name="publish",
    deps=[dg.AssetKey(a) for a in _GUARDED],
    pool=WRITER_POOL,
    description="warehouse/analytics.duckdb: the allow-listed marts, replaced atomically.",
    kinds={"duckdb"},
)
def analytics_database(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    run_id = context.run.run_id
    results = load_results(settings, run_id)
    missing, failed = missing_and_failed(results)
    if missing or failed:
        write_data_quality_json(settings, run_id, results, published=False)
        names = [f.check_name for f in failed] + [f"{m} (did not run)" for m in missing]
        raise dg.Failure(description="blocking checks failed: " + ", ".join(names))
    build = warehouse.read_run_json(run_id, "build.json")
    dbt_tests = [CheckResult(**t) for t in warehouse.read_run_json(run_id, "dbt_tests.json").get("tests", [])]
    path = publish(settings, run_id, results + dbt_tests, int(build.get("event_store_position", 0)),
                   build.get("as_of"))
    write_data_quality_json(settings, run_id, results, published=True)
    progress(f"publish: {path}")
    return dg.MaterializeResult(metadata={"path": str(path), "checks": len(results)})


@dg.asset(
    key="participant_erasure",
    group_name="publish",
    deps=[dg.AssetKey("analytics_database")],
    pool=WRITER_POOL,
    description="Scope-2 withdrawals erased from the vault and the kept build database (both rewritten), "
                "once the build that excludes them has been published.",
    kinds={"duckdb"},
)
def participant_erasure(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from ingestion.erasure import erase_withdrawn
    from ingestion.vault import writer_lock
    from orchestration.steps.dbt_setup import purge_build

    settings = warehouse.settings()
    with writer_lock(settings):
        report = erase_withdrawn(settings)
        if report.erased:
            purge_build(settings, report.record_ids)  # a fresh build file without them
    if report.erased:
        progress(f"erasure: {report.erased} participant(s) who withdrew all data erased; "
                 f"{len(report.files_holding_data)} landing file(s) still hold their data (see status)")
    warehouse.write_run_json(context.run.run_id, "erasure.json",
                             {"erased": report.erased, "landing_files": report.files_holding_data})
    return dg.MaterializeResult(metadata={"erased": report.erased,
                                          "landing_files_holding_data": len(report.files_holding_data)})
