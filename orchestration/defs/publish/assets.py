"""Publish: the analyst database, only when every blocking check has passed."""


import dagster as dg

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
    path = publish(settings, run_id, results, int(build.get("event_store_position", 0)), build.get("as_of"))
    write_data_quality_json(settings, run_id, results, published=True)
    progress(f"publish: {path}")
    return dg.MaterializeResult(metadata={"path": str(path), "checks": len(results)})
