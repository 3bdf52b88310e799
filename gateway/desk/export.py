"""Export of one desk case as a ZIP, for registration in the region's own records (1177 is no archive).

The archive holds the RegisterCase XML exactly as stored when it was received, the timeline as JSON and as
a text a person can read, and every attachment of both directions as its own file. The export itself is
audited (who, when, how many files); nothing of the content is logged.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime
from typing import Any

from gateway.desk.model import AttachmentRef, CaseView, TimelineEvent

__all__ = ["build_zip", "safe_name"]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")
_DIRECTIONS = {"in": "in", "out": "ut", "desk": "handläggning"}


def safe_name(name: str) -> str:
    """A file name that stays one file inside the archive, whatever the citizen called it."""
    cleaned = _UNSAFE.sub("_", name).strip(" .") or "bilaga"
    return cleaned[:120]


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _ref(ref: AttachmentRef, paths: dict[str, str]) -> dict[str, Any]:
    return {
        "ref": ref.ref,
        "fileName": ref.file_name,
        "mimeType": ref.mime_type,
        "size": ref.size,
        "direction": ref.direction,
        "file": paths.get(ref.ref),
    }


def _event(event: TimelineEvent, paths: dict[str, str]) -> dict[str, Any]:
    return {
        "at": _when(event.at),
        "direction": event.direction,
        "kind": event.kind,
        "actor": event.actor,
        "text": event.text,
        "standardAnswer": event.standard_answer,
        "attachments": [_ref(a, paths) for a in event.attachments],
        "delivery": event.delivery,
    }


def _readable(view: CaseView) -> str:
    lines = [
        f"Ärende {view.case_id}",
        f"Kategori: {view.category}   Status: {view.status}",
        f"Enhet: {view.handling_unit} {view.unit_name}".rstrip(),
        f"Inkom: {_when(view.received_at)}   Avslutat: {_when(view.closed_at) or '-'}",
        "",
        "Händelser:",
    ]
    for event in view.timeline:
        head = f"{_when(event.at)}  {_DIRECTIONS.get(event.direction, event.direction):<5} {event.kind}"
        head += f"  ({event.actor})"
        if event.delivery:
            head += f"  leverans: {event.delivery}"
        lines.append(head)
        if event.standard_answer:
            lines.append(f"    Standardsvar: {event.standard_answer}")
        if event.text:
            lines += [f"    {line}" for line in event.text.splitlines()]
        for attachment in event.attachments:
            lines.append(
                f"    Bilaga: {attachment.file_name} ({attachment.mime_type}, {attachment.size} byte)"
            )
    return "\n".join(lines) + "\n"


def build_zip(view: CaseView, register_xml: bytes, files: dict[str, tuple[str, str, bytes]]) -> bytes:
    """The archive of ``view``; ``files`` maps each attachment ref to (name, MIME type, content)."""
    paths = {ref: f"bilagor/{ref}-{safe_name(name)}" for ref, (name, _, _) in files.items()}
    document = {
        "caseId": view.case_id,
        "category": view.category,
        "status": view.status,
        "handlingUnit": view.handling_unit,
        "unitName": view.unit_name,
        "receivedAt": _when(view.received_at),
        "closedAt": _when(view.closed_at),
        "timeline": [_event(e, paths) for e in view.timeline],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("registercase.xml", register_xml)
        archive.writestr("timeline.json", json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        archive.writestr("timeline.txt", _readable(view))
        for ref, (_, _, data) in files.items():
            archive.writestr(paths[ref], data)
    return buffer.getvalue()
