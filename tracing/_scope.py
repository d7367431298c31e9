"""Scopes: the units of emission, and the current-span stack.

A :class:`Scope` is one top-level X-Ray document (the Init subsegment, an
invocation subsegment, a consumer segment) with its trace id, parent id, span
budget, and a once-only emission latch shared by the handler and the deadline
guard.

The current span lives in a ``contextvars.ContextVar`` holding an immutable tuple
stack, so asyncio tasks and ``contextvars.copy_context()`` threads each see their
own nesting and nothing leaks from one invocation into the next (the stack is
replaced, not appended to, when an invocation starts). A backend may push its
library's open spans on it too, as :class:`~tracing.backends.ForeignSpan`
(the xray backend does, for aws-xray-sdk subsegments).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._encoding import FastPathError, span_json
from ._entity import entity_dict
from ._span import Span

if TYPE_CHECKING:
    from typing import TypeAlias

    from .backends import ForeignSpan

    #: What can be current: one of our spans, or an open span of the backend's library.
    Node: TypeAlias = Span | ForeignSpan

__all__ = ["STACK", "LateScope", "Scope", "seal_open"]

STACK: ContextVar[tuple[Node, ...]] = ContextVar("tracing_stack", default=())


class Scope:
    """One top-level document and everything nested in it.

    Args:
        root: The top span of the document.
        trace_id: X-Ray trace id, or ``None`` while unknown (init phase).
        parent_id: Parent entity id, ``None`` for a segment starting a trace.
        segment: Emit as a segment document rather than an independent subsegment.
        limit: Most spans admitted; the rest are counted in ``dropped``.
        sampled: False for the scope of an unsampled invocation or message: nothing
            is recorded in it, but its trace id and parent are passed on with
            ``Sampled=0``.
        placeholder: True while ``trace_id`` is not the final one (the init window,
            re-stamped into the first invocation's trace).
    """

    __slots__ = (
        "_token",
        "dropped",
        "extra",
        "limit",
        "parent_id",
        "placeholder",
        "root",
        "sampled",
        "sealed",
        "segment",
        "spans",
        "trace_id",
    )

    #: True for a :class:`LateScope`: work sent after the document it belongs to.
    late = False

    def __init__(
        self,
        root: Span,
        trace_id: str | None,
        parent_id: str | None,
        *,
        segment: bool = False,
        limit: int = 1000,
        sampled: bool = True,
        placeholder: bool = False,
    ) -> None:
        self.root = root
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.segment = segment
        self.limit = limit
        self.sampled = sampled
        self.placeholder = placeholder
        self.spans = 0
        self.dropped = 0
        #: Sent by the deadline guard as a timeout: its story ends there.
        self.sealed = False
        # Pass-through header keys (Lineage...) of the trace this scope continues.
        self.extra: tuple[tuple[str, str], ...] = ()
        self._token = [True]
        root.scope = self

    def admit(self) -> bool:
        """Count one more span; False once the budget is spent."""
        if self.spans >= self.limit:
            self.dropped += 1
            return False
        self.spans += 1
        return True

    def claim(self) -> bool:
        """Take the right to emit this scope; True for exactly one caller.

        ``list.pop`` is atomic under the GIL, so the one-element token list hands the
        right to exactly one of the handler and the deadline guard; cheaper than a
        lock, which matters once per invocation.
        """
        try:
            self._token.pop()
        except IndexError:
            return False
        return True

    @property
    def done(self) -> bool:
        """True once someone claimed the emission."""
        return not self._token

    @property
    def takes_late_work(self) -> bool:
        """Whether work after the send goes late into this trace (``_late.py``).

        Not for a placeholder trace (init, re-stamped when sent), an unsampled
        one, or a document the deadline guard sent as a timeout: that document
        is what the timeout interrupted, and Lambda ends the process next.
        """
        return self.sampled and not self.placeholder and not self.sealed and bool(self.trace_id)

    def document(self, trace_id: str | None = None, parent_id: str | None = None) -> dict[str, Any]:
        """Build the top-level document, optionally re-stamped into another trace."""
        doc = entity_dict(self.root)
        doc["trace_id"] = trace_id or self.trace_id
        parent = parent_id or self.parent_id
        if parent is not None:
            doc["parent_id"] = parent
        if not self.segment:
            doc["type"] = "subsegment"
        if self.dropped:
            doc.setdefault("metadata", {}).setdefault("tracing", {})["dropped_spans"] = self.dropped
        return doc

    def encoded(self) -> bytes:
        """The document as strict JSON, written straight from the spans (the fast path).

        Raises:
            FastPathError: The tree needs the dict path (``document()`` then encoding):
                spans were dropped, nesting reaches the depth cap, or a library
                put an invalid value in it.
        """
        if self.dropped:
            raise FastPathError("dropped spans are noted in the document")
        body = span_json(self.root)
        trace = f',"trace_id":"{self.trace_id}"'
        if self.parent_id is not None:
            trace += f',"parent_id":"{self.parent_id}"'
        if not self.segment:
            trace += ',"type":"subsegment"'
        return (body[:-1] + trace + "}").encode()


class LateScope(Scope):
    """Work that started or ended after its own document was sent (``_late.py``).

    An independent subsegment of the same trace, under the entity that handed the
    work over; its spans count against the budget of the document it came from,
    so a thread that keeps working long after its invocation cannot grow without
    bound.

    Args:
        root: The late span.
        origin: The scope whose document was already sent.
        parent_id: The id of the entity ``root`` belongs under.
    """

    __slots__ = ("origin",)

    late = True

    def __init__(self, root: Span, origin: Scope, parent_id: str) -> None:
        super().__init__(root, origin.trace_id, parent_id, limit=origin.limit)
        self.extra = origin.extra
        #: The budget holder: the first document, even for late work of late work.
        self.origin: Scope = origin.origin if isinstance(origin, LateScope) else origin

    def admit(self) -> bool:
        return self.origin.admit()


def seal_open(entity: dict[str, Any], now: float | None = None) -> int:
    """Close every in-progress entity of ``entity`` at ``now`` as a timeout fault.

    Used by the deadline guard: the handler is still running, so whatever is open
    is what the timeout interrupted. Returns how many entities were closed.
    """
    when = time.time() if now is None else now
    closed = 0
    if entity.pop("in_progress", None) or "end_time" not in entity:
        entity["end_time"] = when
        entity["fault"] = True
        entity.setdefault("annotations", {})["Timeout"] = True
        closed += 1
    for child in entity.get("subsegments", ()):
        closed += seal_open(child, when)
    return closed
