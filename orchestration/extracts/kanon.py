"""Age bands and k-anonymity of participant-level extract rows (CONTRACT section 2, rule 5).

``k_anonymize`` makes every combination of the quasi-identifiers occur at
least k times; a blanked (null) value counts as a value of its own. Steps,
all deterministic:

1. Coarsen race: when some race label occurs fewer than k times in the
   file, every such rare label, and the unknown label, become
   ``Other or unknown`` (the rare ones hide among the unknown; the
   NIH-like labels of the common races are kept).
2. While some rows are in a combination rarer than k ("offending rows"):
   among the non-blank quasi values of the offending rows, take the value
   that is rarest in its column over the whole file (ties: quasi column
   order, then value) and blank it on the offending rows that hold it.
3. Rows still offending once nothing is left to blank (all quasi values
   blank and fewer than k such rows) are dropped.

Returns (rows in their input order, records altered, records dropped);
a record is altered when one of its quasi values changed and it was kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import polars as pl

QUASI = ("age_band", "sex", "race", "ethnicity")
RARE_RACE = "Other or unknown"
UNKNOWN_RACES = ("Unknown or not reported", "Unknown or Not Reported")


def age_band(age) -> str | None:
    """10-year band of an age in years: ``18-29``, ``30-39``, ..., ``80-89``, ``90+``; None under 18 or missing."""
    if age is None:
        return None
    a = int(age)
    if a < 18:
        return None
    if a >= 90:
        return "90+"
    if a < 30:
        return "18-29"
    lo = a // 10 * 10
    return f"{lo}-{lo + 9}"


def age_band_expr(col: str = "age") -> pl.Expr:
    """The polars expression of ``age_band`` over an integer column."""
    a = pl.col(col).cast(pl.Int64)
    lo = (a // 10 * 10).cast(pl.Utf8)
    hi = (a // 10 * 10 + 9).cast(pl.Utf8)
    return (
        pl.when(a.is_null() | (a < 18))
        .then(pl.lit(None, dtype=pl.Utf8))
        .when(a >= 90)
        .then(pl.lit("90+"))
        .when(a < 30)
        .then(pl.lit("18-29"))
        .otherwise(pl.concat_str([lo, pl.lit("-"), hi]))
        .alias("age_band")
    )


def _violations(records: list[list], k: int) -> list[int]:
    combos = Counter(tuple(r) for r in records)
    return [i for i, r in enumerate(records) if combos[tuple(r)] < k]


def k_anonymize(
    df: pl.DataFrame, quasi: Sequence[str] = QUASI, k: int = 5, race_col: str = "race"
) -> tuple[pl.DataFrame, int, int]:
    """Generalise / blank quasi-identifiers until every combination occurs >= k times.

    Returns (df, altered_records, dropped_records). Columns other than
    ``quasi`` are untouched; row order is kept (dropped rows removed).
    """
    quasi = list(quasi)
    if k <= 1 or df.height == 0:
        return df, 0, 0
    original = [list(r) for r in df.select(quasi).iter_rows()]
    records = [list(r) for r in original]

    if race_col in quasi:
        j = quasi.index(race_col)
        freq = Counter(r[j] for r in records)
        rare = {v for v, n in freq.items() if v is not None and n < k}
        if rare:
            merge = rare | set(UNKNOWN_RACES)
            for r in records:
                if r[j] in merge:
                    r[j] = RARE_RACE

    while True:
        bad = _violations(records, k)
        if not bad:
            break
        col_freq = [Counter(r[j] for r in records) for j in range(len(quasi))]
        cands = {(j, records[i][j]) for i in bad for j in range(len(quasi)) if records[i][j] is not None}
        if not cands:
            break
        j, value = min(cands, key=lambda jv: (col_freq[jv[0]][jv[1]], jv[0], str(jv[1])))
        for i in bad:
            if records[i][j] == value:
                records[i][j] = None

    bad = set(_violations(records, k))
    keep = [i for i in range(len(records)) if i not in bad]
    altered = sum(1 for i in keep if records[i] != original[i])
    out = df.with_row_index("__row").filter(pl.col("__row").is_in(keep)).drop("__row")

    def dtype(q):
        dt = df.schema[q]
        return pl.Utf8 if isinstance(dt, pl.Categorical | pl.Enum) or dt in (pl.Categorical, pl.Enum) else dt

    new_cols = {q: pl.Series(q, [records[i][j] for i in keep], dtype=dtype(q)) for j, q in enumerate(quasi)}
    out = out.with_columns(**new_cols)
    return out, altered, len(bad)


def check_k_anonymity(df: pl.DataFrame, quasi: Sequence[str] = QUASI, k: int = 5) -> int:
    """The number of rows in a combination of ``quasi`` occurring fewer than k times (0 = k-anonymous)."""
    if df.height == 0:
        return 0
    return int(df.group_by(list(quasi)).len().filter(pl.col("len") < k)["len"].sum())
