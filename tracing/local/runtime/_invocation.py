"""An invocation of the local Runtime API: the queued event and its outcome.

`PendingInvocation` is one event queued on a
`~tracing.local.runtime._runtime_api.RuntimeAPIServer`, waiting for the runtime
to poll it and post its result; `InvokeResult` is that result. Stdlib only.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["InvokeResult", "PendingInvocation"]


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message}


@dataclass(frozen=True)
class InvokeResult:
    """Outcome of one invocation.

    Attributes:
        request_id: The ``Lambda-Runtime-Aws-Request-Id`` of the invocation.
        ok: True when the runtime posted ``/response``.
        payload: The decoded JSON response when ``ok`` (raw bytes if not JSON).
        error: The decoded error body (``errorType``, ``errorMessage``, ...) if not ok.
        duration_ms: Time from handing the event to the runtime until the result,
            like Lambda's Duration (init excluded).
        timed_out: True when the deadline passed and the process was killed.
        responded_at: ``time.perf_counter()`` when the result arrived (the
            runtime posted it, or it failed).
    """

    request_id: str
    ok: bool
    payload: Any
    error: dict[str, Any] | None
    duration_ms: float
    timed_out: bool
    responded_at: float = 0.0
    _invocation: PendingInvocation | None = field(default=None, repr=False, compare=False)

    def extensions_done_at(self, timeout: float = 0.0) -> float | None:
        """``time.perf_counter()`` when every extension had called ``event/next``
        after this invocation (the sandbox could freeze), waiting up to ``timeout``
        seconds; the response time when no extension is registered; None if not yet.
        """
        inv = self._invocation
        if inv is None:
            return self.responded_at
        return inv.extensions_done_at(timeout)

    def post_response_ms(self, timeout: float = 0.0) -> float | None:
        """Milliseconds from the response until the extensions were done, like
        Lambda's ``PostRuntimeExtensionsDuration``; None if they are not done yet."""
        done = self.extensions_done_at(timeout)
        if done is None:
            return None
        return max(0.0, (done - self.responded_at) * 1000.0)


class PendingInvocation:
    """An event queued on a `RuntimeAPIServer`; ``wait()`` for its result."""

    def __init__(self, body: bytes, trace: str | None, deadline_ms: int, arn: str) -> None:
        self.request_id = str(uuid.uuid4())
        self.body, self.trace_header, self.function_arn = body, trace, arn
        self.deadline_ms = deadline_ms
        self.submitted_at = time.perf_counter()
        self.dispatched_at: float | None = None  # when /next handed it out
        self._result: InvokeResult | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        # The freeze rule: set when every extension registered at dispatch
        # called event/next after it (at once when there is none).
        self._extensions_done = threading.Event()
        self._extensions_done_at: float | None = None
        self._extensions_done.set()

    def extensions_pending(self) -> None:
        """Dispatched to registered extensions: done only once they call next."""
        self._extensions_done.clear()

    def extensions_finished(self, at: float) -> None:
        """Every extension called ``event/next`` after this invocation, at ``at``."""
        self._extensions_done_at = at
        self._extensions_done.set()

    def extensions_done_at(self, timeout: float) -> float | None:
        """When the sandbox could freeze after this invocation (see `InvokeResult`)."""
        if not self._extensions_done.wait(timeout):
            return None
        result = self._result
        responded = result.responded_at if result is not None else None
        done = self._extensions_done_at
        if done is None or (responded is not None and responded > done):
            return responded  # an extension finished before the response: it waits
        return done

    def wait(self, timeout: float) -> InvokeResult | None:
        """Block up to ``timeout`` seconds; return the result or None if pending."""
        self._done.wait(timeout)
        return self._result

    def resolve(
        self,
        ok: bool,
        payload: Any,
        error: dict[str, Any] | None,
        timed_out: bool = False,
    ) -> InvokeResult | None:
        """Record the outcome. The first call wins and gets the result; later get None."""
        with self._lock:
            if self._result is not None:
                return None
            now = time.perf_counter()
            start = self.dispatched_at or self.submitted_at
            ms = (now - start) * 1000.0
            self._result = InvokeResult(
                self.request_id, ok, payload, error, ms, timed_out, now, self
            )
        self._done.set()
        return self._result
