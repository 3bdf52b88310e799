"""Desk access: grants inherited down the HSA tree of the active routing version, refusals audited, every
change audited. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.desk import Action, Forbidden, NoSuchGrant, Refused
from gateway.desk.schema import desk_access, desk_audit
from tests.unit.deskkit import (
    BOARD,
    CARE_PROVIDER,
    DESK_UNIT,
    HANDLER,
    HANDLER2,
    OTHER_UNIT,
    READER,
    REGION,
    Gateway,
)

CLI = "cli:test"


@pytest.fixture
def gw(db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(db_url, tmp_path)
    try:
        yield gateway
    finally:
        gateway.close()


def _audit(gw: Gateway) -> list[tuple[str, str, str | None, str | None, str | None]]:
    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(
                desk_audit.c.actor,
                desk_audit.c.action,
                desk_audit.c.case_id,
                desk_audit.c.target,
                desk_audit.c.detail,
            ).order_by(desk_audit.c.id)
        ).all()
    return [tuple(r) for r in rows]


# (scope of a handler grant, unit asked about, roles expected): the example catalogue's tree is
# SE > R001 (region) > VG01 (care provider) > 9K2M, 7Q6X (units); R001 > PN01 (patient board)
INHERITANCE = [
    (DESK_UNIT, DESK_UNIT, {"handler"}),
    (DESK_UNIT, OTHER_UNIT, set()),
    (CARE_PROVIDER, DESK_UNIT, {"handler"}),
    (CARE_PROVIDER, OTHER_UNIT, {"handler"}),
    (CARE_PROVIDER, BOARD, set()),
    (REGION, BOARD, {"handler"}),
    (REGION, DESK_UNIT, {"handler"}),
    ("SE", DESK_UNIT, {"handler"}),
    ("SE", "SE9999999999-NOTREE", {"handler"}),  # national: also units the tree does not know
    (OTHER_UNIT, CARE_PROVIDER, set()),  # never upwards
]


@pytest.mark.parametrize(("scope", "unit", "roles"), INHERITANCE)
def test_grants_are_inherited_down_the_hsa_tree(gw: Gateway, scope: str, unit: str, roles: set[str]) -> None:
    gw.desk.grant(CLI, HANDLER, scope, "handler")
    assert gw.desk.roles_for(HANDLER, unit) == roles


def test_units_the_person_may_see(gw: Gateway) -> None:
    gw.desk.grant(CLI, HANDLER, CARE_PROVIDER, "reader")
    assert gw.desk.units(HANDLER) == [  # by name
        (DESK_UNIT, "Vårdcentralen Desk"),
        (OTHER_UNIT, "Vårdcentralen Exempel"),
    ]
    gw.desk.grant(CLI, READER, "SE", "reader")
    assert {u for u, _ in gw.desk.units(READER)} == {DESK_UNIT, OTHER_UNIT, BOARD}
    gw.desk.grant(CLI, HANDLER2, REGION, "statistician")  # sees no case
    assert gw.desk.units(HANDLER2) == []


def test_grant_is_idempotent_and_every_change_is_audited(gw: Gateway) -> None:
    first = gw.desk.grant(CLI, HANDLER, DESK_UNIT, "handler")
    again = gw.desk.grant("cli:someone-else", HANDLER, DESK_UNIT, "handler")
    assert again == first  # the active grant as it was: not granted twice, not re-audited
    gw.desk.grant(CLI, HANDLER, DESK_UNIT, "reader")
    assert [(g.scope, g.role) for g in gw.desk.grants(HANDLER)] == [
        (DESK_UNIT, "handler"),
        (DESK_UNIT, "reader"),
    ]
    gw.desk.revoke(CLI, HANDLER, DESK_UNIT, "handler")
    assert [g.role for g in gw.desk.grants(HANDLER)] == ["reader"]
    assert gw.desk.roles_for(HANDLER, DESK_UNIT) == {"reader"}
    with pytest.raises(NoSuchGrant):
        gw.desk.revoke(CLI, HANDLER, DESK_UNIT, "handler")
    gw.desk.grant(CLI, HANDLER, DESK_UNIT, "handler")  # granted again after a revocation: a new row
    with gw.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(desk_access)).scalar_one() == 3
    assert [(a, b, t) for a, b, _, t, _ in _audit(gw)] == [
        (CLI, "GRANT", f"{HANDLER} handler {DESK_UNIT}"),
        (CLI, "GRANT", f"{HANDLER} reader {DESK_UNIT}"),
        (CLI, "REVOKE", f"{HANDLER} handler {DESK_UNIT}"),
        (CLI, "GRANT", f"{HANDLER} handler {DESK_UNIT}"),
    ]


@pytest.mark.parametrize(
    ("person", "scope", "role", "sub_code"),
    [
        (HANDLER, "SE2321000016-NOPE", "handler", "UNKNOWN_SCOPE"),
        (HANDLER, DESK_UNIT, "admin", "UNKNOWN_ROLE"),
        ("not an hsa id", DESK_UNIT, "handler", "INVALID_PERSON"),
        ("", DESK_UNIT, "reader", "INVALID_PERSON"),
    ],
)
def test_bad_grants_are_refused_and_leave_nothing(
    gw: Gateway, person: str, scope: str, role: str, sub_code: str
) -> None:
    with pytest.raises(Refused) as refused:
        gw.desk.grant(CLI, person, scope, role)
    assert refused.value.sub_code == sub_code
    assert "\n" not in refused.value.message
    assert _audit(gw) == []
    with gw.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(desk_access)).scalar_one() == 0


def test_a_person_without_a_grant_is_refused_everything_and_each_refusal_is_audited(gw: Gateway) -> None:
    gw.register("ACCESS-1")
    gw.desk.grant(CLI, HANDLER, DESK_UNIT, "handler")
    gw.desk.grant(CLI, HANDLER2, OTHER_UNIT, "handler")  # another unit's handler
    version = gw.desk.case(HANDLER, "ACCESS-1").version
    before = gw.record("ACCESS-1")
    attempts = [
        ("case view", lambda: gw.desk.case(HANDLER2, "ACCESS-1")),
        ("attachment", lambda: gw.desk.attachment(HANDLER2, "ACCESS-1", "in-1-1")),
        ("action ANSWER", lambda: gw.desk.act(HANDLER2, "ACCESS-1", version, Action("ANSWER", text="x"))),
        ("export", lambda: gw.desk.export(HANDLER2, "ACCESS-1")),
        ("case list", lambda: gw.desk.cases(HANDLER2, unit=DESK_UNIT)),
    ]
    for _, attempt in attempts:
        with pytest.raises(Forbidden) as denied:
            attempt()
        assert denied.value.http_status == 403 and denied.value.exit_code == 7  # noqa: PT018
    assert gw.desk.cases(HANDLER2).total == 0  # the person's own list simply has none of them
    assert gw.record("ACCESS-1") == before
    denials = [row for row in _audit(gw) if row[1] == "ACCESS_DENIED"]
    assert [(actor, detail) for actor, _, _, _, detail in denials] == [
        (HANDLER2, what) for what, _ in attempts
    ]
    assert {case for _, _, case, _, _ in denials[:-1]} == {"ACCESS-1"}
    assert {unit for _, _, _, unit, _ in denials} == {DESK_UNIT}
    # the unit's handler sees the refusals in the case's timeline (desk-only events)
    timeline = gw.desk.case(HANDLER, "ACCESS-1").timeline
    assert [e.kind for e in timeline if e.direction == "desk"] == ["ACCESS_DENIED"] * 4


def test_a_reader_reads_but_cannot_act(gw: Gateway) -> None:
    gw.register("ACCESS-2")
    gw.desk.grant(CLI, READER, CARE_PROVIDER, "reader")
    view = gw.desk.case(READER, "ACCESS-2")
    assert view.actions == []
    assert view.reporter is None  # the reporter's contact details are for handlers
    assert view.subject is not None and view.subject.person_id == "191212121212"  # noqa: PT018
    with pytest.raises(Forbidden):
        gw.desk.act(READER, "ACCESS-2", view.version, Action("IN_PROGRESS"))
    with pytest.raises(Forbidden):
        gw.desk.export(READER, "ACCESS-2")
    assert gw.record("ACCESS-2")["version"] == view.version


def test_operators_and_statisticians_see_no_case(gw: Gateway) -> None:
    gw.register("ACCESS-3")
    gw.desk.grant(CLI, HANDLER, "SE", "operator")
    gw.desk.grant(CLI, HANDLER, "SE", "statistician")
    assert gw.desk.cases(HANDLER).total == 0
    with pytest.raises(Forbidden):
        gw.desk.case(HANDLER, "ACCESS-3")
