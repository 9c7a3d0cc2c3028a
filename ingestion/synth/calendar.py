"""Study calendar and time helpers (no wall clock anywhere: the study is fixed in time)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

SITE_TZ = "America/New_York"

# The last day of the synthetic study (the data cut of the final export).
STUDY_END = dt.date(2025, 12, 5)
# First possible intake assessment.
ENROLL_START = dt.date(2023, 10, 2)
# No new assessments in the last days of the study.
ENROLL_STOP = STUDY_END - dt.timedelta(days=7)

EPOCH = dt.date(1970, 1, 1)


def day_number(d: dt.date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def day_date(n: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(n))


def business_days(start: dt.date, stop: dt.date) -> np.ndarray:
    """Weekday day-numbers in [start, stop]."""
    days = np.arange(day_number(start), day_number(stop) + 1, dtype=np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday -> Monday == 0
    return days[weekday < 5]


def local_expr(day_col: str, minute_col: str) -> pl.Expr:
    """A UTC instant from a local day-number and minute-of-day (site time zone, DST-correct)."""
    secs = pl.col(day_col).cast(pl.Int64) * 86400 + pl.col(minute_col).cast(pl.Int64) * 60
    return (
        pl.from_epoch(secs, time_unit="s")
        .dt.replace_time_zone(SITE_TZ, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )


def local_instant(day: int, minute: int) -> dt.datetime:
    """The same as :func:`local_expr` for a single value (an aware UTC datetime)."""
    s = pl.DataFrame({"d": [day], "m": [minute]}).select(local_expr("d", "m").alias("t"))
    return s["t"][0]


def iso_local(expr: pl.Expr) -> pl.Expr:
    """ISO-8601 with the site's UTC offset, e.g. ``2025-04-02T14:30:00-04:00``."""
    return expr.dt.convert_time_zone(SITE_TZ).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")


def local_day_of(expr: pl.Expr) -> pl.Expr:
    """The local calendar day-number of a UTC instant."""
    return expr.dt.convert_time_zone(SITE_TZ).dt.date().cast(pl.Int32).cast(pl.Int64)
