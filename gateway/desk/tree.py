"""The HSA tree of the active routing catalogue version, as the desk reads it: names, kinds, what is under
a scope. Built once per catalogue version (the tables are immutable) and shared by the desk's threads."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from routing import RoutingTable
from routing.model import NATIONAL

__all__ = ["HsaTree", "tree_of"]

#: node kinds whose cases the desk shows (a unit, or a patient board)
CASE_KINDS = frozenset({"unit", "patient-board"})


class HsaTree:
    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        self.version = table.version
        self.nodes = {n.hsa_id: n for n in table.catalogue.hsa}
        children: dict[str, list[str]] = {}
        for node in self.nodes.values():
            children.setdefault(node.parent, []).append(node.hsa_id)
        self._children = children

    def known(self, hsa_id: str) -> bool:
        return hsa_id == NATIONAL or hsa_id in self.nodes

    def name(self, hsa_id: str) -> str:
        node = self.nodes.get(hsa_id)
        return node.name if node is not None else ""

    def kind(self, hsa_id: str) -> str | None:
        node = self.nodes.get(hsa_id)
        return node.kind if node is not None else None

    def chain(self, hsa_id: str) -> list[str]:
        """``hsa_id`` and its ancestors, nearest first, ending with ``SE``."""
        return [hsa_id, *(a for a in self.table.ancestors(hsa_id) if a != hsa_id)]

    def below(self, scopes: Iterable[str]) -> set[str]:
        """Every node at or under the given scopes (the scopes themselves included, known or not)."""
        found: set[str] = set()
        pending = list(scopes)
        while pending:
            current = pending.pop()
            if current in found:
                continue
            found.add(current)
            pending.extend(self._children.get(current, ()))
        return found


_cache_lock = threading.Lock()
_cache: dict[int, HsaTree] = {}


def tree_of(table: RoutingTable) -> HsaTree:
    """The tree of ``table``, built once per table object."""
    key = id(table)
    with _cache_lock:
        tree = _cache.get(key)
        if tree is None or tree.table is not table:
            _cache.clear()  # only the active version is asked for; an old one is not kept alive
            tree = _cache[key] = HsaTree(table)
        return tree
