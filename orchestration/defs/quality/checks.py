"""Quality: the Great Expectations guards as blocking Dagster asset checks."""


import dagster as dg

from expectations.checks import BLOCKING, Check
from expectations.runner import all_checks
from orchestration.defs.resources import WarehouseResource, progress
from orchestration.steps.quality import record_results, run_guard_checks


def _make(check: Check) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(check.asset),
        name=check.name,
        # Every guard runs before publication (so data_quality holds them all);
        # only ERROR severity (the blocking rules) stops it.
        blocking=True,
        description=f"{check.area} rule {check.rule} ({check.severity})",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        settings = warehouse.settings()
        [result] = run_guard_checks(settings, [check])
        record_results(settings, context.run.run_id, [result])
        progress(f"check {check.name}: {'passed' if result.passed else 'FAILED'}")
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR if check.severity == BLOCKING else dg.AssetCheckSeverity.WARN,
            # counts and rule names only: never a value from the data
            metadata={"rule": check.rule, "area": check.area, "failing_rows": result.failing_rows,
                      "detail": result.detail},
        )

    return _check


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(asset_checks=[_make(c) for c in all_checks()])
