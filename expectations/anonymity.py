"""Anonymity: nothing identifying in any published table."""

from __future__ import annotations

from expectations.checks import BLOCKING, Check
from expectations.suites import values_between, values_in_set

CHECKS = [
    Check(
        name="anonymity_no_identifier_value_published",
        area="anonymity",
        rule="anonymity: no identifier value or record_id in a published cell",
        severity=BLOCKING,
        asset="participants",
        query="select mart, column_name, identifier_cells from main.chk_published_identifiers",
        suite=values_between("anonymity_values", "identifier_cells", 0, 0,
                             "published text cells equal to a held identifier value or a record_id"),
    ),
    Check(
        name="anonymity_no_identifying_column_published",
        area="anonymity",
        rule="anonymity: no identifier, note, record_id or pseudonym column in a published table",
        severity=BLOCKING,
        asset="participants",
        query="select mart, column_name, is_identifying from main.chk_published_columns",
        suite=values_in_set("anonymity_columns", "is_identifying", [False],
                            "a published column named like an identifier, note, record_id or pseudonym field"),
    ),
]
