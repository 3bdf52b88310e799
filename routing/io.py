"""Import and export of catalogues: YAML or JSON documents (round-trip exact) and CSV unit lists.

YAML and JSON carry the whole catalogue in its canonical form, so an export imported and exported again is
byte-identical. CSV is for bulk unit lists (one row per unit: address, target, optional contract and
validity) and for the HSA tree (hsa_id, parent, kind, name); both merge into a catalogue.

An imported file is operator input and is read under caps (``ImportLimits``), each refusal one line
naming the file, the problem and the limit: at most ``max_bytes`` are read (so ``/dev/zero`` or a FIFO
ends at once), the text must be UTF-8, a YAML file may hold no anchors or aliases (a few hundred bytes of
nested aliases expand to gigabytes), and the document may have at most ``max_nodes`` values nested at
most ``max_depth`` deep. YAML is checked event by event before it is composed, so a refused document
never becomes objects; CSV fields are capped with ``csv.field_size_limit``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
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

__all__ = ["DEFAULT_LIMITS", "ImportLimits", "dump", "load", "merge_hsa_csv", "merge_units_csv"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class ImportLimits:
    """Caps on an imported file. A catalogue of 10 000 units with routes, addresses and HSA nodes is
    about 3 MiB of YAML and 300 000 values, three levels deep (measured: 500 000 values take about
    190 MiB of memory while YAML is composed)."""

    #: bytes read from the file; one more byte means it is refused
    max_bytes: int = 10 * MiB
    #: scalars, mappings and lists in the document (CSV: cells)
    max_nodes: int = 500_000
    #: nesting of mappings and lists (a catalogue needs 3)
    max_depth: int = 32
    #: characters in one CSV field
    max_csv_field: int = 64 * 1024


DEFAULT_LIMITS = ImportLimits()

# libyaml's composer is much faster; both are "safe" loaders (no Python objects from tags)
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit} bytes"


def _read_text(path: Path, limits: ImportLimits) -> str:
    """At most ``max_bytes`` of ``path`` as UTF-8 text (a BOM is allowed)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except OSError as exc:
        raise CatalogueError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise CatalogueError(
            f"{path}: larger than the import limit of {_size(limits.max_bytes)}: split the file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogueError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): save it as UTF-8"
        ) from None


def _check_yaml_events(path: Path, text: str, limits: ImportLimits) -> None:
    """Refuse anchors, aliases, too many values and too deep nesting before anything is composed."""
    depth = nodes = 0
    events = yaml.parse(text, Loader=_YamlLoader)
    while True:
        try:
            event = next(events)
        except StopIteration:
            return
        except yaml.YAMLError as exc:
            # libyaml's scanner reads ahead of the parser and has its own cap (1 000 levels)
            if "maximum nesting depth" in str(exc):
                raise CatalogueError(f"{path}: nested deeper than {limits.max_depth} levels") from None
            raise
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise CatalogueError(
                f"{path}:{line}: YAML anchors and aliases (&name, *name) are not allowed in a catalogue"
            )
        if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            nodes += 1
            if nodes > limits.max_nodes:
                raise CatalogueError(
                    f"{path}:{line}: more than {limits.max_nodes} values, the import limit: split the file"
                )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.max_depth:
                raise CatalogueError(f"{path}:{line}: nested deeper than {limits.max_depth} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_json_shape(path: Path, data: Any, limits: ImportLimits) -> None:
    """Count and depth of the values of a loaded document, without recursion; a collection's children are
    counted before they are visited, so a huge flat list is refused without walking it."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 1
    while stack:
        item, depth = stack.pop()
        if depth > limits.max_depth:
            raise CatalogueError(f"{path}: nested deeper than {limits.max_depth} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        count += len(children)
        if count > limits.max_nodes:
            raise CatalogueError(
                f"{path}: more than {limits.max_nodes} values, the import limit: split the file"
            )
        stack.extend((child, depth + 1) for child in children)


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


def load(path: Path, fmt: str | None = None, *, limits: ImportLimits = DEFAULT_LIMITS) -> Catalogue:
    fmt = _format(path, fmt)
    if fmt == "csv":
        raise CatalogueError("CSV files are unit lists: use 'routes import --units FILE --contract …'")
    text = _read_text(path, limits)
    data: Any
    try:
        if fmt == "json":
            try:
                data = json.loads(text)
            except RecursionError:
                raise CatalogueError(f"{path}: nested deeper than {limits.max_depth} levels") from None
            _check_json_shape(path, data, limits)
        else:
            _check_yaml_events(path, text, limits)
            data = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a safe loader, checked above
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CatalogueError(f"{path}: not valid {fmt.upper()}: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: expected a mapping of sections (components, routes, …) at the top")
    return Catalogue.from_dict(data, where=str(path))


def _rows(path: Path, required: tuple[str, ...], limits: ImportLimits) -> list[dict[str, str]]:
    text = _read_text(path, limits)
    # process-wide, and every import sets it: the limit a file is read under is always its own
    csv.field_size_limit(limits.max_csv_field)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[dict[str, str]] = []
    cells = 0
    try:
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogueError(f"{path}: missing column {missing[0]!r}")
        for row in reader:
            cells += len(row)
            if cells > limits.max_nodes:
                raise CatalogueError(
                    f"{path}:{reader.line_num}: more than {limits.max_nodes} values, the import limit: "
                    "split the file"
                )
            rows.append({k: (v or "").strip() for k, v in row.items() if isinstance(k, str) and k})
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise CatalogueError(
                # line_num counts the lines of complete records: the bad one is the next
                f"{path}:{reader.line_num + 1}: a field longer than {limits.max_csv_field} characters, "
                "the limit"
            ) from None
        raise CatalogueError(f"{path}:{reader.line_num + 1}: not valid CSV: {exc}") from None
    return rows


def merge_units_csv(
    catalogue: Catalogue,
    path: Path,
    default_contracts: tuple[str, ...],
    *,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> Catalogue:
    """Add one address and one route per contract for every row: ``address,target[,contract,valid_from,
    valid_to,description]``. A row that already has a route for the same contract, address and start is
    replaced."""
    routes = {r.key(): r for r in catalogue.routes}
    addresses = {a.address: a for a in catalogue.addresses}
    for line, row in enumerate(_rows(path, ("address", "target"), limits), start=2):
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


def merge_hsa_csv(catalogue: Catalogue, path: Path, *, limits: ImportLimits = DEFAULT_LIMITS) -> Catalogue:
    """Replace the HSA tree with the rows of ``hsa_id,parent[,kind,name]``."""
    nodes = []
    for line, row in enumerate(_rows(path, ("hsa_id", "parent"), limits), start=2):
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
