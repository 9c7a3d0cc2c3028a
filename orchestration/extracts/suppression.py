"""Public-audience small-cell suppression with complementary suppression (CONTRACT section 2).

Model
-----
An extract is a set of ``CountTable`` s. Each has key columns (which identify
a row), count columns (subject to suppression) and derived columns (rates,
means, estimates), each declared with the count columns of the same row it
is computed from. A *cell* is (table, row key, count column).

A ``Relation`` declares what a reader knows: ``total + sum(extra) = sum(parts) + offset``
(a row ``All`` = sum of the arms, a CONSORT box = sum of the boxes under it,
an NIH total = sum of its cells, the same number in two tables: ``a = b``;
``extra`` when two sums of cells are equal, as Table 1's levels and the NIH grid).
The offset is a known constant; protection depends only on the structure.

Algorithm (deterministic)
-------------------------
1. Primary suppression: every count ``c`` with ``1 <= c <= min_cell``.
2. Line rule, to a fixed point: every relation (line) holding exactly one
   suppressed cell gets a second one, the smallest non-zero unsuppressed
   cell of the line (ties: the cell that also completes another such line,
   then declaration order). Zeros are never used as complements, so every
   suppressed cell is >= 1 (a line whose suppressed cells were all zeros
   would give them away). This also covers "a total that equals a single
   suppressed cell is itself suppressed": when the other parts are zeros,
   the total is the only non-zero candidate.
3. Audit: the published values and all declared relations form a linear
   system in the suppressed cells; with exact rational Gauss-Jordan
   elimination, a suppressed cell is *recoverable* when it is a pivot
   variable whose reduced row has no free variable (its value is the same
   in every solution). For the first recoverable cell, the smallest
   non-zero unsuppressed cell of its relations (else of the relations
   connected to them) is suppressed, and the loop goes back to 2 until no
   suppressed cell is recoverable.
4. Derived columns are nulled on every row where any of their source
   counts is suppressed.

Suppressed cells are written as null. ``counts`` gives, per table, the
cells that suppression emptied (count and derived cells that had a value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import polars as pl

from . import nih as nihmod
from .arms import ALL
from .tables import (
    ENGAGEMENT_COUNTS,
    ENGAGEMENT_DERIVED,
    MULTI_VALUED,
    OVERALL,
    PARTICIPANTS,
    RETENTION_COUNTS,
    RETENTION_DERIVED,
    TABLE1_DERIVED,
    TABLE1_SCHEMA,
)

DEFAULT_MIN_CELL = 10


@dataclass(frozen=True)
class Cell:
    table: str
    key: tuple
    column: str


@dataclass(frozen=True)
class Relation:
    """``total + sum(extra) = sum(parts) + offset``, known to the reader."""

    total: Cell
    parts: tuple[Cell, ...]
    offset: int = 0
    name: str = ""
    extra: tuple[Cell, ...] = ()

    @property
    def cells(self) -> tuple[Cell, ...]:
        return (self.total, *self.extra, *self.parts)

    def terms(self) -> tuple[tuple[Cell, int], ...]:
        """Each cell with its coefficient in ``total + sum(extra) - sum(parts) = offset``."""
        return ((self.total, 1), *((e, 1) for e in self.extra), *((p, -1) for p in self.parts))


@dataclass(frozen=True)
class CountTable:
    name: str
    df: pl.DataFrame
    keys: tuple[str, ...]
    counts: tuple[str, ...]
    derived: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def key_of(self, row: Mapping) -> tuple:
        return tuple(row[k] for k in self.keys)

    def cell(self, key: tuple | str, column: str) -> Cell:
        return Cell(self.name, key if isinstance(key, tuple) else (key,), column)


# --------------------------------------------------------------------- audit


def _rref(rows: list[dict[int, Fraction]], nvars: int) -> tuple[list[dict[int, Fraction]], list[int]]:
    """Gauss-Jordan elimination over the rationals of sparse rows {var: coef} (constants dropped)."""
    rows = [dict(r) for r in rows if r]
    pivots: list[int] = []
    reduced: list[dict[int, Fraction]] = []
    for col in range(nvars):
        pick = next((i for i, r in enumerate(rows) if r.get(col)), None)
        if pick is None:
            continue
        prow = rows.pop(pick)
        inv = 1 / prow[col]
        prow = {k: v * inv for k, v in prow.items()}
        for other in [*rows, *reduced]:
            f = other.get(col)
            if f:
                for k, v in prow.items():
                    nv = other.get(k, 0) - f * v
                    if nv:
                        other[k] = nv
                    else:
                        other.pop(k, None)
        reduced.append(prow)
        pivots.append(col)
        rows = [r for r in rows if r]
    return reduced, pivots


def recoverable_cells(suppressed: Sequence[Cell], relations: Iterable[Relation]) -> list[Cell]:
    """The suppressed cells whose value is fixed by the published cells and the relations.

    Each relation is a linear equation; published cells are constants. A
    variable is determined iff, in the reduced row echelon form, it is a
    pivot whose row has no free variable.
    """
    index = {c: i for i, c in enumerate(suppressed)}
    rows = []
    for rel in relations:
        row: dict[int, Fraction] = {}
        for cell, coef in rel.terms():
            if cell in index:
                j = index[cell]
                row[j] = row.get(j, 0) + Fraction(coef)
                if row[j] == 0:
                    del row[j]
        if row:
            rows.append(row)
    reduced, pivots = _rref(rows, len(suppressed))
    fixed = []
    for prow, p in zip(reduced, pivots, strict=True):
        if all(k == p for k in prow):
            fixed.append(suppressed[p])
    order = {c: i for i, c in enumerate(suppressed)}
    return sorted(fixed, key=order.__getitem__)


# --------------------------------------------------------------- suppression


def _collect_cells(tables: Sequence[CountTable]) -> tuple[dict[Cell, int], dict[Cell, int]]:
    values: dict[Cell, int] = {}
    order: dict[Cell, int] = {}
    for t in tables:
        for row in t.df.iter_rows(named=True):
            key = t.key_of(row)
            for col in t.counts:
                cell = Cell(t.name, key, col)
                if cell in values:
                    raise ValueError(f"duplicate row key {key!r} in table {t.name}")
                v = row[col]
                values[cell] = None if v is None else int(v)
                order[cell] = len(order)
    return values, order


def suppress(
    tables: Sequence[CountTable], relations: Sequence[Relation] = (), min_cell: int = DEFAULT_MIN_CELL
) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """Suppress the extract's count tables together; returns (tables by name, cells emptied per table).

    Raises ValueError when a relation names a cell no table holds.
    """
    values, order = _collect_cells(tables)
    rels = list(relations)
    for rel in rels:
        for c in rel.cells:
            if c not in values:
                raise ValueError(f"relation {rel.name or rel} names an unknown cell {c}")
    # null counts are not published cells; they take no part in relations as unknowns
    suppressed: set[Cell] = {c for c, v in values.items() if v is not None and 1 <= v <= min_cell}
    rels_of: dict[Cell, list[int]] = {}
    for i, rel in enumerate(rels):
        for c in rel.cells:
            rels_of.setdefault(c, []).append(i)

    def lonely(i: int) -> bool:
        return sum(c in suppressed for c in rels[i].cells) == 1

    def candidate_key(c: Cell):
        completes = sum(1 for j in rels_of.get(c, ()) if lonely(j))
        return (values[c], -completes, order[c])

    def pick_from(cells: Iterable[Cell]) -> Cell | None:
        cands = {c for c in cells if c not in suppressed and values[c] is not None and values[c] > 0}
        return min(cands, key=candidate_key) if cands else None

    while True:
        changed = True
        while changed:
            changed = False
            for i in range(len(rels)):
                if lonely(i):
                    c = pick_from(rels[i].cells)
                    if c is not None:
                        suppressed.add(c)
                        changed = True
        ordered = sorted(suppressed, key=order.__getitem__)
        fixed = recoverable_cells(ordered, rels)
        if not fixed:
            break
        target = fixed[0]
        c = pick_from(x for j in rels_of.get(target, ()) for x in rels[j].cells)
        if c is None:
            # widen to everything connected to the target through relations
            seen, frontier = {target}, [target]
            while frontier:
                cur = frontier.pop()
                for j in rels_of.get(cur, ()):
                    for x in rels[j].cells:
                        if x not in seen:
                            seen.add(x)
                            frontier.append(x)
            c = pick_from(seen)
        if c is None:  # pragma: no cover - everything connected is already suppressed
            raise RuntimeError(f"cannot protect {target}")
        suppressed.add(c)

    out: dict[str, pl.DataFrame] = {}
    counts: dict[str, int] = {}
    for t in tables:
        df, n = _apply(t, suppressed)
        out[t.name] = df
        counts[t.name] = n
    return out, counts


def _apply(t: CountTable, suppressed: set[Cell]) -> tuple[pl.DataFrame, int]:
    emptied = 0
    cols = {c: t.df[c].to_list() for c in t.df.columns}
    for i, row in enumerate(t.df.iter_rows(named=True)):
        key = t.key_of(row)
        hidden = {col for col in t.counts if Cell(t.name, key, col) in suppressed}
        for col in hidden:
            if cols[col][i] is not None:
                emptied += 1
            cols[col][i] = None
        for dcol, sources in t.derived.items():
            if hidden.intersection(sources):
                if cols[dcol][i] is not None:
                    emptied += 1
                cols[dcol][i] = None
    df = pl.DataFrame({c: pl.Series(c, cols[c], dtype=t.df.schema[c]) for c in t.df.columns})
    return df, emptied


# ------------------------------------------------------- the extract's tables

CONSORT = "consort_flow"
ENGAGEMENT = "engagement_by_arm"
RETENTION = "retention_by_arm"
NIH = "nih_inclusion_enrollment"
NIH_TOTALS = "nih_totals"
TABLE1 = "table1"
TABLE1_KEYS = ("stratum", "characteristic", "level")
NIH_KEYS = ("ethnicity", "race", "sex")


def arm_total_relations(
    table: CountTable, columns: Sequence[str], arms: Sequence[str], total=ALL, key_col="arm"
) -> list[Relation]:
    """``All`` row = sum of the arm rows, per count column (table keyed by ``arm`` alone).

    None in a study without arms (``arms`` empty): its one row ``All`` is the sum of nothing published.
    """
    if table.keys != (key_col,):
        raise ValueError(f"{table.name} must be keyed by {key_col} alone")
    present = set(table.df[key_col].to_list())
    parts = [a for a in arms if a in present]
    if total not in present or not parts:
        return []
    return [
        Relation(
            table.cell(total, c),
            tuple(table.cell(a, c) for a in parts),
            name=f"{table.name}.{c}: {total}=sum(arms)",
        )
        for c in columns
    ]


def consort_key(stage: str, arm: str, reason: str | None = None) -> tuple:
    return (stage, arm, reason)


def consort_relations(
    consort: CountTable, arms: Sequence[str], by_allocation: Iterable[str] = ()
) -> list[Relation]:
    """assessed = sum(excluded) + randomized; randomized = sum(allocated); for every arm whose
    intervention is given by allocation, received_intervention = allocated (true by definition).

    A study without arms (no ``randomized`` row): assessed = sum(excluded) + enrolled.
    """
    keys = set(consort.df.select(consort.keys).iter_rows())
    rels = []
    assessed = ("assessed", ALL, None)
    randomized = ("randomized", ALL, None)
    top = randomized if randomized in keys else ("enrolled", ALL, None)
    excluded = sorted((k for k in keys if k[0] == "excluded"), key=lambda k: str(k[2]))
    if assessed in keys and top in keys:
        rels.append(
            Relation(
                consort.cell(assessed, "n"),
                tuple(consort.cell(k, "n") for k in [*excluded, top]),
                name=f"assessed = excluded + {top[0]}",
            )
        )
    allocated = [("allocated", a, None) for a in arms if ("allocated", a, None) in keys]
    if randomized in keys and allocated:
        rels.append(
            Relation(
                consort.cell(randomized, "n"),
                tuple(consort.cell(k, "n") for k in allocated),
                name="randomized = sum(allocated)",
            )
        )
    given = set(by_allocation)
    for a in arms:
        alloc, recv = ("allocated", a, None), ("received_intervention", a, None)
        if a in given and alloc in keys and recv in keys:
            rels.append(
                Relation(consort.cell(alloc, "n"), (consort.cell(recv, "n"),), name=f"{a}: received = allocated")
            )
    return rels


def nih_relations(nih: CountTable) -> list[Relation]:
    """The totals of NIH's layout: each race total, each ethnicity x sex total,
    and the grand total as the sum of race totals and of column totals."""
    T = nihmod.TOTAL

    def c(e, r, s):
        return nih.cell((e, r, s), "n")

    rels = []
    for r in nihmod.RACES:
        rels.append(
            Relation(
                c(T, r, T),
                tuple(c(e, r, s) for e in nihmod.ETHNICITIES for s in nihmod.SEXES),
                name=f"NIH total {r}",
            )
        )
    for e in nihmod.ETHNICITIES:
        for s in nihmod.SEXES:
            rels.append(
                Relation(c(e, T, s), tuple(c(e, r, s) for r in nihmod.RACES), name=f"NIH total {e}/{s}")
            )
    rels.append(Relation(c(T, T, T), tuple(c(T, r, T) for r in nihmod.RACES), name="NIH grand total by race"))
    rels.append(
        Relation(
            c(T, T, T),
            tuple(c(e, T, s) for e in nihmod.ETHNICITIES for s in nihmod.SEXES),
            name="NIH grand total by ethnicity x sex",
        )
    )
    return rels


def table1_relations(t1: CountTable, arms: Sequence[str]) -> list[Relation]:
    """Within Table 1 (the long form of ``tables.table1_by_arm``): in each stratum, participants = the sum
    of the levels (``Missing`` included) of every single-valued categorical characteristic; and, in a
    randomized study, every row's Overall = the sum of its arms."""
    keys = [k for k in t1.df.select(TABLE1_KEYS).iter_rows()]
    strata = list(dict.fromkeys(k[0] for k in keys))
    rels = []
    for stratum in strata:
        rows = [k for k in keys if k[0] == stratum and k[2] is not None and k[1] not in MULTI_VALUED]
        total = (stratum, PARTICIPANTS, None)
        for c in dict.fromkeys(k[1] for k in rows):
            rels.append(Relation(t1.cell(total, "n"), tuple(t1.cell(k, "n") for k in rows if k[1] == c),
                                 name=f"table1 {stratum}: participants = sum({c})"))
    present = set(keys)
    for _, c, level in (k for k in keys if k[0] == OVERALL and arms):
        parts = [(a, c, level) for a in arms if (a, c, level) in present]
        if parts:
            rels.append(Relation(t1.cell((OVERALL, c, level), "n"), tuple(t1.cell(k, "n") for k in parts),
                                 name=f"table1 {c}/{level}: Overall = sum(arms)"))
    return rels


def _table1_nih_relations(t1: CountTable, nih: CountTable) -> list[Relation]:
    """A study without arms shows the enrolled in Table 1: the NIH grid's population. Its sex, ethnicity
    and race levels (``Missing`` as unknown) add up to the grid's sums of the same NIH category."""
    T = nihmod.TOTAL
    maps = {
        "race": (nihmod.nih_race, lambda v: [(T, v, T)]),
        "sex": (nihmod.nih_sex, lambda v: [(e, T, v) for e in nihmod.ETHNICITIES]),
        "ethnicity": (nihmod.nih_ethnicity, lambda v: [(v, r, s) for r in nihmod.RACES for s in nihmod.SEXES]),
    }
    rels = []
    keys = [k for k in t1.df.select(TABLE1_KEYS).iter_rows() if k[0] == OVERALL and k[1] in maps]
    for concept, (to_nih, grid_cells) in maps.items():
        groups: dict[str, list[tuple]] = {}
        for k in (k for k in keys if k[1] == concept and k[2] is not None):
            groups.setdefault(to_nih(None if k[2] == "Missing" else k[2]), []).append(k)
        for category, levels in groups.items():
            first, *rest = (t1.cell(k, "n") for k in levels)
            rels.append(Relation(first, tuple(nih.cell(g, "n") for g in grid_cells(category)),
                                 extra=tuple(rest), name=f"table1 {concept} {category} = NIH"))
    return rels


def _cross_relations(consort: CountTable, eng: CountTable, nih: CountTable | None, arms: Sequence[str]) -> list[Relation]:
    """The relations between consort_flow, engagement_by_arm and the NIH grid (see ``extract_tables``)."""
    ckeys = set(consort.df.select(consort.keys).iter_rows())
    ekeys = set(eng.df["arm"].to_list())
    rels = []
    for a in arms:
        if ("analysed", a, None) in ckeys and a in ekeys:
            rels.append(
                Relation(
                    eng.cell(a, "randomized"),
                    (consort.cell(("analysed", a, None), "n"),),
                    name=f"randomized({a}) = analysed({a})",
                )
            )
    enrolled = ("enrolled", ALL, None)
    if not arms and enrolled in ckeys and ALL in ekeys:
        rels.append(
            Relation(eng.cell(ALL, "randomized"), (consort.cell(enrolled, "n"),), name="enrolled(All) = enrolled")
        )
    if nih is None or ALL not in ekeys:
        return rels
    T = nihmod.TOTAL
    if ("excluded", ALL, "Not randomized") in ckeys:
        rels.append(
            Relation(
                nih.cell((T, T, T), "n"),
                (eng.cell(ALL, "randomized"), consort.cell(("excluded", ALL, "Not randomized"), "n")),
                name="NIH total = randomized(All) + not randomized",
            )
        )
    elif not arms:
        rels.append(Relation(nih.cell((T, T, T), "n"), (eng.cell(ALL, "randomized"),), name="NIH total = enrolled"))
    return rels


def _table1_cross_relations(
    t1: CountTable, eng: CountTable | None, nih: CountTable | None, arms: Sequence[str]
) -> list[Relation]:
    """Table 1's participants per stratum = engagement_by_arm's randomized (the randomized, or without arms
    the enrolled, minus scope-2 withdrawals, in both); without arms, its levels against the NIH grid."""
    rels = []
    keys = set(t1.df.select(TABLE1_KEYS).iter_rows())
    ekeys = set(eng.df["arm"].to_list()) if eng is not None else set()
    for stratum, arm in ((OVERALL, ALL), *((a, a) for a in arms)):
        if (stratum, PARTICIPANTS, None) in keys and arm in ekeys:
            rels.append(Relation(t1.cell((stratum, PARTICIPANTS, None), "n"), (eng.cell(arm, "randomized"),),
                                 name=f"table1 participants({stratum}) = randomized({arm})"))
    if nih is not None and not arms:
        rels += _table1_nih_relations(t1, nih)
    return rels


def extract_tables(
    consort_flow: pl.DataFrame | None = None,
    engagement_by_arm: pl.DataFrame | None = None,
    retention_by_arm: pl.DataFrame | None = None,
    nih_grid: pl.DataFrame | None = None,
    *,
    arms: Sequence[str],
    by_allocation: Iterable[str] = (),
    table1: pl.DataFrame | None = None,
) -> tuple[list[CountTable], list[Relation]]:
    """The extract's count tables and every relation between them that a reader knows.

    ``arms`` are the study's arm labels in the profile's order (empty: a study
    without arms); ``by_allocation`` the arms whose intervention is given by
    allocation. Within tables: CONSORT arithmetic, ``All`` = sum of arms, NIH
    totals. Across tables:
    * engagement_by_arm.randomized(arm) = consort_flow analysed(arm) (both are
      the randomized minus scope-2 withdrawals);
    * NIH grand total = engagement_by_arm.randomized(All) + consort_flow
      excluded/Not randomized (consented participants minus scope-2; exact
      unless a consented, non-randomized participant withdrew all data, and
      declared anyway: a reader may assume it).
    * A study without arms: NIH grand total = engagement_by_arm.randomized(All)
      (both the enrolled minus scope-2 withdrawals), and that = consort_flow
      enrolled (exact unless someone withdrew all data; a reader may assume it).
    * ``table1`` (the long form of ``tables.table1_by_arm``, as the report
      shows it): its own sums (``table1_relations``), its participants per
      stratum = engagement_by_arm.randomized, and in a study without arms its
      sex, ethnicity and race levels = the NIH grid's sums.
    """
    tables: list[CountTable] = []
    rels: list[Relation] = []
    consort = eng = nih = None
    if consort_flow is not None:
        df = consort_flow.select("stage", "arm", "n", "reason")
        consort = CountTable(CONSORT, df, ("stage", "arm", "reason"), ("n",))
        tables.append(consort)
        rels += consort_relations(consort, arms, by_allocation)
    if engagement_by_arm is not None:
        eng = CountTable(ENGAGEMENT, engagement_by_arm, ("arm",), ENGAGEMENT_COUNTS, ENGAGEMENT_DERIVED)
        tables.append(eng)
        rels += arm_total_relations(eng, ENGAGEMENT_COUNTS, arms)
    if retention_by_arm is not None:
        ret = CountTable(RETENTION, retention_by_arm, ("arm",), RETENTION_COUNTS, RETENTION_DERIVED)
        tables.append(ret)
        rels += arm_total_relations(ret, RETENTION_COUNTS, arms)
    if nih_grid is not None:
        full = nihmod.nih_with_totals(nihmod.nih_cells_only(nih_grid))
        nih = CountTable(NIH, full, NIH_KEYS, ("n",))
        tables.append(nih)
        rels += nih_relations(nih)
    if consort is not None and eng is not None:
        rels += _cross_relations(consort, eng, nih, arms)
    if table1 is not None:
        t1 = CountTable(TABLE1, table1.select(list(TABLE1_SCHEMA)), TABLE1_KEYS, ("n",), TABLE1_DERIVED)
        tables.append(t1)
        rels += table1_relations(t1, arms)
        rels += _table1_cross_relations(t1, eng, nih, arms)
    return tables, rels


def suppress_extract(
    consort_flow: pl.DataFrame | None = None,
    engagement_by_arm: pl.DataFrame | None = None,
    retention_by_arm: pl.DataFrame | None = None,
    nih_grid: pl.DataFrame | None = None,
    min_cell: int = DEFAULT_MIN_CELL,
    *,
    arms: Sequence[str],
    by_allocation: Iterable[str] = (),
    table1: pl.DataFrame | None = None,
) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """Suppress the public extract's aggregate tables together (``arms``, ``by_allocation``, ``table1``:
    see ``extract_tables``).

    Returns tables keyed by file stem: ``consort_flow`` (columns stage, arm,
    n, reason, in the input's row order), ``engagement_by_arm``,
    ``retention_by_arm``, ``nih_inclusion_enrollment`` (the 63 cells) and
    ``nih_totals`` (the 17 totals of NIH's layout, for the report and the
    workbook; give ``nih_cells_only``/``nih_grid_layout`` the concatenation);
    and the cells emptied per file (``nih_totals`` counted separately).
    """
    tables, rels = extract_tables(
        consort_flow, engagement_by_arm, retention_by_arm, nih_grid, arms=arms, by_allocation=by_allocation,
        table1=table1,
    )
    out, counts = suppress(tables, rels, min_cell)
    if NIH in out:
        full = out[NIH]
        total_mask = (pl.col("ethnicity") == nihmod.TOTAL) | (pl.col("race") == nihmod.TOTAL)
        out[NIH] = full.filter(~total_mask)
        out[NIH_TOTALS] = full.filter(total_mask)
        counts[NIH_TOTALS] = out[NIH_TOTALS]["n"].null_count()
        counts[NIH] = out[NIH]["n"].null_count()
    return out, counts
