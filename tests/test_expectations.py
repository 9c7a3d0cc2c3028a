"""The consent guard fails on bad data and keeps only counts."""

from __future__ import annotations

import json

import duckdb

from expectations.consent import CHECKS
from expectations.runner import run_checks


def frame(conn, rows):
    conn.execute("create or replace table chk_participant_level_consent (mart varchar, participant_key varchar,"
                 " is_consented boolean, is_erased boolean)")
    conn.executemany("insert into chk_participant_level_consent values (?, ?, ?, ?)", rows)


def test_rule_1_passes_when_every_participant_level_row_is_consented():
    conn = duckdb.connect()
    frame(conn, [("participants", "k1", True, False), ("engagement", "k1", True, False)])
    [result] = run_checks(conn, CHECKS)
    assert result.passed and result.failing_rows == 0 and result.rule == "1" and result.severity == "blocking"


def test_rule_1_fails_on_unconsented_unknown_or_erased_rows_and_reports_counts_only():
    conn = duckdb.connect()
    frame(conn, [
        ("participants", "k1", True, False),
        ("participants", "SECRETKEY2", False, False),
        ("engagement", "SECRETKEY3", None, False),
        ("engagement", "SECRETKEY4", True, True),
    ])
    [result] = run_checks(conn, CHECKS)
    assert not result.passed
    assert result.failing_rows == 1
    text = json.dumps(result.as_dict())
    assert "SECRETKEY" not in text and "4 row(s) validated" in text


def test_a_check_that_cannot_run_fails_closed():
    conn = duckdb.connect()  # no guard table at all
    [result] = run_checks(conn, CHECKS)
    assert not result.passed and "could not run" in result.detail
