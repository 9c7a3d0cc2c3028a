"""Transform: the dbt project (staging -> intermediate -> marts) as assets."""


import functools
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from ingestion.store import position
from ingestion.vault import open_vault
from orchestration.defs.resources import WRITER_POOL, WarehouseResource, progress
from orchestration.steps.dbt_setup import (
    DBT_PROJECT_DIR,
    build_env_applied,
    dbt_vars,
    discard_build,
    prepare_build,
    record_build,
)


@functools.cache
def dbt_project() -> DbtProject:
    """Built once; the only place that prepares the project (parses it under `dg dev`)."""
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    project.prepare_if_dev()
    return project


class Translator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("source."):
            return spec.replace_attributes(key=dg.AssetKey(["event_store", unique_id.split(".")[-1]]))
        layer = unique_id.split(".")[-1].split("_")[0]
        group = {"stg": "staging", "int": "intermediate", "chk": "quality"}.get(layer, "marts")
        return spec.replace_attributes(group_name=group)


def event_store_position(warehouse: WarehouseResource) -> int:
    conn = open_vault(warehouse.settings(), read_only=True)
    try:
        return position(conn)
    finally:
        conn.close()


@dbt_assets(manifest=dbt_project().manifest_path, project=dbt_project(), dagster_dbt_translator=Translator(),
            pool=WRITER_POOL)
def alliance_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    settings = warehouse.settings()
    position = event_store_position(warehouse)
    variables = dbt_vars(settings, warehouse.profile(), max_seq=position)
    progress(f"build: dbt over the event store up to position {position}")
    incremental = prepare_build(settings, variables)
    warehouse.write_run_json(context.run_id, "build.json",
                             {"event_store_position": position, "as_of": None, "incremental": incremental,
                              "tested_after_seq": variables["tested_after_seq"]})
    progress("build: incremental (new events only in the incremental models)" if incremental
             else "build: full (a fresh build database)")
    from expectations.runner import prewarm

    prewarm()  # the checks after the build need Great Expectations: import it while dbt works
    try:
        with build_env_applied(settings):
            invocation = dbt.cli(["build", "--vars", json.dumps(variables)], context=context)
            yield from invocation.stream()
    except BaseException:
        discard_build(settings)  # a failed build is not a base for the next one
        raise
    record_build(settings, variables)
    warehouse.write_run_json(context.run.run_id, "dbt_tests.json", {"tests": dbt_test_results(invocation)})
    progress("build: models built and dbt tests passed")


def dbt_test_results(invocation) -> list[dict]:
    """dbt's data and unit tests of this build, as data_quality rows (names and counts only)."""
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # no artifact: the tests are still enforced by dbt's exit status
        return []
    out = []
    for r in results:
        uid = r.get("unique_id", "")
        if not uid.startswith(("test.", "unit_test.")):
            continue
        kind = "dbt unit test" if uid.startswith("unit_test.") else "dbt data test"
        out.append({
            "check_name": uid.split(".", 2)[-1],
            "rule": kind,
            "severity": "blocking",
            "passed": r.get("status") == "pass",
            "failing_rows": int(r.get("failures") or 0),
            "detail": f"{kind}: {r.get('status')}",
        })
    return sorted(out, key=lambda d: d["check_name"])
