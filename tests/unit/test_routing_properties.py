"""Property-based tests of the routing catalogue: random catalogues never resolve to two routes, resolution is
deterministic and independent of the order entities were given in, and the canonical JSON round-trips.

Catalogues are built so that publish would accept them: a random HSA forest (every parent is ``SE`` or an
earlier node, so there are no cycles), one to three contracts with HSA climb on or off, and random routes
with half-open windows on a small grid of instants; a route that would overlap an earlier one for the same
(contract, address) is dropped. Every query is checked against a straightforward model of the resolution
rules, at every grid instant (each one a window edge) and one second before it.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.errors import AccessDenied, AmbiguousRoute, CatalogueError, NoRouteFound
from routing.model import (
    INTERNAL,
    NATIONAL,
    WILDCARD,
    Catalogue,
    Component,
    ContractEntry,
    Endpoint,
    HsaNode,
    LogicalAddress,
    Permission,
    Route,
)
from routing.resolver import RoutingTable

PROFILE = settings(derandomize=True, max_examples=200, deadline=None)

START = datetime(2027, 1, 1, tzinfo=UTC)
GRID = [START + timedelta(hours=h) for h in range(6)]
S = timedelta(seconds=1)
INSTANTS = sorted({*GRID, *(t - S for t in GRID), GRID[-1] + timedelta(days=1)})

PRODUCER = "SE2321000016-PROD"
CONSUMERS = ["SE2321000016-K1", "SE2321000016-K2"]
ENDPOINTS = ["ep1", "ep2", "ep3"]
OUTSIDE = "SE2321000016-OUTSIDE"  # an address in no tree and with no routes
UNKNOWN_CONTRACT = "urn:test:UnknownResponder:1"

descriptions = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # lone surrogates: see test_lone_surrogate_…
    max_size=12,
)
bound = st.one_of(st.none(), st.integers(0, len(GRID) - 1))


@st.composite
def windows(draw: st.DrawFn) -> tuple[datetime | None, datetime | None]:
    """A half-open window [from, to) on the grid; either end may be open."""
    lo = draw(bound)
    hi = draw(st.one_of(st.none(), st.integers(0 if lo is None else lo + 1, len(GRID))))
    return (None if lo is None else GRID[lo]), (None if hi is None or hi == len(GRID) else GRID[hi])


def overlap(a: Route, b: Route) -> bool:
    lo = max(
        a.valid_from or datetime.min.replace(tzinfo=UTC), b.valid_from or datetime.min.replace(tzinfo=UTC)
    )
    hi = min(a.valid_to or datetime.max.replace(tzinfo=UTC), b.valid_to or datetime.max.replace(tzinfo=UTC))
    return lo < hi


@st.composite
def catalogues(draw: st.DrawFn, *, allow_overlaps: bool = False) -> Catalogue:
    nodes: list[HsaNode] = []
    for i in range(draw(st.integers(1, 6))):
        parent = draw(st.sampled_from([NATIONAL, *(n.hsa_id for n in nodes)]))
        kind = draw(st.sampled_from(["unit", "care_provider", "region"]))
        nodes.append(HsaNode(f"SE2321000016-N{i}", parent, kind, draw(descriptions)))
    addresses = [n.hsa_id for n in nodes]
    contracts = [
        ContractEntry(f"urn:test:C{i}Responder:1", f"C{i}", draw(st.booleans()))
        for i in range(draw(st.integers(1, 3)))
    ]
    namespaces = [c.namespace for c in contracts]
    places = st.sampled_from([*addresses, NATIONAL, WILDCARD])

    routes: list[Route] = []
    for _ in range(draw(st.integers(0, 14))):
        valid_from, valid_to = draw(windows())
        route = Route(
            draw(st.sampled_from(namespaces)),
            draw(places),
            draw(st.sampled_from([INTERNAL, *ENDPOINTS])),
            valid_from,
            valid_to,
        )
        same_pair = [r for r in routes if (r.contract, r.address) == (route.contract, route.address)]
        if any(r.key() == route.key() for r in same_pair):
            continue  # a duplicate key is not an overlap question; it cannot even be stored
        if not allow_overlaps and any(overlap(route, r) for r in same_pair):
            continue
        routes.append(route)

    permissions: dict[tuple[str, ...], Permission] = {}
    for _ in range(draw(st.integers(0, 8))):
        valid_from, valid_to = draw(windows())
        permission = Permission(
            draw(st.sampled_from(CONSUMERS)),
            draw(st.sampled_from(namespaces)),
            draw(places),
            valid_from,
            valid_to,
        )
        permissions.setdefault(permission.key(), permission)

    endpoints = [
        Endpoint(
            name,
            PRODUCER,
            f"https://prod.example.se/{name}",
            connect_timeout=draw(st.sampled_from([0.5, 2.0, 7.25])),
            read_timeout=draw(st.sampled_from([1.0, 29.0, 299.5])),
            client_certificate=draw(st.one_of(st.none(), st.just(f"/tls/{name}.pem"))),
            verify_hostname=draw(st.booleans()),
        )
        for name in ENDPOINTS
    ]
    return Catalogue(
        components=(
            Component(PRODUCER, draw(descriptions)),
            *(Component(c, draw(descriptions)) for c in CONSUMERS),
        ),
        contracts=tuple(contracts),
        addresses=tuple(LogicalAddress(a, draw(descriptions)) for a in addresses),
        endpoints=tuple(endpoints),
        routes=tuple(routes),
        permissions=tuple(permissions.values()),
        hsa=tuple(nodes),
    )


def shuffled(catalogue: Catalogue, rnd: random.Random) -> Catalogue:
    def mix(items: tuple[object, ...]) -> tuple[object, ...]:
        items = list(items)
        rnd.shuffle(items)
        return tuple(items)

    return Catalogue(**{f.name: mix(getattr(catalogue, f.name)) for f in dataclasses.fields(catalogue)})


# -- a direct model of the rules, to check the resolver against ---------------------------------------------


def valid(entity: Route | Permission, now: datetime) -> bool:
    return (entity.valid_from is None or entity.valid_from <= now) and (
        entity.valid_to is None or now < entity.valid_to
    )


def climb(catalogue: Catalogue, address: str) -> list[str]:
    """``address``'s ancestors up to and including ``SE`` (outside the tree: straight to SE)."""
    parent = {n.hsa_id: n.parent for n in catalogue.hsa}
    chain, current = [], address
    while current != NATIONAL:
        current = parent.get(current, NATIONAL)
        chain.append(current)
    return chain


def model_resolve(catalogue: Catalogue, contract: str, address: str, now: datetime) -> list[Route]:
    """The routes of the first level that has any valid at ``now`` (empty when none does)."""
    climbs = {c.namespace: c.hsa_climb for c in catalogue.contracts}
    if contract not in climbs:
        return []
    levels = [address, *(climb(catalogue, address) if climbs[contract] else []), WILDCARD]
    for level in levels:
        found = [
            r for r in catalogue.routes if (r.contract, r.address) == (contract, level) and valid(r, now)
        ]
        if found:
            return found
    return []


def model_authorize(catalogue: Catalogue, consumer: str, contract: str, address: str, now: datetime) -> bool:
    levels = {address, WILDCARD, *climb(catalogue, address)}
    return any(
        (p.consumer, p.contract, p.address) == (consumer, contract, level) and valid(p, now)
        for p in catalogue.permissions
        for level in levels
    )


def queries(catalogue: Catalogue) -> list[tuple[str, str, datetime]]:
    contracts = [c.namespace for c in catalogue.contracts] + [UNKNOWN_CONTRACT]
    addresses = [n.hsa_id for n in catalogue.hsa] + [NATIONAL, WILDCARD, OUTSIDE]
    return [(c, a, t) for c in contracts for a in addresses for t in INSTANTS]


def outcome(table: RoutingTable, contract: str, address: str, now: datetime) -> object:
    try:
        return table.resolve(contract, address, now)
    except NoRouteFound as exc:
        return ("no route", exc.message, exc.trace)
    except AmbiguousRoute as exc:
        pytest.fail(f"two routes for {contract} at {address} at {now}: {exc.trace}")


# -- properties ---------------------------------------------------------------------------------------------


@PROFILE
@given(catalogues())
def test_generated_catalogues_are_publishable(catalogue: Catalogue) -> None:
    """The generator and ``problems()`` agree on what overlaps; everything else is valid by construction."""
    assert catalogue.problems() == []


@PROFILE
@given(catalogues())
def test_never_two_routes_and_agrees_with_the_model(catalogue: Catalogue) -> None:
    table = RoutingTable(catalogue)
    for contract, address, now in queries(catalogue):
        expected = model_resolve(catalogue, contract, address, now)
        assert len(expected) <= 1
        result = outcome(table, contract, address, now)
        if not expected:
            assert isinstance(result, tuple)
            assert result[0] == "no route"
            continue
        assert not isinstance(result, tuple), (contract, address, now, result)
        assert result.route == expected[0]
        assert result.matched_address == expected[0].address
        assert result.trace[-1].endswith(f" {expected[0].address}: route to {expected[0].target}")
        assert (result.endpoint is None) == (expected[0].target == INTERNAL)


def access(
    table: RoutingTable, consumer: str, contract: str, address: str, now: datetime
) -> tuple[str, tuple[str, ...]]:
    try:
        return ("granted", table.authorize(consumer, contract, address, now))
    except AccessDenied as exc:
        return ("denied", exc.trace)


@PROFILE
@given(catalogues())
def test_access_agrees_with_the_model(catalogue: Catalogue) -> None:
    table = RoutingTable(catalogue)
    for contract, address, now in queries(catalogue):
        for consumer in [*CONSUMERS, "SE2321000016-STRANGER"]:
            granted = model_authorize(catalogue, consumer, contract, address, now)
            verdict, trace = access(table, consumer, contract, address, now)
            assert verdict == ("granted" if granted else "denied"), (consumer, contract, address, now, trace)
            if granted:
                assert trace[-1].endswith(": permitted")
                assert all(": no permission" in line for line in trace[:-1])
            else:
                assert all(": no permission" in line for line in trace)


@PROFILE
@given(catalogues(), st.randoms(use_true_random=False))
def test_resolution_is_deterministic_and_order_independent(catalogue: Catalogue, rnd: random.Random) -> None:
    table = RoutingTable(catalogue)
    mixed = shuffled(catalogue, rnd)
    from_mixed = RoutingTable(mixed)  # entities in arbitrary order, as an import file might give them
    from_normalised = RoutingTable(mixed.normalised())
    assert mixed.normalised() == catalogue.normalised()
    for contract, address, now in queries(catalogue):
        first = outcome(table, contract, address, now)
        assert outcome(table, contract, address, now) == first
        assert outcome(from_mixed, contract, address, now) == first
        assert outcome(from_normalised, contract, address, now) == first
    for consumer in CONSUMERS:
        for contract, address, now in queries(catalogue)[::5]:
            results = [
                access(candidate, consumer, contract, address, now)
                for candidate in (table, table, from_mixed, from_normalised)
            ]
            assert results.count(results[0]) == len(results)


@PROFILE
@given(catalogues(), st.randoms(use_true_random=False))
def test_canonical_json_round_trip_and_stable_hash(catalogue: Catalogue, rnd: random.Random) -> None:
    text = catalogue.canonical_json()
    again = Catalogue.from_dict(json.loads(text))
    assert again.canonical_json() == text
    assert again == catalogue.normalised()
    assert again.content_hash() == catalogue.content_hash()
    mixed = shuffled(catalogue, rnd)
    assert mixed.canonical_json() == text
    assert mixed.content_hash() == catalogue.content_hash()
    assert len(catalogue.content_hash()) == 64


@PROFILE
@given(catalogues(allow_overlaps=True))
def test_every_ambiguity_is_refused_by_problems(catalogue: Catalogue) -> None:
    """Without the generator's care, a resolution that finds two routes is always one publish would refuse."""
    table = RoutingTable(catalogue)
    flagged = {p for p in catalogue.problems() if "overlapping validity" in p}
    for contract, address, now in queries(catalogue):
        try:
            table.resolve(contract, address, now)
        except AmbiguousRoute as exc:
            level = exc.trace[-1].split(":")[0].split(" ", 1)[1]
            assert any(p.startswith(f"routes: {contract} {level}: overlapping validity") for p in flagged)
        except NoRouteFound:
            pass


@PROFILE
@given(catalogues(), st.data())
def test_an_added_overlapping_route_is_refused(catalogue: Catalogue, data: st.DataObject) -> None:
    """Publish's check refuses exactly the additions that could make a resolution find two routes."""
    if not catalogue.routes:
        return
    existing = data.draw(st.sampled_from(catalogue.routes))
    valid_from, valid_to = data.draw(windows())
    extra = Route(existing.contract, existing.address, INTERNAL, valid_from, valid_to)
    broken = dataclasses.replace(catalogue, routes=(*catalogue.routes, extra))
    pair = [r for r in catalogue.routes if (r.contract, r.address) == (extra.contract, extra.address)]
    if any(overlap(r, extra) for r in pair):
        label = f"routes: {extra.contract} {extra.address}: overlapping validity"
        assert any(p.startswith(label) for p in broken.problems())
    else:
        assert broken.problems() == []


def test_lone_surrogate_from_a_json_import_is_a_catalogue_error() -> None:
    document = json.loads('{"components": [{"hsa_id": "SE2321000016-A", "description": "\\ud800"}]}')
    try:
        catalogue = Catalogue.from_dict(document)
        catalogue.content_hash()
    except CatalogueError:
        return
    except UnicodeError as exc:
        pytest.fail(f"{type(exc).__name__} instead of a CatalogueError: {exc}")
