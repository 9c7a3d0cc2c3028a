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
    [result] = run_checks(conn, CHECKS[:1])
    assert result.passed and result.failing_rows == 0 and result.rule.startswith("consent rule 1") and result.severity == "blocking"


def test_rule_1_fails_on_unconsented_unknown_or_erased_rows_and_reports_counts_only():
    conn = duckdb.connect()
    frame(conn, [
        ("participants", "k1", True, False),
        ("participants", "SECRETKEY2", False, False),
        ("engagement", "SECRETKEY3", None, False),
        ("engagement", "SECRETKEY4", True, True),
    ])
    [result] = run_checks(conn, CHECKS[:1])
    assert not result.passed
    assert result.failing_rows == 1
    text = json.dumps(result.as_dict())
    assert "SECRETKEY" not in text and "4 row(s) validated" in text


def test_a_check_that_cannot_run_fails_closed():
    conn = duckdb.connect()  # no guard table at all
    [result] = run_checks(conn, CHECKS[:1])
    assert not result.passed and "could not run" in result.detail


def test_every_guard_suite_fails_on_bad_data():
    """Each consent, anonymity and plausibility check, given a frame that breaks it, fails."""
    from expectations.runner import all_checks

    bad_frames = {
        "consent_rule_2_nothing_after_withdrawal": "select 'sessions' as mart, true as after_withdrawal",
        "consent_rule_3_units_have_audio_consent": "select false as audio_consented",
        "consent_rule_4_units_cleared_by_screening": "select false as screening_cleared",
        "anonymity_no_identifier_value_published": "select 'x' as mart, 'y' as column_name, 2 as identifier_cells",
        "anonymity_no_identifying_column_published": "select 'x' as mart, 'last_name' as column_name, "
                                                     "true as is_identifying",
        "plausibility_age_18_to_100": "select 11 as age",
        "plausibility_wai_items_1_to_5": "select 6 as item",
        "plausibility_at_most_5_sessions": "select 6 as sessions_attended",
        "plausibility_consent_before_randomization": "select false as in_order",
        "plausibility_randomization_before_first_session": "select false as in_order",
        "plausibility_withdrawal_after_consent": "select false as in_order",
        "plausibility_no_event_after_data_cut": "select false as in_order",
    }
    checks = {c.name: c for c in all_checks()}
    assert set(bad_frames) <= set(checks)
    import dataclasses

    conn = duckdb.connect()
    results = run_checks(conn, [dataclasses.replace(checks[n], query=q) for n, q in bad_frames.items()])
    assert [r.check_name for r in results if r.passed] == []
    assert all(r.failing_rows == 1 for r in results)


def test_rule_5_blocks_unshared_rows_and_rare_combinations():
    import polars as pl

    from expectations.consent import rule_5_checks

    conn = duckdb.connect()
    level = pl.DataFrame({"share_id": ["a", "b", "c", "d"], "age_band": ["30-39"] * 4, "sex": ["Male"] * 3 + ["Female"],
                          "race": ["White"] * 4, "ethnicity": ["Not Hispanic or Latino"] * 4})
    conn.register("level", level)
    conn.register("shared", pl.DataFrame({"share_id": ["a", "b", "c", "d"]}))
    assert all(r.passed for r in run_checks(conn, rule_5_checks(1)))
    results = {r.check_name: r for r in run_checks(conn, rule_5_checks(2))}
    assert not results["consent_rule_5_k_anonymity"].passed and results["consent_rule_5_only_consent_share"].passed
    conn.register("shared", pl.DataFrame({"share_id": ["a", "b", "c"]}))
    results = {r.check_name: r for r in run_checks(conn, rule_5_checks(1))}
    assert not results["consent_rule_5_only_consent_share"].passed
    assert results["consent_rule_5_only_consent_share"].failing_rows == 1
