"""The routing catalogue as a value: entities, validation, canonical serialisation and content hash.

A ``Catalogue`` is what a draft holds and what a published version freezes. Its canonical JSON (sorted
entities, sorted keys, UTC instants as ``YYYY-MM-DDThh:mm:ssZ``) is the export format, the snapshot stored
for a version and the input of its content hash, so export → import → export is byte-identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from routing.errors import CatalogueError

__all__ = [
    "INTERNAL",
    "NATIONAL",
    "WILDCARD",
    "Catalogue",
    "Component",
    "ContractEntry",
    "Endpoint",
    "HsaNode",
    "LogicalAddress",
    "Permission",
    "Route",
    "format_instant",
    "parse_instant",
]

INTERNAL = "internal"  # a route target: the gateway's own case desk
WILDCARD = "*"
NATIONAL = "SE"  # the top of the HSA tree and the national default address
HSA_ID = re.compile(r"^[A-Z]{2}[0-9A-Za-z]{1,20}(-[0-9A-Za-z]{1,40})?$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_instant(value: str | datetime | None, where: str = "instant") -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise CatalogueError(f"{where}: not an ISO 8601 instant: {value!r}") from None
    if moment.tzinfo is None:
        raise CatalogueError(f"{where}: instant needs a time zone (use Z for UTC): {value!r}")
    return moment.astimezone(UTC).replace(microsecond=0)


def format_instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_hsa_id(value: str, where: str, *, allow: Iterable[str] = ()) -> str:
    if value in allow or (isinstance(value, str) and HSA_ID.match(value)):
        return value
    raise CatalogueError(f"{where}: not a valid HSA-id: {value!r}")


def check_url(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CatalogueError(f"{where}: not an http(s) URL: {value!r}")
    return value


_KIND_NAMES: dict[Any, str] = {
    str: "a string",
    bool: "true or false",
    float: "a number",
    datetime: "an instant",
}


def _is(value: Any, kind: Any) -> bool:
    if kind is float:  # an integer is a number too; a boolean is not
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is datetime:  # ISO 8601 text, or a timestamp YAML read as one
        return isinstance(value, str | datetime)
    return isinstance(value, kind)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return "null" if value is None else type(value).__name__


_KINDS: dict[type, dict[str, tuple[Any, ...]]] = {}


def _field_kinds(cls: type) -> dict[str, tuple[Any, ...]]:
    """Per field, the plain types a file may give it (None when the field is optional)."""
    found = _KINDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = {}
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            args = typing.get_args(hint) if typing.get_origin(hint) in (types.UnionType, typing.Union) else ()
            found[f.name] = tuple(None if a is type(None) else a for a in args) if args else (hint,)
        _KINDS[cls] = found
    return found


class _Entity:
    """Mapping to and from plain dicts; subclasses name the fields that form their key."""

    key_fields: ClassVar[tuple[str, ...]] = ()
    instant_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        # Instants are kept in UTC whatever zone they were given in, so keys, hashes and storage agree.
        for name in self.instant_fields:
            value = getattr(self, name)
            if isinstance(value, datetime):
                if value.tzinfo is None:
                    raise CatalogueError(f"{name}: instant needs a time zone")
                object.__setattr__(self, name, value.astimezone(UTC))

    def key(self) -> tuple[str, ...]:
        return tuple(str(getattr(self, name)) for name in self.key_fields)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        for name in self.instant_fields:
            data[name] = format_instant(data[name])
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Any:
        if not isinstance(data, Mapping):
            raise CatalogueError(f"{where}: expected a mapping of fields, got {_kind(data)}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise CatalogueError(f"{where}: unknown field {unknown[0]!r}")
        kinds = _field_kinds(cls)
        for name, value in data.items():
            expected = kinds[name]
            if value is None and None in expected:
                continue
            if not any(_is(value, kind) for kind in expected if kind is not None):
                wanted = " or ".join(_KIND_NAMES[k] for k in expected if k is not None)
                raise CatalogueError(f"{where}.{name}: expected {wanted}, got {_kind(value)}")
        values = dict(data)
        for name in cls.instant_fields:
            values[name] = parse_instant(values.get(name), f"{where}.{name}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise CatalogueError(f"{where}: {exc}") from None


class _Windowed:
    """Half-open validity [valid_from, valid_to); an open end is unbounded."""

    valid_from: datetime | None
    valid_to: datetime | None

    def valid_at(self, now: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_to is None or now < self.valid_to
        )


@dataclass(frozen=True, order=True)
class Component(_Entity):
    """A system (producer or consumer), identified by its HSA-id."""

    hsa_id: str
    description: str = ""
    key_fields = ("hsa_id",)


@dataclass(frozen=True, order=True)
class ContractEntry(_Entity):
    """A service contract by its responder namespace; ``hsa_climb`` allows resolution up the HSA tree."""

    namespace: str
    name: str = ""
    hsa_climb: bool = True
    key_fields = ("namespace",)


@dataclass(frozen=True, order=True)
class LogicalAddress(_Entity):
    address: str
    description: str = ""
    key_fields = ("address",)


@dataclass(frozen=True, order=True)
class Endpoint(_Entity):
    name: str
    component: str
    url: str
    profile: str = "rivtabp21"
    connect_timeout: float = 2.0
    read_timeout: float = 29.0
    client_certificate: str | None = None
    client_key: str | None = None
    trust_store: str | None = None
    verify_hostname: bool = True
    key_fields = ("name",)


@dataclass(frozen=True, order=True)
class Route(_Windowed, _Entity):
    """contract × logical address → endpoint name or ``internal``, valid in [valid_from, valid_to)."""

    contract: str
    address: str
    target: str
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    key_fields = ("contract", "address", "valid_from")
    instant_fields = ("valid_from", "valid_to")


@dataclass(frozen=True, order=True)
class Permission(_Windowed, _Entity):
    """consumer × contract × logical address (or ``*``), valid in [valid_from, valid_to)."""

    consumer: str
    contract: str
    address: str
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    key_fields = ("consumer", "contract", "address", "valid_from")
    instant_fields = ("valid_from", "valid_to")


@dataclass(frozen=True, order=True)
class HsaNode(_Entity):
    """One node of the HSA tree: unit → care provider → region → ``SE``."""

    hsa_id: str
    parent: str
    kind: str = "unit"
    name: str = ""
    key_fields = ("hsa_id",)


def _sort_key(entity: _Entity) -> tuple[str, ...]:
    return tuple("" if part == "None" else part for part in entity.key())


def _overlaps(a: Route | Permission, b: Route | Permission) -> bool:
    a_end = a.valid_to or datetime.max.replace(tzinfo=UTC)
    b_end = b.valid_to or datetime.max.replace(tzinfo=UTC)
    a_start = a.valid_from or datetime.min.replace(tzinfo=UTC)
    b_start = b.valid_from or datetime.min.replace(tzinfo=UTC)
    return a_start < b_end and b_start < a_end


SECTIONS: dict[str, type[_Entity]] = {
    "components": Component,
    "contracts": ContractEntry,
    "addresses": LogicalAddress,
    "endpoints": Endpoint,
    "routes": Route,
    "permissions": Permission,
    "hsa": HsaNode,
}


@dataclass(frozen=True)
class Catalogue:
    components: tuple[Component, ...] = ()
    contracts: tuple[ContractEntry, ...] = ()
    addresses: tuple[LogicalAddress, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    routes: tuple[Route, ...] = ()
    permissions: tuple[Permission, ...] = ()
    hsa: tuple[HsaNode, ...] = field(default=())

    def normalised(self) -> Catalogue:
        return Catalogue(**{name: tuple(sorted(getattr(self, name), key=_sort_key)) for name in SECTIONS})

    def is_empty(self) -> bool:
        return not (self.routes or self.permissions)

    # -- serialisation -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        norm = self.normalised()
        return {name: [e.to_dict() for e in getattr(norm, name)] for name in SECTIONS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "catalogue") -> Catalogue:
        if not isinstance(data, Mapping):
            raise CatalogueError(f"{where}: expected a mapping of sections")
        unknown = sorted(str(k) for k in data if k not in SECTIONS)
        if unknown:
            raise CatalogueError(f"{where}: unknown section {unknown[0]!r}")
        sections: dict[str, tuple[Any, ...]] = {}
        for name, entity in SECTIONS.items():
            items = data.get(name)
            items = [] if items is None else items  # an empty section in YAML reads as null
            if not isinstance(items, list):
                raise CatalogueError(f"{where}: section {name!r} must be a list, got {_kind(items)}")
            sections[name] = tuple(
                entity.from_dict(item, f"{where}: {name}[{i}]") for i, item in enumerate(items)
            )
        catalogue = cls(**sections).normalised()
        try:
            catalogue.canonical_json().encode()
        except UnicodeEncodeError:
            raise CatalogueError(f"{where}: text that is not valid Unicode (a lone surrogate)") from None
        return catalogue

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    # -- validation --------------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Every reason this catalogue cannot be published (empty when it can)."""
        out: list[str] = []
        norm = self.normalised()
        for name in SECTIONS:
            seen: set[tuple[str, ...]] = set()
            for entity in getattr(norm, name):
                if entity.key() in seen:
                    out.append(f"{name}: duplicate {'/'.join(entity.key())}")
                seen.add(entity.key())
        components = {c.hsa_id for c in norm.components}
        contracts = {c.namespace for c in norm.contracts}
        addresses = {a.address for a in norm.addresses} | {WILDCARD, NATIONAL}
        endpoints = {e.name for e in norm.endpoints}
        hsa_ids = {n.hsa_id for n in norm.hsa} | {NATIONAL}
        for c in norm.components:
            try:
                check_hsa_id(c.hsa_id, "components")
            except CatalogueError as exc:
                out.append(str(exc))
        for a in norm.addresses:
            try:
                check_hsa_id(a.address, "addresses")
            except CatalogueError as exc:
                out.append(str(exc))
        for e in norm.endpoints:
            if not NAME.match(e.name):
                out.append(f"endpoints: invalid name {e.name!r}")
            if e.component not in components:
                out.append(f"endpoints: {e.name}: unknown component {e.component}")
            try:
                check_url(e.url, f"endpoints: {e.name}")
            except CatalogueError as exc:
                out.append(str(exc))
            if e.profile != "rivtabp21":
                out.append(f"endpoints: {e.name}: unsupported profile {e.profile!r}")
            if not (0 < e.connect_timeout <= 60 and 0 < e.read_timeout <= 300):
                out.append(f"endpoints: {e.name}: timeouts must be positive (connect ≤ 60 s, read ≤ 300 s)")
        for r in norm.routes:
            label = f"routes: {r.contract} {r.address}"
            if r.contract not in contracts:
                out.append(f"{label}: unknown contract")
            if r.address not in addresses:
                out.append(f"{label}: unknown logical address")
            if r.target != INTERNAL and r.target not in endpoints:
                out.append(f"{label}: unknown endpoint {r.target}")
            if r.valid_from and r.valid_to and r.valid_to <= r.valid_from:
                out.append(f"{label}: valid_to must be after valid_from")
        for p in norm.permissions:
            label = f"permissions: {p.consumer} {p.contract} {p.address}"
            if p.consumer not in components:
                out.append(f"{label}: unknown consumer component")
            if p.contract not in contracts:
                out.append(f"{label}: unknown contract")
            if p.address not in addresses:
                out.append(f"{label}: unknown logical address")
            if p.valid_from and p.valid_to and p.valid_to <= p.valid_from:
                out.append(f"{label}: valid_to must be after valid_from")
        for n in norm.hsa:
            if n.parent not in hsa_ids:
                out.append(f"hsa: {n.hsa_id}: unknown parent {n.parent}")
        out.extend(self._overlap_problems(norm.routes))
        out.extend(self._cycle_problems(norm.hsa))
        return out

    @staticmethod
    def _overlap_problems(routes: Iterable[Route]) -> list[str]:
        out = []
        by_pair: dict[tuple[str, str], list[Route]] = {}
        for r in routes:
            by_pair.setdefault((r.contract, r.address), []).append(r)
        for (contract, address), group in sorted(by_pair.items()):
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    if _overlaps(a, b):
                        out.append(
                            f"routes: {contract} {address}: overlapping validity ({a.target} and {b.target})"
                        )
        return out

    @staticmethod
    def _cycle_problems(nodes: Iterable[HsaNode]) -> list[str]:
        parent = {n.hsa_id: n.parent for n in nodes}
        out = []
        for start in sorted(parent):
            seen = {start}
            current = parent.get(start)
            while current is not None and current != NATIONAL:
                if current in seen:
                    out.append(f"hsa: cycle through {start}")
                    break
                seen.add(current)
                current = parent.get(current)
        return out

    def check(self) -> None:
        problems = self.problems()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CatalogueError(problems[0] + more)
