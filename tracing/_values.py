"""The value rules: what user values become in an X-Ray document.

X-Ray rejects a *whole document* when one value in it is not valid: ``NaN`` and
``Infinity`` are not JSON, an annotation must be a string, number or bool, and a
number must fit a float64. aws-xray-sdk serializes with ``json.dumps`` (which
writes a bare ``NaN``) and Powertools inherits that; the OTel Collector's X-Ray
exporter drops the document on a marshal error. Here every value a user passes
is converted when it is recorded, by one rule, so no value can cost a trace:

Annotations (indexed; ``annotation_value``):

* ``str``: kept, cut to 1,000 characters. ``bool``: kept.
* ``int``: kept within ±2**53 (exact as a float64, which is how X-Ray
  compares numbers); beyond that, its decimal string (dropped over 1,000 digits).
* ``float``: kept when finite; ``NaN`` and ±``Infinity`` are dropped (one debug
  line): they do not compare, so an index of them would be useless.
* ``Decimal`` (what DynamoDB returns): as the ``int``/``float`` it equals.
  ``datetime``/``date``/``time``: ISO 8601 string. ``Enum``: its value.
* Anything else (``None``, containers, bytes...) is dropped with one debug line.

Metadata (not indexed; ``json_value``): a JSON copy taken when it is recorded,
so later changes to the object do not change the trace (the deadline guard can
send it while the handler still runs):

* numbers as above, except that non-finite floats become the strings ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"`` (metadata is for reading, so nothing is dropped);
* mappings become objects, keys made strings; lists, tuples, sets and frozensets
  become arrays; ``bytes`` become text (UTF-8, undecodable bytes escaped);
  ``Decimal``, ``datetime``, ``UUID``, ``Enum``, paths as above or as strings;
* cycles become ``"<cycle>"``, nesting deeper than 32 ``"<depth limit>"``, more
  than 10,000 values in one copy ``"<truncated>"``;
* any other object becomes its ``repr`` (cut to 1,000 characters), or
  ``"<unrepresentable T>"`` when ``repr`` raises.

The UDP encoder runs with ``allow_nan=False`` as the last guard, and converts a
document that still fails with the same rules (see ``exporters/xray_udp.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Mapping
from itertools import islice
from typing import Any

__all__ = [
    "MAX_SAFE_INT",
    "dumps",
    "escape",
    "annotation_key",
    "annotation_value",
    "json_value",
    "metadata_key",
]

log = logging.getLogger("tracing.values")

#: Largest integer a float64 holds exactly.
MAX_SAFE_INT = 2**53
MAX_ANNOTATION_VALUE = 1000
MAX_ANNOTATION_KEY = 500
MAX_DEPTH = 32
MAX_VALUES = 10_000
MAX_REPR = 1000
MAX_BYTES = 4096

_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _text(value: object) -> str | None:
    """``str(value)`` that never raises (``None`` when it does)."""
    if type(value) is str:
        return value
    try:
        return str(value)
    except Exception:
        return None


def _repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "..."


def _big_int(value: int, limit: int) -> str | None:
    """The digits of an int too large for a float64, or ``None`` past ``limit`` digits."""
    if value.bit_length() > limit * 3.33 + 4:  # more digits than allowed: don't even print
        return None
    try:
        text = str(value)
    except ValueError:  # over sys.get_int_max_str_digits()
        return None
    return text if len(text) <= limit else None


def annotation_key(key: object) -> str | None:
    """An annotation key X-Ray accepts (``[A-Za-z0-9_]{1,500}``), or ``None``."""
    text = _text(key)
    if not text:
        return None
    if len(text) > MAX_ANNOTATION_KEY:
        text = text[:MAX_ANNOTATION_KEY]
    if not _KEY_CHARS.issuperset(text):
        text = "".join(c if c in _KEY_CHARS else "_" for c in text)
    return text


def annotation_value(value: object) -> str | int | float | bool | None:
    """Convert an annotation value by the module's rules; ``None`` means dropped."""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        return text if len(text) <= MAX_ANNOTATION_VALUE else text[:MAX_ANNOTATION_VALUE]
    if kind is bool:
        return value  # type: ignore[return-value]
    if kind is int:
        number: int = value  # type: ignore[assignment]
        if -MAX_SAFE_INT <= number <= MAX_SAFE_INT:
            return number
        return _big_int(number, MAX_ANNOTATION_VALUE)
    if kind is float:
        real: float = value  # type: ignore[assignment]
        return real if math.isfinite(real) else None
    return _annotation_slow(value)


def _annotation_slow(value: object) -> str | int | float | bool | None:
    # Subclasses (IntEnum, str-based enums) and the library types users pass.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return annotation_value(str.__str__(value))
    if isinstance(value, int):
        return annotation_value(int(value))
    if isinstance(value, float):
        return annotation_value(float(value))
    converted = _library_value(value)
    if isinstance(converted, (str, int, float)):  # also rules out _UNKNOWN
        return annotation_value(converted)
    return None


_UNKNOWN = object()


def _library_value(value: object) -> Any:
    """Decimal, datetime, UUID, Enum and paths by type name (no imports at cold start)."""
    name = type(value).__name__
    module = type(value).__module__
    try:
        if module == "decimal" and name == "Decimal":
            return _decimal(value)
        if module == "datetime" and name in ("datetime", "date", "time"):
            return value.isoformat()  # type: ignore[attr-defined]
        if module == "uuid" and name == "UUID":
            return str(value)
        if module == "pathlib" or (name.endswith("Path") and hasattr(value, "__fspath__")):
            return str(value)
        enum_value = _enum_value(value)
        if enum_value is not _UNKNOWN:
            return enum_value
    except Exception:
        return _UNKNOWN
    return _UNKNOWN


def _decimal(value: Any) -> Any:
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("-Infinity" if value < 0 else "Infinity")
    # NOTE: look at the exponent before converting: int(Decimal("1E+1000000"))
    # builds a million-digit integer (seconds of CPU), and such a value arrives
    # from any JSON body parsed with parse_float=Decimal (the DynamoDB idiom).
    if value.adjusted() > 15:
        return str(value)  # beyond ±2**53 anyway: its own compact form
    if value == value.to_integral_value():
        number = int(value)
        if -MAX_SAFE_INT <= number <= MAX_SAFE_INT:
            return number
        return str(number)
    real = float(value)
    return real if math.isfinite(real) else str(value)


def _enum_value(value: object) -> Any:
    for klass in type(value).__mro__:
        if klass.__name__ == "Enum" and klass.__module__ == "enum":
            return value.value  # type: ignore[attr-defined]
    return _UNKNOWN


def metadata_key(key: object) -> str:
    """A metadata key: the key's string, or its ``repr`` when ``str`` raises."""
    text = _text(key)
    return text if text is not None else _repr(key)


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def json_value(
    value: Any,
    redact: tuple[str, ...] = (),
    max_depth: int = MAX_DEPTH,
    max_items: int | None = None,
) -> Any:
    """Return a JSON-safe copy of ``value`` by the module's metadata rules.

    Args:
        value: Anything a user passes.
        redact: Lower-case key fragments: values under a mapping key containing
            one become ``"***"`` at any depth (payload capture).
        max_depth: Nesting kept; deeper values become ``"<depth limit>"``.
        max_items: Most items kept per container (the rest are summarized), or
            no limit but the total of 10,000 values.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return value
        return _big_int(value, 10_000) or f"<int of {value.bit_length()} bits>"
    if kind is float:
        return value if math.isfinite(value) else _NONFINITE[repr(value)]
    return _convert(value, redact, max_depth, max_items, _Budget(MAX_VALUES), set(), 0)


def _convert(
    value: Any,
    redact: tuple[str, ...],
    max_depth: int,
    max_items: int | None,
    budget: _Budget,
    active: set[int],
    depth: int,
) -> Any:
    budget.left -= 1
    if budget.left < 0:
        return "<truncated>"
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int or kind is float:
        return json_value(value)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if depth >= max_depth:
            return "<depth limit>"
        marker = id(value)
        if marker in active:
            return "<cycle>"
        active.add(marker)
        try:
            if isinstance(value, Mapping):
                return _mapping(value, redact, max_depth, max_items, budget, active, depth)
            return _sequence(value, redact, max_depth, max_items, budget, active, depth)
        except Exception:  # a mapping whose items() raises, a set being mutated...
            return f"<unreadable {type(value).__name__}>"  # not repr: it may be huge
        finally:
            active.discard(marker)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (int, float)):
        return json_value(int(value) if isinstance(value, int) else float(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        text = data[:MAX_BYTES].decode("utf-8", "backslashreplace")
        return text if len(data) <= MAX_BYTES else f"{text}...<{len(data)} bytes>"
    converted = _library_value(value)
    if converted is not _UNKNOWN:
        return json_value(converted)
    if isinstance(value, BaseException):  # Powertools' "<method> error" metadata
        from ._scrub import scrub_text

        return scrub_text(_repr(value))
    return _repr(value)


def _mapping(
    value: Mapping[Any, Any],
    redact: tuple[str, ...],
    max_depth: int,
    max_items: int | None,
    budget: _Budget,
    active: set[int],
    depth: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # NOTE: only what can be kept is copied (list(islice(...)) is one C loop, so
    # a thread changing the mapping meanwhile cannot break it): a 5-million-item
    # dict must not cost a full copy to keep 10,000 values of it.
    total = len(value)
    keep = min(total, budget.left if max_items is None else min(max_items, budget.left))
    for index, (key, item) in enumerate(list(islice(value.items(), max(keep, 0)))):
        if budget.left <= 0:
            out["<truncated>"] = total - index
            return out
        name = metadata_key(key)
        if redact and any(word in name.lower() for word in redact):
            out[name] = "***"
        else:
            out[name] = _convert(item, redact, max_depth, max_items, budget, active, depth + 1)
    if total > len(out):
        out["<truncated>"] = total - len(out)
    return out


def _sequence(
    value: Any,
    redact: tuple[str, ...],
    max_depth: int,
    max_items: int | None,
    budget: _Budget,
    active: set[int],
    depth: int,
) -> list[Any]:
    total = len(value)
    keep = min(total, budget.left if max_items is None else min(max_items, budget.left))
    items = list(islice(value, max(keep, 0)))
    if isinstance(value, (set, frozenset)):
        with contextlib.suppress(TypeError):  # mixed types: keep iteration order
            items.sort()
    out: list[Any] = []
    for item in items:
        if budget.left <= 0:
            out.append(f"<{total - len(out)} more>")
            return out
        out.append(_convert(item, redact, max_depth, max_items, budget, active, depth + 1))
    if total > len(items):
        out.append(f"<{total - len(items)} more>")
    return out


# -- the encoder ----------------------------------------------------------------------


def _unknown(value: Any) -> Any:
    """JSON for a value of a type the encoder does not know, by the value rules."""
    return json_value(value)


def _make_escape() -> Any:
    from json.encoder import encode_basestring_ascii

    return encode_basestring_ascii


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


#: ``dumps(value) -> str``: compact, strict, ASCII JSON of a value already made
#: valid by the rules above; raises ``ValueError``/``TypeError`` if it is not.
dumps = _make_encoder()
#: ``escape(text) -> str``: a JSON string literal (quotes included), ASCII.
escape = _make_escape()
