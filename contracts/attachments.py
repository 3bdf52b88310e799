"""Attachment types the contracts allow and the check that a file really is the type it claims to be.

Used for attachments that arrive over SOAP (RegisterCase, UpdateCase) and for files a handler attaches in
the case desk: the declared MIME type must match the file's signature (its first bytes), so a script or
an executable cannot travel as a "PDF".
"""

from __future__ import annotations

__all__ = ["MIME_TYPES", "content_matches"]

# File signatures of the attachment types the contracts allow (AttachmentType/mimeType).
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}

#: the MIME types an attachment may have
MIME_TYPES = tuple(_MAGIC)


def content_matches(mime_type: str, content: bytes) -> bool:
    """True when ``content`` starts with a signature of ``mime_type`` (False for other types)."""
    signatures = _MAGIC.get(mime_type)
    return signatures is not None and content.startswith(signatures)
