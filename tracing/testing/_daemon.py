"""A real UDP listener standing in for the X-Ray daemon, with strict decoding."""

from __future__ import annotations

import base64
import itertools
import json
import socket
import threading
import time
from types import TracebackType
from typing import Any

from ..backends.xray_udp import HEADER

__all__ = ["DaemonListener", "parse_datagram"]

_SYNC = b"tracing-testing-sync:"
_OTLP = (b"T1S", b"T1U")
_sync_numbers = itertools.count(1)


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
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._sock.bind((host, port))
        self._sock.settimeout(0.05)
        self.address = "{}:{}".format(*self._sock.getsockname())
        self.datagrams: list[bytes] = []
        self.garbage: list[bytes] = []
        #: OTLP datagrams: (sampled, the decoded ExportTraceServiceRequest bytes).
        self.otlp: list[tuple[bool, bytes]] = []
        self._docs: list[dict[str, Any]] = []
        self._synced = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="daemon-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                if data.startswith(_SYNC):
                    self._synced = max(self._synced, int(data[len(_SYNC) :]))
                    self._cond.notify_all()
                    continue
                self.datagrams.append(data)
                request = _otlp_request(data)
                if request is not None:
                    self.otlp.append(request)
                    self._cond.notify_all()
                    continue
                document = parse_datagram(data)
                if document is None:
                    self.garbage.append(data)
                else:
                    self._docs.append(document)
                self._cond.notify_all()

    def otlp_spans(self, sampled: bool = True) -> list[Any]:
        """The spans of the OTLP datagrams received so far, decoded with the real
        ``opentelemetry-proto`` package (its ``Span`` messages), in arrival order."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        spans = []
        with self._cond:
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
        with self._cond:
            return list(self._docs)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` documents arrived; return all of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._docs) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._docs)

    def sync(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until every datagram sent to us before this call arrived; return all.

        Sends a marker datagram to the listener itself: datagrams on loopback
        arrive in the order they were sent, so once the marker is seen, so is
        everything the code under test sent before. Much faster than
        :meth:`settle`, and exact.
        """
        number = next(_sync_numbers)
        host, _, port = self.address.rpartition(":")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(_SYNC + str(number).encode(), (host, int(port)))
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._synced < number:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the listener did not receive its own sync marker")
                self._cond.wait(left)
            return list(self._docs)

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until nothing arrived for ``quiet`` seconds; return all documents."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            with self._cond:
                if len(self.datagrams) == seen:
                    return list(self._docs)
                seen = len(self.datagrams)
            time.sleep(quiet)
        return self.documents

    def clear(self) -> None:
        """Forget everything received."""
        with self._cond:
            self._docs.clear()
            self.datagrams.clear()
            self.garbage.clear()
            self.otlp.clear()

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(2)
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
