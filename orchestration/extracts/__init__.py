"""Funder extracts: pure functions from analyst tables (polars DataFrames) to
the extract's tables, workbook and report (CONTRACT sections 2 and 4).

Every function here is deterministic: the same inputs give the same rows in
the same order, the same floats (exact rational arithmetic where the number
is rational, fixed rounding where it is not) and the same bytes.

Modules:

* ``arms``         the study's arms from its profile (labels, by-allocation arms, colours).
* ``nih``          NIH Inclusion Enrollment Report grid (63 cells) and its layout.
* ``survival``     Kaplan-Meier with Greenwood variance and log-log limits.
* ``tables``       engagement_by_arm, retention_by_arm, alliance by session.
* ``suppression``  public-audience small-cell and complementary suppression.
* ``kanon``        age bands and k-anonymity of participant-level rows.
* ``workbook``     deterministic .xlsx bytes.
* ``report``       self-contained HTML report (inline CSS and SVG).
* ``rounding``     exact half-away-from-zero rounding helpers.
"""
