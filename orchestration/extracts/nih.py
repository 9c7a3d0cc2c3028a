"""The NIH Inclusion Enrollment Report grid (CONTRACT section 4).

``nih_enrollment(participants)`` counts the participants it is given (the
caller passes consented participants minus scope-2 withdrawals) in the 63
cells of NIH's grid, with NIH's own labels, zeros included, in NIH's order.
``nih_with_totals`` adds the totals the report layout prints (per race, per
ethnicity x sex, grand total) as extra long-format rows; ``nih_grid_layout``
turns either form into NIH's table (rows = race, columns = ethnicity x sex,
plus totals).

Label mapping (warehouse -> NIH), case- and whitespace-insensitive:

* sex: ``Female`` -> ``Female``, ``Male`` -> ``Male``, anything else
  (``Unknown or not reported``, null, a label the study profile adds)
  -> ``Unknown/Not Reported``.
* ethnicity: ``Hispanic or Latino`` / ``Not Hispanic or Latino`` as is,
  anything else -> ``Unknown/Not Reported Ethnicity``.
* race: the five OMB categories as is, ``More than one race`` ->
  ``More than One Race``, anything else (``Unknown or not reported``, null,
  an unrecognised label) -> ``Unknown or Not Reported`` (NIH has no
  "Other" category).
"""

from __future__ import annotations

import polars as pl

ETHNICITIES = ("Not Hispanic or Latino", "Hispanic or Latino", "Unknown/Not Reported Ethnicity")
RACES = (
    "American Indian or Alaska Native",
    "Asian",
    "Native Hawaiian or Other Pacific Islander",
    "Black or African American",
    "White",
    "More than One Race",
    "Unknown or Not Reported",
)
SEXES = ("Female", "Male", "Unknown/Not Reported")
TOTAL = "Total"

_SEX_MAP = {"female": "Female", "male": "Male"}
_ETH_MAP = {"hispanic or latino": "Hispanic or Latino", "not hispanic or latino": "Not Hispanic or Latino"}
_RACE_MAP = {r.lower(): r for r in RACES[:6]}

GRID_SCHEMA = {"ethnicity": pl.Utf8, "race": pl.Utf8, "sex": pl.Utf8, "n": pl.Int64}


def _norm(value) -> str:
    return " ".join(str(value).split()).lower() if value is not None else ""


def nih_sex(value) -> str:
    return _SEX_MAP.get(_norm(value), SEXES[2])


def nih_ethnicity(value) -> str:
    return _ETH_MAP.get(_norm(value), ETHNICITIES[2])


def nih_race(value) -> str:
    return _RACE_MAP.get(_norm(value), RACES[6])


def nih_cells() -> list[tuple[str, str, str]]:
    """The 63 (ethnicity, race, sex) cells in NIH's order (ethnicity, then race, then sex)."""
    return [(e, r, s) for e in ETHNICITIES for r in RACES for s in SEXES]


def nih_enrollment(participants: pl.DataFrame) -> pl.DataFrame:
    """The 63-row grid ``ethnicity, race, sex, n`` over ``participants`` (one row each).

    Needs columns ``sex``, ``ethnicity``, ``race`` (missing columns count as unknown).
    """
    counts: dict[tuple[str, str, str], int] = dict.fromkeys(nih_cells(), 0)
    cols = [c if c in participants.columns else None for c in ("ethnicity", "race", "sex")]
    n_rows = participants.height
    values = [participants[c].to_list() if c else [None] * n_rows for c in cols]
    for eth, race, sex in zip(*values, strict=True):
        counts[(nih_ethnicity(eth), nih_race(race), nih_sex(sex))] += 1
    rows = [{"ethnicity": e, "race": r, "sex": s, "n": counts[(e, r, s)]} for (e, r, s) in nih_cells()]
    return pl.DataFrame(rows, schema=GRID_SCHEMA)


def nih_total_cells() -> list[tuple[str, str, str]]:
    """The total cells of NIH's layout, in long form: per race (ethnicity = sex = ``Total``),
    per ethnicity x sex (race = ``Total``), and the grand total (all ``Total``)."""
    return (
        [(TOTAL, r, TOTAL) for r in RACES]
        + [(e, TOTAL, s) for e in ETHNICITIES for s in SEXES]
        + [(TOTAL, TOTAL, TOTAL)]
    )


def _cell_map(grid: pl.DataFrame) -> dict[tuple[str, str, str], int | None]:
    return {(e, r, s): n for e, r, s, n in grid.select("ethnicity", "race", "sex", "n").iter_rows()}


def nih_with_totals(grid: pl.DataFrame) -> pl.DataFrame:
    """The 63 cells followed by the 17 total cells of NIH's layout (see ``nih_total_cells``).

    Totals are computed from the cells; a total over a missing (null) cell is null.
    """
    cells = _cell_map(grid)
    missing = [c for c in nih_cells() if c not in cells]
    if missing:
        raise ValueError(f"grid lacks {len(missing)} of the 63 NIH cells")

    def total(keys):
        vals = [cells[k] for k in keys]
        return None if any(v is None for v in vals) else sum(vals)

    rows = [{"ethnicity": e, "race": r, "sex": s, "n": cells[(e, r, s)]} for (e, r, s) in nih_cells()]
    for e, r, s in nih_total_cells():
        keys = [
            c
            for c in nih_cells()
            if (e == TOTAL or c[0] == e) and (r == TOTAL or c[1] == r) and (s == TOTAL or c[2] == s)
        ]
        rows.append({"ethnicity": e, "race": r, "sex": s, "n": total(keys)})
    return pl.DataFrame(rows, schema=GRID_SCHEMA)


def nih_cells_only(grid: pl.DataFrame) -> pl.DataFrame:
    """The 63 cell rows of a grid (total rows dropped), in NIH's order."""
    cells = _cell_map(grid)
    return pl.DataFrame(
        [{"ethnicity": e, "race": r, "sex": s, "n": cells[(e, r, s)]} for (e, r, s) in nih_cells()],
        schema=GRID_SCHEMA,
    )


def nih_grid_layout(grid: pl.DataFrame) -> list[list]:
    """NIH's layout of the grid as a list of rows (two header rows, 7 race rows, a Total row).

    Columns: ``Racial Categories``, then Female / Male / Unknown/Not Reported
    under each of the three ethnic categories, then ``Total``. A grid holding
    total rows (``nih_with_totals`` or a suppressed one) has its totals used
    as given (null stays None); otherwise totals are computed from the cells.
    None marks a suppressed (unknown) value.
    """
    cells = _cell_map(grid)
    if not all(k in cells for k in nih_total_cells()):
        cells = _cell_map(nih_with_totals(grid))
    header1 = ["Racial Categories"]
    for e in ETHNICITIES:
        header1 += [e, "", ""]
    header1.append(TOTAL)
    header2 = [""] + list(SEXES) * len(ETHNICITIES) + [""]
    body = []
    for r in RACES + (TOTAL,):
        row: list = [r]
        for e in ETHNICITIES:
            for s in SEXES:
                row.append(cells[(e, r, s)])
        row.append(cells[(TOTAL, r, TOTAL)])
        body.append(row)
    return [header1, header2, *body]
