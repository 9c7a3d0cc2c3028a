"""REDCap raw exports (snapshots) of the intake and alliance projects, as of an export moment."""

from __future__ import annotations

import numpy as np
import polars as pl

from .dictionaries import export_columns, intake_dictionary
from .population import STAFF_NOTE_TEMPLATES, Population

ALLIANCE_COLUMNS: list[str] = (
    ["record_id", "redcap_repeat_instrument", "redcap_repeat_instance", "waic_date", "waic_session"]
    + [f"waic_{i}" for i in range(1, 13)]
    + ["wai_client_complete", "wais_date", "wais_session"]
    + [f"wais_{i}" for i in range(1, 13)]
    + ["wai_staff_complete"]
)


def _date(col: str) -> pl.Expr:
    return pl.when(pl.col(col) >= 0).then(pl.from_epoch(col, time_unit="d").cast(pl.String))


def _code(col: str) -> pl.Expr:
    return pl.when(pl.col(col) > 0).then(pl.col(col).cast(pl.String))


def intake_snapshot(pop: Population, export_day: int, export_minute: int, seed: int) -> pl.DataFrame:
    """The full raw export of the intake project at (export_day, export_minute) local time."""
    moment = export_day * 1440 + export_minute
    p = pop.people.filter(pl.col("assessment_day") <= export_day)
    # values entered wrongly and not yet corrected at the export moment
    c = pop.corrections.filter(pl.col("corr_day") * 1440 + pl.col("corr_minute") > moment)
    for field in ("age", "sex", "education"):
        fix = c.filter(pl.col("field") == field).select("idx", pl.col("wrong").alias("_wrong"))
        p = p.join(fix, on="idx", how="left", maintain_order="left").with_columns(
            pl.coalesce("_wrong", field).alias(field)
        ).drop("_wrong")
    e = export_day
    consented = (pl.col("consent_day") >= 0) & (pl.col("consent_day") <= e)
    randomized = (pl.col("rand_day") >= 0) & (pl.col("rand_day") <= e)
    withdrawn = randomized & (pl.col("withdrawal_day") >= 0) & (pl.col("withdrawal_day") <= e)
    decline_shown = (pl.col("consent_day") < 0) & (pl.col("decline_reason") > 0)
    notes = (
        pl.col("note_pick").replace_strict(list(range(len(STAFF_NOTE_TEMPLATES))), list(STAFF_NOTE_TEMPLATES),
                                           default=None, return_dtype=pl.String)
        .str.replace_all("{first}", pl.col("first_name"), literal=True)
        .str.replace_all("{last}", pl.col("last_name"), literal=True)
        .str.replace_all("{phone}", pl.col("phone"), literal=True)
        .str.replace_all("{street}", pl.col("street_address"), literal=True)
        .str.replace_all("{email}", pl.col("email"), literal=True)
    )
    yes = lambda col: pl.col(col).cast(pl.String)  # noqa: E731
    p = p.with_columns(
        phone=pl.format("({}) 555-0{}", "phone_area", "phone_line"),
        street_address=pl.format("{} {} {}", "street_no", "street", "suffix"),
        email=pl.format("{}.{}{}@{}", pl.col("first_name").str.to_lowercase(),
                        pl.col("last_name").str.to_lowercase(), "email_no", "domain"),
    )
    out = p.select(
        pl.col("record_id"),
        pl.col("site").alias("redcap_data_access_group"),
        "first_name", "last_name",
        pl.from_epoch("dob_day", time_unit="d").cast(pl.String).alias("dob"),  # may lie before 1970
        "phone", "street_address", "zip", "email",
        _date("assessment_day").alias("assessment_date"),
        pl.col("age").cast(pl.String),
        _code("sex").alias("sex"), _code("ethnicity").alias("ethnicity"),
        *[yes(f"race___{i}") for i in range(1, 7)],
        _code("education"), _code("marital_status"), yes("homeless"), yes("employed"),
        _code("drug_of_choice"), _code("sud_diagnosis"), yes("psychotic_disorder"), yes("alcohol_only"),
        *[yes(f"cooccurring___{i}") for i in range(1, 7)],
        pl.col("prior_tx_episodes").cast(pl.String),
        _date("last_tx_day").alias("last_tx_date"),
        yes("court_referred"), _code("asam_level"), _code("referral_program"),
        notes.alias("staff_notes"),
        pl.when(((pl.col("idx") * 7919 + seed) % 61) == 0).then(pl.lit("1")).otherwise(pl.lit("2"))
        .alias("intake_assessment_complete"),
        pl.when(consented).then(_date("consent_day")).alias("consent_date"),
        pl.when(consented).then(pl.format("v2.{}", pl.col("consent_version") - 1)).alias("consent_version"),
        pl.when(consented).then(yes("consent_audio")).alias("consent_audio"),
        pl.when(consented).then(yes("consent_share")).alias("consent_share"),
        pl.when(decline_shown).then(_code("decline_reason")).alias("decline_reason"),
        pl.when(consented | decline_shown).then(pl.lit("2")).otherwise(pl.lit("0")).alias("consent_complete"),
        pl.when(randomized).then(_code("rand_arm")).alias("rand_arm"),
        pl.when(randomized).then(_date("rand_day")).alias("rand_date"),
        pl.when(randomized).then(pl.lit("2")).otherwise(pl.lit("0")).alias("randomization_complete"),
        pl.when(randomized).then(pl.when(withdrawn).then(pl.lit("1")).otherwise(pl.lit("0"))).alias("withdrawn"),
        pl.when(withdrawn).then(_date("withdrawal_day")).alias("withdrawal_date"),
        pl.when(withdrawn).then(_code("withdrawal_scope")).alias("withdrawal_scope"),
        pl.when(randomized).then(
            pl.when((pl.col("ltf_day") >= 0) & (pl.col("ltf_day") <= e)).then(pl.lit("1")).otherwise(pl.lit("0"))
        ).alias("lost_to_followup"),
        pl.when(randomized).then(pl.lit("2")).otherwise(pl.lit("0")).alias("study_status_complete"),
    )
    cols = export_columns(intake_dictionary(), dag=True)
    assert set(cols) == set(out.columns), set(cols) ^ set(out.columns)
    return out.select(cols)


def alliance_snapshot(surveys: pl.DataFrame, export_day: int) -> pl.DataFrame:
    """The full raw export of the alliance project (base row + one row per survey instance)."""
    s = surveys.filter(pl.col("survey_day") <= export_day)
    blank = pl.lit(None, pl.String)
    parts = [
        s.select("record_num", "record_id").unique(maintain_order=True).select(
            "record_num", pl.lit(0, pl.Int64).alias("_order"), pl.lit(0, pl.Int64).alias("_inst_n"),
            "record_id", *[blank.alias(c) for c in ALLIANCE_COLUMNS[1:]],
        )
    ]
    for resp, prefix, form, order in ((0, "waic", "wai_client", 1), (1, "wais", "wai_staff", 2)):
        r = s.filter(pl.col("respondent") == resp)
        own = {
            "redcap_repeat_instrument": pl.lit(form),
            "redcap_repeat_instance": pl.col("redcap_repeat_instance").cast(pl.String),
            f"{prefix}_date": pl.from_epoch("survey_day", time_unit="d").cast(pl.String),
            f"{prefix}_session": pl.col("session_number").cast(pl.String),
            **{f"{prefix}_{i}": pl.when(pl.col(f"item_{i}") > 0).then(pl.col(f"item_{i}").cast(pl.String))
               for i in range(1, 13)},
            f"{form}_complete": pl.col("complete").cast(pl.String),
        }
        parts.append(r.select(
            "record_num", pl.lit(order, pl.Int64).alias("_order"),
            pl.col("redcap_repeat_instance").cast(pl.Int64).alias("_inst_n"), "record_id",
            *[own.get(c, blank).alias(c) for c in ALLIANCE_COLUMNS[1:]],
        ))
    out = pl.concat(parts, how="vertical").sort(["record_num", "_order", "_inst_n"])
    return out.select(ALLIANCE_COLUMNS)


def build_surveys(attended: pl.DataFrame, seed: int, end_day: int) -> pl.DataFrame:
    """WAI-SR surveys after attended intervention sessions.

    ``attended``: pid, record_id, session_number, day (local), one row per counted session.
    Returns pid, record_num, record_id, respondent (0 client, 1 staff), redcap_repeat_instance,
    session_number, survey_day, item_1..item_12 (0 = blank), complete.
    """
    rng = np.random.default_rng([seed, 4])
    a = attended.sort(["pid", "day", "session_number"])
    n = a.height
    pid = a["pid"].to_numpy()
    uniq, inv = np.unique(pid, return_inverse=True)
    person = rng.normal(0, 0.5, len(uniq))[inv]
    sn = a["session_number"].to_numpy()
    day = a["day"].to_numpy()
    frames = []
    for resp, p_take, mean, slope, weight in ((0, 0.85, 3.65, 0.09, 1.0), (1, 0.9, 3.45, 0.07, 0.6)):
        take = rng.random(n) < p_take
        k = int(take.sum())
        sday = day[take] + np.where(rng.random(k) < 0.8, 0, rng.integers(1, 4, k))
        latent = mean + weight * person[take] + slope * (sn[take] - 1) + rng.normal(0, 0.25, k)
        items = np.clip(np.rint(latent[:, None] + rng.normal(0, 0.6, (k, 12))), 1, 5).astype(np.int64)
        items[rng.random((k, 12)) < 0.02] = 0
        sparse = rng.random(k) < 0.01  # a subscale with fewer than 3 answers
        subscales = np.array([[3, 5, 7, 10], [0, 1, 9, 11], [2, 4, 6, 8]])  # goal, task, bond (0-based)
        which = subscales[rng.integers(0, 3, k)]
        for drop in range(2):
            rows = np.flatnonzero(sparse)
            items[rows, which[rows, drop]] = 0
        empty = rng.random(k) < 0.003
        items[empty] = 0
        complete = np.where(empty, 0, np.where(rng.random(k) < 0.94, 2, 1))
        df = pl.DataFrame({
            "pid": pid[take], "record_id": a["record_id"].gather(np.flatnonzero(take)), "respondent": np.full(k, resp),
            "session_number": sn[take], "survey_day": sday, "complete": complete,
            **{f"item_{i}": items[:, i - 1] for i in range(1, 13)},
        })
        frames.append(df)
    s = pl.concat(frames).filter(pl.col("survey_day") <= end_day)
    s = s.sort(["pid", "respondent", "survey_day", "session_number"]).with_columns(
        redcap_repeat_instance=pl.int_range(1, pl.len() + 1).over(["pid", "respondent"]),
        record_num=pl.col("record_id").cast(pl.Int64),
    )
    return s
