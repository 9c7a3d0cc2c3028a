"""Consent rules (CONTRACT section 2)."""

from __future__ import annotations

from expectations.checks import BLOCKING, Check


def rule_1_suite():
    """Rule 1: nobody without a consent date appears at participant level.

    The frame has one row per participant-level row of every published
    participant-level mart, with the consent and erasure state of the intake
    record its key belongs to (null when the key matches no record).
    """
    import great_expectations as gx

    suite = gx.ExpectationSuite(name="consent_rule_1")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(
        column="is_consented", value_set=[True], mostly=1.0,
        meta={"why": "a participant-level row whose record has no consent date"}))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(
        column="is_consented", meta={"why": "a participant-level key that matches no intake record"}))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(
        column="is_erased", value_set=[False], meta={"why": "a participant who withdrew all data"}))
    return suite


CHECKS = [
    Check(
        name="consent_rule_1_participant_level_consented",
        area="consent",
        rule="1",
        severity=BLOCKING,
        asset="participants",
        query="select mart, is_consented, is_erased from main.chk_participant_level_consent",
        suite=rule_1_suite,
    ),
]
