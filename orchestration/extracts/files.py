"""Every file of one extract, as bytes, from the as-of analyst tables.

``funder``: true counts, the participant-level file (k-anonymous, consent_share
only), full retention curves. ``public``: no participant-level file, counts 1..
ALLIANCE_MIN_CELL suppressed with complementary suppression across the files,
derived rates and estimates suppressed with their counts.
"""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl

from orchestration.extracts import kanon, nih, readme, report, suppression, tables, workbook
from orchestration.extracts.arms import NOT_RANDOMIZED, StudyArms

QUASI = ("age_band", "sex", "race", "ethnicity")


def _csv(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_csv(buf, line_terminator="\n", null_value="")
    return buf.getvalue()


def participant_rows(level: pl.DataFrame, arms: StudyArms) -> pl.DataFrame:
    """The participant-level rows as published: in a study without arms every row's arm says
    ``Not randomized`` (the analyst table's arm is null there)."""
    if arms.randomized:
        return level
    return level.with_columns(pl.lit(NOT_RANDOMIZED, dtype=pl.Utf8).alias("arm"))


def _public(tabs: dict[str, pl.DataFrame], arms: StudyArms, min_cell: int) -> tuple[dict, dict]:
    """The public audience's tables, suppressed together (Table 1 of the report with them)."""
    out, counts = suppression.suppress_extract(
        tabs["consort_flow"], tabs["engagement_by_arm"], tabs["retention_by_arm"], tabs["nih_inclusion_enrollment"],
        min_cell, arms=arms.labels, by_allocation=arms.by_allocation, table1=tabs.get("table1"),
    )
    shown = {name: out[name] for name in tabs}
    shown["nih_for_report"] = pl.concat([out["nih_inclusion_enrollment"], out["nih_totals"]])
    facts = {"min_cell": min_cell, "suppressed_cells": dict(sorted(counts.items()))}
    return shown, facts


def _funder_level(t: dict, arms: StudyArms, k_anon: int) -> tuple[pl.DataFrame, dict]:
    """The funder's participant-level rows, k-anonymous, sorted by share_id."""
    level = participant_rows(t["participant_level"], arms)
    level, altered, dropped = kanon.k_anonymize(level, quasi=QUASI, k=k_anon)
    facts = {"k_anonymity": {"k": k_anon, "quasi_identifiers": list(QUASI), "records_altered": altered,
                             "records_dropped": dropped}}
    return level.sort("share_id"), facts


def extract_files(t: dict[str, pl.DataFrame], *, arms: StudyArms, audience: str, as_of: datetime, min_cell: int,
                  k_anon: int, study_name: str | None = None, site_tz: str | None = None,
                  position: int | None = None) -> tuple[dict[str, bytes], dict]:
    """Every file of the extract; ``arms`` are the study profile's (``StudyArms.from_profile``), ``study_name``
    its name; ``site_tz`` the site's time zone (the as-of in words), ``position`` the event-store position."""
    consort = t["consort_flow"].sort("stage_order", "arm_order", "reason_order", "reason", nulls_last=True) \
        .select("stage", "arm", "n", "reason")
    tabs = {
        "nih_inclusion_enrollment": nih.nih_enrollment(t["participants"]),
        "consort_flow": consort,
        "engagement_by_arm": tables.engagement_by_arm(t["engagement"], arms.labels),
        "retention_by_arm": tables.retention_by_arm(t["retention"], arms.labels),
    }
    if t.get("table1") is not None:
        tabs["table1"] = tables.table1_by_arm(t["table1"], arms.labels)
    facts: dict = {"row_counts": {}, "disclosure_control": {}}
    files: dict[str, bytes] = {}
    public = audience == "public"
    if public:
        tabs, facts["disclosure_control"] = _public(tabs, arms, min_cell)
        curves: dict = {}
    else:
        tabs["nih_for_report"] = tabs["nih_inclusion_enrollment"]
        curves = tables.km_curves_by_arm(t["retention"], arms.labels)
        level, facts["disclosure_control"] = _funder_level(t, arms, k_anon)
        files["participant_level.csv"] = _csv(level)
        facts["row_counts"]["participant_level.csv"] = level.height
    alliance = tables.alliance_by_session(t["alliance_scores"], t["engagement"], arms.labels, respondent="client",
                                          min_n=min_cell + 1 if public else 1)
    aggregates = {name: tabs[name] for name in
                  ("nih_inclusion_enrollment", "consort_flow", "engagement_by_arm", "retention_by_arm")}
    for name, df in aggregates.items():
        files[f"{name}.csv"] = _csv(df)
        facts["row_counts"][f"{name}.csv"] = df.height
    notes = [f"As of {as_of.isoformat()}; audience: {audience}."]
    if public:
        notes.append(f"Counts from 1 to {min_cell} are suppressed (empty), with complementary suppression; "
                     "rates and estimates computed from a suppressed count are suppressed with it.")
    files["tables.xlsx"] = workbook.workbook_bytes(aggregates, notes=notes, title=f"Alliance {audience} extract")
    when = report.moment_words(as_of.astimezone(ZoneInfo(site_tz)) if site_tz else as_of)
    html = report.report_html(report.ReportContext(
        as_of=as_of.isoformat(), audience=audience, consort_flow=tabs["consort_flow"],
        engagement_by_arm=tabs["engagement_by_arm"], retention_by_arm=tabs["retention_by_arm"],
        nih_grid=tabs["nih_for_report"], arms=arms, km_curves=curves, alliance_by_session=alliance,
        min_cell=min_cell, suppressed_counts=facts["disclosure_control"].get("suppressed_cells", {}),
        study_name=study_name, as_of_words=when, table1=tabs.get("table1"), event_store_position=position,
    ))
    files["report.html"] = html.encode("utf-8")
    files["README.txt"] = readme.readme_text(
        arms=arms, audience=audience, as_of=as_of.isoformat(), as_of_words=when, files=files, min_cell=min_cell,
        k_anon=k_anon, study_name=study_name).encode("utf-8")
    return files, facts
