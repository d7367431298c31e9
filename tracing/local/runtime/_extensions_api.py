"""The Extensions API (2020-01-01) of the local Runtime API server.

``/extension/register`` (during init only) and ``/extension/event/next``, with
Lambda's freeze rule: an invocation's result is ready when the runtime posts
it, but the next invocation is handed to the runtime only once every registered
extension has called ``event/next`` again. `ExtensionsAPI` holds this part of
`~tracing.local.runtime._runtime_api.RuntimeAPIServer`, which inherits it (and
owns the state it works on); the HTTP handler there routes the requests here.
Stdlib only.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from typing import Any

from tracing.local.runtime._invocation import PendingInvocation, _error

__all__ = ["ExtensionsAPI"]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


class _Registered:
    """One registered extension: its events, and whether it called next since."""

    def __init__(self, name: str, invoke: bool) -> None:
        self.name = name
        self.invoke = invoke
        self.ready = False  # registered: busy until its first event/next (its init)
        self.events: queue.Queue[bytes] = queue.Queue()


class ExtensionsAPI:
    """The Extensions API half of `RuntimeAPIServer` (see the module).

    The attributes are the server's, set by its ``__init__``.
    """

    refuse_extensions: bool
    function_info: dict[str, str]
    _lock: threading.Lock
    _ready: threading.Condition
    _polled: threading.Event
    _stopping: threading.Event
    _generation: int
    _extensions: dict[str, _Registered]
    _last: PendingInvocation | None  # the invocation extensions work on

    @property
    def extensions(self) -> list[str]:
        """Names of the extensions registered by the live runtime, in order."""
        with self._lock:
            return [ext.name for ext in self._extensions.values()]

    def _register(self, name: str, body: bytes, features: str) -> tuple[int, bytes, dict[str, str]]:
        """``POST /extension/register``: during init only, ``INVOKE`` only (internal)."""
        if self.refuse_extensions:
            return 403, _json(_error("Extension.Forbidden", "extensions refused (local)")), {}
        if not name:
            return 400, _json(_error("InvalidRequest", "Lambda-Extension-Name is required")), {}
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        events = request.get("events") if isinstance(request, dict) else None
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return 400, _json(_error("InvalidRequest", 'expected {"events": [...]}')), {}
        unknown = sorted(set(events) - {"INVOKE", "SHUTDOWN"})
        if unknown:
            return 400, _json(_error("InvalidRequest", f"unknown events {unknown}")), {}
        if "SHUTDOWN" in events:
            # Locally every extension runs in the runtime's process: internal ones
            # cannot register for SHUTDOWN.
            message = "internal extensions cannot register for SHUTDOWN"
            return 403, _json(_error("Extension.InvalidEventType", message)), {}
        with self._lock:
            if self._polled.is_set():
                message = "registration is only accepted during init"
                return 403, _json(_error("Extension.RegistrationPeriodOver", message)), {}
            identifier = str(uuid.uuid4())
            self._extensions[identifier] = _Registered(name, "INVOKE" in events)
        answer = dict(self.function_info)
        if "accountId" in features:
            answer["accountId"] = "123456789012"
        return 200, _json(answer), {"Lambda-Extension-Identifier": identifier}

    def _dispatch_to_extensions(self, inv: PendingInvocation) -> None:
        """An invocation starts: every extension gets INVOKE and is busy until next.

        Called with the lock held.
        """
        self._last = inv
        if not self._extensions:
            return
        inv.extensions_pending()
        event = {
            "eventType": "INVOKE",
            "deadlineMs": inv.deadline_ms,
            "requestId": inv.request_id,
            "invokedFunctionArn": inv.function_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": inv.trace_header or ""},
        }
        body = _json(event)
        for ext in self._extensions.values():
            ext.ready = False
            if ext.invoke:
                ext.events.put(body)

    def _extension_next(self, identifier: str) -> tuple[int, bytes, dict[str, str]] | None:
        """``GET /extension/event/next``: done with the last event; wait for the next."""
        generation = self._generation
        with self._lock:
            ext = self._extensions.get(identifier)
            if ext is None:
                return 403, _json(_error("Extension.UnknownExtensionIdentifier", "")), {}
            ext.ready = True
            last = self._last
            if last is not None and all(e.ready for e in self._extensions.values()):
                last.extensions_finished(time.perf_counter())
            self._ready.notify_all()
        while not self._stopping.is_set() and generation == self._generation:
            try:
                body = ext.events.get(timeout=0.25)
            except queue.Empty:
                continue
            return 200, body, {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())}
        return None
