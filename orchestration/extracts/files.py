"""Every file of one extract, as bytes, from the as-of analyst tables.

``funder``: true counts, the participant-level file (k-anonymous, consent_share
only), full retention curves. ``public``: no participant-level file, counts 1..
ALLIANCE_MIN_CELL suppressed with complementary suppression across the files,
derived rates and estimates suppressed with their counts.
"""

from __future__ import annotations

import io
from datetime import datetime

import polars as pl

from orchestration.extracts import kanon, nih, report, suppression, tables, workbook
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


def extract_files(t: dict[str, pl.DataFrame], *, arms: StudyArms, audience: str, as_of: datetime, min_cell: int,
                  k_anon: int) -> tuple[dict[str, bytes], dict]:
    """Every file of the extract; ``arms`` are the study profile's (``StudyArms.from_profile``)."""
    consort = t["consort_flow"].sort("stage_order", "arm_order", "reason_order", "reason", nulls_last=True) \
        .select("stage", "arm", "n", "reason")
    grid = nih.nih_enrollment(t["participants"])
    engagement = tables.engagement_by_arm(t["engagement"], arms.labels)
    retention = tables.retention_by_arm(t["retention"], arms.labels)
    facts: dict = {"row_counts": {}, "disclosure_control": {}}
    files: dict[str, bytes] = {}
    public = audience == "public"
    if public:
        out, counts = suppression.suppress_extract(consort, engagement, retention, grid, min_cell,
                                                   arms=arms.labels, by_allocation=arms.by_allocation)
        consort, engagement, retention = out["consort_flow"], out["engagement_by_arm"], out["retention_by_arm"]
        grid_for_report = pl.concat([out["nih_inclusion_enrollment"], out["nih_totals"]])
        grid = out["nih_inclusion_enrollment"]
        facts["disclosure_control"] = {"min_cell": min_cell, "suppressed_cells": dict(sorted(counts.items()))}
        curves: dict = {}
        suppressed = counts
    else:
        grid_for_report = grid
        curves = tables.km_curves_by_arm(t["retention"], arms.labels)
        level = participant_rows(t["participant_level"], arms)
        level, altered, dropped = kanon.k_anonymize(level, quasi=QUASI, k=k_anon)
        level = level.sort("share_id")
        files["participant_level.csv"] = _csv(level)
        facts["row_counts"]["participant_level.csv"] = level.height
        facts["disclosure_control"] = {"k_anonymity": {"k": k_anon, "quasi_identifiers": list(QUASI),
                                                       "records_altered": altered, "records_dropped": dropped}}
        suppressed = {}
    alliance = tables.alliance_by_session(t["alliance_scores"], t["engagement"], arms.labels, respondent="client",
                                          min_n=min_cell + 1 if public else 1)
    aggregates = {
        "nih_inclusion_enrollment": grid,
        "consort_flow": consort,
        "engagement_by_arm": engagement,
        "retention_by_arm": retention,
    }
    for name, df in aggregates.items():
        files[f"{name}.csv"] = _csv(df)
        facts["row_counts"][f"{name}.csv"] = df.height
    notes = [f"As of {as_of.isoformat()}; audience: {audience}."]
    if public:
        notes.append(f"Counts from 1 to {min_cell} are suppressed (empty), with complementary suppression; "
                     "rates and estimates computed from a suppressed count are suppressed with it.")
    files["tables.xlsx"] = workbook.workbook_bytes(aggregates, notes=notes, title=f"Alliance {audience} extract")
    html = report.report_html(report.ReportContext(
        as_of=as_of.isoformat(), audience=audience, consort_flow=consort, engagement_by_arm=engagement,
        retention_by_arm=retention, nih_grid=grid_for_report, arms=arms, km_curves=curves, alliance_by_session=alliance,
        min_cell=min_cell, suppressed_counts=suppressed,
    ))
    files["report.html"] = html.encode("utf-8")
    return files, facts
