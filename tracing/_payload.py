"""Opt-in capture of events and responses, with redaction.

Payloads are not captured by default: they often hold personal data, and X-Ray
metadata is readable by anyone with trace access. When capture is turned on,
values under keys that contain a redaction word (password, secret, token,
authorization, cookie... plus configured ones) are replaced by ``"***"``, at any
depth. The copy is bounded in depth and width so a huge event cannot blow up the
document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["redact"]

MASK = "***"
_MAX_DEPTH = 12
_MAX_ITEMS = 200


def redact(value: Any, keys: Sequence[str], _depth: int = 0) -> Any:
    """Return a JSON-friendly copy of ``value`` with sensitive keys masked."""
    if _depth > _MAX_DEPTH:
        return "<truncated>"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= _MAX_ITEMS:
                out["<truncated>"] = len(value) - _MAX_ITEMS
                break
            name = str(key)
            lowered = name.lower()
            if any(word in lowered for word in keys):
                out[name] = MASK
            else:
                out[name] = redact(item, keys, _depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [redact(item, keys, _depth + 1) for item in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            items.append(f"<{len(value) - _MAX_ITEMS} more>")
        return items
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)[:1000]
