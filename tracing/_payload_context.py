"""Trace context inside payloads, where AWS carries none (Kinesis, DynamoDB).

SQS has ``AWSTraceHeader`` and Lambda's own header; a Kinesis record and a
DynamoDB item carry nothing. To follow a record into its consumer's work, the
producer must put the context *into the data*. That changes what the user
stores, so it is **opt-in** (``configure(payload_context=...)``, env
``TRACING_PAYLOAD_CONTEXT``, or an explicit ``tracing.kinesis.inject`` /
``tracing.dynamodb.inject``), **announced** (one INFO line at ``configure()``)
and **bounded** (never makes a valid request invalid).

The format, one top-level field named ``_tracing``:

* **Kinesis** (``PutRecord``, each ``PutRecords`` entry), only when ``Data``
  (``bytes``, ``bytearray`` or ``str``) is UTF-8 text holding one JSON object::

      {"_tracing":{"AWSTraceHeader":"Root=1-...;Parent=<call>;Sampled=1;Lineage=..."},...

  (``<call>`` is the id of the PutRecord(s) subsegment; ``...`` the user's members)

  with ``"traceparent":"00-<trace>-<parent>-01"`` added inside ``_tracing`` on
  the otel backend. It is inserted *as text* right after the object's opening
  ``{`` (after any leading whitespace, and without a comma for ``{}``): every
  other byte of the user's data is unchanged (no re-serialisation, so number
  formats, key order, escapes and trailing newlines survive). Skipped when the
  data is not a JSON object (or not UTF-8), when it already has a top-level
  ``_tracing``, when the record would exceed 1 MiB (data + partition key), or
  when the ``PutRecords`` request would exceed 5 MiB.
* **DynamoDB** (``PutItem``, the ``PutRequest`` items of ``BatchWriteItem``, the
  ``Put`` items of a ``TransactWriteItems`` made only of ``Put`` actions)::

      "_tracing": {"M": {"AWSTraceHeader": {"S": "Root=...;Parent=...;Sampled=1"},
                         "traceparent": {"S": "00-..."}}}

  (or the plain ``{"AWSTraceHeader": ..., "traceparent": ...}`` dict for the
  ``boto3.resource`` Table API, which serialises it to the same). Skipped when
  the item already has ``_tracing``, or when it would exceed 400 KB by AWS's
  item-size rules (estimated, never under), or the request its limit
  (``BatchWriteItem`` 16 MB, ``TransactWriteItems`` 4 MB). ``UpdateItem`` is
  left alone: its resulting item size is unknown to the caller, so an added
  attribute could make a valid update fail.

The value follows the propagation rule: read inside the ``PutRecord`` /
``PutItem`` call, so ``Parent`` is the call's own subsegment, with the
invocation's ``Lineage`` kept (Lambda's loop detection counts hops with it).
Nothing is added outside a trace or during init.

Consumers (``tracing.kinesis.consume``, ``tracing.dynamodb.consume``) read
``_tracing.AWSTraceHeader``, then ``_tracing.traceparent``.

How this differs from others:

* dd-trace-py (``contrib/botocore/services/kinesis.py``) injects ``_datadog``
  into JSON Kinesis data by default: it parses the data (also trying base64),
  re-serialises it with ``json.dumps`` (formatting, escapes and number formats
  of the user's data change), only into the *first* record of ``PutRecords``,
  and sends a record over 1 MB anyway with a warning. It carries Datadog's
  headers, not X-Ray's, and no Lineage.
* OpenTelemetry's botocore instrumentation (recent ``extensions/kinesis.py``)
  adds the propagator's fields (``traceparent``...) as top-level keys of JSON
  data, re-serialised, skipping records over 1 MB; its DynamoDB extension only
  records attributes and carries no context.
* Ours is opt-in, inserted textually, bounded by every AWS limit, namespaced
  under one key, and the X-Ray header keeps Lineage.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ._header import TraceHeader, from_traceparent, parse, to_traceparent
from ._runtime import get_runtime

__all__ = [
    "KEY",
    "dynamodb_attribute",
    "enabled",
    "from_fields",
    "insert_into_json",
    "item_size",
    "kinesis_header",
    "skip",
]

KEY = "_tracing"
HEADER_KEY = "AWSTraceHeader"
W3C_KEY = "traceparent"
#: Kinesis limits: a record (data + partition key), and a PutRecords request.
KINESIS_RECORD_BYTES = 1024 * 1024
KINESIS_REQUEST_BYTES = 5 * 1024 * 1024
#: DynamoDB limits: an item, a BatchWriteItem request, a transaction's items.
DYNAMODB_ITEM_BYTES = 400_000  # "400 KB": read as decimal, the stricter
DYNAMODB_BATCH_BYTES = 16 * 1024 * 1024
DYNAMODB_TRANSACTION_BYTES = 4 * 1024 * 1024
#: Base64 characters decoded first when reading a Lambda Kinesis record: our
#: field comes first, and a header is at most 512 characters.
_PREFIX_CHARS = 1024
_MAX_BASE64 = (KINESIS_RECORD_BYTES + 2) // 3 * 4
_WHITESPACE = " \t\n\r"
_MARK = b'"_tracing"'

_logged: set[str] = set()


def skip(log: logging.Logger, reason: str, *args: object) -> None:
    """Say why a payload got no context: INFO the first time per reason, then debug."""
    if reason in _logged:
        log.debug("tracing: no trace context added: %s", reason % args if args else reason)
    else:
        _logged.add(reason)
        log.info(
            "tracing: no trace context added (said once; then at debug level): %s",
            reason % args if args else reason,
        )


def enabled(service: str, name: str | None) -> bool:
    """Whether ``payload_context`` asks for context in ``service``'s payloads to ``name``."""
    runtime = get_runtime()
    if runtime is None or runtime.settings.disabled:
        return False
    targets = runtime.settings.payload_context
    if not targets:
        return False
    return service in targets or (name is not None and f"{service}:{name}" in targets)


def resource_name(value: object, marker: str) -> str | None:
    """A stream or table name from a name or an ARN (``...:stream/NAME``, ``...:table/NAME``)."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("arn:"):
        at = value.find(marker)
        return value[at + len(marker) :].split("/", 1)[0] if at >= 0 else None
    return value


def fields(header: TraceHeader, traceparent: bool) -> dict[str, str]:
    """The members of ``_tracing`` for ``header``."""
    value = {HEADER_KEY: header.to_string()}
    if traceparent:
        w3c = to_traceparent(header)
        if w3c is not None:
            value[W3C_KEY] = w3c
    return value


def wants_traceparent() -> bool:
    runtime = get_runtime()
    return runtime is not None and bool(runtime.backend.traceparent)


# -- Kinesis: JSON text --------------------------------------------------------


def _object_start(text: str) -> int:
    """Index of the opening ``{`` after leading JSON whitespace, or -1."""
    at = 0
    size = len(text)
    while at < size and text[at] in _WHITESPACE:
        at += 1
    return at if at < size and text[at] == "{" else -1


def insert_into_json(data: Any, members: Mapping[str, str]) -> tuple[Any, int, str | None]:
    """``data`` with ``"_tracing": members`` inserted as its first member.

    Returns:
        ``(new data, bytes added, None)``, or ``(data, 0, reason)`` when it
        must not be changed. ``str`` stays ``str``; ``bytes`` and ``bytearray``
        become ``bytes`` (the caller's ``bytearray`` is never mutated).
    """
    if isinstance(data, str):
        text = data
    elif isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return data, 0, "the data is not UTF-8 text"
    else:
        return data, 0, "the data is not bytes or str"
    start = _object_start(text)
    if start < 0:
        return data, 0, "the data is not a JSON object"
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return data, 0, "the data is not a JSON object (or is nested too deep)"
    if not isinstance(parsed, dict):
        return data, 0, "the data is not a JSON object"
    if KEY in parsed:
        return data, 0, "the data has a _tracing member already (the caller's is kept)"
    added = f'"{KEY}":' + json.dumps(dict(members), separators=(",", ":"))
    if parsed:
        added += ","
    cut = start + 1
    new_text = text[:cut] + added + text[cut:]
    extra = len(added.encode())
    if isinstance(data, str):
        return new_text, extra, None
    raw = bytes(data)
    # The prefix up to the brace is ASCII whitespace, so char and byte offsets match.
    return raw[:cut] + added.encode() + raw[cut:], extra, None


def from_fields(value: Any) -> TraceHeader | None:
    """The header of a ``_tracing`` value: ``AWSTraceHeader`` first, then ``traceparent``."""
    if not isinstance(value, Mapping):
        return None
    header = parse(value.get(HEADER_KEY))
    if header is None:
        header = from_traceparent(value.get(W3C_KEY))
    return header


def _from_json_text(text: str) -> TraceHeader | None:
    """``_tracing`` of a JSON object's text: as its first member (cheap), else anywhere
    at the top level (a full parse, only when the text names ``_tracing``)."""
    start = _object_start(text)
    if start < 0:
        return None
    at = start + 1
    size = len(text)
    while at < size and text[at] in _WHITESPACE:
        at += 1
    if text.startswith('"_tracing"', at):
        at += 10
        while at < size and text[at] in _WHITESPACE:
            at += 1
        if at < size and text[at] == ":":
            try:
                value, _ = _DECODER.raw_decode(text, _skip_ws(text, at + 1))
            except ValueError:
                value = None
            if isinstance(value, dict):
                return from_fields(value)
    return None


def _skip_ws(text: str, at: int) -> int:
    size = len(text)
    while at < size and text[at] in _WHITESPACE:
        at += 1
    return at


_DECODER = json.JSONDecoder()


def _from_json_bytes(raw: bytes) -> TraceHeader | None:
    if len(raw) > KINESIS_RECORD_BYTES or _MARK not in raw:
        return None  # cheap: no parse of data that does not name the field
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    header = _from_json_text(text)
    if header is not None or _object_start(text) < 0:
        return header
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return from_fields(parsed.get(KEY)) if isinstance(parsed, dict) else None


def kinesis_header(data: Any, encoded: bool) -> TraceHeader | None:
    """The ``_tracing`` context of a Kinesis record's data, or ``None``. Never raises.

    Args:
        data: A Lambda record's ``kinesis.data`` (base64 text, ``encoded``), or
            a ``GetRecords`` record's ``Data`` (bytes).
        encoded: Whether ``data`` is base64.
    """
    try:
        if encoded:
            if not isinstance(data, str) or len(data) > _MAX_BASE64:
                return None
            # Our field comes first: the first kilobyte usually answers.
            prefix = base64.b64decode(data[:_PREFIX_CHARS])
            stripped = prefix.lstrip(b" \t\n\r")
            if not stripped.startswith(b"{"):
                return None
            if len(data) > _PREFIX_CHARS:
                header = _from_json_text(prefix.decode("utf-8", "replace"))
                if header is not None:
                    return header
            return _from_json_bytes(base64.b64decode(data))
        if isinstance(data, (bytes, bytearray)):
            raw = bytes(data)
        elif isinstance(data, str):
            raw = data.encode("utf-8", "replace")
        else:
            return None
        if raw.lstrip(b" \t\n\r")[:1] != b"{":
            return None
        return _from_json_bytes(raw)
    except (ValueError, binascii.Error, TypeError, RecursionError):
        return None  # RecursionError: JSON nested deeper than the interpreter goes


# -- DynamoDB: item attributes -------------------------------------------------

_TYPES = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def is_typed(item: Mapping[str, Any]) -> bool:
    """Whether ``item`` is in the client's typed shape (``{"a": {"S": "x"}}``), not
    the ``boto3.resource`` shape (plain Python values)."""
    for value in item.values():
        if not (isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in _TYPES):
            return False
    return True


def _utf8(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    return len(str(value).encode("utf-8", "surrogatepass"))


def _number(value: Any) -> int:
    # AWS: about one byte per two significant digits plus one, at most 21.
    # The text length plus one is never less, so the estimate never falls short.
    return min(len(str(value)) + 1, 22)


def _typed_size(value: Any) -> int:
    """Size of a typed attribute value (AWS's documented item-size rules)."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return _utf8(value)
    kind, inner = next(iter(value.items()))
    if kind in ("S", "B"):
        return _utf8(inner)
    if kind == "N":
        return _number(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "BS"):
        return sum(_utf8(v) for v in inner)
    if kind == "NS":
        return sum(_number(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + _utf8(k) + _typed_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _typed_size(v) for v in inner)
    return _utf8(inner)


def _plain_size(value: Any) -> int:
    """Size of a ``boto3.resource`` value, as boto3's serialiser will type it."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, (int, float, Decimal)):
        return _number(value)
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return _utf8(value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + _utf8(k) + _plain_size(v) for k, v in value.items())
    if isinstance(value, (set, frozenset)):
        return sum(_plain_size(v) for v in value)
    if isinstance(value, (list, tuple)):
        return 3 + sum(1 + _plain_size(v) for v in value)
    value = getattr(value, "value", value)  # boto3's Binary
    return _utf8(value)


def item_size(item: Mapping[str, Any], typed: bool) -> int:
    """An item's size by AWS's rules: names plus values (never under-estimated)."""
    size_of = _typed_size if typed else _plain_size
    return sum(_utf8(name) + size_of(value) for name, value in item.items())


def dynamodb_attribute(members: Mapping[str, str], typed: bool) -> tuple[Any, int]:
    """The ``_tracing`` attribute value in the item's shape, and its size."""
    size = len(KEY) + 3 + sum(1 + len(k) + len(v) for k, v in members.items())
    if typed:
        return {"M": {k: {"S": v} for k, v in members.items()}}, size
    return dict(members), size


def dynamodb_header(image: Any) -> TraceHeader | None:
    """The ``_tracing`` context of a stream record's image (typed, or deserialised)."""
    if not isinstance(image, Mapping):
        return None
    value = image.get(KEY)
    if not isinstance(value, Mapping):
        return None
    inner = value.get("M")
    if isinstance(inner, Mapping):
        return from_fields(
            {k: v.get("S") for k, v in inner.items() if isinstance(v, Mapping) and k in _KEYS}
        )
    return from_fields(value)


_KEYS = frozenset({HEADER_KEY, W3C_KEY})
