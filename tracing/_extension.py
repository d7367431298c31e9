"""The in-process (internal) Lambda extension: spans are exported after the response.

Lambda freezes an execution environment once the runtime has posted the
invocation's response **and** every registered extension has asked for its next
event (``GET /2020-01-01/extension/event/next``). A network exporter that posts
before the handler returns adds the whole round trip to the response; one that
posts after it, from a thread of its own, is frozen mid-request and loses the
spans (aws-observability/aws-otel-lambda#787: a function invoked once sends
nothing until, maybe, a later invocation thaws it).

So in Lambda, with an exporter that posts over the network (``otlp``,
``xray-otlp``), ``configure()`` registers this module as an *internal*
extension: one local HTTP round trip during init, before the runtime's first
``/runtime/invocation/next`` (Lambda accepts registrations only then). A daemon
thread then loops:

1. ``event/next``: blocks until Lambda sends the next ``INVOKE`` (when the
   invocation starts). The first call also ends the extension's init.
2. Waits until the handler wrapper hands the invocation over
   (:meth:`Extension.hand_over`, from ``Runtime.end_of_unit``): the handler
   returned, its spans are in the emitter's buffer, and the runtime is posting
   the response.
3. Exports the buffer, bounded by the exporter's own timeout (at most 2 s),
   never starting after the invocation's deadline.
4. Calls ``event/next`` again: Lambda may freeze the sandbox now, and the next
   invocation waits until then, so nothing is lost at the freeze.

An internal extension registers for ``INVOKE`` only: ``SHUTDOWN`` is for
external extensions (separate processes), which Lambda stops; the runtime
process stops an internal one itself.

What it costs: the response is not delayed, but Lambda bills the invocation
until the extension calls ``event/next``, so the export time is billed, as it
was before the return. CloudWatch's ``Duration`` includes it too; the time
after the response is reported as ``PostRuntimeExtensionsDuration``.

Fallbacks: no Runtime API, a refused registration, a failed ``event/next`` or a
dead thread all fall back to exporting before the handler returns (logged once).
If configure() ran but no handler is wrapped with ``tracing.handler`` (nothing
would hand over), each INVOKE is passed through at once. If a traced handler
exists but an invocation ends without handing over (the function's handler is
another function), the wait ends at the deadline and, logged once, every later
INVOKE is passed through too. ``TRACING_EXTENSION=0`` turns it off; it is off
under SnapStart (connections made before the snapshot do not survive restore).

How it differs from the others:

* opentelemetry-lambda's collector layer (its ``decouple`` processor) is an
  *external* extension, a second process (a Go collector): the function still
  posts its spans to it over localhost before returning, and the collector
  learns that the invocation ended from the Telemetry API's
  ``platform.runtimeDone`` event. Here there is no second process, no
  localhost hop and no Telemetry API: the handler wrapper says when the
  invocation's spans are complete, in the same process.
* Datadog's extension is also external (its own agent process, flushing at the
  end of an invocation or periodically). Same difference.
* Both survive the runtime process and see ``SHUTDOWN``; an internal extension
  does not, so ours never keeps spans past the invocation that made them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "NAME",
    "NETWORK_EXPORTERS",
    "Extension",
    "InvokeEvent",
    "parse_event",
    "request",
    "wanted",
]

log = logging.getLogger("tracing.extension")

#: The exporters that post over the network from the function itself. The UDP
#: exporters write a datagram (nothing to wait for); ``provider`` hands spans to
#: the user's tracer provider, whose processors flush their own way.
NETWORK_EXPORTERS = frozenset({"otlp", "xray-otlp"})
#: ``Lambda-Extension-Name``: any name for an internal extension.
NAME = "tracing"
_API = "/2020-01-01/extension"
#: Longest the registration may take at cold start (a local round trip: ~1 ms).
REGISTER_TIMEOUT_S = 2.0
#: event/next attempts before the extension gives up (then: export before return).
_NEXT_ATTEMPTS = 3
#: Largest answer read from the Extensions API (its events are small JSON).
_MAX_ANSWER = 1024 * 1024
_OFF = frozenset({"0", "false", "off", "no"})


class InvokeEvent:
    """One ``INVOKE`` event (or another event type, which is skipped).

    Attributes:
        kind: ``eventType`` (``INVOKE``).
        request_id: ``requestId``, or None.
        deadline_ms: ``deadlineMs`` (epoch milliseconds), or None.
    """

    __slots__ = ("deadline_ms", "kind", "request_id")

    def __init__(self, kind: str, request_id: str | None, deadline_ms: int | None) -> None:
        self.kind = kind
        self.request_id = request_id
        self.deadline_ms = deadline_ms


def wanted(exporter: str, buffered: bool, environ: Mapping[str, str]) -> bool:
    """Whether to register: Lambda, a buffered network exporter, and not turned off."""
    if not buffered or exporter not in NETWORK_EXPORTERS:
        return False
    if not environ.get("AWS_LAMBDA_RUNTIME_API"):
        return False
    if environ.get("TRACING_EXTENSION", "").strip().lower() in _OFF:
        return False
    return environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "snap-start"


def parse_event(body: bytes) -> InvokeEvent | None:
    """An ``event/next`` body, or None when it is not a JSON object with an eventType."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if type(data) is not dict or type(data.get("eventType")) is not str:
        return None
    request_id = data.get("requestId")
    deadline = data.get("deadlineMs")
    return InvokeEvent(
        data["eventType"],
        request_id if type(request_id) is str else None,
        deadline if type(deadline) is int and not isinstance(deadline, bool) else None,
    )


def wait_for(deadline_ms: int | None, now_s: float, longest_s: float) -> float:
    """Seconds to wait for the hand-over: until the deadline, at most ``longest_s``."""
    if deadline_ms is None:
        return longest_s
    return max(0.0, min(longest_s, deadline_ms / 1000.0 - now_s))


class Extension:
    """The registered extension and its thread.

    Args:
        address: ``AWS_LAMBDA_RUNTIME_API`` (``host:port``).
        export: Exports what is buffered (``Runtime.flush_buffer``). Never raises.
        traced: True once a handler is wrapped (something will hand over).
    """

    #: Longest wait for a hand-over when an event names no deadline (Lambda's
    #: longest timeout).
    LONGEST_WAIT_S = 900.0

    def __init__(
        self, address: str, export: Callable[[], None], traced: Callable[[], bool]
    ) -> None:
        self.address = address
        self.identifier: str | None = None
        self._export = export
        self._traced = traced
        #: True while invocations are handed over (registered, thread alive).
        self.active = False
        #: After an invocation ended without a hand-over: pass every INVOKE through.
        self.passthrough = False
        # Released by hand_over(), acquired by the thread: a hand-over that comes
        # before the thread read the INVOKE (the handler was quicker) is kept.
        self._ended = threading.Lock()
        self._ended.acquire()
        #: Invocations exported after their response; INVOKEs seen.
        self.exported = 0
        self.invokes = 0

    # -- the handler's side ----------------------------------------------------------

    def hand_over(self) -> bool:
        """The invocation's spans are complete: export them after the response.

        Returns False when the extension is not running (the caller exports now).
        """
        if not self.active or self.passthrough:
            return False
        try:  # noqa: SIM105 - per invocation: contextlib.suppress costs a Python call
            self._ended.release()
        except RuntimeError:  # already handed over, not yet taken
            pass
        return True

    # -- registration ----------------------------------------------------------------

    def register(self) -> bool:
        """Register for ``INVOKE`` and start the thread. Never raises.

        Returns:
            True when running; False (logged once) when the Extensions API refused
            or is not there: the caller exports before the return.
        """
        try:
            body = json.dumps({"events": ["INVOKE"]}).encode()
            headers = {"Lambda-Extension-Name": NAME, "Content-Type": "application/json"}
            status, answer_headers, answer = request(
                self.address, "POST", f"{_API}/register", headers, body, REGISTER_TIMEOUT_S
            )
            identifier = answer_headers.get("lambda-extension-identifier")
            if status != 200 or not identifier:
                log.warning(
                    "tracing: the Lambda Extensions API refused the registration (HTTP %s: "
                    "%.200r); spans are exported before the handler returns",
                    status,
                    answer,
                )
                return False
        except Exception as exc:
            log.warning(
                "tracing: could not register with the Lambda Extensions API (%s); spans are "
                "exported before the handler returns",
                exc,
            )
            return False
        self.identifier = identifier
        self.active = True
        # A fresh context: the extension belongs to no unit of work, whatever was
        # current when configure() ran (the thread hand-off would copy it).
        thread = threading.Thread(
            target=contextvars.Context().run,
            args=(self._run,),
            name="tracing-extension",
            daemon=True,
        )
        thread.start()
        return True

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                event = self._next()
                if event is None:
                    continue
                if event.kind != "INVOKE":
                    continue
                self.invokes += 1
                if self.passthrough or not self._traced():
                    continue  # nothing will hand over: Lambda may freeze at once
                self._await_end(event)
                self._export()
                self.exported += 1
        except BaseException as exc:  # the thread says why it stopped
            self.active = False
            log.warning(
                "tracing: the in-process Lambda extension stopped (%r); spans are exported "
                "before the handler returns from now on",
                exc,
            )
            # The invocation handed over just before may still be buffered: send it.
            self._export()

    def _await_end(self, event: InvokeEvent) -> None:
        timeout = wait_for(event.deadline_ms, time.time(), self.LONGEST_WAIT_S)
        if self._ended.acquire(timeout=timeout):
            return
        # The deadline passed without a hand-over: the handler Lambda calls is
        # not a traced one (a timed-out one was killed with us). Stop waiting.
        self.passthrough = True
        log.warning(
            "tracing: invocation %s ended without a traced handler handing its spans over; "
            "exporting before the handler returns from now on (is the function's handler "
            "wrapped with tracing.handler?)",
            event.request_id,
        )

    def _next(self) -> InvokeEvent | None:
        """Ask for the next event (telling Lambda we are done); raises when it fails."""
        headers = {"Lambda-Extension-Identifier": self.identifier or ""}
        for attempt in range(_NEXT_ATTEMPTS):
            try:
                # No timeout: event/next is a long poll, for as long as the
                # environment waits (frozen) for its next invocation.
                status, _, body = request(self.address, "GET", f"{_API}/event/next", headers)
            except OSError:
                if attempt + 1 == _NEXT_ATTEMPTS:
                    raise
                time.sleep(0.01 * (attempt + 1))
                continue
            if status != 200:
                raise RuntimeError(f"event/next answered HTTP {status}: {body[:200]!r}")
            event = parse_event(body)
            if event is None:
                log.debug("tracing: ignoring an extension event that does not parse: %.200r", body)
            return event
        raise RuntimeError("unreachable")  # pragma: no cover

    def status(self) -> dict[str, Any]:
        """What the extension did so far (for logs and tests)."""
        return {
            "active": self.active,
            "passthrough": self.passthrough,
            "invokes": self.invokes,
            "exported": self.exported,
        }


def request(
    address: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    timeout: float | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.0 exchange with the local Extensions API: status, headers, body.

    Plain sockets, not ``http.client``: importing that (with ``ssl`` and
    ``email``) costs 13-22 ms, and this runs at cold start. HTTP/1.0 keeps it
    simple: the server closes the connection after its answer (no chunks, no
    keep-alive), so the body is what arrives before EOF.

    Raises:
        OSError: Connecting, sending or receiving failed, or the answer is not HTTP.
    """
    host, _, port = address.rpartition(":")
    lines = [f"{method} {path} HTTP/1.0", f"Host: {address}", f"Content-Length: {len(body)}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(payload)
        chunks: list[bytes] = []
        size = 0
        while size <= _MAX_ANSWER:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return parse_answer(b"".join(chunks))


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and body of a whole HTTP answer.

    Raises:
        OSError: It is not an HTTP answer.
    """
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer: {raw[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", "")
    if length.isdigit():
        body = body[: int(length)]
    return int(parts[1]), headers, body
