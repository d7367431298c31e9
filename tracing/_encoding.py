"""Documents to bytes: compact, strict JSON that X-Ray accepts, whatever is inside.

One C encoder, built once, with ``allow_nan=False``: ``NaN`` and ``Infinity`` are
not JSON, and X-Ray rejects the whole document that holds one. Values recorded
through the library already follow the value rules (``_values.py``); anything
that slipped past them makes the fast path fail, and the document is encoded
again with every value converted by those rules. A document is never lost to a
value.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from ._values import json_value

__all__ = ["dumps", "encode"]

log = logging.getLogger("tracing.emitter")


def _unknown(value: Any) -> Any:
    """JSON for a value of a type the encoder does not know, by the value rules."""
    return json_value(value)


def _make_encoder() -> Any:
    # NOTE: json.JSONEncoder.encode() builds a new C encoder on every call (about
    # 1 µs, a third of encoding a small document). Build the C encoder once, with
    # the arguments JSONEncoder would pass it: no circular-reference markers (a
    # cycle ends in RecursionError, handled by encode()), the value rules for
    # unknown values, ASCII output, and allow_nan=False: NaN and Infinity are not
    # JSON, and X-Ray rejects the whole document that holds one.
    from json.encoder import (  # type: ignore[attr-defined]  # private, not in typeshed
        c_make_encoder,
        encode_basestring_ascii,
    )

    if c_make_encoder is None:  # pragma: no cover - CPython always has _json
        encoder = json.JSONEncoder(separators=(",", ":"), default=_unknown, allow_nan=False)
        return lambda document: encoder.encode(document)
    make = c_make_encoder(
        None, _unknown, encode_basestring_ascii, None, ":", ",", False, False, False
    )
    return lambda document: "".join(make(document, 0))


_encode_str = _make_encoder()


def dumps(value: Any) -> str:
    """Encode a value already made valid by the value rules (raises if it is not)."""
    text: str = _encode_str(value)
    return text


def encode(document: dict[str, Any]) -> bytes:
    """Encode one document as compact, strict ASCII JSON. Never loses the document.

    Values recorded through the library already follow the value rules; anything
    that slipped past them (a library entity's NaN, an int too large to print, a
    cycle, a key that is not a string) makes the fast encoder fail, and the
    document is then encoded again with every value converted by those rules.
    Raises only when the document's own structure changes while it is read (the
    deadline guard retries then).
    """
    try:
        return _encode_str(document).encode()  # type: ignore[no-any-return]
    except (ValueError, TypeError, RecursionError, OverflowError):
        log.debug("tracing: a document held invalid values; converting them", exc_info=True)
    from ._entity import sanitize_entity  # only here: _entity needs _span, which needs us

    try:
        return _encode_str(sanitize_entity(document)).encode()  # type: ignore[no-any-return]
    except (ValueError, TypeError, RecursionError, OverflowError):
        log.debug("tracing: a document is still invalid; sending it bare", exc_info=True)
    return _encode_str(_bare(document)).encode()  # type: ignore[no-any-return]


def _bare(document: dict[str, Any]) -> dict[str, Any]:
    """The entity's identity and times only, with a note: what always encodes."""
    bare: dict[str, Any] = {"metadata": {"tracing": {"unencodable": True}}}
    for key in ("name", "id", "trace_id", "parent_id", "type", "start_time", "end_time"):
        value = document.get(key)
        if isinstance(value, str) or (isinstance(value, float) and math.isfinite(value)):
            bare[key] = value
    if "end_time" not in bare:
        bare["in_progress"] = True
    return bare
