"""The reference pages in docs/ against the code they describe.

Each test reads a page as text and compares it with the code: the configuration keys of
``gateway/config.py`` (key, default, environment variable), the platform codes and exit codes of
``gateway/errors.py``, the subCodes and errorCodes of ``gateway/soap/handlers.py``, the examples on the pages,
and every relative link. A failure names the page and what it lacks, so whoever changes the code knows which
line of which page to write.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import shlex
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from gateway import errors
from gateway.config import Config, load_config
from routing.io import merge_hsa_csv, merge_units_csv
from routing.model import Catalogue

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REGISTER_CASE = "urn:riv-application:supportprocess:logistics:complaintsandfeedback:RegisterCaseResponder:1"


# -- reading Markdown ---------------------------------------------------------------------------------------
def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _cells(line: str) -> list[str]:
    """The cells of one table row (a ``\\|`` inside a cell is not a separator)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _tables(text: str) -> Iterator[tuple[str, list[str]]]:
    """(the nearest heading above, cells) for every body row of every table (header rows left out)."""
    heading = ""
    fenced = False
    in_table = False
    for line in text.splitlines():
        row = not fenced and line.lstrip().startswith("|")
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif row and in_table and not re.fullmatch(r"[\s|:-]+", line):
            yield heading, _cells(line)
        in_table = row  # the first row of a table is its header


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _code(value: str) -> str:
    return f"`{value}`"


# -- docs/configuration.md ----------------------------------------------------------------------------------
def _shown(default: Any) -> str:
    """A default as the page writes it: its TOML literal in backticks, or the word unset."""
    return "unset" if default is None else _code(_toml(default))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _config_keys() -> dict[tuple[str, str], Any]:
    """(section, key) → default, for every key of every section of ``Config``."""
    hints = typing.get_type_hints(Config)
    keys: dict[tuple[str, str], Any] = {}
    for section in dataclasses.fields(Config):
        if section.name == "source":
            continue
        for key in dataclasses.fields(hints[section.name]):
            missing = key.default is dataclasses.MISSING
            keys[(section.name, key.name)] = key.default_factory() if missing else key.default  # type: ignore[operator]
    return keys


def _documented_keys() -> dict[tuple[str, str], list[str]]:
    """(section, key) → the cells of its row, for rows under a heading that names a ``[section]``."""
    rows: dict[tuple[str, str], list[str]] = {}
    for heading, cells in _tables(_page("configuration.md")):
        section = re.search(r"\[(\w+)\]", heading)
        key = re.fullmatch(r"`(\w+)`", cells[0])
        if section and key and len(cells) >= 4:
            rows[(section.group(1), key.group(1))] = cells
    return rows


def test_configuration_documents_every_key_with_its_default_and_variable() -> None:
    documented = _documented_keys()
    problems = []
    for (section, key), default in _config_keys().items():
        name = f"{section}.{key}"
        cells = documented.get((section, key))
        if cells is None:
            problems.append(f"docs/configuration.md does not document {name}")
            continue
        variable = f"GATEWAY_{section}_{key}".upper()
        if _code(variable) not in cells[3]:
            problems.append(f"docs/configuration.md: {name}: the variable should be {_code(variable)}")
        if _shown(default) not in cells[2]:
            problems.append(
                f"docs/configuration.md: {name}: the default should be {_shown(default)},"
                f" the page says {cells[2]}"
            )
    for section, key in sorted(documented.keys() - _config_keys().keys()):
        problems.append(f"docs/configuration.md documents {section}.{key}, which gateway/config.py lacks")
    assert not problems, "\n".join(problems)


def test_configuration_examples_load(tmp_path: Path) -> None:
    page = _page("configuration.md")
    examples = _blocks(page, "toml")
    assert examples, "docs/configuration.md has no TOML example"
    for number, example in enumerate(examples, start=1):
        path = tmp_path / f"example-{number}.toml"
        path.write_text(example, encoding="utf-8")
        load_config(path, env={})  # raises ConfigError naming the key
    for block in _blocks(page, "sh"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0].startswith("GATEWAY_"):
                name, _, value = words[0].partition("=")
                load_config(None, env={name: value})


# -- docs/errors.md -----------------------------------------------------------------------------------------
def _error_classes() -> list[type[errors.GatewayError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.GatewayError) and cls.__module__ == errors.__name__
    ]


def test_errors_documents_every_platform_code() -> None:
    rows = [
        cells for heading, cells in _tables(_page("errors.md")) if heading == "Platform codes (SOAP faults)"
    ]
    faults = {
        (cls.platform_code, cls.faultcode, cls.http_status, cls.retryable)
        for cls in _error_classes()
        if issubclass(cls, errors.SoapFault) and cls is not errors.SoapFault
    }
    documented = {
        (cells[0].strip("`"), cells[1].strip("`").removeprefix("soap:"), cells[2], cells[3]) for cells in rows
    }
    problems = []
    for code, faultcode, status, retryable in sorted(faults):
        expected = (code, faultcode, str(status), "yes" if retryable else "no")
        if not any(row[0] == code for row in documented):
            problems.append(f"docs/errors.md does not document {code}")
        elif expected not in documented:
            problems.append(
                f"docs/errors.md has no row for {code} with faultcode soap:{faultcode}, HTTP {status},"
                f" retryable {expected[3]}"
            )
    for code in sorted({row[0] for row in documented} - {fault[0] for fault in faults}):
        problems.append(f"docs/errors.md documents {code}, which gateway/errors.py does not answer")
    assert not problems, "\n".join(problems)


def _handler_codes() -> tuple[set[str], set[str]]:
    """The subCodes (``RuleViolation("X", …)``) and errorCodes (``self._error(ctx, build, "X", …)``)."""
    tree = ast.parse((ROOT / "gateway/soap/handlers.py").read_text(encoding="utf-8"))
    sub_codes, error_codes = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id == "RuleViolation":
            argument = node.args[0]
            assert isinstance(argument, ast.Constant), "a RuleViolation sub-code must be a literal"
            sub_codes.add(str(argument.value))
        if isinstance(node.func, ast.Attribute) and node.func.attr == "_error" and len(node.args) >= 3:
            argument = node.args[2]
            assert isinstance(argument, ast.Constant), "an errorCode must be a literal"
            error_codes.add(str(argument.value))
    return sub_codes, error_codes


def test_errors_documents_every_sub_code_and_error_code() -> None:
    page = _page("errors.md")
    rows = {cells[0].strip("`"): cells for heading, cells in _tables(page) if heading == "subCodes"}
    sub_codes, error_codes = _handler_codes()
    assert sub_codes, "no RuleViolation sub-codes found in gateway/soap/handlers.py"
    assert error_codes, "no errorCodes found in gateway/soap/handlers.py"
    problems = [
        f"docs/errors.md does not document subCode {code}" for code in sorted(sub_codes - rows.keys())
    ]
    problems += [
        f"docs/errors.md documents subCode {code}, which gateway/soap/handlers.py does not answer"
        for code in sorted(rows.keys() - sub_codes)
    ]
    problems += [
        f"docs/errors.md: subCode {code}: errorCode {rows[code][1]} is not one the handlers answer"
        for code in sorted(rows.keys() & sub_codes)
        if rows[code][1].strip("`") not in error_codes
    ]
    problems += [
        f"docs/errors.md does not document errorCode {code}"
        for code in sorted(error_codes)
        if _code(code) not in page
    ]
    assert not problems, "\n".join(problems)


def _docstring_exit_codes() -> set[int]:
    """The exit codes that ``gateway/errors.py``'s docstring lists ("Exit codes of …: 0 success, 1 …")."""
    doc = errors.__doc__ or ""
    paragraph = doc[doc.index("Exit codes of") :].split("\n\n")[0]
    listed = paragraph.split("):", 1)[1]
    return {int(m.group(1)) for part in listed.split(",") if (m := re.match(r"\s*(\d+)\s", part))}


def test_errors_documents_every_exit_code() -> None:
    rows = {
        int(cells[0].strip("`")): cells
        for heading, cells in _tables(_page("errors.md"))
        if heading.startswith("Exit codes of") and cells[0].strip("`").isdigit()
    }
    problems = []
    codes = _docstring_exit_codes()
    assert {0, 1, 2, 130} <= codes, f"cannot read the exit codes of gateway/errors.py's docstring: {codes}"
    for code in sorted(codes - rows.keys()):
        problems.append(f"docs/errors.md does not document exit code {code}")
    for cls in _error_classes():
        if issubclass(cls, errors.SoapFault):
            continue  # answered on the wire, not by the command line
        cells = rows.get(cls.exit_code)
        if cells is None or _code(cls.__name__) not in cells[1]:
            problems.append(f"docs/errors.md does not name {cls.__name__} at exit code {cls.exit_code}")
    for code in sorted(rows.keys() - codes):
        problems.append(f"docs/errors.md documents exit code {code}, which gateway/errors.py does not list")
    assert not problems, "\n".join(problems)


# -- docs/routing.md ----------------------------------------------------------------------------------------
def test_routing_examples_publish(tmp_path: Path) -> None:
    """The example catalogue could be published as it stands, and the CSV examples merge into it."""
    page = _page("routing.md")
    catalogue = Catalogue.from_dict(yaml.safe_load(_blocks(page, "yaml")[0]))
    assert catalogue.problems() == [], "docs/routing.md: the example catalogue cannot be published"
    units, hsa = _blocks(page, "csv")
    (tmp_path / "units.csv").write_text(units, encoding="utf-8")
    (tmp_path / "hsa.csv").write_text(hsa, encoding="utf-8")
    merged = merge_units_csv(catalogue, tmp_path / "units.csv", (REGISTER_CASE,))
    merged = merge_hsa_csv(merged, tmp_path / "hsa.csv")
    assert merged.problems() == [], (
        f"docs/routing.md: the CSV examples break the catalogue: {merged.problems()}"
    )


# -- links --------------------------------------------------------------------------------------------------
def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    inline = re.findall(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    references = re.findall(r"^\s{0,3}\[[^\]]+\]:\s*(\S+)", text, flags=re.MULTILINE)
    return [t for t in inline + references if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t)]


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a page: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#{1,6}\s+(.*?)\s*#*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_leads_to_a_file() -> None:
    problems = []
    for page in _pages():
        shown = page.relative_to(ROOT)
        for link in _links(page):
            target, _, anchor = unquote(link).partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.exists():
                problems.append(f"{shown} links to {link}, which does not exist")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                problems.append(f"{shown} links to {link}: {path.name} has no heading #{anchor}")
    assert not problems, "\n".join(problems)


def test_docs_index_lists_every_page() -> None:
    index = DOCS / "README.md"
    linked = {(DOCS / unquote(link).partition("#")[0]).resolve() for link in _links(index)}
    missing = [
        f"docs/README.md does not link {path.relative_to(ROOT)}"
        for path in sorted([*DOCS.glob("*.md"), DOCS / "adr"])
        if path != index and path.resolve() not in linked
    ]
    assert not missing, "\n".join(missing)
