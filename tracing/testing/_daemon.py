"""A real UDP listener standing in for the X-Ray daemon, with strict decoding."""

from __future__ import annotations

import base64
import itertools
import json
import os
import selectors
import socket
import sys
import threading
import time
from types import TracebackType
from typing import Any

from ..exporters.xray_udp import HEADER

__all__ = ["DaemonListener", "parse_datagram"]

_SYNC = b"tracing-testing-sync:"
_OTLP = (b"T1S", b"T1U")
_sync_numbers = itertools.count(1)
#: Receive buffer asked for. Linux caps SO_RCVBUF at net.core.rmem_max (often
#: 208 KiB, 4 MiB on some machines) and doubles it; root may go past the cap.
_RCVBUF = 64 * 1024 * 1024
#: How often sync() sends its marker again while waiting for it.
_RESEND_S = 0.1
#: Datagrams handed over in one go while a burst is still arriving.
_BATCH = 256
#: Linux's SO_RCVBUFFORCE (not exported by the socket module): SO_RCVBUF past
#: rmem_max, for a process with CAP_NET_ADMIN.
_SO_RCVBUFFORCE = 33


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _otlp_request(data: bytes) -> tuple[bool, bytes] | None:
    """(sampled, request protobuf) of a ``T1S``/``T1U`` datagram; ``None`` otherwise."""
    if not data.startswith(HEADER) or data[len(HEADER) : len(HEADER) + 3] not in _OTLP:
        return None
    try:
        body = base64.b64decode(data[len(HEADER) + 3 :], validate=True)
    except ValueError:
        return None
    return data[len(HEADER) + 2] == ord("S"), body


def parse_datagram(data: bytes) -> dict[str, Any] | None:
    """Decode one daemon datagram strictly; ``None`` when X-Ray would not take it.

    The datagram must be the header line ``{"format":"json","version":1}`` and
    one JSON object, parsed as X-Ray parses it: ``NaN`` and ``Infinity`` are
    refused (Python's ``json`` accepts them; X-Ray rejects the whole document).
    """
    if not data.startswith(HEADER):
        return None
    try:
        document = json.loads(data[len(HEADER) :], parse_constant=_reject_constant)
    except ValueError:  # also UnicodeDecodeError
        return None
    return document if isinstance(document, dict) else None


class DaemonListener:
    """A UDP listener on 127.0.0.1 that decodes X-Ray daemon datagrams.

    Every datagram must be the daemon header line plus one strict JSON document
    (:func:`parse_datagram`), or plus ``T1S``/``T1U`` and a base64 OTLP request
    (``exporter="otlp-udp"``, kept in :attr:`otlp`); anything else is kept in
    :attr:`garbage` so tests can assert on it.

    The listener's thread only reads: it drains its socket into :attr:`datagrams`
    as fast as it is scheduled, and datagrams are decoded when a test asks for
    documents. It still shares the interpreter with the code under test: a test
    sending thousands of datagrams in a row should :meth:`sync` between bursts,
    so the socket's receive buffer never holds more than one burst; the
    datagrams the kernel dropped when it was full are counted in :attr:`dropped`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _grow_receive_buffer(self._sock)
        self._sock.bind((host, port))
        self._sock.setblocking(False)
        self.address = "{}:{}".format(*self._sock.getsockname())
        #: Every datagram received (the sync markers excepted), in arrival order.
        self.datagrams: list[bytes] = []
        self._garbage: list[bytes] = []
        self._otlp: list[tuple[bool, bytes]] = []
        self._docs: list[dict[str, Any]] = []
        self._decoded = 0  # datagrams decoded so far
        self._synced = 0
        self._cond = threading.Condition()  # guards what the thread appends
        self._decoding = threading.Lock()  # one decoder at a time, outside _cond
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="daemon-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        recv, batch = self._sock.recv, []
        while not self._stop.is_set():
            try:
                batch.append(recv(65536))
            except BlockingIOError:  # drained: hand the burst over, then wait
                if batch:
                    self._take(batch)
                    batch = []
                try:
                    self._selector.select(0.05)
                except (OSError, ValueError):
                    return
                continue
            except OSError:
                return
            if len(batch) >= _BATCH:
                self._take(batch)
                batch = []

    def _take(self, batch: list[bytes]) -> None:
        with self._cond:
            for data in batch:
                marker = data[len(_SYNC) :] if data.startswith(_SYNC) else b""
                if marker.isdigit():
                    self._synced = max(self._synced, int(marker))
                else:
                    self.datagrams.append(data)
            self._cond.notify_all()

    def _decode(self) -> None:
        """Decode the datagrams received since the last call (in the caller's thread)."""
        with self._decoding:
            with self._cond:
                start = self._decoded
                pending = self.datagrams[start:]
            docs: list[dict[str, Any]] = []
            garbage: list[bytes] = []
            otlp: list[tuple[bool, bytes]] = []
            for data in pending:
                request = _otlp_request(data)
                if request is not None:
                    otlp.append(request)
                    continue
                document = parse_datagram(data)
                if document is None:
                    garbage.append(data)
                else:
                    docs.append(document)
            with self._cond:
                self._docs.extend(docs)
                self._garbage.extend(garbage)
                self._otlp.extend(otlp)
                self._decoded = start + len(pending)

    @property
    def garbage(self) -> list[bytes]:
        """Datagrams X-Ray would not take, in arrival order."""
        self._decode()
        return self._garbage

    @property
    def otlp(self) -> list[tuple[bool, bytes]]:
        """OTLP datagrams: (sampled, the decoded ExportTraceServiceRequest bytes)."""
        self._decode()
        return self._otlp

    @property
    def dropped(self) -> int | None:
        """Datagrams the kernel dropped because the receive buffer was full.

        Read from ``/proc/net/udp``; ``None`` where it cannot be read (not Linux).
        """
        return _kernel_drops(self._sock)

    def otlp_spans(self, sampled: bool = True) -> list[Any]:
        """The spans of the OTLP datagrams received so far, decoded with the real
        ``opentelemetry-proto`` package (its ``Span`` messages), in arrival order."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        spans = []
        requests = [body for flag, body in self.otlp if flag is sampled]
        for body in requests:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    spans.extend(scope_spans.spans)
        return spans

    @property
    def documents(self) -> list[dict[str, Any]]:
        """Documents received so far, in arrival order."""
        self._decode()
        with self._cond:
            return list(self._docs)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` documents arrived; return all of them."""
        deadline = time.monotonic() + timeout
        while True:
            self._decode()
            with self._cond:
                if len(self._docs) >= count:
                    return list(self._docs)
                if self._decoded < len(self.datagrams):
                    continue  # more arrived while decoding
                left = deadline - time.monotonic()
                if left <= 0:
                    return list(self._docs)
                self._cond.wait(left)

    def sync(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until every datagram sent to us before this call arrived; return all.

        Sends a marker datagram to the listener itself: datagrams on loopback
        arrive in the order they were sent, so once the marker is seen, so is
        everything the code under test sent before. Much faster than
        :meth:`settle`, and exact.
        """
        number = next(_sync_numbers)
        host, _, port = self.address.rpartition(":")
        marker, target = _SYNC + str(number).encode(), (host, int(port))
        deadline = time.monotonic() + timeout
        resend_at = 0.0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender, self._cond:
            while self._synced < number:
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError(
                        "the listener did not receive its own sync marker"
                        f" (datagrams dropped by the kernel: {self.dropped})"
                    )
                if now >= resend_at:  # again later: a full receive buffer drops it too
                    sender.sendto(marker, target)
                    resend_at = now + _RESEND_S
                self._cond.wait(min(deadline, resend_at) - now)
        return self.documents

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until nothing was sent to us for ``quiet`` seconds; return all documents.

        For senders that may still be running (a background thread); when the
        sender is done, :meth:`sync` is exact and faster. Each look is a
        :meth:`sync`, so what counts is what was sent, not what the listener's
        thread happened to read by then (it may not run for a while on a busy
        machine).
        """
        deadline = time.monotonic() + timeout
        seen = -1
        while True:
            self.sync()
            with self._cond:
                count = len(self.datagrams)
            if count == seen or time.monotonic() >= deadline:
                return self.documents
            seen = count
            time.sleep(quiet)

    def traces(self, expression: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """The documents received so far (after a :meth:`sync`), by trace id:
        X-Ray documents, and the sampled spans of OTLP datagrams
        (``exporter="otlp-udp"``) as the local collector converts them.

        Args:
            expression: Keep only the traces an X-Ray filter expression selects
                (``annotation.sku = "book-1"``, ``service("orders") { fault }``),
                evaluated as ``tracing traces --filter`` and the daemon's
                ``GetTraceSummaries`` do.

        Raises:
            ValueError: The expression does not parse (the message points at
                the column).
        """
        documents = list(self.sync())
        sampled_otlp = [body for sampled, body in self.otlp if sampled]
        if sampled_otlp:
            from ..local.collector.otlp import request_documents

            for body in sampled_otlp:
                documents.extend(request_documents(body))
        by_trace: dict[str, list[dict[str, Any]]] = {}
        for document in documents:
            trace_id = document.get("trace_id")
            if isinstance(trace_id, str):
                by_trace.setdefault(trace_id, []).append(document)
        if expression is None:
            return by_trace
        from ..local.collector.filters import matches_documents, parse

        selected = parse(expression)
        return {
            trace_id: found
            for trace_id, found in by_trace.items()
            if matches_documents(selected, found)
        }

    def assert_trace(self, expression: str, *, count: int | None = None) -> list[str]:
        """Assert that a trace matching an X-Ray filter expression was received.

        Waits for everything sent so far (:meth:`sync`), then evaluates the
        expression over each received trace.

        Args:
            expression: An X-Ray filter expression.
            count: When given, exactly this many traces must match.

        Returns:
            The matching trace ids.

        Raises:
            AssertionError: No trace (or not ``count`` traces) matched; the
                message lists what was received.
        """
        matching = sorted(self.traces(expression))
        if (count is None and matching) or (count is not None and len(matching) == count):
            return matching
        received = self.traces()
        lines = [
            f"  {trace_id}: " + ", ".join(sorted({str(d.get("name")) for d in documents}))[:200]
            for trace_id, documents in sorted(received.items())
        ][:20]
        wanted = "a trace" if count is None else f"{count} trace(s)"
        raise AssertionError(
            f"expected {wanted} matching {expression!r}, found {len(matching)} of "
            f"{len(received)} received" + ("".join("\n" + line for line in lines))
        )

    def clear(self) -> None:
        """Forget everything received."""
        with self._decoding, self._cond:
            self._docs.clear()
            self.datagrams.clear()
            self._garbage.clear()
            self._otlp.clear()
            self._decoded = 0

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(2)
        self._selector.close()
        self._sock.close()

    def __enter__(self) -> DaemonListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _grow_receive_buffer(sock: socket.socket) -> None:
    """As large a receive buffer as the kernel gives: a burst waits there while the
    listener's thread is not scheduled (a busy machine), instead of being dropped."""
    if sys.platform.startswith("linux"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
            return
        except OSError:  # no CAP_NET_ADMIN: up to the kernel's cap
            pass
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)


def _kernel_drops(sock: socket.socket) -> int | None:
    """The ``drops`` column of this socket's line in ``/proc/net/udp`` (Linux)."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
        with open("/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[9]) == inode:
                    return int(fields[12])
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return None
