"""README.txt of an extract folder (CONTRACT 4): what each file is, its columns, how suppression and
k-anonymity were applied, the as-of and how to replay. Plain text, deterministic (no clock)."""

from __future__ import annotations

from collections.abc import Mapping

from .arms import NOT_RANDOMIZED, StudyArms

FILES = {
    "nih_inclusion_enrollment.csv": (
        "The NIH Inclusion Enrollment Report grid over consented participants (participants who withdrew all "
        "data excepted): one row for each of the 63 combinations of NIH's labels, zeros included, no totals.",
        "ethnicity, race, sex, n",
    ),
    "consort_flow.csv": (
        "The CONSORT participant flow: assessed, excluded (by reason), randomized, then per arm allocated, "
        "received_intervention, lost_to_followup, withdrew and analysed.",
        "stage, arm, n, reason (blank except on excluded rows)",
    ),
    "engagement_by_arm.csv": (
        "Engagement per arm and All: counts with their percentages of the arm's randomized participants.",
        "arm, randomized, attended_any_n, attended_any_pct, sessions_attended_mean, linked_n, linked_pct, "
        "iet_initiation_n, iet_initiation_pct, iet_engagement_n, iet_engagement_pct",
    ),
    "retention_by_arm.csv": (
        "Retention in treatment per arm and All: admissions, drop-outs, the Kaplan-Meier median days in "
        "treatment and the probability of still being in treatment at 30, 60 and 90 days with 95% limits "
        "(Greenwood's variance, log-log scale).",
        "arm, admitted, dropped_out_n, dropped_out_pct, median_days_in_treatment, km_30, km_30_lcl, km_30_ucl, "
        "km_60, km_60_lcl, km_60_ucl, km_90, km_90_lcl, km_90_ucl",
    ),
    "participant_level.csv": (
        "One de-identified row per consented participant who agreed to data sharing (funder audience only); "
        "share_id is a keyed hash, stable across releases and unrelated to any other identifier.",
        "share_id, arm, site, age_band, sex, race, ethnicity, homeless, employed, drug_class, prior_treatment, "
        "sessions_attended, attended_any, linked, days_to_linkage, iet_initiation, iet_engagement, "
        "days_in_treatment, censored, dropped_out, first_client_alliance_total, last_client_alliance_total",
    ),
    "tables.xlsx": ("The aggregate tables as a workbook, with a Notes sheet.", "one sheet per table"),
    "report.html": (
        "The human-readable report: summary, CONSORT diagram, Table 1, retention, alliance, NIH grid, engagement.",
        "sections summary, consort, table1, retention, alliance, nih, engagement",
    ),
    "manifest.json": (
        "As-of, audience, event-store position, code version, row counts and the SHA-256 of every file.",
        "JSON",
    ),
}


WITHOUT_ARMS = {  # the descriptions that differ in a study without arms
    "consort_flow.csv": "The CONSORT participant flow, which stops at enrollment: assessed, excluded (by reason), "
                        "enrolled.",
    "engagement_by_arm.csv": "Engagement of the enrolled (the one arm All): counts with their percentages of the "
                             "enrolled (column randomized).",
    "retention_by_arm.csv": "Retention in treatment of the enrolled (the one arm All): admissions, drop-outs, the "
                            "Kaplan-Meier median days in treatment and the probability of still being in "
                            "treatment at 30, 60 and 90 days with 95% limits (Greenwood's variance, log-log scale).",
}


def _design(arms: StudyArms) -> list[str]:
    if not arms.randomized:
        return [
            "This study is not randomized: it has no arms.",
            "* engagement_by_arm.csv and retention_by_arm.csv carry the one arm All: every enrolled",
            "  participant, day 0 the consent date, sessions of any service counting. In a study without",
            "  arms the column `randomized` of engagement_by_arm.csv counts the enrolled (the contract's",
            "  column name is kept).",
            "* consort_flow.csv stops at enrollment: assessed, excluded (by reason), enrolled.",
            f"* participant_level.csv: the arm of every row is `{NOT_RANDOMIZED}`.",
        ]
    lines = [f"Randomized study; arms from the study profile, in its order: {', '.join(arms.labels)}."]
    given = [a for a in arms.labels if a in arms.by_allocation]
    if given:
        lines.append(f"Given by allocation (received_intervention = allocated): {', '.join(given)}.")
    return lines


def _disclosure(audience: str, min_cell: int, k_anon: int) -> list[str]:
    if audience == "public":
        return [
            f"Suppression (public audience): every count from 1 to {min_cell} is left empty, with complementary",
            "cells chosen so that no empty count can be recovered from any total, from another row or from",
            "another file of this extract (checked by exact elimination over every relation a reader knows).",
            "A rate, mean or estimate computed from an empty count is empty too. An empty count is a",
            "suppressed one (counts are never missing); an empty rate or estimate is suppressed or not",
            "estimable. The cells emptied per file are counted in manifest.json (disclosure_control).",
            "No participant-level file is published for this audience.",
        ]
    return [
        "Funder audience: true counts in every aggregate (no small-cell suppression).",
        f"k-anonymity of participant_level.csv: every combination of age_band, sex, race and ethnicity occurs "
        f"at least {k_anon} times;",
        "rare race labels are merged into `Other or unknown`, then the rarest values are blanked, and rows",
        "that still stand out are dropped. manifest.json counts the records altered and dropped.",
    ]


def readme_text(*, arms: StudyArms, audience: str, as_of: str, as_of_words: str | None, files: Mapping,
                min_cell: int, k_anon: int, study_name: str | None = None) -> str:
    """The README of an extract holding ``files`` (names; the manifest is added by the writer)."""
    lines = [
        f"{study_name or 'Alliance warehouse'}: {audience} extract",
        "",
        f"As of {as_of_words or as_of} ({as_of}): built from the events the sources had recorded by then.",
        "Replay, byte for byte, from the same event-store position:",
        "    alliance-wh extract --replay <this folder>/manifest.json",
        "",
        *_design(arms),
        "",
        "Files",
    ]
    for name in sorted({*files, "manifest.json"} - {"README.txt"}):
        what, columns = FILES.get(name, ("", ""))
        what = what if arms.randomized else WITHOUT_ARMS.get(name, what)
        lines += [f"* {name}: {what}", f"  columns: {columns}"]
    lines += ["", *_disclosure(audience, min_cell, k_anon), ""]
    return "\n".join(lines)
