"""Small-cell suppression (gateway.stats.suppress): examples, and a reader who tries to undo it.

The property tests play the reader: from the shown cells and totals, knowing which cells were suppressed
first (those lie in 1..threshold-1) and that the others are at least 0, a search over bounded values looks
for a second table that fits everything published but differs in a suppressed cell, or in the sum behind a
total that was suppressed for being small.
"""

from __future__ import annotations

from collections.abc import Mapping
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.stats.suppress import Suppressed, suppress

Key = tuple[str, str]
THRESHOLD = 5


def _constraints(cells: Mapping[Key, int], published: Suppressed) -> list[tuple[list[Key], int]]:
    """Each shown total as (its suppressed cells, what they must add up to)."""
    hidden = [key for key, value in published.cells.items() if value is None]
    lines: list[tuple[list[Key], int | None, list[Key]]] = []
    for row, total in published.row_totals.items():
        lines.append(([k for k in hidden if k[0] == row], total, [k for k in cells if k[0] == row]))
    for column, total in published.column_totals.items():
        lines.append(([k for k in hidden if k[1] == column], total, [k for k in cells if k[1] == column]))
    lines.append((hidden, published.total, list(cells)))
    found = []
    for unknown, total, members in lines:
        if total is not None:
            known = sum(published.cells[k] or 0 for k in members if k not in unknown)
            found.append((unknown, total - known))
    return found


def _feasible(
    cells: Mapping[Key, int],
    published: Suppressed,
    primary: set[Key],
    bound: int,
    extra: tuple[list[Key], int],
) -> bool:
    """Whether the suppressed cells can take values that fit everything published and ``extra``.

    The reader's knowledge: a primary-suppressed cell lies in 1..threshold-1, any other in 0..bound.
    """
    hidden = [key for key, value in published.cells.items() if value is None]
    order = sorted(hidden, key=lambda key: key not in extra[0])
    constraints = [*_constraints(cells, published), extra]

    def domain(key: Key) -> range:
        return range(1, THRESHOLD) if key in primary else range(bound + 1)

    def fits(assigned: dict[Key, int]) -> bool:
        for unknown, need in constraints:
            done = sum(assigned[k] for k in unknown if k in assigned)
            rest = [k for k in unknown if k not in assigned]
            low = sum(domain(k)[0] for k in rest)
            high = sum(domain(k)[-1] for k in rest)
            if not low <= need - done <= high:
                return False
        return True

    def search(index: int, assigned: dict[Key, int]) -> bool:
        if index == len(order):
            return True
        key = order[index]
        for value in domain(key):
            assigned[key] = value
            if fits(assigned) and search(index + 1, assigned):
                return True
            del assigned[key]
        return False

    return fits({}) and search(0, {})


def _alternative_exists(
    cells: Mapping[Key, int], published: Suppressed, primary: set[Key], target: Key, bound: int
) -> bool:
    """Whether a table fits everything published with the suppressed cell ``target`` other than its value."""
    values = range(1, THRESHOLD) if target in primary else range(bound + 1)
    others = [v for v in values if v != cells[target]]
    return any(_feasible(cells, published, primary, bound, ([target], v)) for v in others)


def _other_sum_exists(
    cells: Mapping[Key, int], published: Suppressed, primary: set[Key], members: list[Key], bound: int
) -> bool:
    """Whether a table fits everything published with another sum over ``members`` (a suppressed total)."""
    unknown = [key for key in members if published.cells[key] is None]
    true = sum(cells[key] for key in unknown)
    others = [v for v in range(len(unknown) * bound + 1) if v != true]
    return any(_feasible(cells, published, primary, bound, (unknown, v)) for v in others)


tables = st.integers(1, 4).flatmap(
    lambda rows: st.integers(1, 4).flatmap(
        lambda columns: st.fixed_dictionaries(
            {(f"r{r}", f"c{c}"): st.integers(0, 12) for r in range(rows) for c in range(columns)}
        )
    )
)


@settings(max_examples=200, deadline=None)
@given(tables)
def test_no_suppressed_cell_can_be_worked_out(cells: dict[Key, int]) -> None:
    published = suppress(cells)
    primary = {key for key, value in cells.items() if 0 < value < THRESHOLD}
    bound = max(cells.values()) + THRESHOLD
    for key, value in published.cells.items():
        if value is None:
            assert _alternative_exists(cells, published, primary, key, bound), (cells, key)


@settings(max_examples=200, deadline=None)
@given(tables)
def test_no_small_total_can_be_worked_out(cells: dict[Key, int]) -> None:
    published = suppress(cells)
    primary = {key for key, value in cells.items() if 0 < value < THRESHOLD}
    bound = max(cells.values()) + THRESHOLD
    lines = [[k for k in cells if k[0] == row] for row in published.row_totals]
    lines += [[k for k in cells if k[1] == column] for column in published.column_totals]
    lines.append(list(cells))
    for members in lines:
        if 0 < sum(cells[k] for k in members) < THRESHOLD:
            assert _other_sum_exists(cells, published, primary, members, bound), (cells, members)


@settings(max_examples=200, deadline=None)
@given(tables)
def test_shown_values_are_true_and_never_small(cells: dict[Key, int]) -> None:
    published = suppress(cells)
    assert set(published.cells) == set(cells)
    for key, value in published.cells.items():
        assert value is None or value == cells[key]
        assert value is None or not 0 < value < THRESHOLD
    for row, total in published.row_totals.items():
        assert total is None or total == sum(v for k, v in cells.items() if k[0] == row)
    for column, total in published.column_totals.items():
        assert total is None or total == sum(v for k, v in cells.items() if k[1] == column)
    assert published.total is None or published.total == sum(cells.values())
    for total in [*published.row_totals.values(), *published.column_totals.values(), published.total]:
        assert total is None or not 0 < total < THRESHOLD


@settings(max_examples=100, deadline=None)
@given(tables, st.randoms(use_true_random=False))
def test_output_does_not_depend_on_input_order(cells: dict[Key, int], rng: Random) -> None:
    items = list(cells.items())
    rng.shuffle(items)
    assert suppress(dict(items)) == suppress(cells)
    assert suppress(cells) == suppress(cells)


def test_one_dimensional_table_keeps_only_the_column_total_as_margin() -> None:
    cells = {
        ("Stockholm", "count"): 40,
        ("Uppsala", "count"): 3,
        ("Visby", "count"): 9,
        ("Kiruna", "count"): 0,
    }
    published = suppress(cells)
    assert published.cells == {
        ("Stockholm", "count"): 40,
        ("Uppsala", "count"): None,
        ("Visby", "count"): None,
        ("Kiruna", "count"): 0,
    }
    assert list(published.row_totals.items()) == [
        ("Stockholm", 40),
        ("Uppsala", None),
        ("Visby", None),
        ("Kiruna", 0),
    ]
    assert published.column_totals == {"count": 52}
    assert published.total == 52
    assert [published.shown(v) for v in published.cells.values()] == ["40", "<5", "<5", "0"]


def test_two_dimensional_table_suppresses_a_rectangle() -> None:
    cells = {
        ("north", "phone"): 20,
        ("north", "web"): 2,
        ("north", "letter"): 30,
        ("south", "phone"): 11,
        ("south", "web"): 25,
        ("south", "letter"): 7,
    }
    published = suppress(cells)
    hidden = {key for key, value in published.cells.items() if value is None}
    # The 2 and the smallest cells beside it in its row (20) and column (25), then 11 closes the rectangle.
    assert hidden == {("north", "web"), ("north", "phone"), ("south", "web"), ("south", "phone")}
    assert published.row_totals == {"north": 52, "south": 43}
    assert published.column_totals == {"letter": 37, "phone": 31, "web": 27}
    assert published.total == 95


def test_all_cells_small_hide_every_margin_that_would_give_them_away() -> None:
    cells = {("a", "x"): 1, ("a", "y"): 2, ("b", "x"): 3, ("b", "y"): 4}
    published = suppress(cells)
    assert set(published.cells.values()) == {None}
    assert published.row_totals == {"a": None, "b": 7}
    assert published.column_totals == {"x": None, "y": 6}
    # With 10 shown: ax + ay = 10 - 7 = 3 and by = 6 - ay <= 4 would pin ay = 2 and ax = 1.
    assert published.total is None
    assert published.shown(published.column_totals["x"]) == "<5"


def test_a_line_of_one_small_cell_and_zeros_hides_its_total() -> None:
    cells = {("a", "x"): 3, ("a", "y"): 0, ("a", "z"): 0, ("b", "x"): 8, ("b", "y"): 6, ("b", "z"): 9}
    published = suppress(cells)
    assert published.cells[("a", "y")] == 0
    assert published.cells[("a", "z")] == 0
    assert published.cells[("a", "x")] is None
    assert published.row_totals["a"] is None
    primary = {("a", "x")}
    for key, value in published.cells.items():
        if value is None:
            assert _alternative_exists(cells, published, primary, key, 20)


def test_two_ones_in_a_line_are_not_left_to_add_up_to_two() -> None:
    cells = {("a", "x"): 1, ("a", "y"): 1, ("a", "z"): 30, ("b", "x"): 1, ("b", "y"): 1, ("b", "z"): 30}
    published = suppress(cells)
    primary = {key for key, value in cells.items() if value == 1}
    for key, value in published.cells.items():
        if value is None:
            assert _alternative_exists(cells, published, primary, key, 40)


def test_threshold_is_shown_and_validated() -> None:
    published = suppress({("a", "count"): 2}, threshold=3)
    assert published.shown(None) == "<3"
    assert published.shown(7) == "7"
    with pytest.raises(ValueError, match="negative"):
        suppress({("a", "count"): -1})
