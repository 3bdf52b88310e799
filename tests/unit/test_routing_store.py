"""The catalogue store on SQLite and PostgreSQL: draft edits, publish and its refusals, numbered versions with
content hashes, pending diffs, rollback as a new version, the audit log of a scripted session, exact import →
export round trips, and instants that come back from either database as the same UTC instants.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from gateway import migrate
from gateway.db import make_engine
from routing import io as routing_io
from routing.errors import CatalogueError
from routing.model import (
    INTERNAL,
    WILDCARD,
    Catalogue,
    Component,
    ContractEntry,
    Endpoint,
    LogicalAddress,
    Permission,
    Route,
)
from routing.resolver import RoutingTable
from routing.store import CatalogueStore, VersionInfo
from tests.unit.test_routing_resolution import RC, U1, UC, realistic_catalogue

DATA = Path(__file__).resolve().parents[1] / "data" / "routing"

DEV = "SE2321000016-DEV1"
C1177 = "SE5565594230-1177"
U6 = "SE2321000016-U6"
T_CUT = datetime(2027, 1, 1, tzinfo=UTC)
URL_OLD = "https://dev1.example.se/rivta/RegisterCase"
URL_NEW = "https://dev1-new.example.se/rivta/RegisterCase"

ROUTE_U1 = Route(RC, U1, "ep1")
PERMISSION_U1 = Permission(C1177, RC, U1)
ROUTE_KEY_U1 = f"{RC}/{U1}/None"
PERMISSION_KEY_U1 = f"{C1177}/{RC}/{U1}/None"


def make_store(url: str) -> tuple[Engine, CatalogueStore]:
    engine = make_engine(url, pool_size=2)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert engine.dialect.has_table(conn, "routing_version"), "routing tables come from the migrations"
    return engine, CatalogueStore(engine)


@pytest.fixture
def store(db_url: str) -> Iterator[CatalogueStore]:
    engine, catalogue_store = make_store(db_url)
    try:
        yield catalogue_store
    finally:
        engine.dispose()


def is_sqlite(store: CatalogueStore) -> bool:
    return store.engine.dialect.name == "sqlite"


def minimal(store: CatalogueStore, actor: str = "anna") -> None:
    """Seven entities that publish as they are: one route and one permission with what they refer to."""
    store.add("components", Component(DEV, "deviation system"), actor)
    store.add("components", Component(C1177, "1177"), actor)
    store.add("contracts", ContractEntry(RC, "RegisterCase"), actor)
    store.add("addresses", LogicalAddress(U1, "unit 1"), actor)
    store.add("endpoints", Endpoint("ep1", DEV, URL_OLD), actor)
    store.add("routes", ROUTE_U1, actor)
    store.add("permissions", PERMISSION_U1, actor)


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


# -- draft ---------------------------------------------------------------------------------------------------


def test_draft_add_and_remove(store: CatalogueStore) -> None:
    assert store.draft() == Catalogue()
    store.add("components", Component(DEV, "first"), "anna")
    with pytest.raises(CatalogueError, match=f"^components {DEV} already exists in the draft$"):
        store.add("components", Component(DEV, "second"), "anna")
    assert store.draft().components == (Component(DEV, "first"),)
    store.add("components", Component(DEV, "second"), "anna", replace=True)
    assert store.draft().components == (Component(DEV, "second"),)

    # routes are keyed by (contract, address, valid_from): an open start and a dated start are two routes
    store.add("routes", Route(RC, U1, INTERNAL, valid_to=T_CUT), "anna")
    store.add("routes", Route(RC, U1, "ep1", valid_from=T_CUT), "anna")
    with pytest.raises(CatalogueError, match=f"^routes {re.escape(RC)}/{U1} already exists in the draft$"):
        store.add("routes", Route(RC, U1, "ep2"), "anna")
    with pytest.raises(CatalogueError, match="already exists in the draft"):
        store.add("routes", Route(RC, U1, "ep2", valid_from=T_CUT), "anna")
    assert [r.target for r in store.draft().routes] == [INTERNAL, "ep1"]

    store.remove("routes", Route(RC, U1, "", valid_to=None), "anna")  # only the key matters
    assert store.draft().routes == (Route(RC, U1, "ep1", valid_from=T_CUT),)
    with pytest.raises(CatalogueError, match=f"^routes {re.escape(RC)}/{U1} is not in the draft$"):
        store.remove("routes", Route(RC, U1, INTERNAL), "anna")
    with pytest.raises(CatalogueError, match=r"^components SE2321000016-NOPE is not in the draft$"):
        store.remove("components", Component("SE2321000016-NOPE"), "anna")
    store.remove("routes", Route(RC, U1, "", valid_from=T_CUT), "anna")
    store.remove("components", Component(DEV), "anna")
    assert store.draft() == Catalogue()
    assert store.count_versions() == 0


def test_refused_changes_leave_no_trace(store: CatalogueStore) -> None:
    minimal(store)
    rows = len(store.audit_log())
    draft = store.draft()
    with pytest.raises(CatalogueError):
        store.add("permissions", PERMISSION_U1, "mallory")
    with pytest.raises(CatalogueError):
        store.remove("addresses", LogicalAddress("SE2321000016-U404"), "mallory")
    assert len(store.audit_log()) == rows
    assert store.draft() == draft


# -- publish -------------------------------------------------------------------------------------------------


def _nothing(store: CatalogueStore) -> None:
    pass


def _no_routes_or_permissions(store: CatalogueStore) -> None:
    store.remove("routes", ROUTE_U1, "anna")
    store.remove("permissions", PERMISSION_U1, "anna")


def _route_to_unknown_endpoint(store: CatalogueStore) -> None:
    store.add("routes", Route(RC, U1, "ghost"), "anna", replace=True)


def _permission_for_unknown_consumer(store: CatalogueStore) -> None:
    store.add("permissions", Permission("SE2321000016-GHOST", RC, U1), "anna")


def _overlapping_validity(store: CatalogueStore) -> None:
    store.add(
        "routes", Route(RC, U1, INTERNAL, valid_from=T_CUT, valid_to=T_CUT + timedelta(days=30)), "anna"
    )


def _route_for_unknown_contract(store: CatalogueStore) -> None:
    store.add("routes", Route(UC, U1, "ep1"), "anna")


REFUSALS: list[tuple[str, Callable[[CatalogueStore], None], str, str]] = [
    (
        "empty",
        _no_routes_or_permissions,
        "looks fine",
        "refusing to publish an empty catalogue (no routes and no permissions)",
    ),
    ("dangling-endpoint", _route_to_unknown_endpoint, "m", f"routes: {RC} {U1}: unknown endpoint ghost"),
    (
        "dangling-consumer",
        _permission_for_unknown_consumer,
        "m",
        f"permissions: SE2321000016-GHOST {RC} {U1}: unknown consumer component",
    ),
    ("dangling-contract", _route_for_unknown_contract, "m", f"routes: {UC} {U1}: unknown contract"),
    (
        "overlapping-validity",
        _overlapping_validity,
        "m",
        f"routes: {RC} {U1}: overlapping validity (ep1 and internal)",
    ),
    ("no-comment", _nothing, "", "publish needs a comment (-m)"),
    ("blank-comment", _nothing, "  \n", "publish needs a comment (-m)"),
]


@pytest.mark.parametrize(
    ("breaks", "comment", "message"), [pytest.param(*case[1:], id=case[0]) for case in REFUSALS]
)
def test_publish_refuses(
    store: CatalogueStore, breaks: Callable[[CatalogueStore], None], comment: str, message: str
) -> None:
    minimal(store)
    breaks(store)
    draft, rows = store.draft(), len(store.audit_log())
    with pytest.raises(CatalogueError, match=f"^{re.escape(message)}$"):
        store.publish("anna", comment)
    assert store.count_versions() == 0
    assert store.history() == []
    assert store.active() is None
    assert store.draft() == draft
    assert len(store.audit_log()) == rows


def test_publish_refuses_an_unchanged_draft(store: CatalogueStore) -> None:
    minimal(store)
    store.publish("anna", "first")
    with pytest.raises(CatalogueError, match=r"^nothing to publish: the draft equals version 1$"):
        store.publish("anna", "again")
    store.remove("routes", ROUTE_U1, "anna")
    store.add("routes", ROUTE_U1, "anna")  # edited and edited back: still nothing to publish
    with pytest.raises(CatalogueError, match="nothing to publish"):
        store.publish("anna", "again", force=True)
    assert store.count_versions() == 1


def test_publish_refuses_a_large_diff_unless_forced(store: CatalogueStore) -> None:
    minimal(store)
    assert store.pending_diff().size == 7
    with pytest.raises(
        CatalogueError, match=re.escape("the change has 7 entries (limit 6); review the diff and use --force")
    ):
        store.publish("anna", "big bang", max_changes=6)
    assert store.count_versions() == 0
    assert store.publish("anna", "big bang", max_changes=6, force=True).version == 1
    store.add("addresses", LogicalAddress(U6), "anna")
    store.add("routes", Route(RC, U6, INTERNAL), "anna")
    with pytest.raises(CatalogueError, match=re.escape("the change has 2 entries (limit 1)")):
        store.publish("anna", "two", max_changes=1)
    assert store.publish("anna", "two", max_changes=2).version == 2


def test_publish_numbers_versions_with_content_hashes(store: CatalogueStore) -> None:
    minimal(store)
    started = datetime.now(UTC) - timedelta(seconds=5)
    first = store.publish("anna", "first")
    assert isinstance(first, VersionInfo)
    assert (first.version, first.author, first.comment, first.source) == (1, "anna", "first", "publish")
    assert first.content_hash == store.draft().content_hash()
    store.add("addresses", LogicalAddress(U6), "bob")
    store.add("routes", Route(RC, U6, INTERNAL, valid_to=T_CUT), "bob")
    store.add("routes", Route(RC, U6, "ep1", valid_from=T_CUT), "bob")
    second = store.publish("bob", "cut-over of U6")
    assert second.version == 2
    assert second.content_hash == store.draft().content_hash() != first.content_hash

    for info in (first, second):
        catalogue, digest = store.version_content(info.version)
        assert digest == info.content_hash == catalogue.content_hash()
    active = store.active()
    assert active is not None
    assert active[:2] == (2, second.content_hash)
    assert active[2] == store.draft()
    assert store.active_version() == (2, second.content_hash)

    history = store.history()
    assert [(h.version, h.author, h.comment, h.source) for h in history] == [
        (1, "anna", "first", "publish"),
        (2, "bob", "cut-over of U6", "publish"),
    ]
    assert [h.content_hash for h in history] == [first.content_hash, second.content_hash]
    for h in history:
        assert_utc(h.created_at)
        assert started <= h.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert history[0].created_at <= history[1].created_at

    table = RoutingTable(active[2], *active[:2])  # what a worker would serve
    assert table.resolve(RC, U6, T_CUT - timedelta(seconds=1)).internal
    assert table.resolve(RC, U6, T_CUT).target == "ep1"
    with pytest.raises(CatalogueError, match=r"^no version 3$"):
        store.version_content(3)


def test_pending_diff_lines(store: CatalogueStore) -> None:
    minimal(store)
    assert store.pending_diff().lines() == [
        f"+ components {DEV}",
        f"+ components {C1177}",
        f"+ contracts {RC}",
        f"+ addresses {U1}",
        "+ endpoints ep1",
        f"+ routes {RC}/{U1}",
        f"+ permissions {C1177}/{RC}/{U1}",
    ]
    store.publish("anna", "first")
    assert store.pending_diff().lines() == []
    assert store.pending_diff().size == 0

    store.add("routes", Route(RC, U1, INTERNAL, valid_to=T_CUT), "bob", replace=True)
    store.add("routes", Route(RC, U1, "ep1", valid_from=T_CUT), "bob")
    store.remove("permissions", PERMISSION_U1, "bob")
    store.add("permissions", Permission(C1177, RC, WILDCARD), "bob")
    store.add("endpoints", Endpoint("ep1", DEV, URL_NEW), "bob", replace=True)
    pending = store.pending_diff()
    assert pending.lines() == [
        f"+ routes {RC}/{U1}/2027-01-01 00:00:00+00:00",
        f"+ permissions {C1177}/{RC}/*",
        f"- permissions {C1177}/{RC}/{U1}",
        "~ endpoints ep1",
        f"~ routes {RC}/{U1}",
    ]
    assert pending.size == 5
    assert (len(pending.added), len(pending.removed), len(pending.changed)) == (2, 1, 2)


# -- rollback ------------------------------------------------------------------------------------------------


def test_rollback_publishes_the_old_content_as_a_new_version(store: CatalogueStore) -> None:
    minimal(store)
    first = store.publish("anna", "first")
    store.add("endpoints", Endpoint("ep1", DEV, URL_NEW), "bob", replace=True)
    store.remove("permissions", PERMISSION_U1, "bob")
    store.add("permissions", Permission(C1177, RC, WILDCARD), "bob")
    second = store.publish("bob", "second")
    assert second.content_hash != first.content_hash

    third = store.rollback(1, "carl")
    assert (third.version, third.source, third.author) == (3, "rollback:1", "carl")
    assert third.comment == "rollback to version 1"
    assert third.content_hash == first.content_hash
    old, old_hash = store.version_content(1)
    new, new_hash = store.version_content(3)
    assert new == old
    assert new.canonical_json() == old.canonical_json()
    assert new_hash == old_hash == first.content_hash
    assert store.draft() == old  # the draft follows, so the next publish starts from version 3
    assert store.pending_diff().size == 0
    assert store.active_version() == (3, first.content_hash)

    history = store.history()
    assert [(h.version, h.source, h.content_hash) for h in history] == [
        (1, "publish", first.content_hash),
        (2, "publish", second.content_hash),
        (3, "rollback:1", first.content_hash),
    ]
    # history is never rewritten: version 2 is still there, and one can roll forward to it
    fourth = store.rollback(2, "carl", "roll forward again")
    assert (fourth.version, fourth.source, fourth.comment) == (4, "rollback:2", "roll forward again")
    assert store.version_content(4) == store.version_content(2)
    with pytest.raises(CatalogueError, match=r"^no version 9$"):
        store.rollback(9, "carl")
    assert store.count_versions() == 4


# -- audit ---------------------------------------------------------------------------------------------------


def test_audit_log_of_a_scripted_session(store: CatalogueStore) -> None:
    minimal(store, "anna")
    store.publish("anna", "first")
    store.add("endpoints", Endpoint("ep1", DEV, URL_NEW), "bob", replace=True)
    store.remove("permissions", PERMISSION_U1, "bob")
    store.publish("bob", "new deviation system URL, 1177 off")
    store.rollback(1, "carl")
    imported = store.draft()
    imported = Catalogue(
        components=imported.components,
        contracts=imported.contracts,
        addresses=(*imported.addresses, LogicalAddress(U6, "unit 6")),
        endpoints=imported.endpoints,
        routes=(Route(RC, U6, INTERNAL, valid_to=T_CUT), Route(RC, U6, "ep1", valid_from=T_CUT)),
        permissions=imported.permissions,
    ).normalised()
    store.replace_draft(imported, "dora")
    store.publish("dora", "U6 cut-over instead of U1")

    log = store.audit_log()
    steps = [(r["actor"], r["action"], r["entity"], r["entity_key"]) for r in log]
    assert steps == [
        ("anna", "add", "components", DEV),
        ("anna", "add", "components", C1177),
        ("anna", "add", "contracts", RC),
        ("anna", "add", "addresses", U1),
        ("anna", "add", "endpoints", "ep1"),
        ("anna", "add", "routes", ROUTE_KEY_U1),
        ("anna", "add", "permissions", PERMISSION_KEY_U1),
        ("anna", "publish", "version", "1"),
        ("bob", "add", "endpoints", "ep1"),
        ("bob", "remove", "permissions", PERMISSION_KEY_U1),
        ("bob", "publish", "version", "2"),
        ("carl", "rollback", "endpoints", "ep1"),  # the replaced endpoint goes …
        ("carl", "rollback", "endpoints", "ep1"),  # … and its old self comes back
        ("carl", "rollback", "permissions", PERMISSION_KEY_U1),
        ("carl", "rollback", "version", "3"),
        ("dora", "import", "addresses", U6),
        ("dora", "import", "routes", ROUTE_KEY_U1),
        ("dora", "import", "routes", f"{RC}/{U6}/None"),
        ("dora", "import", "routes", f"{RC}/{U6}/2027-01-01 00:00:00+00:00"),
        ("dora", "publish", "version", "4"),
    ]

    def doc(value: str | None) -> object:
        return None if value is None else json.loads(value)

    changes = [(doc(r["before"]), doc(r["after"])) for r in log]
    endpoint_old = {
        "name": "ep1",
        "component": DEV,
        "url": URL_OLD,
        "profile": "rivtabp21",
        "connect_timeout": 2.0,
        "read_timeout": 29.0,
        "verify_hostname": True,
    }
    endpoint_new = {**endpoint_old, "url": URL_NEW}
    route = {"contract": RC, "address": U1, "target": "ep1"}
    permission = {"consumer": C1177, "contract": RC, "address": U1}
    assert changes[0] == (None, {"hsa_id": DEV, "description": "deviation system"})
    assert changes[4] == (None, endpoint_old)
    assert changes[5] == (None, route)
    assert changes[6] == (None, permission)
    assert changes[7][0] is None
    assert changes[7][1] == {"hash": store.history()[0].content_hash, "comment": "first"}
    before, after = changes[8]
    assert {k: v for k, v in before.items() if v is not None} == endpoint_old  # type: ignore[union-attr]
    assert after == endpoint_new
    assert changes[9][1] is None
    assert changes[9][0]["consumer"] == C1177  # type: ignore[index]
    assert changes[11] == (endpoint_new, None)
    assert changes[12] == (None, endpoint_old)
    assert changes[13] == (None, permission)
    assert changes[14] == (
        None,
        {"hash": store.history()[2].content_hash, "comment": "rollback to version 1"},
    )
    assert changes[16] == (route, None)
    assert changes[17] == (
        None,
        {"contract": RC, "address": U6, "target": INTERNAL, "valid_to": "2027-01-01T00:00:00Z"},
    )
    assert changes[18] == (
        None,
        {"contract": RC, "address": U6, "target": "ep1", "valid_from": "2027-01-01T00:00:00Z"},
    )

    ids = [r["id"] for r in log]
    assert ids == sorted(ids)
    for row in log:
        assert_utc(row["at"])
    assert [r["at"] for r in log] == sorted(r["at"] for r in log)


def test_audit_records_an_entity_the_same_way_before_and_after(store: CatalogueStore) -> None:
    route = Route(RC, U1, INTERNAL, valid_from=T_CUT)
    store.add("routes", route, "anna")
    store.remove("routes", route, "anna")
    added, removed = store.audit_log()
    assert json.loads(removed["before"]) == json.loads(added["after"]) == route.to_dict()


# -- import / export -----------------------------------------------------------------------------------------


def _import(store: CatalogueStore, text: str) -> None:
    store.replace_draft(Catalogue.from_dict(json.loads(text)), "importer")


def test_import_export_import_export_is_byte_identical(store: CatalogueStore) -> None:
    catalogue = realistic_catalogue()
    change = store.replace_draft(catalogue, "importer")
    assert change.size == sum(len(getattr(catalogue, f.name)) for f in dataclasses.fields(catalogue))
    first = store.draft().canonical_json()
    assert first == catalogue.canonical_json()
    rows = len(store.audit_log())

    _import(store, first)
    second = store.draft().canonical_json()
    assert second.encode() == first.encode()
    assert len(store.audit_log()) == rows  # importing what is already there changes (and audits) nothing

    info = store.publish("importer", "initial import", max_changes=100)
    assert info.content_hash == catalogue.content_hash()
    assert store.version_content(1)[0].canonical_json() == first


def test_import_of_an_unsorted_file_with_zone_offsets(store: CatalogueStore) -> None:
    """Entities in any order, instants with offsets and fractions: the export is canonical, then stable."""
    source = Catalogue.from_dict(json.loads((DATA / "unsorted-import.json").read_text(encoding="utf-8")))
    assert source.problems() == []
    store.replace_draft(source, "importer")
    first = store.draft().canonical_json()
    assert '"valid_from": "2027-01-01T00:00:00Z"' in first  # 2027-01-01T01:00:00+01:00
    assert '"valid_from": "2026-07-01T00:00:00Z"' in first  # 2026-06-30T22:00:00.250-02:00
    assert "+01:00" not in first
    assert "Vårdcentral Öst" in first  # not \u-escaped
    _import(store, first)
    assert store.draft().canonical_json() == first
    store.publish("importer", "import")
    assert store.pending_diff().size == 0
    routes = {(r.address, r.valid_from): r.target for r in store.draft().routes}
    assert routes[(U1, T_CUT)] == "dev1"


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_file_round_trip_through_the_store(store: CatalogueStore, tmp_path: Path, fmt: str) -> None:
    store.replace_draft(realistic_catalogue(), "importer")
    first = routing_io.dump(store.draft(), fmt)
    path = tmp_path / f"catalogue.{fmt}"
    path.write_text(first, encoding="utf-8")
    store.replace_draft(Catalogue(), "importer")
    assert store.draft() == Catalogue()
    store.replace_draft(routing_io.load(path), "importer")
    assert routing_io.dump(store.draft(), fmt) == first


# -- instants ------------------------------------------------------------------------------------------------


def test_instants_come_back_as_the_same_utc_instants(store: CatalogueStore) -> None:
    valid_from = datetime(2027, 3, 1, 0, 0, 0, tzinfo=UTC)
    valid_to = datetime(2027, 3, 31, 23, 59, 59, tzinfo=UTC)
    route = Route(RC, U1, INTERNAL, valid_from, valid_to)
    permission = Permission(C1177, RC, U1, valid_from, valid_to)
    store.add("routes", route, "anna")
    store.add("permissions", permission, "anna")
    draft = store.draft()
    assert draft.routes == (route,)
    assert draft.permissions == (permission,)
    for entity in (draft.routes[0], draft.permissions[0]):
        assert_utc(entity.valid_from)
        assert_utc(entity.valid_to)
        assert entity.key() == (route.key() if isinstance(entity, Route) else permission.key())
    assert draft.canonical_json() == Catalogue(routes=(route,), permissions=(permission,)).canonical_json()
    # the half-open window survives to the second
    assert draft.routes[0].valid_at(valid_to - timedelta(seconds=1))
    assert not draft.routes[0].valid_at(valid_to)
    # an open window stays open (NULL), not some far-away instant
    store.add("routes", Route(RC, U6, "ep1"), "anna")
    assert [r for r in store.draft().routes if r.address == U6] == [Route(RC, U6, "ep1")]


def test_instants_given_in_another_zone_keep_their_instant(
    store: CatalogueStore, request: pytest.FixtureRequest
) -> None:
    cet = timezone(timedelta(hours=1))
    store.add("routes", Route(RC, U1, INTERNAL, valid_from=datetime(2027, 1, 1, 1, tzinfo=cet)), "anna")
    (route,) = store.draft().routes
    assert route.valid_from == T_CUT
    assert_utc(route.valid_from)
    with pytest.raises(CatalogueError, match="already exists"):
        store.add("routes", Route(RC, U1, "ep1", valid_from=T_CUT), "anna")


def test_a_session_time_zone_does_not_leak_into_the_catalogue(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    """A PostgreSQL server or role configured for Europe/Stockholm must not change what the store reads."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        options = url.query.get("options", "")
        url = url.update_query_dict({"options": f"{options} -c timezone=Europe/Stockholm".strip()})
    engine, store = make_store(url.render_as_string(hide_password=False))
    try:
        minimal(store)
        store.add(
            "routes", Route(RC, U1, INTERNAL, valid_from=T_CUT, valid_to=T_CUT + timedelta(days=1)), "anna"
        )
        store.add("routes", Route(RC, U1, "ep1", valid_to=T_CUT), "anna", replace=True)
        store.publish("anna", "first")
        assert store.pending_diff().lines() == []
        with pytest.raises(CatalogueError, match="nothing to publish"):
            store.publish("anna", "again")
        for route in store.draft().routes:
            assert_utc(route.valid_from or route.valid_to)
        for info in store.history():
            assert_utc(info.created_at)
        for row in store.audit_log():
            assert_utc(row["at"])
    finally:
        engine.dispose()
