"""The X-Ray daemon's datagram: a JSON header line, then one segment document.

How the local collector (``daemon.py``) tells a daemon datagram from garbage,
as the X-Ray daemon does.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_DATAGRAM", "Document", "parse_datagram"]

#: The daemon reads into a 64 KiB buffer; anything longer is not a datagram it keeps.
MAX_DATAGRAM = 64 * 1024
_EXACT_HEADER = b'{"format":"json","version":1}'

Document = dict[str, Any]


def _header_ok(header: bytes) -> bool:
    if header == _EXACT_HEADER:
        return True
    # NOTE: the daemon unmarshals the header rather than comparing bytes, so
    # '{"format": "json", "version": 1}' with spaces is accepted too.
    # https://github.com/aws/aws-xray-daemon/blob/master/pkg/tracesegment/tracesegment.go
    try:
        fields = json.loads(header)
    except ValueError:
        return False
    version = fields.get("version") if isinstance(fields, dict) else None
    return type(version) is int and version == 1 and fields.get("format") == "json"


def parse_datagram(data: bytes) -> tuple[Document, str] | None:
    """Parse one daemon datagram: a header line, a newline, one JSON document.

    The header is checked as the X-Ray daemon checks it (a JSON object with
    ``format == "json"`` and ``version == 1``); the document must be a JSON
    object with a string ``trace_id`` and ``id``.

    Returns:
        The document and its raw JSON text, or ``None`` for anything else.
        Never raises.
    """
    try:
        header, newline, body = data.partition(b"\n")
        if len(data) > MAX_DATAGRAM or not newline or not _header_ok(header):
            return None
        text = body.decode("utf-8").strip()
        document = json.loads(text)
        if (
            isinstance(document, dict)
            and isinstance(document.get("trace_id"), str)
            and isinstance(document.get("id"), str)
        ):
            return document, text
    except Exception:  # ValueError, RecursionError on deep nesting...: all garbage
        return None
    return None
