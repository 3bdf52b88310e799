"""``gateway routes …``: the operator's tool for the routing catalogue.

Edits go to the draft; ``diff`` previews the draft against the active version; ``publish`` freezes it as a
new version that every serving process picks up within seconds; ``rollback`` republishes an old version.
Every change is audited with the operator's name (``--author``, default the login name).

Only ``bootstrap`` (what ``make run`` uses on a fresh machine) migrates the database schema; every other
action refuses a schema that is not current (exit 4, "run gateway db upgrade").
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import load_registry
from gateway.cli.common import emit, open_engine
from gateway.config import Config
from routing import Catalogue, CatalogueError, CatalogueStore, RoutingTable
from routing.errors import DecisionError
from routing.io import dump, load, merge_hsa_csv, merge_units_csv
from routing.model import (
    INTERNAL,
    WILDCARD,
    Component,
    ContractEntry,
    Endpoint,
    HsaNode,
    LogicalAddress,
    Permission,
    Route,
    check_hsa_id,
    check_url,
    format_instant,
    parse_instant,
)
from routing.store import Diff, VersionInfo

__all__ = ["add_routes_parser"]


def _author(args: argparse.Namespace) -> str:
    if args.author:
        return str(args.author)
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def contract_namespace(value: str) -> str:
    """Accept an operation name (RegisterCase) or a responder namespace."""
    if ":" in value:
        return value
    try:
        return load_registry().by_operation(value).responder_namespace
    except KeyError:
        raise CatalogueError(f"unknown contract {value!r} (give an operation name or a namespace)") from None


def _store(config: Config, *, migrate: bool = False) -> CatalogueStore:
    return CatalogueStore(open_engine(config, migrate=migrate))


def _instant(value: str | None, where: str) -> datetime | None:
    return parse_instant(value, where) if value else None


def _diff(change: Diff) -> dict[str, Any]:
    return {"added": list(change.added), "removed": list(change.removed), "changed": list(change.changed)}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CatalogueError(message)


# -- listing ------------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    if args.version is not None:
        catalogue = store.version_content(args.version)[0]
    elif args.active:
        active = store.active()
        catalogue = active[2] if active else Catalogue()
    else:
        catalogue = store.draft()
    data = catalogue.to_dict()
    lines = [f"{'contract':<16} {'address':<22} {'target':<20} {'valid from':<21} valid to"]
    names = {c.namespace: c.name or c.namespace for c in catalogue.contracts}
    for r in catalogue.routes:
        lines.append(
            f"{names.get(r.contract, r.contract):<16} {r.address:<22} {r.target:<20} "
            f"{format_instant(r.valid_from) or '-':<21} {format_instant(r.valid_to) or '-'}"
        )
    lines.append("")
    lines.append(f"{'consumer':<22} {'contract':<16} {'address':<22} validity")
    for p in catalogue.permissions:
        lines.append(
            f"{p.consumer:<22} {names.get(p.contract, p.contract):<16} {p.address:<22} "
            f"{format_instant(p.valid_from) or '-'} .. {format_instant(p.valid_to) or '-'}"
        )
    lines.append("")
    lines.append(
        f"{len(catalogue.components)} components, {len(catalogue.endpoints)} endpoints, "
        f"{len(catalogue.addresses)} addresses, {len(catalogue.hsa)} HSA nodes"
    )
    emit(args, data, "\n".join(lines))
    return 0


def _version(info: VersionInfo, active: bool = True) -> dict[str, Any]:
    return {
        "version": info.version,
        "hash": info.content_hash,
        "author": info.author,
        "createdAt": format_instant(info.created_at),
        "comment": info.comment,
        "source": info.source,
        "active": active,
    }


def cmd_show(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    active = store.active()
    version = args.version if args.version is not None else (active[0] if active else None)
    if version is None:
        raise CatalogueError("nothing published yet")
    catalogue = store.version_content(version)[0]
    info = next(v for v in store.history() if v.version == version)
    meta = _version(info, active is not None and active[0] == version)
    if args.json:
        emit(args, {**meta, "catalogue": catalogue.to_dict()}, "")
    else:
        header = "\n".join(f"# {k}: {v}" for k, v in meta.items())
        print(header + "\n" + dump(catalogue, "yaml"), end="")
    return 0


def cmd_history(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    history = store.history()
    active = history[-1].version if history else None
    data = [_version(v, v.version == active) for v in history]
    lines = [
        f"{'*' if v.version == active else ' '} {v.version:>4}  {format_instant(v.created_at)}  "
        f"{v.content_hash[:12]}  {v.author:<12} {v.source:<12} {v.comment}"
        for v in history
    ]
    emit(args, data, "\n".join(lines) or "nothing published yet")
    return 0


def cmd_audit(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    rows = store.audit_log()
    lines = [
        f"{format_instant(r['at'])}  {r['actor']:<12} {r['action']:<9} {r['entity']:<12} {r['entity_key']}"
        for r in rows
    ]
    emit(args, rows, "\n".join(lines) or "no changes recorded")
    return 0


def cmd_diff(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    change = store.pending_diff()
    problems = store.draft().problems()
    data = {"added": change.added, "removed": change.removed, "changed": change.changed, "problems": problems}
    text = "\n".join(change.lines()) or "the draft equals the active version"
    if problems:
        text += "\n\nproblems that will stop publish:\n" + "\n".join(f"! {p}" for p in problems)
    emit(args, data, text)
    return 0


# -- editing ------------------------------------------------------------------------------------------------
def cmd_add(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    draft = store.draft()
    kind = args.routes_command.removeprefix("add-")
    section, entity = _build(kind, args, draft)
    store.add(section, entity, _author(args), replace=args.replace)
    key = [k for k in entity.key() if k != "None"]
    data = {"action": "add", "section": section, "key": key, "replace": args.replace}
    emit(args, data, f"added to the draft: {section} {'/'.join(key)}")
    return 0


def _build(kind: str, args: argparse.Namespace, draft: Catalogue) -> tuple[str, Any]:
    components = {c.hsa_id for c in draft.components}
    if kind == "component":
        return "components", Component(check_hsa_id(args.hsa_id, "component"), args.description)
    if kind == "contract":
        return "contracts", ContractEntry(
            contract_namespace(args.contract), args.name or "", not args.no_hsa_climb
        )
    if kind == "address":
        return "addresses", LogicalAddress(check_hsa_id(args.address, "address"), args.description)
    if kind == "endpoint":
        _require(
            args.component in components,
            f"endpoint: unknown component {args.component} (add-component first)",
        )
        endpoint = Endpoint(
            name=args.name,
            component=args.component,
            url=check_url(args.url, "endpoint"),
            connect_timeout=args.connect_timeout,
            read_timeout=args.read_timeout,
            client_certificate=args.client_cert,
            client_key=args.client_key,
            trust_store=args.trust_store,
            verify_hostname=not args.no_verify_hostname,
        )
        problems = Catalogue(endpoints=(endpoint,), components=draft.components).problems()
        _require(not problems, problems[0] if problems else "")
        return "endpoints", endpoint
    contract = contract_namespace(args.contract)
    _require(
        contract in {c.namespace for c in draft.contracts},
        f"unknown contract {contract} (add-contract first)",
    )
    addresses = {a.address for a in draft.addresses} | {WILDCARD, "SE"}
    if kind == "route":
        address = check_hsa_id(args.address, "route", allow=(WILDCARD,))
        _require(address in addresses, f"route: unknown logical address {address} (add-address first)")
        target = args.target
        _require(
            target == INTERNAL or target in {e.name for e in draft.endpoints},
            f"route: unknown endpoint {target} (add-endpoint first, or use 'internal')",
        )
        route = Route(
            contract, address, target, _instant(args.valid_from, "--from"), _instant(args.valid_to, "--to")
        )
        _require(
            not (route.valid_from and route.valid_to and route.valid_to <= route.valid_from),
            "--to must be after --from",
        )
        others = tuple(r for r in draft.routes if not (args.replace and r.key() == route.key()))
        overlaps = Catalogue._overlap_problems((*others, route))
        _require(not overlaps, overlaps[0] if overlaps else "")
        return "routes", route
    consumer = check_hsa_id(args.consumer, "permission")
    _require(consumer in components, f"permission: unknown consumer {consumer} (add-component first)")
    address = check_hsa_id(args.address, "permission", allow=(WILDCARD,))
    _require(address in addresses, f"permission: unknown logical address {address} (add-address first)")
    return "permissions", Permission(
        consumer, contract, address, _instant(args.valid_from, "--from"), _instant(args.valid_to, "--to")
    )


def cmd_remove(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    kind = args.kind
    valid_from = _instant(args.valid_from, "--from")
    keys = args.key
    builders: dict[str, tuple[str, int, Callable[[list[str]], Any]]] = {
        "component": ("components", 1, lambda k: Component(k[0])),
        "contract": ("contracts", 1, lambda k: ContractEntry(contract_namespace(k[0]))),
        "address": ("addresses", 1, lambda k: LogicalAddress(k[0])),
        "endpoint": ("endpoints", 1, lambda k: Endpoint(k[0], "", "")),
        "hsa": ("hsa", 1, lambda k: HsaNode(k[0], "")),
        "route": ("routes", 2, lambda k: Route(contract_namespace(k[0]), k[1], "", valid_from)),
        "permission": (
            "permissions",
            3,
            lambda k: Permission(k[0], contract_namespace(k[1]), k[2], valid_from),
        ),
    }
    section, count, build = builders[kind]
    _require(len(keys) == count, f"remove {kind} takes {count} key value(s)")
    store.remove(section, build(keys), _author(args))
    data = {"action": "remove", "section": section, "key": keys}
    emit(args, data, f"removed from the draft: {kind} {' '.join(keys)}")
    return 0


def cmd_import(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    path = Path(args.file)
    if args.units or path.suffix.lower() == ".csv":
        contracts = tuple(contract_namespace(c) for c in args.contract or [])
        catalogue = merge_units_csv(store.draft(), path, contracts)
    else:
        catalogue = load(path, args.format)
    change = store.replace_draft(catalogue, _author(args), "import")
    emit(
        args,
        {"action": "import", "file": path.name, **_diff(change)},
        f"draft updated from {path.name}: {len(change.added)} added, {len(change.removed)} removed, "
        f"{len(change.changed)} changed",
    )
    return 0


def cmd_hsa_import(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    catalogue = merge_hsa_csv(store.draft(), Path(args.file))
    change = store.replace_draft(catalogue, _author(args), "hsa-import")
    data = {
        "action": "hsa-import",
        "file": Path(args.file).name,
        "nodes": len(catalogue.hsa),
        **_diff(change),
    }
    emit(args, data, f"HSA tree in the draft: {len(catalogue.hsa)} nodes ({change.size} changes)")
    return 0


def cmd_export(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    if args.version is not None:
        catalogue = store.version_content(args.version)[0]
    elif args.draft:
        catalogue = store.draft()
    else:
        active = store.active()
        catalogue = active[2] if active else store.draft()
    print(dump(catalogue, args.format), end="")
    return 0


def cmd_publish(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    info = store.publish(
        _author(args), args.message, max_changes=config.routing.max_publish_changes, force=args.force
    )
    emit(
        args,
        {"action": "publish", **_version(info)},
        f"published version {info.version} ({info.content_hash[:12]})",
    )
    return 0


def cmd_rollback(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    info = store.rollback(args.version, _author(args), args.message)
    emit(
        args,
        {"action": "rollback", "contentOf": args.version, **_version(info)},
        f"published version {info.version} = content of version {args.version} ({info.content_hash[:12]})",
    )
    return 0


def cmd_bootstrap(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    """Import and publish FILE only when nothing has been published yet (used by ``make run``)."""
    active = store.active_version()
    if active is not None:
        data = {"action": "bootstrap", "published": False, "version": active[0], "hash": active[1]}
        emit(args, data, "routing catalogue already published; bootstrap skipped")
        return 0
    store.replace_draft(load(Path(args.file)), _author(args), "import")
    info = store.publish(_author(args), args.message, max_changes=10**6, force=True)
    data = {"action": "bootstrap", "published": True, **_version(info)}
    emit(args, data, f"published version {info.version} from {args.file}")
    return 0


def cmd_resolve(args: argparse.Namespace, store: CatalogueStore, config: Config) -> int:
    at = _instant(args.at, "--at") or datetime.now(UTC)
    if args.draft:
        table = RoutingTable(store.draft())
    else:
        active = store.active()
        table = RoutingTable(active[2], active[0], active[1]) if active else RoutingTable(Catalogue())
    contract = contract_namespace(args.contract)
    data: dict[str, Any] = {
        "version": table.version,
        "at": format_instant(at),
        "contract": contract,
        "address": args.address,
    }
    lines = [f"catalogue version {table.version} at {format_instant(at)}"]
    code = 0
    if args.consumer:
        try:
            data["access"] = {
                "granted": True,
                "trace": table.authorize(args.consumer, contract, args.address, at),
            }
            lines.append(f"access: granted for {args.consumer}")
        except DecisionError as exc:
            data["access"] = {"granted": False, "trace": exc.trace, "code": "VP007"}
            lines.append(f"access: DENIED for {args.consumer} (VP007)")
            code = 1
        lines += [f"  {t}" for t in data["access"]["trace"]]
    try:
        decision = table.resolve(contract, args.address, at)
        data["route"] = {
            "target": decision.target,
            "matchedAddress": decision.matched_address,
            "url": decision.endpoint.url if decision.endpoint else None,
            "trace": decision.trace,
        }
        where = f" ({decision.endpoint.url})" if decision.endpoint else ""
        lines.append(f"route: {decision.target}{where} via {decision.matched_address}")
    except DecisionError as exc:
        platform = "VP006" if type(exc).__name__ == "AmbiguousRoute" else "VP004"
        data["route"] = {"target": None, "trace": exc.trace, "code": platform}
        lines.append(f"route: NONE ({platform}: {exc.message})")
        code = 1
    lines += [f"  {t}" for t in data["route"]["trace"]]
    emit(args, data, "\n".join(lines))
    return code


# -- parser -------------------------------------------------------------------------------------------------
def add_routes_parser(sub: Any, run: Callable[[argparse.Namespace, Callable[..., int]], int]) -> None:
    routes = sub.add_parser(
        "routes", help="routing catalogue: edit the draft, diff, publish, rollback, resolve"
    )
    rsub = routes.add_subparsers(dest="routes_command", required=True, metavar="ACTION")

    def command(
        name: str, func: Callable[..., int], help_text: str, json_flag: bool = True, migrates: bool = False
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = rsub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--author", help="name recorded in the audit log (default: your login name)")
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=lambda args: run(args, func), migrates=migrates)
        return p

    contract_help = "operation name (RegisterCase) or responder namespace"
    p = command(
        "list", cmd_list, "list routes and permissions of the draft (or --active / --version N)", True
    )
    p.add_argument("--active", action="store_true", help="list the active version instead of the draft")
    p.add_argument("--version", type=int, help="list published version N instead of the draft")
    p = command(
        "show", cmd_show, "show a published version (default: the active one) with its metadata", True
    )
    p.add_argument("version", type=int, nargs="?", help="version number (default: the active one)")
    command("history", cmd_history, "published versions, newest last; * marks the active one", True)
    command("audit", cmd_audit, "the append-only audit log of every change", True)
    command("diff", cmd_diff, "the draft against the active version, and what would stop a publish", True)

    p = command("add-component", cmd_add, "add a system (producer or consumer) by HSA-id")
    p.add_argument("hsa_id", help="HSA-id of the system, e.g. SE2321000016-DEV1")
    p.add_argument("--description", default="", help="free text for people (default empty)")
    p = command("add-contract", cmd_add, "add a service contract (operation name or responder namespace)")
    p.add_argument("contract", help=contract_help)
    p.add_argument("--name", help="short name shown in listings (default: none)")
    p.add_argument("--no-hsa-climb", action="store_true", help="resolve this contract without the HSA tree")
    p = command("add-address", cmd_add, "add a logical address (HSA-id of a unit or patient board)")
    p.add_argument("address", help="HSA-id of the unit or patient board")
    p.add_argument("--description", default="", help="free text for people (default empty)")
    p = command("add-endpoint", cmd_add, "add a producer endpoint (URL, timeouts, TLS settings)")
    p.add_argument("name", help="endpoint name that routes point at (letters, digits, . _ -)")
    p.add_argument("--component", required=True, help="HSA-id of the system behind the endpoint")
    p.add_argument("--url", required=True, help="https URL the outbox posts to")
    p.add_argument("--connect-timeout", type=float, default=2.0, help="seconds to connect (default 2)")
    p.add_argument(
        "--read-timeout", type=float, default=29.0, help="seconds to wait for the answer (default 29)"
    )
    p.add_argument(
        "--client-cert", help="client certificate for this endpoint (default outbox.client_certificate)"
    )
    p.add_argument("--client-key", help="private key of --client-cert")
    p.add_argument("--trust-store", help="CA bundle for this endpoint's server certificate")
    p.add_argument("--no-verify-hostname", action="store_true", help="do not match the URL's host name")
    p = command(
        "add-route", cmd_add, "route CONTRACT at ADDRESS to an endpoint or 'internal' (the case desk)"
    )
    p.add_argument("contract", help=contract_help)
    p.add_argument("address", help="logical address (HSA-id) or '*'")
    p.add_argument("target", help="endpoint name, or 'internal' for the case desk")
    p.add_argument("--from", dest="valid_from", help="UTC instant, e.g. 2026-12-01T06:00:00Z (inclusive)")
    p.add_argument("--to", dest="valid_to", help="UTC instant (exclusive)")
    p = command("add-permission", cmd_add, "allow CONSUMER to call CONTRACT at ADDRESS (or '*')")
    p.add_argument("consumer", help="HSA-id of the calling system")
    p.add_argument("contract", help=contract_help)
    p.add_argument("address", help="logical address (HSA-id) or '*'")
    p.add_argument("--from", dest="valid_from", help="UTC instant the permission starts (inclusive)")
    p.add_argument("--to", dest="valid_to", help="UTC instant the permission ends (exclusive)")
    for p in [a for n, a in rsub.choices.items() if n.startswith("add-")]:
        p.add_argument("--replace", action="store_true", help="replace an entry with the same key")

    p = command("remove", cmd_remove, "remove an entry from the draft")
    p.add_argument(
        "kind",
        choices=["component", "contract", "address", "endpoint", "route", "permission", "hsa"],
        help="what to remove",
    )
    p.add_argument("key", nargs="+", help="route: CONTRACT ADDRESS; permission: CONSUMER CONTRACT ADDRESS")
    p.add_argument("--from", dest="valid_from", help="valid_from of the route or permission to remove")

    p = command("import", cmd_import, "replace the draft with a YAML/JSON file, or merge a CSV unit list")
    p.add_argument("file", help="catalogue file (.yaml, .json) or CSV unit list (.csv); at most 10 MiB")
    p.add_argument("--format", choices=["yaml", "json"], help="file format (default: from the file name)")
    p.add_argument(
        "--units", action="store_true", help="FILE is a CSV unit list (address,target[,contract,…])"
    )
    p.add_argument("--contract", action="append", help="contract(s) for CSV rows without a contract column")
    p = command(
        "export", cmd_export, "print the active version (or --draft / --version N) as YAML or JSON", False
    )
    p.add_argument("--format", choices=["yaml", "json"], default="yaml", help="output format (default yaml)")
    p.add_argument("--draft", action="store_true", help="export the draft instead")
    p.add_argument("--version", type=int, help="export published version N instead")
    p = command("publish", cmd_publish, "publish the draft as a new immutable version")
    p.add_argument("-m", "--message", required=True, help="why (kept in history)")
    p.add_argument(
        "--force", action="store_true", help="publish a diff larger than routing.max_publish_changes"
    )
    p = command("rollback", cmd_rollback, "publish an earlier version's content as a new version")
    p.add_argument("version", type=int, help="the version whose content to publish again")
    p.add_argument("-m", "--message", help="why (kept in history)")
    p = command(
        "bootstrap",
        cmd_bootstrap,
        "import and publish FILE if nothing is published yet (migrates the database schema first; "
        "used by make run)",
        migrates=True,
    )
    p.add_argument("file", help="catalogue file (.yaml or .json)")
    p.add_argument("-m", "--message", default="bootstrap from example file", help="comment kept in history")
    p = command("resolve", cmd_resolve, "show the routing decision and access check with their traces", True)
    p.add_argument("contract", help=contract_help)
    p.add_argument("address", help="logical address (HSA-id) to resolve")
    p.add_argument("--consumer", help="HSA-id of the calling system (checks access too)")
    p.add_argument("--at", help="UTC instant to resolve at (default now)")
    p.add_argument(
        "--draft", action="store_true", help="resolve against the draft instead of the active version"
    )

    p = command(
        "hsa", cmd_hsa_import, "replace the draft's HSA tree from a CSV file (hsa_id,parent,kind,name)"
    )
    p.add_argument("hsa_command", choices=["import"], help="import: replace the tree from FILE")
    p.add_argument("file", help="CSV file with columns hsa_id,parent[,kind,name]; at most 10 MiB")
