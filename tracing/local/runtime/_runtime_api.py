"""The Lambda Runtime API (2018-06-01) server behind `tracing.local.runtime.local_lambda`.

`RuntimeAPIServer` serves ``/invocation/next``, ``/response``, ``/error`` and
``/init/error`` on loopback, and the Extensions API (2020-01-01):
``/extension/register`` (during init only) and ``/extension/event/next``, with
Lambda's freeze rule: an invocation's result is ready when the runtime posts
it, but the next invocation is handed to the runtime only once every registered
extension has called ``event/next`` again (that part is in
`~tracing.local.runtime._extensions_api`). `PendingInvocation` is one queued
event and `InvokeResult` its outcome (`~tracing.local.runtime._invocation`).
Stdlib only.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tracing.local.runtime._extensions_api import ExtensionsAPI, _Registered
from tracing.local.runtime._invocation import InvokeResult, PendingInvocation, _error

# NOTE: awslambdaric reports a handler error's X-Ray cause in the
# Lambda-Runtime-Function-XRay-Error-Cause header, up to 1 MiB (real Lambda accepts
# that). http.server parses headers with http.client's 64 KiB line limit and would
# answer 431, crashing the runtime on any deep-stack error. Only the local tools
# import this module.
if getattr(http.client, "_MAXLINE", 0) < 2 * 1024 * 1024:
    setattr(http.client, "_MAXLINE", 2 * 1024 * 1024)  # noqa: B010 - private constant

__all__ = ["InvokeResult", "PendingInvocation", "RuntimeAPIServer"]

# Same logger as before the split, so existing logging configuration still applies.
logger = logging.getLogger("tracing.local.runtime")

_PREFIX = "/2018-06-01/runtime"
_EXTENSION = "/2020-01-01/extension"
_DEFAULT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:local-function"


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body  # a handler returning bytes gets application/unknown, not JSON


def _decode_error(body: bytes, header_type: str | None) -> dict[str, Any]:
    decoded = _decode(body)
    error = decoded if isinstance(decoded, dict) else {"errorMessage": str(decoded)}
    error.setdefault("errorType", header_type or "Runtime.Unknown")
    return error


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the client's connection alive; TCP_NODELAY avoids the
    # Nagle/delayed-ACK interaction that stalls every invoke by 40-90 ms.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr line."""

    def _reply(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response_only(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """Serve ``/invocation/next`` (long poll), SnapStart's ``/restore/next`` and
        the Extensions API's ``/event/next``."""
        if self.path == f"{_EXTENSION}/event/next":
            identifier = self.headers.get("Lambda-Extension-Identifier") or ""
            answer = self.server.api._extension_next(identifier)
            if answer is None:
                self.close_connection = True  # stopping, or a killed runtime's poll
            else:
                self._reply(*answer)
        elif self.path == f"{_PREFIX}/restore/next":
            body = self.server.api._restore_next()
            if body is None:
                self.close_connection = True  # stopping
            else:
                self._reply(200, body)
        elif self.path != f"{_PREFIX}/invocation/next":
            self._reply(404, b'{"errorType":"NotFound"}')
        elif (inv := self.server.api._next_invocation()) is None:
            self.close_connection = True  # stopping, or polled by a killed runtime
        else:
            headers = {
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
            }
            if inv.trace_header is not None:  # absent => awslambdaric unsets the env
                headers["Lambda-Runtime-Trace-Id"] = inv.trace_header
            self._reply(200, inv.body, headers)

    def do_POST(self) -> None:
        """Accept ``/response``, ``/error``, ``/init/error`` and ``/restore/error``."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        parts = self.path.split("/")
        if self.path == f"{_EXTENSION}/register":
            name = self.headers.get("Lambda-Extension-Name") or ""
            features = self.headers.get("Lambda-Extension-Accept-Feature") or ""
            status, answer, headers = self.server.api._register(name, body, features)
            self._reply(status, answer, headers)
        elif self.path in (f"{_EXTENSION}/init/error", f"{_EXTENSION}/exit/error"):
            error = _decode_error(body, error_type)
            error["extension"] = self.headers.get("Lambda-Extension-Identifier") or ""
            self.server.api.extension_errors.append(error)
            self._reply(202, b'{"status":"OK"}')
        elif self.path in (f"{_PREFIX}/init/error", f"{_PREFIX}/restore/error"):
            self.server.api.init_error = _decode_error(body, error_type)
            self._reply(202)
        elif len(parts) != 6 or parts[5] not in ("response", "error"):
            self._reply(404, b'{"errorType":"NotFound"}')
        elif (inv := self.server.api._take_inflight(parts[4])) is None:
            self._reply(400, b'{"errorType":"InvalidRequestID"}')
        else:
            if parts[5] == "response":
                inv.resolve(True, _decode(body), None)
            else:
                inv.resolve(False, None, _decode_error(body, error_type))
            self._reply(202)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a pending long poll must never block interpreter exit

    def __init__(self, address: tuple[str, int], api: RuntimeAPIServer) -> None:
        super().__init__(address, _Handler)
        self.api = api

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Killing a runtime mid-request breaks its connection; that is expected.
        logger.debug("runtime API connection %s failed: %r", client_address, sys.exc_info()[1])


class RuntimeAPIServer(ExtensionsAPI):
    """Lambda Runtime API (2018-06-01) server, usable without `LocalLambda`.

    Args:
        host: Interface to bind; keep it on loopback.
        port: TCP port; 0 picks a free one.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._bind = (host, port)
        self._httpd: _HTTPServer | None = None
        self._lock = threading.Lock()
        self._queue: queue.Queue[PendingInvocation] = queue.Queue()
        self._inflight: dict[str, PendingInvocation] = {}
        self._stopping = threading.Event()
        self._polled = threading.Event()
        # Bumped by reset_runtime() so a long poll held for a killed runtime
        # gives up instead of swallowing the next event.
        self._generation = 0
        self.init_error: dict[str, Any] | None = None
        # SnapStart: when held, /restore/next (the snapshot point) waits for
        # release_restore(); its body names the copies to restore (local only).
        self.hold_restores = False
        self._snapshotted = threading.Event()
        self._restore_body: bytes | None = None
        self._released = threading.Event()
        # The Extensions API. Every extension registered here is internal (the
        # runtime's own process starts it), so INVOKE is the one event served.
        #: Answer every registration 403 (tests of the fallback).
        self.refuse_extensions = False
        #: What a registration answers (functionName, functionVersion, handler).
        self.function_info: dict[str, str] = {
            "functionName": "local-function",
            "functionVersion": "$LATEST",
            "handler": "",
        }
        #: Bodies posted to the extension init/exit error endpoints.
        self.extension_errors: list[dict[str, Any]] = []
        self._extensions: dict[str, _Registered] = {}
        self._ready = threading.Condition(self._lock)
        self._last: PendingInvocation | None = None  # the invocation extensions work on

    @property
    def address(self) -> str:
        """``host:port`` for ``AWS_LAMBDA_RUNTIME_API``; the server must be running."""
        if self._httpd is None:
            raise RuntimeError("RuntimeAPIServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        """Bind and serve from a daemon thread; no-op when already running."""
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(self._bind, self)
            kwargs = {"poll_interval": 0.1}
            threading.Thread(target=self._httpd.serve_forever, kwargs=kwargs, daemon=True).start()

    def stop(self) -> None:
        """Stop serving, close the socket and fail every unfinished invocation."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            self._stopping.set()
            httpd.shutdown()  # waits for serve_forever to return
            httpd.server_close()
            self.reset_runtime("runtime API server stopped")

    def submit(
        self,
        event: Any,
        *,
        trace_header: str | None = None,
        deadline_ms: int | None = None,
        function_arn: str = _DEFAULT_ARN,
    ) -> PendingInvocation:
        """Queue an event for the runtime's next ``/next`` poll.

        Args:
            event: A JSON-serialisable event; bytes and str are sent verbatim.
            trace_header: Sent as ``Lambda-Runtime-Trace-Id``; omitted when None.
            deadline_ms: Epoch-ms deadline; defaults to 3 s from now.
            function_arn: Sent as ``Lambda-Runtime-Invoked-Function-Arn``.

        Returns:
            A handle whose ``wait(timeout)`` returns the `InvokeResult`.
        """
        if isinstance(event, str):
            event = event.encode()
        body = bytes(event) if isinstance(event, (bytes, bytearray)) else json.dumps(event).encode()
        if deadline_ms is None:
            deadline_ms = int(time.time() * 1000) + 3000
        inv = PendingInvocation(body, trace_header, deadline_ms, function_arn)
        self._queue.put(inv)
        return inv

    def wait_for_snapshot(self, timeout: float) -> bool:
        """True once the runtime reached the snapshot point (polled ``/restore/next``)."""
        return self._snapshotted.wait(timeout)

    def release_restore(self, copies: list[str] | None = None) -> None:
        """Answer the held ``/restore/next``: restore in place, or as copies at ``copies``."""
        self._restore_body = json.dumps({"copies": copies or []}).encode()
        self._released.set()

    def _restore_next(self) -> bytes | None:
        self._snapshotted.set()
        if not self.hold_restores:
            return b"{}"
        while not self._stopping.is_set():
            if self._released.wait(0.25):
                return self._restore_body or b"{}"
        return None

    def wait_for_next_poll(self, timeout: float) -> bool:
        """True once the runtime polled ``/next`` since start or reset (init done)."""
        return self._polled.wait(timeout)

    def reset_runtime(self, reason: str = "runtime restarted") -> None:
        """Forget the previous runtime process before a new one starts.

        Clears the poll flag and ``init_error`` and resolves queued or in-flight
        invocations as ``Runtime.ExitError`` with ``reason``.
        """
        with self._lock:
            self._generation += 1
            self._polled.clear()
            self._snapshotted.clear()
            self._released.clear()
            self._restore_body = None
            self.init_error = None
            self._extensions.clear()
            last, self._last = self._last, None
            self._ready.notify_all()
            leftovers = list(self._inflight.values())
            self._inflight.clear()
            while not self._queue.empty():
                leftovers.append(self._queue.get_nowait())
        for inv in leftovers:
            inv.resolve(False, None, _error("Runtime.ExitError", reason))
        if last is not None:
            last.extensions_finished(time.perf_counter())  # the process is gone

    def _next_invocation(self) -> PendingInvocation | None:
        generation = self._generation
        self._polled.set()
        while not self._stopping.is_set():
            with self._lock:
                # Lambda's freeze rule: no new invocation while an extension is
                # still working on the last one (it has not called event/next).
                while not self._stopping.is_set() and not all(
                    ext.ready for ext in self._extensions.values()
                ):
                    if generation != self._generation:
                        return None
                    self._ready.wait(0.25)
            try:
                inv = self._queue.get(timeout=0.25)
            except queue.Empty:
                if generation != self._generation:
                    return None
                continue
            with self._lock:  # atomic with reset_runtime()
                if generation != self._generation:
                    self._queue.put(inv)  # leave it for the live runtime's poll
                    return None
                if inv.wait(0) is not None:
                    continue  # already resolved by its caller
                inv.dispatched_at = time.perf_counter()
                self._inflight[inv.request_id] = inv
                self._dispatch_to_extensions(inv)
                return inv
        return None

    def _take_inflight(self, request_id: str) -> PendingInvocation | None:
        with self._lock:
            return self._inflight.pop(request_id, None)
