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

**Late work** (:func:`open_span`, :func:`ended`, :class:`LateScope`): spans that
start or end after their document was sent are sent late, never lost. A thread
nobody joins (``pool.map`` without waiting, a fire-and-forget
``threading.Thread``, a transfer still running) can outlive the invocation that
started it: the invocation's document goes out when the handler returns, and the
thread's work goes on, in Lambda often only after the sandbox is thawed for the
*next* invocation. That work belongs to the first invocation's trace and must
never land in the next one's. Dropping it would hide what the function really
did, so it is sent late, as X-Ray documents it for work that outlives its parent:

* **Opened after the document was sent:** the span becomes the root of a
  :class:`LateScope`, an independent subsegment (``type:
  "subsegment"``, the same ``trace_id``, ``parent_id`` = the entity it was opened
  under), sent when it ends. Spans opened inside it nest in it as usual.
* **Open when the document was sent, ended since:** the document held it
  ``in_progress``; when it ends it is sent again, complete, as an independent
  subsegment with the same id, with what was opened in it meanwhile. X-Ray keeps
  the complete version of an entity sent twice (its documented in-progress
  pattern), and so does the local collector (``local/traces.py``).

Bounds: late spans count against the span budget of the document they came from
(``max_spans_per_invocation``); beyond it they are dropped, counted, and logged
once. The late window closes when the unit of work after the sent one ends (in
Lambda: the next invocation, during which a frozen straggler usually finishes):
by then a thread still working for it is a long-lived one (a library's
background worker started lazily), and its work is not recorded (counted, and
logged once); the sent tree is freed then too (:meth:`Scope.expire`). Nothing is
sent late into a trace that does not exist: not for init work (re-stamped into
the first invocation's trace, which is sent once) and not for unsampled
invocations. Nor after the deadline guard sent an invocation as a timeout: that
document says what the timeout interrupted (open spans sealed ``Timeout=true``),
and Lambda ends the process at the deadline.

A late document waits in a buffered exporter's queue (``exporter="otlp"``) until
the next flush; the UDP exporters send it at once.
"""

from __future__ import annotations

import logging
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

__all__ = [
    "GENERATION",
    "STACK",
    "LateScope",
    "Scope",
    "end_unit",
    "ended",
    "not_taken",
    "open_span",
    "over_budget",
    "pin",
    "seal_open",
    "sent_when_it_ends",
]

log = logging.getLogger("tracing")

STACK: ContextVar[tuple[Node, ...]] = ContextVar("tracing_stack", default=())

#: Units of work ended so far in this process (invocations; a worker's messages):
#: a scope's late window closes when the unit after the one it was sent in ends.
#: A counter rather than a list of sent scopes: holding those would keep every
#: tree alive for a unit longer, which the garbage collector pays for.
GENERATION = [0]
#: Scopes a thread was started in (:func:`pin`): their trees are freed when their
#: window closes (:func:`end_unit`), whatever the thread still holds. Bounded.
_PINNED: list[Scope] = []
_MAX_PINNED = 64


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
        "expired",
        "extra",
        "limit",
        "parent_id",
        "placeholder",
        "root",
        "sampled",
        "sealed",
        "segment",
        "sent_in",
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
        #: Its late window closed and its tree was freed (:meth:`expire`).
        self.expired = False
        #: :data:`GENERATION` when it was sent; -1 until then.
        self.sent_in = -1
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
    def past_window(self) -> bool:
        """Sent, and the unit of work after it ended too: late work is not taken.

        By then a thread still working for this document is no straggler but a
        long-lived thread (a library's background worker started lazily in this
        unit), whose work belongs to no invocation.
        """
        return self.expired or (self.sent_in >= 0 and GENERATION[0] - self.sent_in >= 2)

    def expire(self) -> None:
        """Close the late window for good, and free the sent tree.

        What a long-lived thread holds of this tree (the span current where it
        was started) must not keep the rest of it in memory. Called for the
        scopes such threads were started in (:func:`pin`) once their window
        passed, and for any scope found past it when late work tries it.
        """
        self.expired = True
        if not self.root.children:
            return  # the usual invocation: nothing below it
        # Every list, not just the root's: a thread may hold any span of the tree
        # (the one current where it was started), and with it what hangs below.
        pending = [self.root]
        while pending:
            span = pending.pop()
            children = span.children
            if children:
                span.children = None
                pending.extend(child for child in children if isinstance(child, Span))

    @property
    def takes_late_work(self) -> bool:
        """Whether work after the send goes late into this trace (see the module doc).

        Not for a placeholder trace (init, re-stamped when sent), an unsampled
        one, a document the deadline guard sent as a timeout (that document is
        what the timeout interrupted, and Lambda ends the process next), or one
        whose late window closed (:attr:`past_window`).
        """
        return (
            self.sampled
            and not self.placeholder
            and not self.sealed
            and not self.past_window
            and bool(self.trace_id)
        )

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
    """Work that started or ended after its own document was sent (see the module doc).

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


# -- late work ----------------------------------------------------------------------


def open_span(parent: Node, name: str) -> Span | None:
    """A new span under the recording ``parent``, or ``None`` when over budget.

    In ``parent``'s document while it is still to be sent; once it was sent, the
    root of a late document under ``parent`` (see "Late work" above).
    """
    scope = parent.scope
    if scope is None:  # a library span outside our documents
        span = Span(name)
        parent.adopt(span)
        return span
    if not scope.done:
        if not scope.admit():
            return None
        span = Span(name, scope)
        parent.adopt(span)
        return span
    if not scope.takes_late_work:
        if scope.sealed or scope.past_window:
            not_taken(scope)
        return None
    if not scope.admit():
        over_budget(scope)
        return None
    if sent_when_it_ends(parent, scope):
        span = Span(name, scope)
        parent.adopt(span)
        return span
    return LateScope(Span(name), scope, parent.id).root


def ended(span: Span) -> None:
    """``span`` just finished: send it now if its document is gone already.

    Cheap for the usual span (two attribute reads); never raises.
    """
    scope = span.scope
    if scope is None or not (scope.late or scope.done):
        return
    try:
        if scope.root is span:
            if scope.late:
                _send(scope)
            return  # the top of a sent document ends after it (a timed-out invocation)
        if not scope.done or not scope.takes_late_work:
            return  # in a late document still open: sent with it; or sent as a timeout
        parent = _parent_of(scope.root, span)
        if parent is None:
            log.debug("tracing: %s ended after its document was sent, detached", span.name)
            return
        if sent_when_it_ends(parent, scope):
            return
        _send(LateScope(span, scope, parent.id))
    except Exception:
        log.debug("tracing: could not send a late span", exc_info=True)


def _send(scope: Scope) -> None:
    from ._runtime import get_runtime  # rare path: keeps _scope below _runtime

    runtime = get_runtime()
    if runtime is None or not runtime.emit_scope(scope):
        return
    runtime.late_sent += 1
    runtime.note_once(
        logging.INFO,
        "late",
        "tracing: work outlived its invocation (a thread or pool task nobody waited "
        "for) and was sent late into that invocation's trace (logged once)",
    )


def sent_when_it_ends(parent: Node, scope: Scope) -> bool:
    """Whether ``parent``, under a sent document, is still open and sent when it ends.

    A span of ours sent in progress goes out again, complete, when it ends; a
    library span (an aws-xray-sdk subsegment, an OTel span) is current, so open,
    and joins late when it ends. Work opened or ended under either goes with it.
    The top of a sent document is never sent again.
    """
    if isinstance(parent, Span):
        return parent.end_time is None and parent is not scope.root
    return True


def _parent_of(root: Span, target: Span) -> Span | None:
    """The span of ``root``'s tree that holds ``target`` (rare path: late work only)."""
    pending = [root]
    while pending:
        node = pending.pop()
        for child in list(node.children or ()):
            if child is target:
                return node
            if isinstance(child, Span):
                pending.append(child)
    return None


def pin(scope: Scope) -> None:
    """A thread starts holding ``scope``'s context: free its tree when its window
    closes, even if the thread never records anything again (a library's
    background worker started lazily in a handler)."""
    if scope not in _PINNED:
        if len(_PINNED) >= _MAX_PINNED:
            _PINNED.pop(0).expire()  # rare: 64 threads started in recent units
        _PINNED.append(scope)


def end_unit() -> None:
    """A unit of work ended: the next generation; pinned scopes past their window freed."""
    GENERATION[0] += 1
    if _PINNED:
        for scope in [s for s in _PINNED if s.past_window]:
            scope.expire()
            _PINNED.remove(scope)


def not_taken(scope: Scope) -> None:
    """Work after a timeout was sent, or past the late window: counted, logged once."""
    from ._runtime import get_runtime

    runtime = get_runtime()
    if runtime is None:
        return
    runtime.late_dropped += 1
    if scope.past_window:
        scope.expire()  # free what the thread still holds of it
        runtime.note_once(
            logging.INFO,
            "late-expired",
            "tracing: a thread started during an invocation is still working after the "
            "next one ended (a library's background thread?); its work belongs to no "
            "invocation and is not recorded: counted in late_dropped (logged once)",
        )


def over_budget(scope: Scope) -> None:
    """Late work over its origin's span budget: counted, and logged once."""
    from ._runtime import get_runtime

    runtime = get_runtime()
    if runtime is None:
        return
    runtime.late_dropped += 1
    runtime.note_once(
        logging.WARNING,
        "late-dropped",
        "tracing: work that outlived its invocation went over its span budget "
        "(max_spans_per_invocation=%d): the rest is dropped, and counted (logged once)",
        scope.limit,
    )
