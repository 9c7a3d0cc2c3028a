"""Plausibility rules: they report in data_quality and never block."""

from __future__ import annotations

from expectations.checks import REPORTING, Check


def age_suite():
    import great_expectations as gx

    suite = gx.ExpectationSuite(name="plausibility_age")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(
        column="age", min_value=18, max_value=100, meta={"why": "age outside 18-100"}))
    return suite


CHECKS = [
    Check(
        name="plausibility_age_18_to_100",
        area="plausibility",
        rule="plausibility: age 18-100",
        severity=REPORTING,
        asset="participants",
        query="select age from main.participants",
        suite=age_suite,
    ),
]
