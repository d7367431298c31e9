"""Opt-in capture of events and responses, with redaction.

Payloads are not captured by default: they often hold personal data, and X-Ray
metadata is readable by anyone with trace access. When capture is turned on,
values under keys that contain a redaction word (password, secret, token,
authorization, cookie... plus configured ones) are replaced by ``"***"``, at any
depth. The copy follows the metadata value rules (``_values.py``) and is bounded
in depth (12) and width (200 items per container), so a huge event cannot blow
up the document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._values import json_value

if TYPE_CHECKING:
    from ._config import Settings
    from ._span import Span

__all__ = ["MASK", "redact"]

MASK = "***"
_MAX_DEPTH = 12
_MAX_ITEMS = 200


def redact(value: Any, keys: Sequence[str]) -> Any:
    """Return a JSON copy of ``value`` with sensitive keys masked."""
    return json_value(value, redact=tuple(keys), max_depth=_MAX_DEPTH, max_items=_MAX_ITEMS)


def capture(span: Span, key: str, value: Any, settings: Settings) -> None:
    """Store ``value``, redacted, as metadata ``key`` in the service's namespace.

    ``redact()`` already returns a JSON copy by the value rules, kept within the
    span's metadata budget like any other.
    """
    span.put_json(key, redact(value, settings.redact_keys), settings.service)
