"""X-Ray trace header model: parse, validate, format, and W3C conversion.

The header travels in ``_X_AMZN_TRACE_ID``, in the ``X-Amzn-Trace-Id`` HTTP header
and in SQS's ``AWSTraceHeader`` system attribute. The last one is written by
whoever can send to a queue, so :func:`parse` treats every input as hostile: it
validates each field, caps the length, and returns ``None`` instead of raising.

Unlike aws-xray-sdk, which re-parses ``_X_AMZN_TRACE_ID`` six times per
invocation, callers here parse once and pass the :class:`TraceHeader` around.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

__all__ = [
    "MAX_HEADER_LENGTH",
    "TraceHeader",
    "from_traceparent",
    "new_id",
    "new_trace_id",
    "parse",
    "to_traceparent",
]

#: Longest header accepted. Real headers are < 200 characters even with
#: ``Lineage``; anything longer is junk or an attack.
MAX_HEADER_LENGTH = 512

_ROOT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}\Z")
_ID = re.compile(r"[0-9a-f]{16}\Z")
_EXTRA_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
# Values of pass-through keys such as ``Lineage=a87bd80c:1|68fd508a:5`` or
# ``Self=1-...``: a conservative alphabet, so nothing markup-like or control-like
# travels on from a hostile producer.
_EXTRA_VALUE = re.compile(r"[A-Za-z0-9:|._+/@,-]{1,256}\Z")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
_SAMPLED_VALUES = frozenset({"0", "1", "?"})


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """A validated X-Ray trace header.

    Attributes:
        root: Trace id, ``1-<8 hex epoch seconds>-<24 hex>``.
        parent: Id of the parent segment or subsegment (16 hex), if any.
        sampled: ``"1"``, ``"0"``, ``"?"`` or ``None`` when absent.
        extra: Other ``key=value`` pairs (``Lineage``, ``Self``...), in order,
            passed through untouched.
    """

    root: str
    parent: str | None = None
    sampled: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def is_sampled(self) -> bool:
        """True when the upstream decision is to record this trace."""
        return self.sampled == "1"

    def with_parent(self, parent: str, sampled: str = "1") -> TraceHeader:
        """Return a header continuing this trace under ``parent``, extras kept."""
        return TraceHeader(self.root, parent, sampled, self.extra)

    def to_string(self) -> str:
        """Format as ``Root=...;Parent=...;Sampled=...`` plus extras."""
        parts = [f"Root={self.root}"]
        if self.parent is not None:
            parts.append(f"Parent={self.parent}")
        if self.sampled is not None:
            parts.append(f"Sampled={self.sampled}")
        parts.extend(f"{key}={value}" for key, value in self.extra)
        return ";".join(parts)

    __str__ = to_string


def parse(value: object) -> TraceHeader | None:
    """Parse and validate an X-Ray trace header.

    Args:
        value: Anything. Only a ``str`` can produce a header.

    Returns:
        The header, or ``None`` when the value is not a string, is longer than
        :data:`MAX_HEADER_LENGTH`, lacks a valid ``Root``, has an invalid
        ``Parent``/``Sampled``, repeats a key, or has a malformed extra pair.
        Never raises.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_HEADER_LENGTH:
        return None
    root = parent = sampled = None
    extra: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in value.split(";"):
        part = raw.strip(" ")
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep:
            return None
        lowered = key.lower()
        if lowered in seen:
            return None
        seen.add(lowered)
        if lowered == "root":
            if not _ROOT.match(val):
                return None
            root = val
        elif lowered == "parent":
            if not _ID.match(val):
                return None
            parent = val
        elif lowered == "sampled":
            if val not in _SAMPLED_VALUES:
                return None
            sampled = val
        elif _EXTRA_KEY.match(key) and _EXTRA_VALUE.match(val):
            extra.append((key, val))
        else:
            return None
    if root is None:
        return None
    return TraceHeader(root, parent, sampled, tuple(extra))


def new_id() -> str:
    """Return a random 16-hex-digit segment id."""
    return os.urandom(8).hex()


def new_trace_id(now: float | None = None) -> str:
    """Return a new X-Ray trace id stamped with ``now`` (epoch seconds)."""
    epoch = int(time.time() if now is None else now)
    return f"1-{epoch:08x}-{os.urandom(12).hex()}"


def to_traceparent(header: TraceHeader) -> str | None:
    """Convert to a W3C ``traceparent``; ``None`` when the header has no parent."""
    if header.parent is None:
        return None
    flags = "01" if header.is_sampled else "00"
    return f"00-{header.root[2:10]}{header.root[11:]}-{header.parent}-{flags}"


def from_traceparent(value: object) -> TraceHeader | None:
    """Convert a W3C ``traceparent`` to an X-Ray header; ``None`` on bad input."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    trace, span, flags = match.groups()
    if trace == "0" * 32 or span == "0" * 16:
        return None
    sampled = "1" if int(flags, 16) & 1 else "0"
    return TraceHeader(f"1-{trace[:8]}-{trace[8:]}", span, sampled)
