"""The catalogue of checks: name, contract rule, severity, data and suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BLOCKING = "blocking"
REPORTING = "reporting"


@dataclass(frozen=True)
class Check:
    name: str
    area: str  # consent, anonymity, plausibility
    rule: str  # the contract rule it enforces
    severity: str  # blocking or reporting
    asset: str  # the mart it guards
    query: str  # SQL over the build database giving the bounded frame to validate
    suite: Callable[[], Any]  # returns a gx.ExpectationSuite


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    rule: str
    severity: str
    passed: bool
    failing_rows: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "check_name": self.check_name, "rule": self.rule, "severity": self.severity,
            "passed": self.passed, "failing_rows": self.failing_rows, "detail": self.detail,
        }
