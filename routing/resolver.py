"""Route resolution and access control on one published catalogue, with a trace of what was tried.

Resolution for (contract, logical address, now): the exact address → up the HSA tree to ``SE`` (when the
contract allows climbing) → ``*``. The first level that has routes valid at ``now`` decides: exactly one
route is the answer, several is ambiguous. Access for (consumer, contract, address, now): exact → ``*`` →
HSA climb; any valid permission grants. Both are pure functions of the table and their arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from routing.errors import AccessDenied, AmbiguousRoute, NoRouteFound
from routing.model import INTERNAL, NATIONAL, WILDCARD, Catalogue, Endpoint, Permission, Route

__all__ = ["Decision", "RoutingTable"]


@dataclass(frozen=True)
class Decision:
    route: Route
    endpoint: Endpoint | None  # None for the internal case desk
    matched_address: str
    trace: tuple[str, ...]

    @property
    def target(self) -> str:
        return self.route.target

    @property
    def internal(self) -> bool:
        return self.route.target == INTERNAL


class RoutingTable:
    """An immutable, indexed view of one catalogue version."""

    def __init__(self, catalogue: Catalogue, version: int = 0, content_hash: str = "") -> None:
        self.catalogue = catalogue
        self.version = version
        self.content_hash = content_hash or catalogue.content_hash()
        self._routes: dict[tuple[str, str], tuple[Route, ...]] = {}
        for route in catalogue.routes:
            key = (route.contract, route.address)
            self._routes[key] = (*self._routes.get(key, ()), route)
        self._permissions: dict[tuple[str, str, str], tuple[Permission, ...]] = {}
        for permission in catalogue.permissions:
            pkey = (permission.consumer, permission.contract, permission.address)
            self._permissions[pkey] = (*self._permissions.get(pkey, ()), permission)
        self._endpoints: Mapping[str, Endpoint] = {e.name: e for e in catalogue.endpoints}
        self._climb = {c.namespace: c.hsa_climb for c in catalogue.contracts}
        self._parent = {n.hsa_id: n.parent for n in catalogue.hsa}

    def endpoint(self, name: str) -> Endpoint | None:
        return self._endpoints.get(name)

    def ancestors(self, address: str) -> list[str]:
        """The HSA-tree ancestors of ``address``, nearest first, ending with ``SE``."""
        chain: list[str] = []
        current = self._parent.get(address)
        while current is not None and current not in chain and current != address:
            chain.append(current)
            if current == NATIONAL:
                break
            current = self._parent.get(current)
        if NATIONAL not in chain:
            chain.append(NATIONAL)
        return chain

    def _levels(self, contract: str, address: str) -> list[tuple[str, str]]:
        levels = [("exact", address)]
        if self._climb.get(contract, True):
            levels += [("hsa", a) for a in self.ancestors(address) if a != address]
        levels.append(("wildcard", WILDCARD))
        return levels

    def resolve(self, contract: str, address: str, now: datetime) -> Decision:
        trace: list[str] = []
        if contract not in self._climb:
            trace.append(f"contract {contract} not in catalogue")
            raise NoRouteFound(f"No route for {contract} at {address}", tuple(trace))
        if not self._climb[contract]:
            trace.append("HSA climb disabled for this contract")
        for kind, candidate in self._levels(contract, address):
            routes = self._routes.get((contract, candidate), ())
            valid = [r for r in routes if r.valid_at(now)]
            if not valid:
                note = f" ({len(routes)} outside validity)" if routes else ""
                trace.append(f"{kind} {candidate}: no route{note}")
                continue
            if len(valid) > 1:
                trace.append(f"{kind} {candidate}: {len(valid)} routes")
                raise AmbiguousRoute(f"More than one route for {contract} at {address}", tuple(trace))
            route = valid[0]
            trace.append(f"{kind} {candidate}: route to {route.target}")
            endpoint = None if route.target == INTERNAL else self._endpoints.get(route.target)
            return Decision(route, endpoint, candidate, tuple(trace))
        raise NoRouteFound(f"No route for {contract} at {address}", tuple(trace))

    def authorize(self, consumer: str, contract: str, address: str, now: datetime) -> tuple[str, ...]:
        """The trace of a granted call; raises AccessDenied (with the trace) otherwise."""
        trace: list[str] = []
        candidates = [("exact", address), ("wildcard", WILDCARD)]
        candidates += [("hsa", a) for a in self.ancestors(address) if a != address]
        for kind, candidate in candidates:
            permissions = self._permissions.get((consumer, contract, candidate), ())
            if any(p.valid_at(now) for p in permissions):
                trace.append(f"{kind} {candidate}: permitted")
                return tuple(trace)
            note = f" ({len(permissions)} outside validity)" if permissions else ""
            trace.append(f"{kind} {candidate}: no permission{note}")
        raise AccessDenied(f"{consumer} may not call {contract} at {address}", tuple(trace))
