"""Who may see and do what in the desk: grants of a role on a scope of the HSA tree, inherited downwards.

A grant on a unit or patient board covers its cases; on a care provider or region, every unit under it in
the HSA tree of the active routing catalogue version; on ``SE``, every unit in the country (also units the
tree does not know). Readers and handlers see cases; only handlers act on them; ``operator`` and
``statistician`` are for later pages and see no case. Every grant and revocation is audited. Who may
grant is decided above this module (the CLI is run by an operator on the gateway's own machine).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from gateway.desk import audit
from gateway.desk.errors import NoSuchGrant, Refused
from gateway.desk.model import ROLES, Grant
from gateway.desk.schema import desk_access
from gateway.desk.times import utc
from gateway.desk.tree import CASE_KINDS, HsaTree, tree_of
from routing import RoutingHolder
from routing.model import HSA_ID, NATIONAL

__all__ = ["CASE_ROLES", "Access"]

#: the roles that see cases
CASE_ROLES = frozenset({"reader", "handler"})

_ACTIVE = desk_access.c.revoked_at.is_(None)


class Access:
    def __init__(
        self,
        engine: Engine,
        routing: RoutingHolder,
        clock: Callable[[], datetime],
        reader: Engine | None = None,
    ) -> None:
        self.engine = engine
        #: for reads (on SQLite an engine that never takes the write lock)
        self.reader = reader or engine
        self.routing = routing
        self.clock = clock

    @property
    def tree(self) -> HsaTree:
        return tree_of(self.routing.table)

    def grants(self, person: str) -> list[Grant]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(desk_access)
                .where(desk_access.c.person == person, _ACTIVE)
                .order_by(desk_access.c.scope, desk_access.c.role)
            ).all()
        return [Grant(r.person, r.scope, r.role, r.granted_by, utc(r.granted_at)) for r in rows]

    def all_grants(self) -> list[Grant]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(desk_access)
                .where(_ACTIVE)
                .order_by(desk_access.c.person, desk_access.c.scope, desk_access.c.role)
            ).all()
        return [Grant(r.person, r.scope, r.role, r.granted_by, utc(r.granted_at)) for r in rows]

    def _scopes(self, person: str, conn: Connection | None = None) -> dict[str, set[str]]:
        """role -> the scopes the person holds it on (read on ``conn`` when given)"""
        query = select(desk_access.c.scope, desk_access.c.role).where(desk_access.c.person == person, _ACTIVE)
        if conn is not None:
            rows = conn.execute(query).all()
        else:
            with self.reader.connect() as own:
                rows = own.execute(query).all()
        scopes: dict[str, set[str]] = {}
        for scope, role in rows:
            scopes.setdefault(role, set()).add(scope)
        return scopes

    def roles_for(self, person: str, unit: str, conn: Connection | None = None) -> set[str]:
        chain = set(self.tree.chain(unit))
        return {role for role, scopes in self._scopes(person, conn).items() if scopes & chain}

    def visible_units(self, person: str, conn: Connection | None = None) -> set[str] | None:
        """The units whose cases the person may see; None for every unit (a national grant)."""
        scopes = set().union(*(s for role, s in self._scopes(person, conn).items() if role in CASE_ROLES))
        if NATIONAL in scopes:
            return None
        return self.tree.below(scopes)

    def units(self, person: str) -> list[tuple[str, str]]:
        """(HSA-id, name) of the units and patient boards the person may see, by name."""
        tree = self.tree
        visible = self.visible_units(person)
        if visible is None:
            ids = {n.hsa_id for n in tree.nodes.values() if n.kind in CASE_KINDS}
        else:
            ids = {u for u in visible if u not in tree.nodes or tree.kind(u) in CASE_KINDS}
        return sorted(((u, tree.name(u)) for u in ids), key=lambda pair: (pair[1] or pair[0], pair[0]))

    # -- changes ------------------------------------------------------------------------------------------
    def _check(self, person: str, scope: str, role: str) -> None:
        if not isinstance(person, str) or not HSA_ID.match(person):
            raise Refused("INVALID_PERSON", f"{person!r} is not a person's HSA-id (e.g. SE2321000016-HND1)")
        if role not in ROLES:
            raise Refused("UNKNOWN_ROLE", f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        if not self.tree.known(scope):
            raise Refused(
                "UNKNOWN_SCOPE",
                f"{scope!r} is not in the HSA tree of routing version {self.routing.table.version}:"
                " grant on a unit, care provider or region of the tree, or SE (national)",
            )

    def grant(self, actor: str, person: str, scope: str, role: str) -> Grant:
        """Grant ``role`` on ``scope``; an active grant of the same is returned as it is (not audited)."""
        self._check(person, scope, role)
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                existing = conn.execute(
                    select(desk_access).where(
                        desk_access.c.person == person,
                        desk_access.c.scope == scope,
                        desk_access.c.role == role,
                        _ACTIVE,
                    )
                ).first()
                if existing is not None:
                    return Grant(person, scope, role, existing.granted_by, utc(existing.granted_at))
                conn.execute(
                    desk_access.insert().values(
                        person=person, scope=scope, role=role, granted_by=actor[:128], granted_at=now
                    )
                )
                audit.record(conn, now, actor, "GRANT", target=f"{person} {role} {scope}")
        except IntegrityError:  # the same grant, made at the same moment by someone else
            for found in self.grants(person):
                if (found.scope, found.role) == (scope, role):
                    return found
            raise
        return Grant(person, scope, role, actor[:128], now)

    def revoke(self, actor: str, person: str, scope: str, role: str) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(desk_access)
                .where(
                    desk_access.c.person == person,
                    desk_access.c.scope == scope,
                    desk_access.c.role == role,
                    _ACTIVE,
                )
                .values(revoked_by=actor[:128], revoked_at=now)
            ).rowcount
            if changed != 1:
                raise NoSuchGrant(f"{person} has no active grant of {role} on {scope}")
            audit.record(conn, now, actor, "REVOKE", target=f"{person} {role} {scope}")
