"""Code lists as data: JSON files an operator can replace, never Python enums.

Each file holds one code system (``codeSystem``, ``codes`` with ``code``, ``displayName``, an optional
``parent`` and, for standard answers, the fixed ``text`` sent to the citizen). The packaged files live in
``contracts/codes/``; a configured directory may replace any of them by file name. Checks return short
messages naming the field and code system, never free text.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts.model import CV

__all__ = ["CodeList", "CodeLists", "load_code_lists"]

PACKAGED = Path(__file__).resolve().parent / "codes"

# Which file checks which element; mainProblem takes top-level codes and subProblem their children.
FIELD_FILES = {
    "gender": "gender.json",
    "mainProblem": "problem.json",
    "subProblem": "problem.json",
    "experiencedProblem": "experienced.json",
    "businessArea": "businessarea.json",
    "standardAnswer": "standardanswer.json",
}


class CodeListError(Exception):
    """A code-list file is missing or malformed."""


@dataclass(frozen=True)
class CodeList:
    code_system: str
    version: str
    display: Mapping[str, str]
    parent: Mapping[str, str | None]
    #: the fixed text of each code that has one (standard answers)
    texts: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path) -> CodeList:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            codes = data["codes"]
            return cls(
                code_system=str(data["codeSystem"]),
                version=str(data.get("version", "")),
                display={str(c["code"]): str(c.get("displayName", "")) for c in codes},
                parent={str(c["code"]): (str(c["parent"]) if c.get("parent") else None) for c in codes},
                texts={str(c["code"]): str(c["text"]) for c in codes if c.get("text")},
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CodeListError(f"code list {path}: {exc}") from exc


class CodeLists:
    def __init__(self, lists: Mapping[str, CodeList]) -> None:
        self._by_file = dict(lists)

    def for_field(self, field: str) -> CodeList:
        return self._by_file[FIELD_FILES[field]]

    def cv(self, field: str, code: str) -> CV:
        """The coded value of ``code`` in the list that checks ``field`` (KeyError when it is not there)."""
        code_list = self.for_field(field)
        return CV(code, code_list.code_system, code_list.display[code] or None)

    def check(self, codes: Mapping[str, CV | None]) -> list[str]:
        """Problems with the coded values of one request (an empty list when all are valid)."""
        problems: list[str] = []
        for field, cv in codes.items():
            if cv is None or field not in FIELD_FILES:
                continue
            code_list = self.for_field(field)
            if cv.code_system != code_list.code_system:
                problems.append(f"{field}: codeSystem must be {code_list.code_system}")
            elif cv.code not in code_list.display:
                # the unknown value itself is not repeated: a mis-mapped field may carry personal data
                problems.append(f"{field}: code not in {code_list.code_system}")
            elif field == "mainProblem" and code_list.parent[cv.code] is not None:
                problems.append(f"{field}: {cv.code!r} is a sub-problem code, not a main problem")
            elif field == "subProblem":
                main = codes.get("mainProblem")
                if code_list.parent[cv.code] is None:
                    problems.append(f"{field}: {cv.code!r} is a main problem code, not a sub-problem")
                elif main is None:
                    problems.append(f"{field}: a subProblem needs its mainProblem")
                elif code_list.parent[cv.code] != main.code:
                    problems.append(f"{field}: {cv.code!r} does not belong to mainProblem {main.code!r}")
        return problems


def load_code_lists(override_dir: Path | None = None) -> CodeLists:
    """The packaged code lists, each replaced by a file of the same name in ``override_dir`` if present."""
    lists: dict[str, CodeList] = {}
    for name in sorted(set(FIELD_FILES.values())):
        path = PACKAGED / name
        if override_dir is not None and (override_dir / name).is_file():
            path = override_dir / name
        lists[name] = CodeList.from_file(path)
    return CodeLists(lists)
