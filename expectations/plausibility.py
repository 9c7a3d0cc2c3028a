"""Plausibility rules: they report in data_quality and never block."""

from __future__ import annotations

from expectations.checks import REPORTING, Check
from expectations.suites import values_between, values_in_set


def _check(name: str, rule: str, asset: str, query: str, suite) -> Check:
    return Check(name=name, area="plausibility", rule=f"plausibility: {rule}", severity=REPORTING,
                 asset=asset, query=query, suite=suite)


CHECKS = [
    _check("plausibility_age_18_to_100", "age 18-100", "participants",
           "select age from main.participants",
           values_between("plausibility_age", "age", 18, 100, "age outside 18-100")),
    _check("plausibility_wai_items_1_to_5", "WAI items 1-5", "alliance_scores",
           "select unnest([item_1, item_2, item_3, item_4, item_5, item_6, item_7, item_8, item_9, item_10, item_11,"
           " item_12]) as item from main.int_alliance_surveys_scored",
           values_between("plausibility_wai", "item", 1, 5, "a WAI item outside 1-5")),
    _check("plausibility_at_most_5_sessions", "at most 5 case-management sessions per participant", "engagement",
           "select sessions_attended from main.engagement",
           values_between("plausibility_sessions", "sessions_attended", 0, 5, "more than 5 sessions attended")),
    _check("plausibility_consent_before_randomization", "consent <= randomization", "participants",
           "select coalesce(consented_on <= randomized_on, true) as in_order from main.participants",
           values_in_set("plausibility_consent_order", "in_order", [True], "randomized before consent")),
    _check("plausibility_randomization_before_first_session", "randomization <= first session", "sessions",
           "select coalesce(days_since_randomization >= 0, true) as in_order from main.sessions"
           " where event_type = 'session_attended'",
           values_in_set("plausibility_session_order", "in_order", [True], "a session attended before randomization")),
    _check("plausibility_withdrawal_after_consent", "withdrawal after consent", "participants",
           "select coalesce(withdrawal_date >= consent_date, true) as in_order from main.int_participants_projected"
           " where is_consented and is_withdrawn",
           values_in_set("plausibility_withdrawal_order", "in_order", [True], "withdrawal dated before consent")),
    _check("plausibility_no_event_after_data_cut", "no event in the future of the data cut", "sessions",
           "select s.occurred_at <= c.data_cut as in_order from main.sessions s cross join main.int_data_cut c",
           values_in_set("plausibility_cut", "in_order", [True], "an event after the data cut")),
]
