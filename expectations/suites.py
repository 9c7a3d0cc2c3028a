"""Small builders of one-expectation suites (Great Expectations 1.x), imported lazily."""

from __future__ import annotations

from collections.abc import Callable


def values_in_set(name: str, column: str, values: list, why: str) -> Callable:
    def suite():
        import great_expectations as gx

        s = gx.ExpectationSuite(name=name)
        s.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=values, meta={"why": why}))
        s.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=column, meta={"why": why}))
        return s

    return suite


def values_between(name: str, column: str, low, high, why: str) -> Callable:
    def suite():
        import great_expectations as gx

        s = gx.ExpectationSuite(name=name)
        s.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(
            column=column, min_value=low, max_value=high, meta={"why": why}))
        return s

    return suite
