"""Run the suites over bounded dataframes; keep counts, never values."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import duckdb

from expectations.checks import Check, CheckResult

log = logging.getLogger(__name__)

# Results carry counts only: no partial list of unexpected values, no rows.
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0, "include_unexpected_rows": False}


def _catalogue() -> list[Check]:
    from expectations import anonymity, consent, plausibility

    return [*consent.CHECKS, *anonymity.CHECKS, *plausibility.CHECKS]


def all_checks() -> list[Check]:
    """Every check, in a stable order."""
    return _catalogue()


all_checks.__wrapped__ = _catalogue  # the unpatched catalogue, for tests that add a check


def prewarm() -> None:
    """Import Great Expectations in a background thread (about 7 s), e.g. while dbt builds in its
    own process, so that the checks do not wait for it afterwards."""
    import threading

    def _import() -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        try:
            import great_expectations  # noqa: F401
        except Exception:  # the checks import it again and report a failure properly
            pass

    threading.Thread(target=_import, name="gx-import", daemon=True).start()


def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # older/newer GX: progress bars only cost noise
        pass
    return ctx


def run_check(conn: duckdb.DuckDBPyConnection, check: Check, ctx=None) -> CheckResult:
    """Validate one check's frame with its suite; the result holds counts only."""
    import great_expectations as gx

    ctx = ctx or _context()
    frame = conn.execute(check.query).df()
    source = ctx.data_sources.add_pandas(f"src_{check.name}")
    batch_def = source.add_dataframe_asset(check.name).add_batch_definition_whole_dataframe("frame")
    suite = ctx.suites.add(check.suite())
    definition = ctx.validation_definitions.add(gx.ValidationDefinition(name=check.name, data=batch_def, suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
    failing = 0
    failed = []
    for r in result.results:
        counts = r.result or {}
        n = int(counts.get("unexpected_count") or 0)
        if not r.success:
            failing = max(failing, n)
            failed.append(f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column')}): {n} row(s)")
    detail = f"{len(frame)} row(s) validated" + ("; failed: " + "; ".join(failed) if failed else "")
    return CheckResult(check.name, check.rule, check.severity, bool(result.success), failing, detail)


def run_checks(conn: duckdb.DuckDBPyConnection, checks: Iterable[Check]) -> list[CheckResult]:
    ctx = _context()
    out = []
    for check in checks:
        try:
            out.append(run_check(conn, check, ctx))
        except duckdb.Error as exc:
            # A check that cannot run fails closed: it blocks like a failed check.
            out.append(CheckResult(check.name, check.rule, check.severity, False, 0,
                                   f"the check could not run ({type(exc).__name__})"))
            log.warning("check %s could not run: %s", check.name, type(exc).__name__)
    return out
