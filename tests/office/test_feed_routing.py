"""Routing by the lines' forecasts, by definition: among the lines able to make an order,
an idle one first; when all are busy and each has a forecast, the one whose open orders'
latest ``predicted_completion`` is earliest; a forecast missing: the fewest open orders."""

from __future__ import annotations

from datetime import UTC, datetime

from office.feed.routing import Choice, choose_line, free_at

A, B, C = "hz01/a", "hz01/b", "hz01/c"
ALL = (A, B, C)
MUG = frozenset({"MUG"})


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 11, hour, minute, tzinfo=UTC)


def test_a_line_is_free_when_its_latest_open_order_is_done() -> None:
    open_orders = {A: {"1", "2"}, B: {"3"}, C: {"4", "5"}}
    predicted = {
        (A, "1"): at(9),
        (A, "2"): at(11),  # A is free at 11:00, the later of its two
        (B, "3"): at(10),
        (C, "4"): at(8),
        (C, "5"): None,  # unplanned: C's end is unknown
        (B, "1"): at(6),  # another line's forecast of an order id A has: not A's
    }
    assert free_at(open_orders, predicted) == {A: at(11), B: at(10)}
    assert free_at({A: {"9"}}, {}) == {}  # no forecast yet


def test_the_line_free_soonest_wins_over_the_one_with_fewer_orders() -> None:
    catalogs = {A: MUG, B: MUG, C: frozenset()}
    loads = {A: 1, B: 5}
    # A has one long order until 14:00, B five short ones done by 10:30.
    assert choose_line({"MUG"}, ALL, catalogs, loads, None, {A: at(14), B: at(10, 30)}) == (
        Choice(B)
    )


def test_an_idle_line_goes_first_whatever_the_forecasts() -> None:
    catalogs = {A: MUG, B: MUG, C: MUG}
    loads = {A: 2, B: 3}  # C idle
    assert choose_line({"MUG"}, ALL, catalogs, loads, None, {A: at(9), B: at(8)}) == Choice(C)


def test_without_every_busy_line_forecast_the_open_count_decides() -> None:
    catalogs = {A: MUG, B: MUG}
    loads = {A: 4, B: 2}
    # A would be free sooner, but B's end is unknown: by count, B.
    assert choose_line({"MUG"}, ALL, catalogs, loads, None, {A: at(8)}) == Choice(B)
    assert choose_line({"MUG"}, ALL, catalogs, loads) == Choice(B)


def test_equal_forecasts_go_to_fewer_orders_then_the_first_name() -> None:
    catalogs = {A: MUG, B: MUG, C: MUG}
    same = {A: at(9), B: at(9), C: at(9)}
    assert choose_line({"MUG"}, ALL, catalogs, {A: 3, B: 2, C: 2}, None, same) == Choice(B)


def test_a_named_line_and_catalogs_still_come_first() -> None:
    catalogs = {A: MUG, B: frozenset({"MUG", "TEE"})}
    loads = {A: 1, B: 9}
    forecasts = {A: at(8), B: at(23)}
    assert choose_line({"TEE"}, ALL, catalogs, loads, None, forecasts) == Choice(B)
    assert choose_line({"MUG"}, ALL, catalogs, loads, B, forecasts) == Choice(B)
    assert choose_line({"CAP"}, ALL, catalogs, loads, None, forecasts).gateway_id is None
