"""The extract's human-readable report: one self-contained HTML file.

Inline CSS and inline SVG only: no script, no external font, image, style
sheet or link. Deterministic: the text depends only on the context (the
as-of is the only date in it), numbers are formatted with fixed decimals.

Sections, each a ``<section>`` with the contract's ``id``: ``summary`` (study
name, audience, as-of in words, data cut, event-store position, the study's
design: its arms from the profile, or that it is not randomized; the
disclosure rule; a glossary), ``consort`` (the CONSORT flow diagram; a study
without arms stops at Enrolled), ``table1`` (baseline characteristics of the
randomized, or without arms the enrolled, by arm and overall), ``retention``
(Kaplan-Meier by arm, or ``All`` without arms, and the retention table),
``alliance`` (mean client alliance by session and arm), ``nih`` (the NIH
Inclusion Enrollment grid in NIH's layout with totals) and ``engagement``.
Suppressed or non-estimable values are shown as an em dash with a footnote.

Public audience: the full Kaplan-Meier step curves would show each
discharge (small counts), so the retention chart plots only the published
(suppressed) estimates at 30, 60 and 90 days with their confidence limits;
an arm whose estimates are suppressed is left out. The funder audience gets
the step curves (``km_curves``) with a legend and the 30/60/90-day marks.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from . import nih as nihmod
from .arms import StudyArms
from .tables import KM_DAYS, OVERALL, PARTICIPANTS

DASH = "\u2014"


@dataclass
class ReportContext:
    as_of: str
    audience: str
    consort_flow: pl.DataFrame
    engagement_by_arm: pl.DataFrame
    retention_by_arm: pl.DataFrame
    nih_grid: pl.DataFrame
    arms: StudyArms
    km_curves: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    alliance_by_session: pl.DataFrame | None = None
    min_cell: int = 10
    suppressed_counts: Mapping[str, int] = field(default_factory=dict)
    title: str | None = None  # default: "<study name> — <audience> extract"
    code_version: str | None = None
    event_store_position: str | int | None = None
    study_name: str | None = None  # the study profile's name
    as_of_words: str | None = None  # the as-of in words in site time (``moment_words``)
    table1: pl.DataFrame | None = None  # ``tables.table1_by_arm`` (suppressed for the public audience)


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def date_words(d) -> str:
    """A date as the report writes it: ``31 December 2025`` (month names fixed, not the locale's)."""
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def moment_words(ts) -> str:
    """A zoned moment in words: ``31 December 2025, 23:59:59 (UTC-05:00)``."""
    off = ts.strftime("%z")
    return f"{date_words(ts)}, {ts:%H:%M:%S} (UTC{off[:3]}:{off[3:]})"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(v, places: int | None = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return DASH
    if isinstance(v, bool):
        return "Yes" if v else "No"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if places is None:
            return str(int(v)) if v == int(v) else repr(v)
        return f"{v:.{places}f}"
    return _e(v)


def _f(x: float) -> str:
    """Fixed formatting of an SVG coordinate."""
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


# ------------------------------------------------------------------ CONSORT


def _consort_n(df: pl.DataFrame, stage: str, arm: str = "All", reason=None):
    f = df.filter((pl.col("stage") == stage) & (pl.col("arm") == arm))
    if reason is not None:
        f = f.filter(pl.col("reason") == reason)
    return None if f.height == 0 else f["n"][0]


def _box(x, y, w, h, lines: Sequence[str], cls: str = "box") -> str:
    out = [f'<rect class="{cls}" x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" rx="4"/>']
    for i, line in enumerate(lines):
        weight = ' font-weight="600"' if i == 0 else ""
        out.append(
            f'<text x="{_f(x + 8)}" y="{_f(y + 18 + 16 * i)}" font-size="12"{weight}>{_e(line)}</text>'
        )
    return "\n".join(out)


def _arrow(x1, y1, x2, y2) -> str:
    return f'<line class="arrow" x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" marker-end="url(#arrowhead)"/>'


def _n_text(v) -> str:
    return f"n = {_num(v)}"


_ARROWHEAD = (
    '<defs><marker id="arrowhead" markerWidth="10" markerHeight="7" refX="9" refY="3.5" orient="auto">'
    '<polygon points="0 0, 10 3.5, 0 7" fill="#333"/></marker></defs>'
)


def _consort_enrollment(consort: pl.DataFrame, width: float, stage: str, title: str) -> tuple[list[str], float]:
    """Assessed, Excluded (by reason) beside the arrow, and the box of ``stage`` under them
    (``randomized``, or ``enrolled`` in a study without arms); returns the parts and that box's bottom."""
    assessed = _consort_n(consort, "assessed")
    below = _consort_n(consort, stage)
    excl = consort.filter(pl.col("stage") == "excluded")
    excl_lines = [
        f"{r} ({_n_text(n)})" for r, n in zip(excl["reason"].to_list(), excl["n"].to_list(), strict=True)
    ]
    if assessed is not None and below is not None:
        excl_total = assessed - below
    elif excl.height and excl["n"].null_count() == 0:
        excl_total = int(excl["n"].sum())
    else:
        excl_total = None
    parts = [_ARROWHEAD]
    cx = width / 2
    top_w, top_h = 300, 44
    parts.append(_box(cx - top_w / 2, 10, top_w, top_h, ["Assessed for eligibility", _n_text(assessed)]))
    ex_h = 28 + 16 * max(1, len(excl_lines))
    ex_x, ex_y = cx + 60, 74
    parts.append(
        _box(ex_x, ex_y, width - ex_x - 10, ex_h, [f"Excluded ({_n_text(excl_total)})", *excl_lines])
    )
    below_y = ex_y + ex_h + 30
    parts.append(
        f'<line class="arrow" x1="{_f(cx)}" y1="{_f(10 + top_h)}" x2="{_f(cx)}" y2="{_f(below_y)}" '
        'marker-end="url(#arrowhead)"/>'
    )
    parts.append(_arrow(cx, ex_y + ex_h / 2, ex_x, ex_y + ex_h / 2))
    parts.append(_box(cx - top_w / 2, below_y, top_w, top_h, [title, _n_text(below)]))
    return parts, below_y + top_h


def _consort_arm(consort: pl.DataFrame, arm: str, c: float, colw: float, branch_y: float) -> tuple[list[str], float]:
    """One arm's column: Allocated, Received intervention, Follow-up, Analysed; returns the parts and the bottom."""
    x, bh = c - colw / 2, 44
    y_stages = [branch_y + 30, branch_y + 30 + bh + 30, branch_y + 30 + 2 * (bh + 30), 0.0]
    y_stages[3] = y_stages[2] + 60 + 30
    lost = _consort_n(consort, "lost_to_followup", arm)
    withdrew = _consort_n(consort, "withdrew", arm)
    follow_up = ["Follow-up", f"Lost to follow-up ({_n_text(lost)})", f"Withdrew ({_n_text(withdrew)})"]
    return [
        _arrow(c, branch_y, c, y_stages[0]),
        _box(x, y_stages[0], colw, bh, [f"Allocated to {arm}", _n_text(_consort_n(consort, "allocated", arm))],
             "box arm"),
        _arrow(c, y_stages[0] + bh, c, y_stages[1]),
        _box(x, y_stages[1], colw, bh,
             ["Received intervention", _n_text(_consort_n(consort, "received_intervention", arm))]),
        _arrow(c, y_stages[1] + bh, c, y_stages[2]),
        _box(x, y_stages[2], colw, 60, follow_up),
        _arrow(c, y_stages[2] + 60, c, y_stages[3]),
        _box(x, y_stages[3], colw, bh, ["Analysed", _n_text(_consort_n(consort, "analysed", arm))]),
    ], y_stages[3] + bh


def consort_svg(consort: pl.DataFrame, arms: Sequence[str]) -> str:
    """The CONSORT flow diagram as an SVG element: Enrollment, then Allocation, Follow-up and Analysis per
    arm (the profile's order); a study without arms (``arms`` empty) stops at Enrolled."""
    colw, gap = 270, 30
    width = max(900, len(arms) * colw + (len(arms) - 1) * gap + 20)
    cx = width / 2
    if not arms:
        parts, bottom = _consort_enrollment(consort, width, "enrolled", "Enrolled")
    else:
        parts, bottom = _consort_enrollment(consort, width, "randomized", "Randomized")
        branch_y = bottom + 20
        x0 = (width - (len(arms) * colw + (len(arms) - 1) * gap)) / 2
        centers = [x0 + i * (colw + gap) + colw / 2 for i in range(len(arms))]
        parts.append(f'<line class="arrow" x1="{_f(cx)}" y1="{_f(bottom)}" x2="{_f(cx)}" y2="{_f(branch_y)}"/>')
        parts.append(
            f'<line class="arrow" x1="{_f(centers[0])}" y1="{_f(branch_y)}" x2="{_f(centers[-1])}" '
            f'y2="{_f(branch_y)}"/>'
        )
        for arm, c in zip(arms, centers, strict=True):
            column, bottom = _consort_arm(consort, arm, c, colw, branch_y)
            parts += column
    height = bottom + 10
    return (
        f'<svg class="consort" role="img" aria-label="CONSORT flow diagram" width="{_f(width)}" '
        f'height="{_f(height)}" viewBox="0 0 {_f(width)} {_f(height)}">\n' + "\n".join(parts) + "\n</svg>"
    )


# ------------------------------------------------------------------ charts


class _Axes:
    def __init__(
        self,
        width=760,
        height=380,
        left=60,
        right=170,
        top=20,
        bottom=50,
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
    ):
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, right, top, bottom
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (v - self.x0) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.height - self.bottom - (v - self.y0) / span * (self.height - self.top - self.bottom)

    def frame(self, xticks, yticks, xlabel: str, ylabel: str, yfmt) -> list[str]:
        px0, px1, py0, py1 = self.x(self.x0), self.x(self.x1), self.y(self.y0), self.y(self.y1)
        out = [
            f'<line class="axis" x1="{_f(px0)}" y1="{_f(py0)}" x2="{_f(px1)}" y2="{_f(py0)}"/>',
            f'<line class="axis" x1="{_f(px0)}" y1="{_f(py0)}" x2="{_f(px0)}" y2="{_f(py1)}"/>',
        ]
        for t in xticks:
            px = self.x(t)
            out.append(f'<line class="tick" x1="{_f(px)}" y1="{_f(py0)}" x2="{_f(px)}" y2="{_f(py0 + 5)}"/>')
            out.append(
                f'<text x="{_f(px)}" y="{_f(py0 + 18)}" font-size="11" text-anchor="middle">{_num(t)}</text>'
            )
        for t in yticks:
            py = self.y(t)
            out.append(f'<line class="grid" x1="{_f(px0)}" y1="{_f(py)}" x2="{_f(px1)}" y2="{_f(py)}"/>')
            out.append(
                f'<text x="{_f(px0 - 6)}" y="{_f(py + 4)}" font-size="11" text-anchor="end">{yfmt(t)}</text>'
            )
        out.append(
            f'<text x="{_f((px0 + px1) / 2)}" y="{_f(self.height - 10)}" font-size="12" '
            f'text-anchor="middle">{_e(xlabel)}</text>'
        )
        out.append(
            f'<text x="14" y="{_f((py0 + py1) / 2)}" font-size="12" text-anchor="middle" '
            f'transform="rotate(-90 14 {_f((py0 + py1) / 2)})">{_e(ylabel)}</text>'
        )
        return out

    def legend(self, items: Sequence[tuple[str, str]]) -> list[str]:
        lx = self.width - self.right + 15
        out = []
        for i, (label, color) in enumerate(items):
            y = self.top + 10 + 20 * i
            out.append(
                f'<line x1="{_f(lx)}" y1="{_f(y)}" x2="{_f(lx + 24)}" y2="{_f(y)}" stroke="{color}" '
                'stroke-width="3"/>'
            )
            out.append(f'<text x="{_f(lx + 30)}" y="{_f(y + 4)}" font-size="12">{_e(label)}</text>')
        return out

    def svg(self, cls: str, label: str, body: list[str]) -> str:
        return (
            f'<svg class="{cls}" role="img" aria-label="{_e(label)}" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}">\n' + "\n".join(body) + "\n</svg>"
        )


def _nice_day_max(tmax: float) -> int:
    return int(max(90, math.ceil(max(tmax, 1) / 30) * 30))


def km_svg(curves: Mapping[str, pl.DataFrame], arms: StudyArms) -> str:
    """Kaplan-Meier step curves by arm, with axes, legend and dashed marks at 30/60/90 days."""
    tmax = max((float(c["t"].max()) for c in curves.values() if c.height), default=90.0)
    ax = _Axes(x_range=(0.0, float(_nice_day_max(tmax))), y_range=(0.0, 1.0))
    body = ax.frame(
        list(range(0, int(ax.x1) + 1, 30)),
        [0, 0.25, 0.5, 0.75, 1.0],
        "Days since admission",
        "Still in treatment",
        lambda v: f"{v:.2f}",
    )
    for d in KM_DAYS:
        if d <= ax.x1:
            body.append(
                f'<line class="mark" x1="{_f(ax.x(d))}" y1="{_f(ax.y(0))}" x2="{_f(ax.x(d))}" '
                f'y2="{_f(ax.y(1))}"/>'
            )
    legend = []
    for arm, curve in curves.items():
        color = arms.color(arm)
        pts = [f"M{_f(ax.x(0))},{_f(ax.y(1))}"]
        s_prev = 1.0
        for t, s in zip(curve["t"].to_list(), curve["survival"].to_list(), strict=True):
            pts.append(f"H{_f(ax.x(t))}")
            if s != s_prev:
                pts.append(f"V{_f(ax.y(s))}")
                s_prev = s
        body.append(
            f'<path class="km" data-arm="{_e(arm)}" d="{" ".join(pts)}" fill="none" stroke="{color}" '
            'stroke-width="2"/>'
        )
        legend.append((f"{arm} (n = {curve['at_risk'][0] if curve.height else 0})", color))
    body += ax.legend(legend)
    return ax.svg("km", "Kaplan-Meier retention in treatment by arm", body)


def km_points_svg(retention_by_arm: pl.DataFrame, arms: StudyArms) -> str:
    """Published KM estimates at 30/60/90 days (with limits) by arm; arms with suppressed estimates left out."""
    ax = _Axes(x_range=(0.0, 90.0), y_range=(0.0, 1.0))
    body = ax.frame(
        [0, 30, 60, 90],
        [0, 0.25, 0.5, 0.75, 1.0],
        "Days since admission",
        "Still in treatment",
        lambda v: f"{v:.2f}",
    )
    legend = []
    mid = (retention_by_arm.height - 1) / 2
    for i, row in enumerate(retention_by_arm.iter_rows(named=True)):
        arm = row["arm"]
        if arm not in arms.plotted:
            continue
        pts = [(0.0, 1.0)] + [(float(d), row.get(f"km_{d}")) for d in KM_DAYS]
        pts = [(d, s) for d, s in pts if s is not None]
        if len(pts) < 2:
            continue
        color = arms.color(arm)
        off = (i - mid) * 1.2
        body.append(
            f'<polyline class="km" data-arm="{_e(arm)}" fill="none" stroke="{color}" stroke-width="2" '
            f'points="{" ".join(f"{_f(ax.x(d))},{_f(ax.y(s))}" for d, s in pts)}"/>'
        )
        for d in KM_DAYS:
            lo, hi = row.get(f"km_{d}_lcl"), row.get(f"km_{d}_ucl")
            if lo is not None and hi is not None:
                body.append(
                    f'<line x1="{_f(ax.x(d) + off)}" y1="{_f(ax.y(lo))}" x2="{_f(ax.x(d) + off)}" '
                    f'y2="{_f(ax.y(hi))}" stroke="{color}" stroke-width="1.5"/>'
                )
        legend.append((arm, color))
    body += ax.legend(legend)
    return ax.svg("km", "Kaplan-Meier retention in treatment by arm at 30, 60 and 90 days", body)


def alliance_svg(alliance: pl.DataFrame, arms: StudyArms) -> str:
    """Mean client alliance total by session number, one line per arm."""
    if alliance.height == 0:
        ax = _Axes(x_range=(1, 5), y_range=(0, 1))
        return ax.svg(
            "alliance",
            "Mean client alliance by session (no data)",
            ax.frame([1, 2, 3, 4, 5], [], "Session number", "Mean client total", _num),
        )
    sessions = sorted(set(alliance["session_number"].to_list()))
    lo, hi = float(alliance["mean_total"].min()), float(alliance["mean_total"].max())
    step = _nice_step((hi - lo) or 1.0)
    y0, y1 = math.floor(lo / step) * step - step, math.ceil(hi / step) * step + step
    ax = _Axes(x_range=(min(sessions) - 0.5, max(sessions) + 0.5), y_range=(y0, y1))
    yticks = [y0 + i * step for i in range(int(round((y1 - y0) / step)) + 1)]
    body = ax.frame(
        sessions,
        yticks,
        "Session number",
        "Mean client total",
        lambda v: _num(round(v, 6)) if isinstance(v, float) else _num(v),
    )
    legend = []
    present = set(alliance["arm"].to_list())
    for arm in [a for a in arms.plotted if a in present]:
        g = alliance.filter(pl.col("arm") == arm).sort("session_number")
        color = arms.color(arm)
        pts = list(zip(g["session_number"].to_list(), g["mean_total"].to_list(), strict=True))
        body.append(
            f'<polyline class="alliance-line" data-arm="{_e(arm)}" fill="none" stroke="{color}" '
            f'stroke-width="2" points="{" ".join(f"{_f(ax.x(s))},{_f(ax.y(v))}" for s, v in pts)}"/>'
        )
        for s, v in pts:
            body.append(f'<circle cx="{_f(ax.x(s))}" cy="{_f(ax.y(v))}" r="3.5" fill="{color}"/>')
        legend.append((arm, color))
    body += ax.legend(legend)
    return ax.svg("alliance", "Mean client alliance total by session and arm", body)


def _nice_step(span: float) -> float:
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


# ------------------------------------------------------------------ tables


def _table(df: pl.DataFrame, labels: Mapping[str, str], places: Mapping[str, int]) -> str:
    head = "".join(f"<th>{_e(labels.get(c, c))}</th>" for c in df.columns)
    rows = []
    for row in df.iter_rows():
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            cls = ' class="supp"' if v is None else (' class="num"' if isinstance(v, int | float) else "")
            cells.append(f"<td{cls}>{_num(v, places.get(c))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


ENGAGEMENT_LABELS = {
    "arm": "Arm",
    "randomized": "Randomized",
    "attended_any_n": "Attended any session (n)",
    "attended_any_pct": "(%)",
    "sessions_attended_mean": "Sessions attended (mean)",
    "linked_n": "Linked to treatment (n)",
    "linked_pct": "(%)",
    "iet_initiation_n": "IET initiation (n)",
    "iet_initiation_pct": "(%)",
    "iet_engagement_n": "IET engagement (n)",
    "iet_engagement_pct": "(%)",
}
RETENTION_LABELS = {
    "arm": "Arm",
    "admitted": "Admitted",
    "dropped_out_n": "Dropped out (n)",
    "dropped_out_pct": "(%)",
    "median_days_in_treatment": "Median days in treatment (KM)",
    **{f"km_{d}": f"S({d} d)" for d in KM_DAYS},
    **{f"km_{d}_lcl": "95% lower" for d in KM_DAYS},
    **{f"km_{d}_ucl": "95% upper" for d in KM_DAYS},
}


def nih_table_html(grid: pl.DataFrame) -> str:
    layout = nihmod.nih_grid_layout(grid)
    head1 = ['<th rowspan="2">Racial Categories</th>']
    head1 += [f'<th colspan="3">{_e(e)}</th>' for e in nihmod.ETHNICITIES]
    head1.append('<th rowspan="2">Total</th>')
    head2 = [f"<th>{_e(s)}</th>" for s in layout[1][1:-1]]
    rows = []
    for row in layout[2:]:
        cls = ' class="total"' if row[0] == nihmod.TOTAL else ""
        cells = [f"<th{cls}>{_e(row[0])}</th>"]
        for v in row[1:]:
            cells.append(f'<td class="{"supp" if v is None else "num"}">{_num(v)}</td>')
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return (
        '<table class="nih">\n<thead><tr>'
        + "".join(head1)
        + "</tr><tr>"
        + "".join(head2)
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


CSS = """
body{font-family:Georgia,'Times New Roman',serif;color:#222;margin:24px auto;max-width:1100px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#555} .rule{background:#f5f5f0;border-left:4px solid #888;padding:8px 12px}
table{border-collapse:collapse;margin:8px 0;font-size:13px} th,td{border:1px solid #bbb;padding:3px 7px}
th{background:#eee;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.supp{text-align:center;color:#777} tr.total th,tr.total td{font-weight:700;background:#f7f7f7}
svg text{font-family:Arial,Helvetica,sans-serif;fill:#222}
rect.box{fill:#fff;stroke:#333;stroke-width:1.2} rect.arm{fill:#eef4fa}
line.arrow{stroke:#333;stroke-width:1.3} line.axis{stroke:#222;stroke-width:1.2} line.tick{stroke:#222}
line.grid{stroke:#e3e3e3} line.mark{stroke:#999;stroke-dasharray:4 3}
.foot{font-size:12px;color:#444} p.design{font-weight:600}
dl.glossary{font-size:13px} dl.glossary dt{font-weight:600} dl.glossary dd{margin:0 0 4px 16px}
"""


def _ctx(context) -> ReportContext:
    if isinstance(context, ReportContext):
        return context
    return ReportContext(**dict(context))


GLOSSARY = (
    ("CONSORT", "Consolidated Standards of Reporting Trials: the participant flow diagram"),
    ("IET", "Initiation and Engagement of substance use disorder Treatment (treatment admission within 14 "
            "days of the assessment; engagement: two or more treatment visits 1 to 34 days after it)"),
    ("KM", "Kaplan-Meier estimate; S(N d) is the probability of still being in treatment at N days"),
    ("CI", "confidence interval (95%; Greenwood's variance on the log-log scale for Kaplan-Meier)"),
    ("NIH", "National Institutes of Health (its Inclusion Enrollment Report)"),
    ("SD", "sample standard deviation"),
    ("n", "number of participants"),
)


def _design_text(arms: StudyArms) -> str:
    if not arms.randomized:
        return (
            "This study is not randomized: it has no arms. Its participants are counted together as All, "
            "from enrollment (day 0 is the consent date, and sessions of any service count); the CONSORT "
            "diagram stops at enrollment, Table 1 shows the enrolled participants, and the engagement "
            "table's Enrolled column (randomized in engagement_by_arm.csv) counts the enrolled."
        )
    text = f"Randomized study with {len(arms.labels)} arms, from the study profile: {', '.join(arms.labels)}."
    given = [a for a in arms.labels if a in arms.by_allocation]
    if given:
        text += (f" {', '.join(given)}: the intervention is given by allocation (received intervention "
                 "equals allocated).")
    return text


def _disclosure_rule(c: ReportContext) -> str:
    if c.audience == "public":
        return (
            f"Public audience: every count from 1 to {c.min_cell} inclusive is suppressed, together with "
            "complementary cells chosen so that no suppressed count can be recovered from any total or from "
            "another table of this extract; a rate or estimate computed from a suppressed count is suppressed "
            "with it."
        )
    return (
        "Funder audience: true counts in every aggregate, as the funder's reporting rules require; "
        "no small-cell suppression is applied."
    )


def _summary_section(c: ReportContext, title: str) -> str:
    when = f"{c.as_of_words} (site time; {c.as_of})" if c.as_of_words else c.as_of
    meta = [f"Data as of {_e(when)}", f"Audience: {_e(c.audience)}"]
    if c.event_store_position is not None:
        meta.append(f"Event-store position {_e(c.event_store_position)}")
    if c.code_version:
        meta.append(f"Code version {_e(c.code_version)}")
    supp_note = ""
    if c.suppressed_counts:
        items = ", ".join(f"{_e(k)}: {int(v)}" for k, v in c.suppressed_counts.items())
        supp_note = f"<p>Cells suppressed per file: {items}.</p>"
    glossary = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in GLOSSARY)
    return "\n".join([
        '<section id="summary">',
        f"<h1>{_e(title)}</h1>",
        '<p class="meta">' + " \u00b7 ".join(meta) + "</p>",
        f"<p>Data cut: {_e(when)}, the as-of: events the sources had recorded by then.</p>",
        f'<p class="design">{_e(_design_text(c.arms))}</p>',
        f'<div class="rule"><p><strong>Disclosure rule.</strong> {_e(_disclosure_rule(c))}</p>{supp_note}</div>',
        f'<dl class="glossary">{glossary}</dl>',
        "</section>",
    ])


def _retention_chart(c: ReportContext) -> tuple[str, str]:
    by = "by arm" if c.arms.randomized else "of all enrolled participants (All)"
    if c.audience == "public":
        return km_points_svg(c.retention_by_arm, c.arms), (
            f"Kaplan-Meier probability of still being in treatment at 30, 60 and 90 days {by}, with 95% "
            "confidence limits (Greenwood, log-log); published estimates only."
        )
    curves = {a: c.km_curves[a] for a in c.arms.plotted if a in c.km_curves}
    return km_svg(curves, c.arms), (
        f"Kaplan-Meier estimate of time in treatment {by}: admission to the first discharge of any "
        "reason; still in treatment at the data cut or a withdrawal date is censored. Dashed lines "
        "at 30, 60 and 90 days."
    )


def _table1_cell(row: Mapping | None, participants, continuous: bool) -> str:
    if row is None and continuous:
        return f'<td class="supp">{DASH}</td>'
    if row is None:  # a level the stratum has no row for (``Missing`` where nobody lacks the value): nobody
        return '<td class="num">0 (0.0%)</td>' if participants else '<td class="num">0</td>'
    if row["n"] is None:
        return f'<td class="supp">{DASH}</td>'
    if row["level"] is None:  # continuous: mean (SD), over n with a value
        if row["mean"] is None:
            return f'<td class="num">{DASH} (n = {row["n"]})</td>'
        sd = DASH if row["sd"] is None else f"{row['sd']:.1f}"
        return f'<td class="num">{row["mean"]:.1f} ({sd})</td>'
    pct = DASH if row["pct"] is None else f"{row['pct']:.1f}%"
    return f'<td class="num">{row["n"]} ({pct})</td>'


def table1_html(t1: pl.DataFrame | None, arms: StudyArms) -> str:
    """Table 1 in the reader's layout: one row per characteristic and level, a column per stratum
    (Overall, then each arm); n (%) or mean (SD); the header gives each stratum's participants."""
    if t1 is None or t1.height == 0:
        return "<p>No baseline characteristics in this build.</p>"
    strata = [s for s in (OVERALL, *arms.labels) if s in set(t1["stratum"].to_list())]
    cells = {(r["stratum"], r["characteristic"], r["level"]): r for r in t1.iter_rows(named=True)}
    size = {s: cells.get((s, PARTICIPANTS, None), {}).get("n") for s in strata}
    head = "".join(f"<th>{_e(s)} (n = {_num(size[s])})</th>" for s in strata)
    rows = []
    keys = [k for k in dict.fromkeys((r[1], r[2]) for r in cells) if k[0] != PARTICIPANTS]
    for characteristic, level in keys:
        label = characteristic if level is None else f"{characteristic}: {level}"
        tds = "".join(_table1_cell(cells.get((s, characteristic, level)), size[s], level is None) for s in strata)
        rows.append(f"<tr><th>{_e(label)}</th>{tds}</tr>")
    return (f'<table class="table1">\n<thead><tr><th>Characteristic</th>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody>\n</table>")


def _table1_section(c: ReportContext) -> str:
    who = ("the randomized participants, overall and by arm" if c.arms.randomized
           else "the enrolled participants (the study is not randomized)")
    return "\n".join([
        '<section id="table1">',
        "<h2>Baseline characteristics (Table 1)</h2>",
        f'<p class="foot">Participants: {_e(who)}; scope-2 withdrawals excepted. n (%) for categories, '
        "mean (SD) for continuous characteristics.</p>",
        table1_html(c.table1, c.arms),
        "</section>",
    ])


def _foot(c: ReportContext) -> str:
    if c.audience == "public":
        return (f'<p class="foot">{DASH} suppressed (a count from 1 to {c.min_cell}, a complementary cell, or a '
                "value computed from one), or not estimable (a rate with no denominator, a Kaplan-Meier "
                "estimate beyond follow-up).</p>")
    return (f'<p class="foot">{DASH} not estimable: a rate with no denominator, a Kaplan-Meier median never '
            "reached or an estimate beyond follow-up, a confidence limit where the estimate is 1 or 0.</p>")


def report_html(context: ReportContext | Mapping) -> str:
    """The report as an HTML string (see module docstring); ``context`` a ReportContext or a mapping of its fields."""
    c = _ctx(context)
    name = c.study_name or "Engagement interventions trial"
    title = c.title or f"{name} \u2014 {c.audience} extract"
    km_part, km_caption = _retention_chart(c)
    alliance = (
        c.alliance_by_session
        if c.alliance_by_session is not None
        else pl.DataFrame(schema={"arm": pl.Utf8, "session_number": pl.Int64, "mean_total": pl.Float64})
    )
    pct = {k: 1 for k in ENGAGEMENT_LABELS if k.endswith("_pct")}
    eng_places = {**pct, "sessions_attended_mean": 2}
    ret_places = {"dropped_out_pct": 1, **{k: 4 for k in RETENTION_LABELS if k.startswith("km_")}}
    eng_labels = ENGAGEMENT_LABELS if c.arms.randomized else {**ENGAGEMENT_LABELS, "randomized": "Enrolled"}
    by = "by arm" if c.arms.randomized else "(all enrolled, not randomized)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)} \u2014 as of {_e(c.as_of)} ({_e(c.audience)})</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        _summary_section(c, title),
        '<section id="consort">',
        "<h2>Participant flow (CONSORT)</h2>",
        consort_svg(c.consort_flow, c.arms.labels),
        "</section>",
        _table1_section(c),
        '<section id="retention">',
        f"<h2>Retention in treatment {by}</h2>",
        km_part,
        f'<p class="foot">{_e(km_caption)}</p>',
        _table(c.retention_by_arm, RETENTION_LABELS, ret_places),
        "</section>",
        '<section id="alliance">',
        f"<h2>Working alliance over sessions {by}</h2>",
        alliance_svg(alliance, c.arms),
        f'<p class="foot">Mean client-rated alliance total by session number{" and arm" if c.arms.randomized else ""}'
        ".</p>",
        "</section>",
        '<section id="nih">',
        "<h2>NIH Inclusion Enrollment Report</h2>",
        nih_table_html(c.nih_grid),
        "</section>",
        '<section id="engagement">',
        f"<h2>Engagement {by}</h2>",
        _table(c.engagement_by_arm, eng_labels, eng_places),
        "</section>",
        _foot(c),
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)
