"""``routing.io`` reads an imported file under caps: generated hostile inputs, each refused with one line
naming the file, the problem and the limit, within a bounded time and address space.

Each hostile case runs in a forked child whose address space is capped (RLIMIT_AS) and which must answer
within a deadline: an input that made the loader grow without bound fails the test instead of the machine.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from routing.errors import CatalogueError
from routing.io import DEFAULT_LIMITS, ImportLimits, load, merge_hsa_csv, merge_units_csv
from routing.model import Catalogue

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
#: room above the parent's address space the child may use (the caps keep it far below)
EXTRA_ADDRESS_SPACE = 512 * MiB
DEADLINE_S = 30.0


def _address_space() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()


def _child(conn: Any, call: Callable[[], object], limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        call()
        conn.send(("returned", ""))
    except CatalogueError as exc:
        conn.send(("refused", str(exc)))
    except MemoryError:
        conn.send(("memory", ""))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        conn.send(("crashed", f"{type(exc).__name__}: {exc}"))


def bounded(call: Callable[[], object]) -> tuple[str, str, float]:
    """Run ``call`` in a forked child under a memory cap and a deadline: (outcome, message, seconds)."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, call, _address_space() + EXTRA_ADDRESS_SPACE))
    started = time.monotonic()
    process.start()
    child.close()
    try:
        if not parent.poll(DEADLINE_S):
            raise AssertionError(f"no answer within {DEADLINE_S} s")
        outcome, message = parent.recv()
    finally:
        process.kill()
        process.join()
    return outcome, message, time.monotonic() - started


def _alias_bomb() -> str:
    lines = ["components:", "- hsa_id: SE2321000016-DEV1", "  description:"]
    lines.append("  - &a0 [" + ", ".join(["lol"] * 9) + "]")
    for level in range(1, 10):
        lines.append(f"  - &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


HOSTILE: list[tuple[str, Callable[[], str | bytes], str]] = [
    ("bomb.yaml", _alias_bomb, "bomb.yaml:4: YAML anchors and aliases (&name, *name) are not allowed"),
    ("merge.yaml", lambda: "x: &x {hsa_id: A}\ncomponents:\n- <<: *x\n", "merge.yaml:1: YAML anchors"),
    ("deep.yaml", lambda: "[" * 50_000 + "]" * 50_000, "deep.yaml: nested deeper than 32 levels"),
    (
        "deep-block.yaml",
        lambda: "".join(" " * i + "-\n" for i in range(3000)),
        "deep-block.yaml:33: nested deeper than 32",
    ),
    ("deep.json", lambda: "[" * 50_000 + "]" * 50_000, "deep.json: nested deeper than 32 levels"),
    (
        "deep40.json",
        lambda: '{"hsa": ' + "[" * 40 + "]" * 40 + "}",
        "deep40.json: nested deeper than 32 levels",
    ),
    (
        "huge.yaml",
        lambda: b"- x\n" * (50 * MiB // 4),
        "huge.yaml: larger than the import limit of 10 MiB: split",
    ),
    ("wide.yaml", lambda: "hsa: [" + "1, " * 600_000 + "1]\n", "wide.yaml:1: more than 500000 values"),
    ("wide.json", lambda: '{"hsa": [' + "1, " * 600_000 + "1]}", "wide.json: more than 500000 values"),
    (
        "latin1.yaml",
        lambda: "components:\n- hsa_id: SE1\n  description: \xe5\n".encode("latin-1"),
        "latin1.yaml: not UTF-8 text (byte 0xe5 at offset 41)",
    ),
    (
        "list.yaml",
        lambda: "components:\n- [SE2321000016-DEV1]\n",
        "components[0]: expected a mapping of fields, got a list",
    ),
    (
        "mapping.yaml",
        lambda: "routes: {contract: RegisterCase}\n",
        "section 'routes' must be a list, got a mapping",
    ),
    (
        "number.yaml",
        lambda: "components:\n- hsa_id: 5\n",
        "components[0].hsa_id: expected a string, got a number (5)",
    ),
    (
        "bool.yaml",
        lambda: "endpoints:\n- {name: a, component: SE1, url: 'https://x', read_timeout: yes}\n",
        "endpoints[0].read_timeout: expected a number, got true",
    ),
    (
        "nested.yaml",
        lambda: "components:\n- hsa_id: SE1\n  description: {a: [1, 2]}\n",
        "components[0].description: expected a string, got a mapping",
    ),
    (
        "instant.yaml",
        lambda: "routes:\n- {contract: c, address: SE1, target: internal, valid_from: 5}\n",
        "routes[0].valid_from: expected an instant, got a number (5)",
    ),
    ("keys.yaml", lambda: "components:\n- {1: x, hsa_id: SE1}\n", "components[0]: unknown field '1'"),
    ("sections.yaml", lambda: "{1: [], components: []}\n", "unknown section '1'"),
    ("top.json", lambda: "[1, 2]", "top.json: expected a mapping of sections"),
    (
        "python.yaml",
        lambda: "components: !!python/object/apply:os.system [true]\n",
        "python.yaml: not valid YAML",
    ),
]


@pytest.mark.parametrize(("name", "make", "expected"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_catalogue_files_are_refused_in_one_line(
    name: str, make: Callable[[], str | bytes], expected: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, name, make())
    outcome, message, seconds = bounded(lambda: load(path))
    assert outcome == "refused", (outcome, message)
    assert expected in message
    assert message.startswith(str(path))
    assert "\n" not in message
    assert seconds < DEADLINE_S


def test_dev_zero_ends_at_the_size_cap() -> None:
    outcome, message, _ = bounded(lambda: load(Path("/dev/zero"), "yaml"))
    assert (outcome, message) == (
        "refused",
        "/dev/zero: larger than the import limit of 10 MiB: split the file",
    )


@pytest.mark.parametrize(
    ("content", "merge", "expected"),
    [
        (
            "address,target,description\nSE2321000016-U0001,internal," + "x" * 200_000 + "\n",
            "units",
            "units.csv:2: a field longer than 65536 characters, the limit",
        ),
        (
            "hsa_id,parent,kind,name\nSE2321000016-U0001,SE,unit," + "x" * 200_000 + "\n",
            "hsa",
            "units.csv:2: a field longer than 65536 characters, the limit",
        ),
        (
            "address,target\nSE2321000016-U0001,int\xe5rnal\n".encode("latin-1"),
            "units",
            "units.csv: not UTF-8 text",
        ),
        (
            b"address,target\n" + b"SE1,internal\n" * (11 * MiB // 13),
            "units",
            "units.csv: larger than the import limit of 10 MiB",
        ),
    ],
    ids=["200kb-field", "200kb-field-hsa", "latin1", "11mib"],
)
def test_hostile_csv_files_are_refused_in_one_line(
    content: str | bytes, merge: str, expected: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, "units.csv", content)

    def call() -> object:
        if merge == "hsa":
            return merge_hsa_csv(Catalogue(), path)
        return merge_units_csv(Catalogue(), path, ("urn:x",))

    outcome, message, _ = bounded(call)
    assert outcome == "refused", (outcome, message)
    assert expected in message


def test_csv_cells_count_against_the_value_cap(tmp_path: Path) -> None:
    path = _write(tmp_path, "units.csv", "address,target\n" + "SE1,internal\n" * 20)
    with pytest.raises(CatalogueError, match=r"units.csv:7: more than 10 values"):
        merge_units_csv(Catalogue(), path, ("urn:x",), limits=ImportLimits(max_nodes=10))


def test_smaller_limits_apply(tmp_path: Path) -> None:
    example = ROOT / "examples" / "routing.yaml"
    with pytest.raises(CatalogueError, match="larger than the import limit of 100 bytes"):
        load(example, limits=ImportLimits(max_bytes=100))
    with pytest.raises(CatalogueError, match="more than 20 values"):
        load(example, limits=ImportLimits(max_nodes=20))
    with pytest.raises(CatalogueError, match="nested deeper than 2 levels"):
        load(example, limits=ImportLimits(max_depth=2))


def test_good_files_still_load(tmp_path: Path) -> None:
    example = load(ROOT / "examples" / "routing.yaml")
    assert example.routes
    bom = _write(tmp_path, "bom.json", "\ufeff" + example.canonical_json())
    assert load(bom) == example
    # a timestamp YAML reads as a datetime is an instant too
    stamped = _write(
        tmp_path,
        "stamped.yaml",
        "routes:\n- {contract: c, address: SE1, target: internal, valid_from: 2026-01-01T00:00:00Z}\n",
    )
    assert load(stamped).routes[0].valid_from is not None
    assert DEFAULT_LIMITS.max_bytes == 10 * MiB
