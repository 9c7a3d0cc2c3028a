"""Consent rules (CONTRACT section 2)."""

from __future__ import annotations

from expectations.checks import BLOCKING, Check
from expectations.suites import values_in_set


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
        rule="consent rule 1: nobody without a consent date at participant level",
        severity=BLOCKING,
        asset="participants",
        query="select mart, is_consented, is_erased from main.chk_participant_level_consent",
        suite=rule_1_suite,
    ),
    Check(
        name="consent_rule_2_nothing_after_withdrawal",
        area="consent",
        rule="consent rule 2: nothing dated after a scope-1 withdrawal",
        severity=BLOCKING,
        asset="sessions",
        query="select mart, after_withdrawal from main.chk_withdrawal_cut",
        suite=values_in_set("consent_rule_2", "after_withdrawal", [False],
                            "a participant-level row dated after a scope-1 withdrawal"),
    ),
    Check(
        name="consent_rule_3_units_have_audio_consent",
        area="consent",
        rule="consent rule 3: no unit without audio consent",
        severity=BLOCKING,
        asset="coded_units",
        query="select audio_consented from main.chk_units_published",
        suite=values_in_set("consent_rule_3", "audio_consented", [True],
                            "a published unit of a participant without audio consent"),
    ),
    Check(
        name="consent_rule_4_units_cleared_by_screening",
        area="consent",
        rule="consent rule 4: no unit holding a direct identifier",
        severity=BLOCKING,
        asset="coded_units",
        query="select screening_cleared from main.chk_units_published",
        suite=values_in_set("consent_rule_4", "screening_cleared", [True],
                            "a published unit the identifier screening held back"),
    ),
]


def rule_5_checks(k: int) -> list[Check]:
    """Rule 5, over a participant-level extract (tables `level` and `shared` registered by the caller)."""
    from expectations.suites import values_between

    return [
        Check(
            name="consent_rule_5_only_consent_share",
            area="consent",
            rule="consent rule 5: participant-level rows only of participants with consent_share = 1",
            severity=BLOCKING,
            asset="funder_extract",
            query="select share_id in (select share_id from shared) as shared from level",
            suite=values_in_set("consent_rule_5_share", "shared", [True],
                                "a participant-level row of someone without consent to share"),
        ),
        Check(
            name="consent_rule_5_k_anonymity",
            area="consent",
            rule=f"consent rule 5: every age band x sex x race x ethnicity combination occurs at least {k} times",
            severity=BLOCKING,
            asset="funder_extract",
            query="select count(*) as n from level group by age_band, sex, race, ethnicity",
            suite=values_between("consent_rule_5_k", "n", k, None, "a combination rarer than k"),
        ),
    ]
