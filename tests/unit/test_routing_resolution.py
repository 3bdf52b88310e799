"""Route resolution and access control, table-driven over one realistic catalogue.

The catalogue is a small region: units under two care providers of region R1, a second region R9 that only
the national (``SE``) route serves, the complaints contracts RegisterCase (HSA climb on) and UpdateCase (HSA
climb off), validity windows whose edges are probed one second before, at and one second after, and a
scheduled cut-over of one unit from the gateway's own case desk (``internal``) to the region's deviation
system. Every expected result names the trace that explains it, line by line, as it goes into the log.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from routing.errors import AccessDenied, AmbiguousRoute, DecisionError, NoRouteFound
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
from routing.resolver import Decision, RoutingTable

NS = "urn:riv-application:supportprocess:logistics:complaintsandfeedback"
RC = f"{NS}:RegisterCaseResponder:1"
UC = f"{NS}:UpdateCaseResponder:1"
GC = f"{NS}:GetCaseResponder:1"  # not in the catalogue

# HSA tree: U1, U2, U5, U6 → CP1 → R1 → SE;  U3 → CP2 → R1;  U9 → CP9 → R9 → SE;  X1 is in no tree.
R1, CP1, CP2 = "SE2321000016-R1", "SE2321000016-CP1", "SE2321000016-CP2"
U1, U2, U3, U5, U6 = (f"SE2321000016-U{n}" for n in (1, 2, 3, 5, 6))
R9, CP9, U9 = "SE2321000099-R9", "SE2321000099-CP9", "SE2321000099-U9"
X1 = "SE2321000077-X1"

DEV = "SE2321000016-DEV1"  # the region's deviation system (producer)
NAT = "SE2321000099-NAT"  # a national complaints service (producer)
C1177 = "SE5565594230-1177"  # consumer with an exact permission for U1
PORTAL = "SE2321000016-PORTAL"  # consumer permitted at *
APP_CP = "SE2321000016-APP1"  # consumer permitted at care provider CP1
APP_R = "SE2321000016-APP2"  # consumer permitted at region R1
APP_SE = "SE2321000016-APP3"  # consumer permitted at SE
OLD = "SE2321000016-OLD"  # consumer whose permission ran out at the end of 2025
NOBODY = "SE2321000016-NOBODY"  # a known component without any permission


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


S = timedelta(seconds=1)
NOW = at("2027-02-01T12:00:00Z")
T_SE = at("2026-07-01T00:00:00Z")  # the national RegisterCase route starts
T_CUT = at("2027-01-01T00:00:00Z")  # U6 moves from the case desk to the deviation system
U5_FROM, U5_TO = at("2027-03-01T00:00:00Z"), at("2027-04-01T00:00:00Z")  # RegisterCase window of U5
UC_WILD_TO = at("2027-06-01T00:00:00Z")  # UpdateCase catch-all ends
UC5_FROM, UC5_TO = at("2027-07-01T00:00:00Z"), at("2027-08-01T00:00:00Z")  # UpdateCase window of U5
OLD_FROM, OLD_TO = at("2025-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")


def realistic_catalogue() -> Catalogue:
    """The catalogue of this module (also used by the store tests for import/export round trips)."""

    def endpoint(name: str, component: str, path: str) -> Endpoint:
        return Endpoint(name, component, f"https://{component.lower()}.example.se/rivta/{path}")

    return Catalogue(
        components=(
            Component(DEV, "Region R1 deviation system"),
            Component(NAT, "National complaints service"),
            Component(C1177, "1177 e-services"),
            Component(PORTAL, "Regional staff portal"),
            Component(APP_CP, "Care provider CP1 app"),
            Component(APP_R, "Region R1 app"),
            Component(APP_SE, "National app"),
            Component(OLD, "Decommissioned app"),
            Component(NOBODY, "Registered, never permitted"),
        ),
        contracts=(ContractEntry(RC, "RegisterCase", hsa_climb=True), ContractEntry(UC, "UpdateCase", False)),
        addresses=tuple(
            LogicalAddress(a, f"address {a}") for a in (R1, CP1, CP2, U1, U2, U3, U5, U6, R9, CP9, U9, X1)
        ),
        endpoints=(
            endpoint("ep1", DEV, "u1"),
            Endpoint(
                "ep-cp1",
                DEV,
                "https://dev1.example.se/rivta/cp1",
                connect_timeout=3.0,
                read_timeout=20.0,
                client_certificate="/etc/gateway/tls/client.pem",
                client_key="/etc/gateway/tls/client.key",
                trust_store="/etc/gateway/tls/region-ca.pem",
            ),
            endpoint("ep-r1", DEV, "r1"),
            endpoint("ep-se", NAT, "se"),
            endpoint("ep5", DEV, "u5"),
            endpoint("ep6", DEV, "u6"),
        ),
        routes=(
            Route(RC, U1, "ep1"),
            Route(RC, CP1, "ep-cp1"),
            Route(RC, R1, "ep-r1"),
            Route(RC, NATIONAL, "ep-se", valid_from=T_SE),
            Route(RC, WILDCARD, INTERNAL),
            Route(RC, U5, "ep5", valid_from=U5_FROM, valid_to=U5_TO),
            Route(RC, U6, INTERNAL, valid_to=T_CUT),
            Route(RC, U6, "ep6", valid_from=T_CUT),
            Route(UC, U1, "ep1"),
            Route(UC, CP1, "ep-cp1"),  # never reached: UpdateCase does not climb
            Route(UC, WILDCARD, INTERNAL, valid_to=UC_WILD_TO),
            Route(UC, U5, "ep5", valid_from=UC5_FROM, valid_to=UC5_TO),
        ),
        permissions=(
            Permission(C1177, RC, U1),
            Permission(PORTAL, RC, WILDCARD),
            Permission(APP_CP, RC, CP1),
            Permission(APP_R, RC, R1),
            Permission(APP_SE, RC, NATIONAL),
            Permission(OLD, RC, U1, valid_from=OLD_FROM, valid_to=OLD_TO),
        ),
        hsa=(
            HsaNode(R1, NATIONAL, "region", "Region R1"),
            HsaNode(CP1, R1, "care_provider", "Care provider 1"),
            HsaNode(CP2, R1, "care_provider", "Care provider 2"),
            HsaNode(U1, CP1, "unit", "Unit 1"),
            HsaNode(U2, CP1, "unit", "Unit 2"),
            HsaNode(U5, CP1, "unit", "Unit 5"),
            HsaNode(U6, CP1, "unit", "Unit 6"),
            HsaNode(U3, CP2, "unit", "Unit 3"),
            HsaNode(R9, NATIONAL, "region", "Region R9"),
            HsaNode(CP9, R9, "care_provider", "Care provider 9"),
            HsaNode(U9, CP9, "unit", "Unit 9"),
        ),
    ).normalised()


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return RoutingTable(realistic_catalogue(), version=7)


def test_the_catalogue_is_publishable() -> None:
    catalogue = realistic_catalogue()
    assert catalogue.problems() == []
    assert not catalogue.is_empty()


def test_ancestors_follow_the_hsa_tree(table: RoutingTable) -> None:
    assert table.ancestors(U1) == [CP1, R1, NATIONAL]
    assert table.ancestors(U3) == [CP2, R1, NATIONAL]
    assert table.ancestors(R9) == [NATIONAL]
    assert table.ancestors(X1) == [NATIONAL]  # outside the tree: straight to the national level
    assert table.ancestors(NATIONAL) == [NATIONAL]


CLIMB_OFF = "HSA climb disabled for this contract"

# (id, contract, address, instant, target or the expected error, matched address, trace or None)
RESOLUTION = [
    ("exact", RC, U1, NOW, "ep1", U1, ["exact SE2321000016-U1: route to ep1"]),
    (
        "climb-to-care-provider",
        RC,
        U2,
        NOW,
        "ep-cp1",
        CP1,
        ["exact SE2321000016-U2: no route", "hsa SE2321000016-CP1: route to ep-cp1"],
    ),
    (
        "climb-to-region",
        RC,
        U3,
        NOW,
        "ep-r1",
        R1,
        [
            "exact SE2321000016-U3: no route",
            "hsa SE2321000016-CP2: no route",
            "hsa SE2321000016-R1: route to ep-r1",
        ],
    ),
    (
        "climb-to-national",
        RC,
        U9,
        NOW,
        "ep-se",
        NATIONAL,
        [
            "exact SE2321000099-U9: no route",
            "hsa SE2321000099-CP9: no route",
            "hsa SE2321000099-R9: no route",
            "hsa SE: route to ep-se",
        ],
    ),
    (
        "wildcard-one-second-before-national-route",
        RC,
        U9,
        T_SE - S,
        INTERNAL,
        WILDCARD,
        [
            "exact SE2321000099-U9: no route",
            "hsa SE2321000099-CP9: no route",
            "hsa SE2321000099-R9: no route",
            "hsa SE: no route (1 outside validity)",
            "wildcard *: route to internal",
        ],
    ),
    ("national-at-its-valid-from", RC, U9, T_SE, "ep-se", NATIONAL, None),
    (
        "address-outside-the-hsa-tree-climbs-to-national",
        RC,
        X1,
        NOW,
        "ep-se",
        NATIONAL,
        ["exact SE2321000077-X1: no route", "hsa SE: route to ep-se"],
    ),
    ("national-address-itself", RC, NATIONAL, NOW, "ep-se", NATIONAL, ["exact SE: route to ep-se"]),
    # validity edges of U5's own route [2027-03-01, 2027-04-01): outside it, U5 climbs to its care provider
    (
        "one-second-before-valid-from",
        RC,
        U5,
        U5_FROM - S,
        "ep-cp1",
        CP1,
        ["exact SE2321000016-U5: no route (1 outside validity)", "hsa SE2321000016-CP1: route to ep-cp1"],
    ),
    ("at-valid-from", RC, U5, U5_FROM, "ep5", U5, ["exact SE2321000016-U5: route to ep5"]),
    ("one-second-before-valid-to", RC, U5, U5_TO - S, "ep5", U5, ["exact SE2321000016-U5: route to ep5"]),
    (
        "at-valid-to",
        RC,
        U5,
        U5_TO,
        "ep-cp1",
        CP1,
        ["exact SE2321000016-U5: no route (1 outside validity)", "hsa SE2321000016-CP1: route to ep-cp1"],
    ),
    # scheduled cut-over of U6: the case desk until T_CUT, the deviation system from T_CUT, without a publish
    (
        "cut-over-one-second-before",
        RC,
        U6,
        T_CUT - S,
        INTERNAL,
        U6,
        ["exact SE2321000016-U6: route to internal"],
    ),
    ("cut-over-at-instant", RC, U6, T_CUT, "ep6", U6, ["exact SE2321000016-U6: route to ep6"]),
    ("cut-over-long-after", RC, U6, NOW, "ep6", U6, None),
    # UpdateCase does not climb: CP1's UpdateCase route is never used, U2 falls to * (while * is valid)
    ("no-climb-exact", UC, U1, NOW, "ep1", U1, [CLIMB_OFF, "exact SE2321000016-U1: route to ep1"]),
    (
        "no-climb-falls-to-wildcard",
        UC,
        U2,
        NOW,
        INTERNAL,
        WILDCARD,
        [CLIMB_OFF, "exact SE2321000016-U2: no route", "wildcard *: route to internal"],
    ),
    ("no-climb-wildcard-last-second", UC, U2, UC_WILD_TO - S, INTERNAL, WILDCARD, None),
    (
        "no-climb-wildcard-expired",
        UC,
        U2,
        UC_WILD_TO,
        NoRouteFound,
        None,
        [CLIMB_OFF, "exact SE2321000016-U2: no route", "wildcard *: no route (1 outside validity)"],
    ),
    (
        "no-climb-before-window",
        UC,
        U5,
        UC5_FROM - S,
        NoRouteFound,
        None,
        [
            CLIMB_OFF,
            "exact SE2321000016-U5: no route (1 outside validity)",
            "wildcard *: no route (1 outside validity)",
        ],
    ),
    (
        "no-climb-window-start",
        UC,
        U5,
        UC5_FROM,
        "ep5",
        U5,
        [CLIMB_OFF, "exact SE2321000016-U5: route to ep5"],
    ),
    ("no-climb-window-last-second", UC, U5, UC5_TO - S, "ep5", U5, None),
    ("no-climb-window-end", UC, U5, UC5_TO, NoRouteFound, None, None),
    (
        "missing-no-climb-address-outside-tree",
        UC,
        X1,
        UC_WILD_TO,
        NoRouteFound,
        None,
        [CLIMB_OFF, "exact SE2321000077-X1: no route", "wildcard *: no route (1 outside validity)"],
    ),
    ("unknown-contract", GC, U1, NOW, NoRouteFound, None, [f"contract {GC} not in catalogue"]),
]


@pytest.mark.parametrize(
    ("contract", "address", "now", "expected", "matched", "trace"),
    [pytest.param(*case[1:], id=case[0]) for case in RESOLUTION],
)
def test_resolve(
    table: RoutingTable,
    contract: str,
    address: str,
    now: datetime,
    expected: str | type[DecisionError],
    matched: str | None,
    trace: list[str] | None,
) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected) as caught:
            table.resolve(contract, address, now)
        assert caught.value.message == f"No route for {contract} at {address}"
        assert isinstance(caught.value.trace, tuple)
        if trace is not None:
            assert list(caught.value.trace) == trace
        return
    decision = table.resolve(contract, address, now)
    assert isinstance(decision, Decision)
    assert decision.target == expected
    assert decision.route.target == expected
    assert decision.route.contract == contract
    assert decision.route.valid_at(now)
    assert decision.matched_address == matched
    assert decision.route.address == matched
    assert decision.internal is (expected == INTERNAL)
    if expected == INTERNAL:
        assert decision.endpoint is None
    else:
        assert decision.endpoint == table.endpoint(expected)
        assert decision.endpoint is not None
        assert decision.endpoint.name == expected
    if trace is not None:
        assert list(decision.trace) == trace


def test_decision_carries_the_endpoint_settings(table: RoutingTable) -> None:
    decision = table.resolve(RC, U2, NOW)
    assert decision.endpoint is not None
    assert decision.endpoint.url == "https://dev1.example.se/rivta/cp1"
    assert (decision.endpoint.connect_timeout, decision.endpoint.read_timeout) == (3.0, 20.0)
    assert decision.endpoint.trust_store == "/etc/gateway/tls/region-ca.pem"
    assert decision.endpoint.verify_hostname is True
    assert table.version == 7
    assert table.content_hash == realistic_catalogue().content_hash()


def test_cut_over_needs_no_publish(table: RoutingTable) -> None:
    """One table, two instants one second apart: the unit moves from the desk to the deviation system."""
    before, after = table.resolve(RC, U6, T_CUT - S), table.resolve(RC, U6, T_CUT)
    assert (before.internal, before.endpoint) == (True, None)
    assert (after.internal, after.target) == (False, "ep6")
    assert before.route != after.route


# -- ambiguity: only a catalogue that bypasses publish can have it ------------------------------------------

# (id, routes added to the catalogue, address, trace, problem reported, target one second before the overlap)
AMBIGUOUS = [
    (
        "at-the-exact-level",
        (Route(RC, U2, "ep1"), Route(RC, U2, INTERNAL, valid_from=T_CUT)),
        U2,
        ["exact SE2321000016-U2: 2 routes"],
        f"routes: {RC} SE2321000016-U2: overlapping validity (ep1 and internal)",
        "ep1",
    ),
    (
        "at-a-climbed-level",
        (Route(RC, CP1, "ep1", valid_from=T_CUT, valid_to=NOW + S),),
        U2,
        ["exact SE2321000016-U2: no route", "hsa SE2321000016-CP1: 2 routes"],
        f"routes: {RC} SE2321000016-CP1: overlapping validity (ep-cp1 and ep1)",
        "ep-cp1",
    ),
]


@pytest.mark.parametrize(
    ("extra", "address", "trace", "problem", "before"),
    [pytest.param(*case[1:], id=case[0]) for case in AMBIGUOUS],
)
def test_ambiguous_route(
    extra: tuple[Route, ...], address: str, trace: list[str], problem: str, before: str
) -> None:
    base = realistic_catalogue()
    catalogue = dataclasses.replace(base, routes=base.routes + extra)  # as if publish had not checked
    table = RoutingTable(catalogue)
    with pytest.raises(AmbiguousRoute) as caught:
        table.resolve(RC, address, NOW)
    assert list(caught.value.trace) == trace
    assert caught.value.message == f"More than one route for {RC} at {address}"
    assert catalogue.problems() == [problem]
    # before the second route starts there is exactly one route again
    assert table.resolve(RC, address, T_CUT - S).target == before
    assert base.problems() == []


# -- access -------------------------------------------------------------------------------------------------

DENIED_AT_U1 = [
    "exact SE2321000016-U1: no permission",
    "wildcard *: no permission",
    "hsa SE2321000016-CP1: no permission",
    "hsa SE2321000016-R1: no permission",
    "hsa SE: no permission",
]

# (id, consumer, contract, address, instant, granted, trace)
ACCESS = [
    ("exact", C1177, RC, U1, NOW, True, ["exact SE2321000016-U1: permitted"]),
    (
        "wildcard",
        PORTAL,
        RC,
        U3,
        NOW,
        True,
        ["exact SE2321000016-U3: no permission", "wildcard *: permitted"],
    ),
    (
        "wildcard-also-for-addresses-outside-the-tree",
        PORTAL,
        RC,
        X1,
        NOW,
        True,
        ["exact SE2321000077-X1: no permission", "wildcard *: permitted"],
    ),
    (
        "climb-to-care-provider",
        APP_CP,
        RC,
        U2,
        NOW,
        True,
        [
            "exact SE2321000016-U2: no permission",
            "wildcard *: no permission",
            "hsa SE2321000016-CP1: permitted",
        ],
    ),
    (
        "climb-to-region",
        APP_R,
        RC,
        U3,
        NOW,
        True,
        [
            "exact SE2321000016-U3: no permission",
            "wildcard *: no permission",
            "hsa SE2321000016-CP2: no permission",
            "hsa SE2321000016-R1: permitted",
        ],
    ),
    (
        "climb-to-national",
        APP_SE,
        RC,
        U9,
        NOW,
        True,
        [
            "exact SE2321000099-U9: no permission",
            "wildcard *: no permission",
            "hsa SE2321000099-CP9: no permission",
            "hsa SE2321000099-R9: no permission",
            "hsa SE: permitted",
        ],
    ),
    ("care-provider-permission-at-itself", APP_CP, RC, CP1, NOW, True, ["exact SE2321000016-CP1: permitted"]),
    (
        "care-provider-permission-not-for-another-care-provider",
        APP_CP,
        RC,
        U3,
        NOW,
        False,
        [
            "exact SE2321000016-U3: no permission",
            "wildcard *: no permission",
            "hsa SE2321000016-CP2: no permission",
            "hsa SE2321000016-R1: no permission",
            "hsa SE: no permission",
        ],
    ),
    (
        "region-permission-not-for-another-region",
        APP_R,
        RC,
        U9,
        NOW,
        False,
        [
            "exact SE2321000099-U9: no permission",
            "wildcard *: no permission",
            "hsa SE2321000099-CP9: no permission",
            "hsa SE2321000099-R9: no permission",
            "hsa SE: no permission",
        ],
    ),
    ("expiring-permission-at-valid-from", OLD, RC, U1, OLD_FROM, True, ["exact SE2321000016-U1: permitted"]),
    ("expiring-permission-last-second", OLD, RC, U1, OLD_TO - S, True, ["exact SE2321000016-U1: permitted"]),
    (
        "permission-not-yet-valid",
        OLD,
        RC,
        U1,
        OLD_FROM - S,
        False,
        ["exact SE2321000016-U1: no permission (1 outside validity)", *DENIED_AT_U1[1:]],
    ),
    (
        "expired-permission",
        OLD,
        RC,
        U1,
        OLD_TO,
        False,
        ["exact SE2321000016-U1: no permission (1 outside validity)", *DENIED_AT_U1[1:]],
    ),
    ("other-consumer", NOBODY, RC, U1, NOW, False, DENIED_AT_U1),
    ("unknown-consumer", "SE9999999999-X", RC, U1, NOW, False, DENIED_AT_U1),
    (
        "exact-permission-is-for-its-unit-only",
        C1177,
        RC,
        U2,
        NOW,
        False,
        [
            "exact SE2321000016-U2: no permission",
            "wildcard *: no permission",
            "hsa SE2321000016-CP1: no permission",
            "hsa SE2321000016-R1: no permission",
            "hsa SE: no permission",
        ],
    ),
    ("permission-is-per-contract", C1177, UC, U1, NOW, False, DENIED_AT_U1),
    ("wildcard-permission-is-per-contract", PORTAL, UC, U1, NOW, False, DENIED_AT_U1),
]


@pytest.mark.parametrize(
    ("consumer", "contract", "address", "now", "granted", "trace"),
    [pytest.param(*case[1:], id=case[0]) for case in ACCESS],
)
def test_authorize(
    table: RoutingTable,
    consumer: str,
    contract: str,
    address: str,
    now: datetime,
    granted: bool,
    trace: list[str],
) -> None:
    if granted:
        assert list(table.authorize(consumer, contract, address, now)) == trace
        return
    with pytest.raises(AccessDenied) as caught:
        table.authorize(consumer, contract, address, now)
    assert list(caught.value.trace) == trace
    assert caught.value.message == f"{consumer} may not call {contract} at {address}"
    assert str(caught.value) == caught.value.message


def test_decision_errors_are_routing_errors() -> None:
    from routing.errors import RoutingError

    for error in (NoRouteFound, AmbiguousRoute, AccessDenied):
        assert issubclass(error, DecisionError)
        assert issubclass(error, RoutingError)
