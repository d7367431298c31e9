"""Process-wide state set up by ``configure()``, and the current-span lookup."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ._config import Settings
from ._encoding import encode
from ._init_phase import InitPhase
from ._scope import GENERATION, STACK, Scope, seal_open

if TYPE_CHECKING:
    from ._extension import Extension
    from ._guard import DeadlineGuard
    from ._scope import Node
    from ._span import Span
    from .backends import Backend, Emitter, ForeignSpan

__all__ = ["NoLibrary", "Runtime", "current_node", "get_runtime", "set_runtime"]

log = logging.getLogger("tracing")

#: Attempts at a consistent snapshot of a running invocation (the guard).
_SNAPSHOT_ATTEMPTS = 5
#: Spans in a scope above which the guard cuts a timed-out tree from a decoded copy.
_SMALL_SCOPE = 50


class NoLibrary:
    """The backend when no tracing library is connected (disabled, or it failed to load).

    The core still records ``tracing.span``, invocations, SQS and AWS calls by itself.
    """

    name = "none"
    traceparent = False

    def install(self) -> None:
        return None

    def close(self) -> None:
        return None

    def flush(self, timeout_s: float) -> bool:
        return True

    def current(self) -> ForeignSpan | None:
        return None

    def enter(self, span: Span) -> object:
        return None

    def exit(self, token: object) -> None:
        return None

    def sent(self, scope: Scope) -> None:
        return None

    def open_entities(self, scope: Scope) -> dict[str, list[dict[str, Any]]]:
        return {}


class Runtime:
    """Everything ``configure()`` decided, shared by the public functions.

    A plain class rather than a dataclass: generating a dataclass costs about half
    a millisecond at import, which is cold start.
    """

    def __init__(
        self,
        settings: Settings,
        emitter: Emitter,
        backend: Backend,
        in_lambda: bool,
        init: InitPhase | None,
        service_name: str = "service",
    ) -> None:
        self.settings = settings
        self.emitter = emitter
        self.backend = backend
        self.in_lambda = in_lambda
        self.init = init
        #: The service name as an X-Ray entity name, cleaned once.
        self.service_name = service_name
        self.cold = True
        #: In Lambda, the span of the invocation running now (one at a time per
        #: process), for work that carries only the OTel context into a thread.
        self.invocation: Span | None = None
        self.guard: DeadlineGuard | None = None
        #: Set once the deadline guard's latest timeout document is out (see
        #: :meth:`wait_for_guard`); None until the guard first fires.
        self.guard_sent: threading.Event | None = None
        self.errors_logged: set[str] = set()
        #: Late documents sent, and late spans not sent: over budget, after a
        #: timeout, or past the late window (``_scope.py``, late work).
        self.late_sent = 0
        self.late_dropped = 0
        #: The in-process Lambda extension exporting after the response
        #: (``_extension.py``), when one is registered.
        self.extension: Extension | None = None
        #: Handlers wrapped with ``tracing.handler`` (the extension waits for a
        #: hand-over only when one exists).
        self.traced_handlers = 0
        # One export at a time: the extension's thread, the deadline guard and
        # tracing.flush() share the emitter's connection.
        self._flush_lock = threading.Lock()

    def emit(self, document: dict[str, Any]) -> None:
        """Send one top-level document. Never raises (a failure is logged once)."""
        try:
            self.emitter.send(document)
        except Exception:
            self.log_once("emit", "tracing: could not send a trace document (logged once)")

    def sample(self, event: Any = None) -> bool:
        """The sampling rules' decision for a unit that starts its own trace outside
        Lambda (an HTTP ``event``'s host, method and path count; ``_sampling.py``,
        imported at the first decision: never at import, never in Lambda)."""
        from ._sampling import sample_event  # (cached in sys.modules after the first)

        return sample_event(self, event)

    def emit_scope(self, scope: Scope) -> bool:
        """Emit ``scope`` unless the deadline guard already did."""
        claimed = scope.claim()
        if claimed:
            try:
                self.emitter.send_scope(scope)
            except Exception:
                self.log_once("emit", "tracing: could not send a trace document (logged once)")
            scope.sent_in = GENERATION[0]
        self.backend.sent(scope)
        return claimed

    def on_deadline(self, scope: Scope) -> None:
        """Guard callback: send ``scope`` now, open entities closed as timeouts.

        The handler is still running and may change the tree (or a library span's
        data) while it is read, so the document is built *and encoded* in one
        attempt, retried, and what is sent is that encoded snapshot. If no attempt
        succeeds, the invocation entity alone is sent: the timeout is never lost.
        """
        # Cleared before the claim: a handler that loses the claim to us then
        # always finds the send in progress (wait_for_guard).
        if not scope.sampled:
            # Recorded only for send_unsampled: the timeout path writes documents,
            # which would go out flagged sampled. Left unclaimed, the scope is still
            # sent, correctly flagged, if the handler returns before the deadline.
            log.debug("tracing: unsampled invocation near its deadline; no timeout sent")
            return
        sent = self.guard_sent = threading.Event()
        try:
            if scope.claim():
                scope.sealed = True
                self._send_timeout(scope)
        finally:
            sent.set()

    def wait_for_guard(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until the guard's timeout document is sent.

        For a handler that ends while the guard is sending its trace, in the last
        ``deadline_margin_ms`` before the deadline: Lambda freezes the sandbox as
        soon as the handler returns, which would cut off a big document's
        remaining parts. The wait never outlasts the margin, the time that was
        left before the deadline anyway.
        """
        sent = self.guard_sent
        if sent is not None and not sent.is_set():
            sent.wait(timeout_s)

    def _send_timeout(self, scope: Scope) -> None:
        now = time.time()
        name = scope.root.name
        body = None
        for _attempt in range(_SNAPSHOT_ATTEMPTS):
            try:
                doc = scope.document()
                _graft(doc, self.backend.open_entities(scope))
                seal_open(doc, now)
                # The snapshot: what the handler does next can't change it.
                body = encode(doc)
                if scope.spans > _SMALL_SCOPE and not self.emitter.otlp:
                    # The dict still holds what the handler is changing (a
                    # library span's metadata is the user's own dict): a tree the
                    # emitter may have to cut into parts is cut from a copy
                    # decoded from the snapshot, never from live data.
                    doc = json.loads(body)
                break
            except Exception:  # RuntimeError: changed size during iteration, and kin
                body = None
                continue
        try:
            if body is None:
                log.warning("tracing: could not snapshot a timed-out invocation; sending it bare")
                self.emitter.send(_bare(scope, now))
            else:
                # The dict goes too: a document too big for one datagram is cut
                # from it into parts.
                self.emitter.send(doc, body)
        except Exception:
            self.log_once("emit", "tracing: could not send a trace document (logged once)")
        self.end_of_unit()
        self.backend.sent(scope)
        log.warning(
            "tracing: invocation %s still running %d ms before its deadline; sent its "
            "trace as a timeout",
            name,
            self.settings.deadline_margin_ms,
        )

    def end_of_unit(self, invocation: bool = False) -> None:
        """A unit of work (invocation, worker message) ended: push out buffered data.

        UDP documents are already sent; an OTLP exporter exports its buffer here,
        before the handler returns and the sandbox freezes; or, at the end of a
        Lambda invocation (``invocation``) with the in-process extension running,
        hands the buffer over to it, to be exported after the response (before
        the freeze). A handler called inside another traced handler hands
        nothing over: the outermost one does.
        """
        emitter = self.emitter
        if emitter.buffered:
            extension = self.extension
            if invocation and extension is not None and extension.active:
                if STACK.get():
                    return  # a nested handler: the invocation goes on
                if extension.hand_over():
                    return
            self.flush_buffer()

    def flush_buffer(self) -> None:
        """Export the emitter's buffer now, one export at a time. Never raises."""
        try:
            with self._flush_lock:
                self.emitter.flush()
        except Exception:
            self.log_once("emit", "tracing: could not send a trace document (logged once)")

    def start_extension(self) -> None:
        """In Lambda, with a network exporter: register the in-process extension.

        Called by ``configure()`` during init (registration is only accepted
        before the runtime's first ``/next``). One local round trip; nothing is
        imported or sent otherwise. A failure is logged and changes nothing.
        """
        if self.extension is not None or not self.in_lambda:
            return
        if not os.environ.get("AWS_LAMBDA_RUNTIME_API") or not self.emitter.buffered:
            return
        from . import _extension

        if not _extension.wanted(self.settings.exporter, True, os.environ):
            return
        extension = _extension.Extension(
            os.environ["AWS_LAMBDA_RUNTIME_API"],
            self.flush_buffer,
            lambda: self.traced_handlers > 0,
        )
        started = time.perf_counter()
        if extension.register():
            self.extension = extension
            log.debug(
                "tracing: registered the in-process Lambda extension in %.2f ms",
                (time.perf_counter() - started) * 1000.0,
            )

    def note_once(self, level: int, key: str, message: str, *args: object) -> None:
        """Log ``message`` at ``level`` the first time ``key`` happens, then at debug."""
        first = key not in self.errors_logged
        self.errors_logged.add(key)
        log.log(level if first else logging.DEBUG, message, *args)

    def log_once(self, key: str, message: str, *args: object) -> None:
        """Log the exception being handled: a warning the first time, then debug.

        Call from an ``except`` block; ``message`` should say it is logged once.
        """
        level = logging.DEBUG if key in self.errors_logged else logging.WARNING
        self.errors_logged.add(key)
        log.log(level, message, *args, exc_info=True)


def _bare(scope: Scope, now: float) -> dict[str, Any]:
    """The timed-out invocation entity with nothing of the handler's data."""
    root = scope.root
    doc: dict[str, Any] = {
        "name": root.name,
        "id": root.id,
        "trace_id": scope.trace_id,
        "start_time": root.start_time,
        "end_time": now,
        "fault": True,
        "annotations": {"Timeout": True},
        "metadata": {"tracing": {"snapshot_failed": True}},
    }
    if scope.parent_id is not None:
        doc["parent_id"] = scope.parent_id
    if not scope.segment:
        doc["type"] = "subsegment"
    return doc


_RUNTIME: list[Runtime | None] = [None]


def get_runtime() -> Runtime | None:
    """The configured runtime, or ``None`` before ``configure()``."""
    return _RUNTIME[0]


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or clear, for tests) the process-wide runtime."""
    _RUNTIME[0] = runtime


def current_node() -> Node | None:
    """The innermost open span in this context (ours or the library's), or ``None``.

    The library's current span wins when the backend reports one: it was opened
    inside ours (every span of ours that becomes current is also made current in
    the library's context). Outside any scope, during the init window, the
    current node is the buffered Init span.
    """
    runtime = _RUNTIME[0]
    if runtime is not None:
        foreign = runtime.backend.current()
        if foreign is not None:
            return foreign
    stack = STACK.get()
    if stack:
        return stack[-1]
    if runtime is not None and runtime.init is not None and runtime.init.open:
        return runtime.init.root
    return None


def in_lambda_environment() -> bool:
    """True inside a Lambda execution environment (or our local runtime)."""
    return bool(os.environ.get("LAMBDA_TASK_ROOT"))


def _graft(document: dict[str, Any], children: dict[str, list[dict[str, Any]]]) -> None:
    """Attach entities under the entities of ``document`` with the given ids."""
    if not children:
        return
    stack = [document]
    while stack:
        entity = stack.pop()
        extra = children.get(entity.get("id", ""))
        if extra:
            entity.setdefault("subsegments", []).extend(extra)
        stack.extend(entity.get("subsegments", ()))
