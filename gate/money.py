"""Decimal helpers: the one place where quantities are rounded and ratios formatted."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from functools import lru_cache

ZERO = Decimal(0)
ONE = Decimal(1)
RATIO_PLACES = Decimal("0.000001")
MICRO = Decimal(1_000_000)
CENT = Decimal("0.01")
BASIS_POINTS = Decimal(10_000)  # a percentage to 2 places, in whole units


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Exact conversion for caller-supplied numbers (ints and strings; never floats)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected Decimal, int or str, got {type(value).__name__}")
    return Decimal(value)


def floor_to_lot(quantity: Decimal, lot: Decimal) -> Decimal:
    """Largest multiple of ``lot`` not above ``quantity`` (0 for negatives). Idempotent.

    The result carries no trailing zeros: 0.1, not 0.10000 (and 5000, not 5E+3).
    """
    if quantity <= 0:
        return ZERO
    return tidy((quantity // lot) * lot)


def tidy(value: Decimal) -> Decimal:
    """The same number without trailing fractional zeros or exponent notation."""
    if value == value.to_integral_value():
        return value.quantize(ONE)
    return value.normalize()


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """``numerator / denominator`` for reporting; a zero or negative denominator gives 0."""
    if denominator <= 0:
        return ZERO
    return numerator / denominator


def show(value: Decimal | None, places: Decimal = RATIO_PLACES) -> str | None:
    """A decimal as a plain string rounded down to ``places`` (for checks and logs)."""
    if value is None:
        return None
    q = value.quantize(places, rounding=ROUND_DOWN) if value.is_finite() else value
    text = format(q.normalize(), "f")
    return "0" if text in ("-0", "") else text


def fraction6(value: Decimal, scale: Decimal) -> str:
    """``value / scale`` rounded down to 6 places, as ``show(ratio(value, scale))`` prints it.

    The fast path for the decision report: one exact integer division, then the digits.
    """
    if scale <= 0:
        return "0"
    return _units_text(value * MICRO // scale, 6)


def percent2(value: Decimal, scale: Decimal) -> str:
    """``value / scale`` as a percentage rounded down to 2 places (without the sign), as
    ``show(ratio(value, scale) * 100, Decimal("0.01"))`` prints it."""
    if scale <= 0:
        return "0"
    return _units_text(value * BASIS_POINTS // scale, 2)


def _units_text(units: Decimal, places: int) -> str:
    """A whole count of ``10**-places`` as plain decimal text without trailing zeros.

    ``units`` comes from ``//``, which is exact and truncates toward zero (rounds down)
    and gives a whole number with exponent 0, so its text is its digits: cheaper than
    ``int()`` and integer formatting.
    """
    digits = str(units)
    sign = ""
    if digits[0] == "-":
        sign, digits = "-", digits[1:]
    if not digits.isdigit():
        raise ValueError(f"not a finite ratio: {units}")
    whole = digits[:-places]
    part = digits[-places:].rjust(places, "0").rstrip("0")
    if part:
        return f"{sign}{whole or '0'}.{part}"
    return f"{sign}{whole}" if whole else "0"


@lru_cache(maxsize=4096)
def plain_constant(value: Decimal) -> str:
    """:func:`plain` for the few values that repeat (configured limits): cached."""
    return plain(value)


def plain(value: Decimal) -> str:
    """Exact decimal as a string without exponent notation (``str()`` unless it chose
    exponent notation: a third of ``format(value, "f")``'s cost)."""
    text = str(value)
    if "E" in text:
        text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def money_text(value: Decimal, currency: str = "") -> str:
    """An account-currency amount as people read it: to the cent, thousands separated
    (``100,000.00 USD``), rounded half-even."""
    text = f"{value.quantize(CENT, rounding=ROUND_HALF_EVEN):,.2f}"
    return f"{text} {currency}".rstrip()
