"""A deterministic .xlsx workbook of the extract's aggregate tables.

Same sheets -> same bytes: xlsxwriter writes its zip members with a fixed
1980-01-01 timestamp; the document properties are fixed here (created =
2000-01-01T00:00:00Z, no author, no company), sheets come in the dict's
order, cells in row order. Nulls (suppressed cells) are left empty.
Sheet names are cut to Excel's 31 characters with ``[]:*?/\\`` replaced.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal

import polars as pl
import xlsxwriter

FIXED_CREATED = dt.datetime(2000, 1, 1, 0, 0, 0)
_BAD = re.compile(r"[\[\]:*?/\\]")


def sheet_name(name: str, taken: set[str]) -> str:
    base = _BAD.sub("_", name)[:31] or "Sheet"
    out, i = base, 1
    while out.lower() in taken:
        i += 1
        suffix = f"~{i}"
        out = base[: 31 - len(suffix)] + suffix
    taken.add(out.lower())
    return out


def workbook_bytes(
    sheets: Mapping[str, pl.DataFrame], notes: Sequence[str] = (), title: str = "Alliance funder extract"
) -> bytes:
    """The workbook, one sheet per DataFrame (header row bold, frozen); ``notes`` adds a first ``Notes`` sheet."""
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(
        buf,
        {
            "in_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    wb.set_properties({"title": title, "author": "", "company": "", "created": FIXED_CREATED})
    wb.set_calc_mode("auto")
    bold = wb.add_format({"bold": True})
    taken: set[str] = set()
    if notes:
        ws = wb.add_worksheet(sheet_name("Notes", taken))
        for i, line in enumerate(notes):
            ws.write_string(i, 0, str(line))
        ws.set_column(0, 0, 100)
    for name, df in sheets.items():
        ws = wb.add_worksheet(sheet_name(name, taken))
        for j, col in enumerate(df.columns):
            ws.write_string(0, j, col, bold)
            ws.set_column(j, j, max(10, min(40, len(col) + 2)))
        for i, row in enumerate(df.iter_rows(), start=1):
            for j, v in enumerate(row):
                _write(ws, i, j, v)
        ws.freeze_panes(1, 0)
    wb.close()
    return buf.getvalue()


def _write(ws, i: int, j: int, v) -> None:
    if v is None:
        return
    if isinstance(v, bool):
        ws.write_boolean(i, j, v)
    elif isinstance(v, int | Decimal):
        ws.write_number(i, j, float(v) if isinstance(v, Decimal) else v)
    elif isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return
        ws.write_number(i, j, v)
    elif isinstance(v, dt.datetime | dt.date):
        ws.write_string(i, j, v.isoformat())
    elif isinstance(v, list | tuple):
        ws.write_string(i, j, "; ".join("" if x is None else str(x) for x in v))
    else:
        ws.write_string(i, j, str(v))
