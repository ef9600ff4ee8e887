"""Sizing: the largest quantity, in whole lots, that every limit allows at once."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from gate.limits import Limit
from gate.money import ZERO, floor_to_lot


class Sizing:
    """The largest allowed quantity, the limits the request breaks (``binding``), and
    whether the request was not a whole number of lots (``rounded``). A plain class:
    see :class:`gate.limits.Limit`."""

    __slots__ = ("binding", "quantity", "rounded")

    def __init__(self, quantity: Decimal, binding: tuple[Limit, ...], rounded: bool) -> None:
        self.quantity = quantity
        self.binding = binding
        self.rounded = rounded


def size(
    requested: Decimal,
    limits: Sequence[Limit],
    lot: Decimal,
    whole: Decimal | None = None,
) -> Sizing:
    """Fold the limits into one quantity.

    ``whole`` is an off-lot quantity that may be taken exactly (closing a whole
    position that was filled in odd sizes); everything else is rounded down to ``lot``.
    """
    for lim in limits:  # the common case first: it all fits (Limit.fits, inlined)
        if lim.used + requested * lim.per_unit > lim.cap:
            break
    else:
        if (whole is None or requested <= whole) and requested % lot == 0:
            return Sizing(requested, (), rounded=False)
    binding = tuple([lim for lim in limits if not lim.fits(requested)])
    target = min([requested, *[lim.max_quantity() for lim in binding]])
    if whole is not None and target >= whole:
        return Sizing(whole, binding, rounded=False)
    quantity = floor_to_lot(target, lot)
    # the division in max_quantity is inexact: step back a lot if it rounded up
    while quantity > 0 and not _fits_all(limits, quantity):
        quantity = max(ZERO, quantity - lot)
    rounded = not binding and quantity < requested
    return Sizing(quantity, binding, rounded)


def _fits_all(limits: Sequence[Limit], quantity: Decimal) -> bool:
    return all(lim.used + quantity * lim.per_unit <= lim.cap for lim in limits)  # Limit.fits
