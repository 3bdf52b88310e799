"""Import and export of catalogues: YAML or JSON documents (round-trip exact) and CSV unit lists.

YAML and JSON carry the whole catalogue in its canonical form, so an export imported and exported again is
byte-identical. CSV is for bulk unit lists (one row per unit: address, target, optional contract and
validity) and for the HSA tree (hsa_id, parent, kind, name); both merge into a catalogue.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from routing.errors import CatalogueError
from routing.model import (
    Catalogue,
    HsaNode,
    LogicalAddress,
    Route,
    check_hsa_id,
    parse_instant,
)

__all__ = ["dump", "load", "merge_hsa_csv", "merge_units_csv"]


def _format(path: Path, given: str | None) -> str:
    fmt = given or {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".csv": "csv"}.get(path.suffix.lower())
    if fmt is None:
        raise CatalogueError(f"{path}: cannot tell the format from the file name; use --format")
    return fmt


def dump(catalogue: Catalogue, fmt: str = "yaml") -> str:
    if fmt == "json":
        return catalogue.canonical_json()
    if fmt == "yaml":
        return str(
            yaml.safe_dump(catalogue.to_dict(), sort_keys=True, allow_unicode=True, default_flow_style=False)
        )
    raise CatalogueError(f"unknown export format {fmt!r} (yaml or json)")


def load(path: Path, fmt: str | None = None) -> Catalogue:
    fmt = _format(path, fmt)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: {exc.strerror}") from None
    try:
        data: Any = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: not valid {fmt.upper()}: {str(exc).splitlines()[0]}") from None
    if fmt == "csv":
        raise CatalogueError("CSV files are unit lists: use 'routes import --units FILE --contract …'")
    return Catalogue.from_dict(data or {})


def _rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise CatalogueError(f"{path}: missing column {missing[0]!r}")
            return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    except OSError as exc:
        raise CatalogueError(f"{path}: {exc.strerror}") from None


def merge_units_csv(catalogue: Catalogue, path: Path, default_contracts: tuple[str, ...]) -> Catalogue:
    """Add one address and one route per contract for every row: ``address,target[,contract,valid_from,
    valid_to,description]``. A row that already has a route for the same contract, address and start is
    replaced."""
    routes = {r.key(): r for r in catalogue.routes}
    addresses = {a.address: a for a in catalogue.addresses}
    for line, row in enumerate(_rows(path, ("address", "target")), start=2):
        where = f"{path.name}:{line}"
        address = check_hsa_id(row["address"], where)
        contracts = (row["contract"],) if row.get("contract") else default_contracts
        if not contracts:
            raise CatalogueError(f"{where}: no contract column and no --contract given")
        addresses.setdefault(address, LogicalAddress(address, row.get("description", "")))
        for contract in contracts:
            route = Route(
                contract=contract,
                address=address,
                target=row["target"],
                valid_from=parse_instant(row.get("valid_from") or None, f"{where}.valid_from"),
                valid_to=parse_instant(row.get("valid_to") or None, f"{where}.valid_to"),
            )
            routes[route.key()] = route
    return replace(catalogue, addresses=tuple(addresses.values()), routes=tuple(routes.values())).normalised()


def merge_hsa_csv(catalogue: Catalogue, path: Path) -> Catalogue:
    """Replace the HSA tree with the rows of ``hsa_id,parent[,kind,name]``."""
    nodes = []
    for line, row in enumerate(_rows(path, ("hsa_id", "parent")), start=2):
        where = f"{path.name}:{line}"
        nodes.append(
            HsaNode(
                hsa_id=check_hsa_id(row["hsa_id"], where),
                parent=check_hsa_id(row["parent"], where, allow=("SE",)),
                kind=row.get("kind") or "unit",
                name=row.get("name", ""),
            )
        )
    return replace(catalogue, hsa=tuple(nodes)).normalised()
