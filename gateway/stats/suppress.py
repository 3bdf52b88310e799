"""Small-cell suppression of a statistics table: which counts may be published, which are shown as "<5".

A table is a mapping of (row, column) to a count; a one-dimensional table has a single column (e.g.
``"count"``). ``suppress`` publishes the cells, a total per row and per column and the grand total, each
either as its number or as ``None`` (shown ``"<5"`` for the default threshold). It is pure: no database, no
logging, and it never publishes a value that lets a reader work out a suppressed cell or a small total.

Rules, applied in this order:

1. Primary suppression: every cell from 1 to ``threshold - 1`` is suppressed. A 0 is shown: a true zero
   says that no person is in the cell, which reveals nothing about anyone.
2. A total (row, column or grand) from 1 to ``threshold - 1`` is suppressed: it would itself be a small
   count.
3. Secondary suppression by lines: a row or column whose total is shown and that holds exactly one
   suppressed cell gets a second one, its smallest non-zero shown cell (ties broken by key). Zeros are
   never chosen: a line of one suppressed cell and shown zeros gives the cell away. A line with no such
   candidate has its total suppressed instead. Repeated until nothing changes; in a table with a single
   column each row's total is its one cell, so the column total is the only margin that can stay.
4. An audit, then reinforcement until the audit passes. The audit takes the reader's side: they see the
   shown cells and totals, know that a primary-suppressed cell lies in 1..threshold-1 and a secondary one
   is at least 0. A suppressed value is safe when another table fits all that with this value one higher
   or one lower: changes of +1 and -1 along a cycle of suppressed entries (cells and totals) that
   alternates between a row and a column, which keeps every shown total. Audited are every suppressed cell
   and every total suppressed by rule 2 (a small total must not follow from the grand total and the other
   margins either). An unsafe cell gets another secondary cell in its row or column, else its row total,
   its column total, then the grand total suppressed; an unsafe total gets another line's total (of a line
   with a suppressed cell), else the grand total, else any shown total suppressed. Then rule 3 and the
   audit run again. With everything suppressed every audited value is safe, so this ends.

The guarantee needs ``threshold >= 3``: with 2, a primary-suppressed cell can only be 1. The audit looks for
one cycle at a time, so it may suppress more than an exact (integer programming) audit would, but whatever
it passes is safe.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Suppressed", "suppress"]

Key = tuple[str, str]
# A node of the audit graph: ("r", row) or ("c", column); None names the margin (the totals line).
_Node = tuple[str, str | None]
# An audited value: its edge (row node, column node) and whether it may rise by 1 and fall by 1.
_Entry = tuple[_Node, _Node, bool, bool]


@dataclass(frozen=True)
class Suppressed:
    """A table as it may be published: ``None`` is a suppressed value."""

    cells: dict[tuple[str, str], int | None]
    row_totals: dict[str, int | None]
    column_totals: dict[str, int | None]
    total: int | None
    threshold: int = 5

    def shown(self, value: int | None) -> str:
        """The text of a published value: ``"<5"`` (for threshold 5) when suppressed, else the number."""
        return f"<{self.threshold}" if value is None else str(value)


class _Plan:
    """The mutable state of one suppression run: which cells and totals are hidden."""

    def __init__(self, cells: Mapping[Key, int], threshold: int) -> None:
        self.values = dict(cells)
        self.threshold = threshold
        self.rows = sorted({row for row, _ in cells})
        self.columns = sorted({column for _, column in cells})
        self.keys = sorted(cells)
        self.primary = {key for key in self.keys if self.small(self.values[key])}
        self.hidden = set(self.primary)
        self.row_sums = dict.fromkeys(self.rows, 0)
        self.column_sums = dict.fromkeys(self.columns, 0)
        for (row, column), value in self.values.items():
            self.row_sums[row] += value
            self.column_sums[column] += value
        self.grand = sum(self.values.values())
        self.small_rows = {row for row in self.rows if self.small(self.row_sums[row])}
        self.small_columns = {column for column in self.columns if self.small(self.column_sums[column])}
        self.small_grand = self.small(self.grand)
        self.hidden_rows = set(self.small_rows)
        self.hidden_columns = set(self.small_columns)
        self.hidden_grand = self.small_grand

    def small(self, value: int) -> bool:
        return 0 < value < self.threshold

    def smallest_shown(self, keys: Iterable[Key]) -> Key | None:
        candidates = [key for key in keys if key not in self.hidden and self.values[key] > 0]
        return min(candidates, key=lambda key: (self.values[key], key), default=None)

    def row_keys(self, row: str) -> list[Key]:
        return [key for key in self.keys if key[0] == row]

    def column_keys(self, column: str) -> list[Key]:
        return [key for key in self.keys if key[1] == column]

    def close_lines(self) -> None:
        """Rule 3: no line with a shown total holds a single suppressed cell."""
        changed = True
        while changed:
            changed = False
            for row in self.rows:
                if row not in self.hidden_rows:
                    changed |= self._close_line(self.row_keys(row), self.hidden_rows, row)
            for column in self.columns:
                if column not in self.hidden_columns:
                    changed |= self._close_line(self.column_keys(column), self.hidden_columns, column)

    def _close_line(self, keys: list[Key], hidden_totals: set[str], name: str) -> bool:
        if sum(key in self.hidden for key in keys) != 1:
            return False
        partner = self.smallest_shown(keys)
        if partner is None:
            hidden_totals.add(name)
        else:
            self.hidden.add(partner)
        return True

    def reinforce(self, row: str | None, column: str | None) -> bool:
        """Rule 4: hide one more value around an unsafe one; False when nothing is left to hide."""
        if row is not None and column is not None:
            return self._reinforce_cell(row, column)
        # An unsafe total needs a cycle through the margins: another line's total, else the grand total.
        if column is None and self._hide_total(0, row):
            return True
        if row is None and self._hide_total(1, column):
            return True
        if not self.hidden_grand:
            self.hidden_grand = True
            return True
        return self._hide_total(0, None, any_line=True) or self._hide_total(1, None, any_line=True)

    def _hide_total(self, axis: int, other: str | None, any_line: bool = False) -> bool:
        """Hide the smallest shown row (axis 0) or column (1) total, not ``other``'s, of a line with a
        suppressed cell (or of any line)."""
        names, sums, hidden = (
            (self.rows, self.row_sums, self.hidden_rows)
            if axis == 0
            else (self.columns, self.column_sums, self.hidden_columns)
        )
        with_cells = {key[axis] for key in self.hidden}
        candidates = [
            name
            for name in names
            if name not in hidden and name != other and (any_line or name in with_cells)
        ]
        if not candidates:
            return False
        hidden.add(min(candidates, key=lambda name: (sums[name], name)))
        return True

    def _reinforce_cell(self, row: str, column: str) -> bool:
        for keys, hidden_totals, name in (
            (self.row_keys(row), self.hidden_rows, row),
            (self.column_keys(column), self.hidden_columns, column),
        ):
            if name in hidden_totals:
                continue
            partner = self.smallest_shown(keys)
            if partner is not None:
                self.hidden.add(partner)
                return True
        if row not in self.hidden_rows:
            self.hidden_rows.add(row)
        elif column not in self.hidden_columns:
            self.hidden_columns.add(column)
        elif not self.hidden_grand:
            self.hidden_grand = True
        else:
            return False
        return True

    def can_rise(self, key: Key) -> bool:
        return key not in self.primary or self.values[key] + 1 < self.threshold

    def can_fall(self, key: Key) -> bool:
        floor = 1 if key in self.primary else 0
        return self.values[key] - 1 >= floor

    def arcs(self) -> dict[_Node, set[_Node]]:
        """The audit graph: row -> column where an entry may rise by 1, column -> row where it may fall."""
        graph: dict[_Node, set[_Node]] = {}

        def link(row: _Node, column: _Node, rise: bool, fall: bool) -> None:
            if rise:
                graph.setdefault(row, set()).add(column)
            if fall:
                graph.setdefault(column, set()).add(row)

        for key in self.hidden:
            link(("r", key[0]), ("c", key[1]), self.can_rise(key), self.can_fall(key))
        # Suppressed totals are bounded only through their cells, so they move freely either way.
        for row in self.hidden_rows:
            link(("r", row), ("c", None), True, True)
        for column in self.hidden_columns:
            link(("r", None), ("c", column), True, True)
        if self.hidden_grand:
            link(("r", None), ("c", None), True, True)
        return graph

    def audited(self) -> list[_Entry]:
        """Each value the audit protects, as its graph edge and whether it may rise and fall.

        Every suppressed cell, and every total suppressed for being small itself (rule 2): such a total is
        a count of a few persons too, so it must not follow from the grand total and the other margins.
        """
        entries: list[_Entry] = [
            (("r", k[0]), ("c", k[1]), self.can_rise(k), self.can_fall(k)) for k in sorted(self.hidden)
        ]
        entries += [(("r", row), ("c", None), True, True) for row in sorted(self.small_rows)]
        entries += [(("r", None), ("c", column), True, True) for column in sorted(self.small_columns)]
        if self.small_grand:
            entries.append((("r", None), ("c", None), True, True))
        return entries

    def unsafe(self) -> tuple[_Node, _Node] | None:
        """The first audited value that no +1/-1 cycle moves, as its (row, column) nodes, if any."""
        graph = self.arcs()
        for row, column, rise, fall in self.audited():
            if not ((rise and _reaches(graph, column, row)) or (fall and _reaches(graph, row, column))):
                return row, column
        return None

    def result(self) -> Suppressed:
        cells = {key: None if key in self.hidden else value for key, value in self.values.items()}
        # Decisions go by sorted keys; the published lines keep the caller's order of first appearance.
        rows = {row: None if row in self.hidden_rows else self.row_sums[row] for row, _ in self.values}
        columns = {
            column: None if column in self.hidden_columns else self.column_sums[column]
            for _, column in self.values
        }
        total = None if self.hidden_grand else self.grand
        return Suppressed(cells, rows, columns, total, self.threshold)


def _reaches(graph: Mapping[_Node, set[_Node]], start: _Node, goal: _Node) -> bool:
    """Whether a path leads from start to goal without the direct step between them (the cell itself)."""
    seen = {start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph.get(node, ()):
            if node == start and nxt == goal:
                continue
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return False


def suppress(cells: Mapping[tuple[str, str], int], threshold: int = 5) -> Suppressed:
    """Suppress the small cells of a table and enough others that none can be worked out (see above)."""
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if any(value < 0 for value in cells.values()):
        raise ValueError("counts must not be negative")
    plan = _Plan(cells, threshold)
    plan.close_lines()
    while (nodes := plan.unsafe()) is not None and plan.reinforce(nodes[0][1], nodes[1][1]):
        plan.close_lines()
    return plan.result()
