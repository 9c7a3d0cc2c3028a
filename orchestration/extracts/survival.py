"""Kaplan-Meier estimation with Greenwood's variance and log-log confidence limits.

Conventions (the textbook ones, e.g. Klein & Moeschberger, R's ``survfit``):

* ``S(t) = P(T > t)``, right-continuous: events at ``t`` lower ``S(t)``.
* At a time with both events and censorings, the censored are still at risk
  at that time (events are taken to precede censorings).
* Greenwood: ``Var S(t) = S(t)^2 * G(t)``, ``G(t) = sum over event times
  t_i <= t of d_i / (n_i (n_i - d_i))``; ``se = S * sqrt(G)``.
* 95% limits on the log-log scale ("log(-log S)"):
  ``se_ll = sqrt(G) / |log S|`` and the limits are ``S ** exp(+z se_ll)``
  (lower) and ``S ** exp(-z se_ll)`` (upper), z = 1.96 by default. They are
  undefined (None) where S = 1 (no event yet: log S = 0) and where S = 0
  (log S infinite, G infinite).

The survival probabilities are computed exactly as fractions (a product of
rationals) and converted once to the nearest float, so the curve does not
depend on the order of floating-point multiplications.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import polars as pl

Z95 = 1.96

CURVE_SCHEMA = {
    "t": pl.Float64,
    "at_risk": pl.Int64,
    "events": pl.Int64,
    "censored": pl.Int64,
    "survival": pl.Float64,
    "greenwood": pl.Float64,
    "se": pl.Float64,
    "lcl": pl.Float64,
    "ucl": pl.Float64,
}


def _as_list(values) -> list:
    if isinstance(values, pl.Series):
        return values.to_list()
    return list(values)


def _exact_steps(times, events) -> list[tuple]:
    """[(t, at_risk, d, c, S as Fraction, G as Fraction or None)] over the distinct times."""
    ts = _as_list(times)
    es = _as_list(events)
    if len(ts) != len(es):
        raise ValueError("times and events differ in length")
    obs = [(t, bool(e)) for t, e in zip(ts, es, strict=True) if t is not None and e is not None]
    for t, _ in obs:
        if isinstance(t, float) and math.isnan(t):
            raise ValueError("NaN time")
        if t < 0:
            raise ValueError("negative time")
    by_time: dict = {}
    for t, e in obs:
        d, c = by_time.get(t, (0, 0))
        by_time[t] = (d + 1, c) if e else (d, c + 1)
    at_risk = len(obs)
    s = Fraction(1)
    g: Fraction | None = Fraction(0)
    steps = []
    for t in sorted(by_time):
        d, c = by_time[t]
        n = at_risk
        if d:
            s *= Fraction(n - d, n)
            if g is not None:
                g = None if n == d else g + Fraction(d, n * (n - d))
        steps.append((t, n, d, c, s, g))
        at_risk -= d + c
    return steps


def loglog_limits(s: float | Fraction, greenwood: float | Fraction | None, z: float = Z95):
    """(lower, upper) log-log limits for a survival ``s`` with Greenwood sum ``greenwood``.

    None where undefined: s = 1 (log s = 0), s = 0 or an infinite Greenwood sum.
    """
    if greenwood is None or s is None:
        return None, None
    s_f = float(s)
    if s_f <= 0.0 or s_f >= 1.0:
        return None, None
    se_ll = math.sqrt(float(greenwood)) / abs(math.log(s_f))
    return s_f ** math.exp(z * se_ll), s_f ** math.exp(-z * se_ll)


def kaplan_meier(times, events, z: float = Z95) -> pl.DataFrame:
    """The Kaplan-Meier curve of ``times`` (durations) with ``events`` (True = event, False = censored).

    One row per distinct observed time (event or censoring), ascending:
    ``t, at_risk, events, censored, survival, greenwood, se, lcl, ucl``.
    ``survival`` is S(t) just after t; ``greenwood`` the cumulative Greenwood
    sum (None once S reaches 0); ``se`` Greenwood's standard error of S;
    ``lcl``/``ucl`` the log-log limits (None where undefined). Rows with a
    null time or event are ignored.
    """
    rows = []
    for t, n, d, c, s, g in _exact_steps(times, events):
        lcl, ucl = loglog_limits(s, g, z)
        s_f = float(s)
        rows.append(
            {
                "t": float(t),
                "at_risk": n,
                "events": d,
                "censored": c,
                "survival": s_f,
                "greenwood": None if g is None else float(g),
                "se": None if g is None else s_f * math.sqrt(float(g)),
                "lcl": lcl,
                "ucl": ucl,
            }
        )
    return pl.DataFrame(rows, schema=CURVE_SCHEMA)


def _row_at(curve: pl.DataFrame, t: float) -> dict | None:
    """The last curve row with time <= t; None before the first time."""
    upto = curve.filter(pl.col("t") <= t)
    if upto.height == 0:
        return None
    return upto.row(upto.height - 1, named=True)


def _defined_at(curve: pl.DataFrame, t: float) -> bool:
    """S(t) is estimable: t within follow-up, or the curve has reached 0."""
    if curve.height == 0:
        return False
    last = curve.row(curve.height - 1, named=True)
    return t <= last["t"] or last["survival"] == 0.0


def km_at(curve: pl.DataFrame, t: float) -> float | None:
    """S(t) from a ``kaplan_meier`` curve: 1 before the first event; None after
    the last observed time unless the curve reached 0 (not estimable there)."""
    if not _defined_at(curve, t):
        return None
    row = _row_at(curve, t)
    return 1.0 if row is None else row["survival"]


def km_ci_at(curve: pl.DataFrame, t: float) -> tuple[float | None, float | None, float | None]:
    """(S(t), lower, upper) from a ``kaplan_meier`` curve; limits None where undefined."""
    if not _defined_at(curve, t):
        return None, None, None
    row = _row_at(curve, t)
    if row is None:
        return 1.0, None, None
    return row["survival"], row["lcl"], row["ucl"]


def km_point(times, events, t: float, z: float = Z95) -> tuple[Fraction | None, float | None, float | None]:
    """(S(t) as an exact fraction, lower, upper limit) from raw data; all None when
    S(t) is not estimable (t after the last observed time and S > 0); limits None
    where undefined (S = 1 or S = 0)."""
    steps = _exact_steps(times, events)
    if not steps:
        return None, None, None
    last_t, last_s = steps[-1][0], steps[-1][4]
    if t > last_t and last_s != 0:
        return None, None, None
    s, g = Fraction(1), Fraction(0)
    for st, _, _, _, ss, gg in steps:
        if st <= t:
            s, g = ss, gg
    lcl, ucl = loglog_limits(s, g, z)
    return s, lcl, ucl


def km_exact_at(times, events, t: float) -> Fraction | None:
    """S(t) as an exact fraction (for rounding without binary floats); None when not estimable."""
    return km_point(times, events, t)[0]


def km_median(curve: pl.DataFrame) -> float | None:
    """The KM median: the first time t with S(t) <= 0.5; None if S never gets there."""
    hit = curve.filter(pl.col("survival") <= 0.5)
    return None if hit.height == 0 else hit["t"][0]


def km_median_exact(times: Sequence, events: Sequence) -> float | None:
    """As ``km_median`` but comparing the exact fractions to 1/2 (no float ties)."""
    for t, _, _, _, s, _ in _exact_steps(times, events):
        if s <= Fraction(1, 2):
            return t
    return None
