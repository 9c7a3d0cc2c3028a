"""Aggregate tables of the funder extract (CONTRACT section 4).

Rows per arm in the study profile's order (``arms``, the labels; see
``arms.StudyArms``), then ``All`` (every arm gets a row, with zero counts and
null rates when it is empty). A study without arms (``arms`` empty) has the one
row ``All``: its analyst tables carry arm ``All`` on every row (the enrolled,
day 0 the consent date), and the ``randomized`` column counts the enrolled.

Rounding (all exact, half away from zero; see ``rounding``):

* percentages: 100*n/d to one decimal in integer arithmetic (23/80 -> 28.8);
  null when the denominator is 0;
* ``sessions_attended_mean``: the exact mean (a fraction) to 2 decimals;
* Kaplan-Meier estimates: S(t) is an exact fraction, rounded to 4 decimals;
  the log-log confidence limits (log/exp, not rational) are computed in
  float64 and the float's exact binary value is rounded to 4 decimals.

``km_N`` is the KM probability of still being in treatment at N days, in the
contract's sense of ``retained_N`` (days_in_treatment >= N): P(T >= N), which
for whole days is S(N - 1) = P(T > N - 1). So with no censoring ``km_30`` is
exactly the share of ``retained_30``. Pass ``inclusive=False`` for the
plain S(N) = P(T > N) instead. An estimate past the last observed time of
an arm (everyone censored earlier) is null.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import polars as pl

from .arms import ALL, plotted
from .rounding import mean_rounded, pct, round_float, round_fraction
from .survival import Z95, kaplan_meier, km_median_exact, km_point

KM_DAYS = (30, 60, 90)

ENGAGEMENT_SCHEMA = {
    "arm": pl.Utf8,
    "randomized": pl.Int64,
    "attended_any_n": pl.Int64,
    "attended_any_pct": pl.Float64,
    "sessions_attended_mean": pl.Float64,
    "linked_n": pl.Int64,
    "linked_pct": pl.Float64,
    "iet_initiation_n": pl.Int64,
    "iet_initiation_pct": pl.Float64,
    "iet_engagement_n": pl.Int64,
    "iet_engagement_pct": pl.Float64,
}

RETENTION_SCHEMA = {
    "arm": pl.Utf8,
    "admitted": pl.Int64,
    "dropped_out_n": pl.Int64,
    "dropped_out_pct": pl.Float64,
    "median_days_in_treatment": pl.Int64,
    **{f"km_{d}{suffix}": pl.Float64 for d in KM_DAYS for suffix in ("", "_lcl", "_ucl")},
}

# which count columns each rate/estimate is computed from (for suppression)
ENGAGEMENT_COUNTS = ("randomized", "attended_any_n", "linked_n", "iet_initiation_n", "iet_engagement_n")
ENGAGEMENT_DERIVED = {
    "attended_any_pct": ("attended_any_n", "randomized"),
    "sessions_attended_mean": ("randomized",),
    "linked_pct": ("linked_n", "randomized"),
    "iet_initiation_pct": ("iet_initiation_n", "randomized"),
    "iet_engagement_pct": ("iet_engagement_n", "randomized"),
}
RETENTION_COUNTS = ("admitted", "dropped_out_n")
RETENTION_DERIVED = {
    "dropped_out_pct": ("dropped_out_n", "admitted"),
    "median_days_in_treatment": ("admitted",),
    **{f"km_{d}{suffix}": ("admitted",) for d in KM_DAYS for suffix in ("", "_lcl", "_ucl")},
}


def _groups(df: pl.DataFrame, arms: Sequence[str]) -> list[tuple[str, pl.DataFrame]]:
    """Each arm's rows, then ``All`` (the rows of every arm); in a study without arms, the rows of ``All``."""
    if not arms:
        return [(ALL, df.filter(pl.col("arm") == ALL))]
    known = df.filter(pl.col("arm").is_in(list(arms)))
    return [(arm, known.filter(pl.col("arm") == arm)) for arm in arms] + [(ALL, known)]



def _true_count(s: pl.Series) -> int:
    return int(s.fill_null(False).cast(pl.Boolean).sum())


def engagement_by_arm(engagement: pl.DataFrame, arms: Sequence[str]) -> pl.DataFrame:
    """Per arm and ``All``: randomized, attended_any, mean sessions attended, linked, IET initiation and engagement.

    ``engagement`` is the analyst table (one row per randomized participant;
    columns arm, sessions_attended, attended_any, linked, iet_initiation,
    iet_engagement). Rows with an arm outside ``arms`` are ignored (in a study
    without arms, ``arms`` is empty and the rows are those of ``All``). Every
    percentage has the arm's randomized participants as denominator; the
    mean is over participants with a non-null sessions_attended.
    """
    rows = []
    for arm, g in _groups(engagement, arms):
        n = g.height
        row = {"arm": arm, "randomized": n}
        for col in ("attended_any", "linked", "iet_initiation", "iet_engagement"):
            k = _true_count(g[col])
            row[f"{col}_n"] = k
            row[f"{col}_pct"] = pct(k, n)
        sess = g["sessions_attended"].drop_nulls()
        row["sessions_attended_mean"] = mean_rounded(int(sess.sum()), sess.len(), 2) if sess.len() else None
        rows.append(row)
    return pl.DataFrame(rows, schema=ENGAGEMENT_SCHEMA).select(list(ENGAGEMENT_SCHEMA))


def _km_fields(times: list, events: list, days=KM_DAYS, inclusive: bool = True, z: float = Z95) -> dict:
    out: dict = {}
    median = km_median_exact(times, events) if times else None
    out["median_days_in_treatment"] = None if median is None else int(median)
    for d in days:
        at = d - 1 if inclusive else d
        s, lcl, ucl = km_point(times, events, at, z) if times else (None, None, None)
        out[f"km_{d}"] = None if s is None else float(round_fraction(s, 4))
        out[f"km_{d}_lcl"] = round_float(lcl, 4)
        out[f"km_{d}_ucl"] = round_float(ucl, 4)
    return out


def retention_by_arm(
    retention: pl.DataFrame, arms: Sequence[str], inclusive: bool = True, z: float = Z95
) -> pl.DataFrame:
    """Per arm and ``All``: admitted, dropped out, KM median days in treatment and KM at 30/60/90 days.

    ``retention`` is the analyst table (columns arm, days_in_treatment,
    censored, dropped_out). The event is a discharge of any reason
    (``censored`` false); the median is the first time with S(t) <= 0.5
    (null if never; whole days, as days_in_treatment are); ``dropped_out_pct`` has
    ``admitted`` as denominator.
    """
    rows = []
    for arm, g in _groups(retention, arms):
        g = g.filter(pl.col("days_in_treatment").is_not_null())
        n = g.height
        k = _true_count(g["dropped_out"])
        times = g["days_in_treatment"].to_list()
        events = [not bool(c) for c in g["censored"].fill_null(False).to_list()]
        rows.append(
            {
                "arm": arm,
                "admitted": n,
                "dropped_out_n": k,
                "dropped_out_pct": pct(k, n),
                **_km_fields(times, events, inclusive=inclusive, z=z),
            }
        )
    return pl.DataFrame(rows, schema=RETENTION_SCHEMA).select(list(RETENTION_SCHEMA))


def km_curves_by_arm(retention: pl.DataFrame, arms: Sequence[str], z: float = Z95) -> dict[str, pl.DataFrame]:
    """The Kaplan-Meier curve of time in treatment per arm (for the report), keyed by arm in order
    (``All`` alone in a study without arms)."""
    out = {}
    for arm in plotted(arms):
        g = retention.filter((pl.col("arm") == arm) & pl.col("days_in_treatment").is_not_null())
        events = [not bool(c) for c in g["censored"].fill_null(False).to_list()]
        out[arm] = kaplan_meier(g["days_in_treatment"].to_list(), events, z)
    return out


def alliance_by_session(
    alliance_scores: pl.DataFrame,
    arm_of: pl.DataFrame,
    arms: Sequence[str],
    respondent: str = "client",
    min_n: int = 1,
) -> pl.DataFrame:
    """Mean alliance ``total`` by arm and session_number for one respondent (for the report).

    ``arm_of`` maps participant_key -> arm (e.g. ``engagement`` or
    ``participants``). Columns ``arm, session_number, n, mean_total`` (mean to
    2 decimals, exact); points with fewer than ``min_n`` surveys are dropped
    (pass min_cell + 1 for the public audience). Sorted by arm order, session.
    In a study without arms (``arms`` empty) the one group is ``All``.
    """
    groups = plotted(arms)
    arms_map = arm_of.select("participant_key", "arm").unique(subset=["participant_key"], keep="first")
    df = (
        alliance_scores.filter(
            (pl.col("respondent") == respondent)
            & pl.col("total").is_not_null()
            & pl.col("session_number").is_not_null()
        )
        .join(arms_map, on="participant_key", how="inner")
        .filter(pl.col("arm").is_in(list(groups)))
    )
    rows = []
    for arm in groups:
        g = df.filter(pl.col("arm") == arm)
        for sn in sorted(set(g["session_number"].to_list())):
            vals = g.filter(pl.col("session_number") == sn)["total"].to_list()
            if len(vals) < min_n:
                continue
            total = sum(Fraction(str(v)) if isinstance(v, float) else Fraction(v) for v in vals)
            mean = float(round_fraction(total / len(vals), 2))
            rows.append({"arm": arm, "session_number": int(sn), "n": len(vals), "mean_total": mean})
    return pl.DataFrame(
        rows, schema={"arm": pl.Utf8, "session_number": pl.Int64, "n": pl.Int64, "mean_total": pl.Float64}
    )


# ------------------------------------------------------------------ Table 1

OVERALL = "Overall"
PARTICIPANTS = "participants"  # Table 1's first row per stratum: its participants (n)
MULTI_VALUED = ("cooccurring",)  # a participant may count in several of its levels
TABLE1_SCHEMA = {
    "stratum": pl.Utf8,
    "characteristic": pl.Utf8,
    "level": pl.Utf8,
    "n": pl.Int64,
    "pct": pl.Float64,
    "mean": pl.Float64,
    "sd": pl.Float64,
}
TABLE1_DERIVED = {"pct": ("n",), "mean": ("n",), "sd": ("n",)}


def table1_cohort(arms: Sequence[str]) -> str:
    """The cohort the extract shows (CONTRACT 4): ``randomized``; ``enrolled`` in a study without arms."""
    return "randomized" if arms else "enrolled"


def _stratum_participants(g: pl.DataFrame) -> int:
    """A stratum's participants: the sum over the levels (with ``Missing``) of a single-valued categorical
    characteristic, else the largest n of a continuous one."""
    categorical = g.filter(pl.col("level").is_not_null() & ~pl.col("characteristic").is_in(MULTI_VALUED))
    if categorical.height:
        first = categorical["characteristic"][0]
        return int(categorical.filter(pl.col("characteristic") == first)["n"].sum())
    return int(g["n"].max() or 0)


def table1_by_arm(table1: pl.DataFrame, arms: Sequence[str]) -> pl.DataFrame:
    """The extract's Table 1 in long form: the cohort of ``table1_cohort``, strata ``Overall`` then each arm.

    ``table1`` is the analyst table (cohort, stratum, characteristic, level, n,
    pct, mean, sd; characteristic_order and level_order when present give the
    row order). Each stratum starts with a ``participants`` row (n = its
    participants); columns as ``TABLE1_SCHEMA``, rows by stratum, then the
    table's order.
    """
    strata = (OVERALL, *arms)
    # ENUM columns compared as text: a label outside an ENUM's levels is no error, only no match
    df = table1.with_columns(pl.col(c).cast(pl.Utf8) for c in ("cohort", "stratum", "characteristic", "level"))
    df = df.filter((pl.col("cohort") == table1_cohort(arms)) & pl.col("stratum").is_in(list(strata)))
    order = [c for c in ("characteristic_order", "level_order") if c in df.columns]
    if order:
        df = df.sort(order, maintain_order=True)
    body = df.select(
        "stratum",
        "characteristic",
        "level",
        pl.col("n").cast(pl.Int64),
        *(pl.col(c).cast(pl.Float64) for c in ("pct", "mean", "sd")),
    )
    parts = []
    for stratum in strata:
        g = body.filter(pl.col("stratum") == stratum)
        head = {"stratum": stratum, "characteristic": PARTICIPANTS, "level": None, "n": _stratum_participants(g),
                "pct": None, "mean": None, "sd": None}
        parts += [pl.DataFrame([head], schema=TABLE1_SCHEMA), g]
    return pl.concat(parts)
