"""The registration snapshot of a case's unit: its name, care provider and region, as the HSA tree of the
routing version that routed the case knew them, so statistics do not shift when the tree changes later.

The tree wins; the request's own unit fields (``unitName``, ``careProviderId``, ``regionCode``) fill what
the tree lacks. The care provider is the nearest ancestor of kind ``care-provider``, the region the
nearest of kind ``region``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from routing.model import HsaNode

__all__ = ["CARE_PROVIDER_KIND", "REGION_KIND", "UnitSnapshot", "snapshot_of"]

CARE_PROVIDER_KIND = "care-provider"
REGION_KIND = "region"
_MAX_DEPTH = 64  # a cycle in a broken tree ends the climb


@dataclass(frozen=True)
class UnitSnapshot:
    unit_name: str | None
    care_provider: str | None
    region: str | None


_lock = threading.Lock()
_index: tuple[object, dict[str, HsaNode]] | None = None


def _nodes(tree: tuple[HsaNode, ...]) -> dict[str, HsaNode]:
    """The tree by HSA-id, indexed once per tree (a catalogue's tree is immutable)."""
    global _index  # one index, replaced when the tree changes
    current = _index
    if current is None or current[0] is not tree:
        with _lock:
            current = _index
            if current is None or current[0] is not tree:
                current = _index = (tree, {node.hsa_id: node for node in tree})
    return current[1]


def climb(nodes: dict[str, HsaNode], unit_id: str) -> UnitSnapshot:
    """What the tree ``nodes`` says of ``unit_id`` (all None when it is not in the tree)."""
    node = nodes.get(unit_id)
    name = node.name or None if node is not None else None
    care_provider = region = None
    seen = 0
    while node is not None and seen < _MAX_DEPTH and (care_provider is None or region is None):
        if node.kind == CARE_PROVIDER_KIND and care_provider is None:
            care_provider = node.hsa_id
        if node.kind == REGION_KIND and region is None:
            region = node.hsa_id
        node = nodes.get(node.parent) if node.parent != node.hsa_id else None
        seen += 1
    return UnitSnapshot(name, care_provider, region)


def snapshot_of(
    tree: Iterable[HsaNode],
    unit_id: str,
    unit_name: str | None = None,
    care_provider_id: str | None = None,
    region_code: str | None = None,
) -> UnitSnapshot:
    """The snapshot of ``unit_id`` from ``tree``, the request's own fields filling its gaps."""
    nodes = _nodes(tree) if isinstance(tree, tuple) else {node.hsa_id: node for node in tree}
    found = climb(nodes, unit_id)
    return UnitSnapshot(
        found.unit_name or unit_name or None,
        found.care_provider or care_provider_id or None,
        found.region or region_code or None,
    )
