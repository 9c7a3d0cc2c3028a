"""Exact rounding, half away from zero, never on a binary float's approximation.

* ``pct(n, d)`` is 100*n/d rounded to one decimal in integer arithmetic
  (23 of 80 -> 28.8), returned as the float nearest that decimal, so that it
  prints as exactly that decimal.
* ``round_fraction(q, places)`` rounds an exact rational.
* ``round_float(x, places)`` rounds a float that is not rational by nature
  (a confidence limit from log/exp): the float's exact binary value is
  rounded with ``Decimal`` (no double rounding through a decimal string).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction


def round_fraction(q: Fraction | int, places: int) -> Decimal:
    """Round the rational ``q`` half away from zero to ``places`` decimals, exactly."""
    q = Fraction(q)
    scale = 10**places
    scaled = q * scale
    sign = -1 if scaled < 0 else 1
    mag = abs(scaled)
    whole = mag.numerator // mag.denominator
    rem = mag - whole
    if rem * 2 >= 1:
        whole += 1
    return Decimal(sign * whole).scaleb(-places)


def pct(n: int | None, d: int | None) -> float | None:
    """100 * n / d, rounded half away from zero to one decimal (exact); None when d is 0 or missing."""
    if n is None or d is None or d == 0:
        return None
    return float(round_fraction(Fraction(100 * int(n), int(d)), 1))


def mean_rounded(total: int, n: int, places: int = 2) -> float | None:
    """total / n rounded half away from zero to ``places`` decimals (exact); None when n is 0."""
    if n == 0:
        return None
    return float(round_fraction(Fraction(int(total), int(n)), places))


def round_float(x: float | None, places: int = 4) -> float | None:
    """Round a float (exact binary value) half away from zero; None/NaN/inf -> None."""
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return None
    q = Decimal("1").scaleb(-places)
    return float(Decimal(x).quantize(q, rounding=ROUND_HALF_UP))
