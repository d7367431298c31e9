"""A local, X-Ray-daemon-compatible collector: UDP datagrams in, SQLite out.

Point ``AWS_XRAY_DAEMON_ADDRESS`` at it and traced code sends here exactly what
it sends to the X-Ray daemon in Lambda: segment documents, and OTLP spans in
``T1S`` datagrams (``exporter="otlp-udp"``, ADOT), which are stored as the
documents X-Ray makes of them (``otlp.py``). With ``otlp_http`` it also takes
OTLP/HTTP (``exporter="otlp"``). Three threads, each with a bounded queue in
front of it, so a burst or a hostile sender costs drops, never memory:

- the *receiver* reads datagrams and parses them as the daemon does;
- the *writer* stores batches in a :class:`~tracing.local.collector.store.TraceStore`
  and reports traces that went quiet to ``on_trace``;
- the optional *forwarder* sends the raw documents on to X-Ray
  (``PutTraceSegments``), in batches of up to 50 like the daemon.

On the TCP side of the same address it answers X-Ray's sampling calls
(``GetSamplingRules``, ``GetSamplingTargets``) from local rules, as the X-Ray
daemon's proxy answers them from X-Ray (``xray_api.py``), for
``TRACING_SAMPLING_RULES=xray``; and X-Ray's query calls (``GetTraceSummaries``,
``BatchGetTraces``, ``GetTraceGraph``, ``GetServiceGraph``, ``PutTraceSegments``)
from the store (``xray_query.py``), for boto3's ``xray`` client and ``aws xray``.

The writer's loop is in ``_writer.py``, the forwarder's in ``_forward.py``, the
datagram's parsing in ``_datagram.py``.

Example::

    with Collector("127.0.0.1:2000", TraceStore(":memory:")) as collector:
        ...  # run traced code with AWS_XRAY_DAEMON_ADDRESS=collector.address
        print(collector.stats)
"""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any

from tracing.local.collector._datagram import MAX_DATAGRAM, Document, _header_ok, parse_datagram
from tracing.local.collector._forward import _POLL_S, ForwardConfig, _Forwarding
from tracing.local.collector._writer import MAX_TRACKED_TRACES, _Writing
from tracing.local.collector.store import TraceStore

__all__ = ["MAX_DATAGRAM", "MAX_TRACKED_TRACES", "Collector", "ForwardConfig", "parse_datagram"]

log = logging.getLogger("tracing.local.collector.daemon")


class Collector(_Forwarding, _Writing):
    """Receives X-Ray daemon datagrams on UDP and stores them.

    Args:
        listen: ``host:port`` to bind; port 0 picks a free port. Loopback by
            default: anyone who can reach the port can write traces.
        store: Where documents go. If None, a :class:`TraceStore` at the default
            path is opened and closed with the collector; a given store is left open.
        queue_size: Documents buffered between receiving and storing (and again
            before forwarding); beyond that they are dropped and counted.
        forward: Also send documents to AWS X-Ray, if given.
        on_trace: Called as ``on_trace(trace_id, documents)`` from the writer
            thread when a trace received nothing for ``quiet_s``, with all its
            stored documents; again if more arrive later, and for every pending
            trace on :meth:`stop`. Exceptions are logged, not raised.
        quiet_s: Seconds without a new document after which a trace is reported.
        otlp_http: Also take OTLP/HTTP on this ``host:port``.
        sampling_rules: Rules file the sampling API serves (aws-xray-sdk's
            local format, or a ``GetSamplingRules`` answer); X-Ray's default
            rule if None.
        sampling_api: Answer ``GetSamplingRules``/``GetSamplingTargets`` on TCP,
            same host and port as the UDP intake.
        query_api: Answer X-Ray's query calls and ``PutTraceSegments`` there too.
        page_size: Trace summaries per ``GetTraceSummaries`` page.

    Raises:
        ValueError: ``sampling_rules`` is unreadable or not valid rules.
    """

    def __init__(
        self,
        listen: str = "127.0.0.1:2000",
        store: TraceStore | None = None,
        *,
        queue_size: int = 10_000,
        forward: ForwardConfig | None = None,
        on_trace: Callable[[str, list[Document]], None] | None = None,
        quiet_s: float = 1.0,
        otlp_http: str | None = None,
        sampling_rules: str | None = None,
        sampling_api: bool = True,
        query_api: bool = True,
        page_size: int = 100,
    ) -> None:
        host, _, port = listen.rpartition(":")
        self._listen = (host.strip("[]") or "127.0.0.1", int(port))
        self._owns_store = store is None
        self._store = store
        self._forward = forward
        self._on_trace = on_trace
        self._quiet_s = quiet_s
        self._otlp_http_listen = otlp_http
        self._otlp_http: Any = None
        self._sampling: Any = None
        self._sampling_rules: Any = None
        if sampling_api:
            from tracing.local.collector.xray_api import SamplingRules

            self._sampling_rules = SamplingRules(sampling_rules)
        self._http_api = sampling_api or query_api
        self._query_api = query_api
        self._page_size = page_size
        size = max(1, queue_size)  # NOTE: Queue(0) would be unbounded
        self._queue: queue.Queue[tuple[Document, float]] = queue.Queue(size)
        self._forward_queue: queue.Queue[str] = queue.Queue(size)
        self._pending: OrderedDict[str, float] = OrderedDict()  # trace id -> last seen
        self._counts = dict.fromkeys(
            (
                "received",
                "stored",
                "garbage",
                "unsampled",
                "dropped",
                "forwarded",
                "forward_errors",
            ),
            0,
        )
        self._counts_lock = threading.Lock()
        self._warned: set[str] = set()
        self._sock: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._workers: list[tuple[threading.Thread, threading.Event]] = []
        self._state_lock = threading.Lock()
        self._state = "new"

    @property
    def address(self) -> str:
        """``host:port`` actually bound (the configured one before :meth:`start`)."""
        host, port = self._address or self._listen
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters.

        ``received`` datagrams (all of them), ``garbage`` (not a daemon datagram),
        ``dropped`` (valid documents lost: queue full or store failure),
        ``stored``, ``forwarded`` and ``forward_errors`` (documents).
        """
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, name: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[name] += n

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        """Log the first failure of a kind as a warning, later ones (counted) at DEBUG."""
        if kind in self._warned:
            log.debug(message, *args)
        else:
            self._warned.add(kind)  # a handful of fixed kinds: bounded
            log.warning(message, *args)

    def start(self) -> Collector:
        """Bind the socket and start the threads; idempotent.

        Raises:
            OSError: The address cannot be bound (in use, not local...).
            RuntimeError: The collector was already stopped.
        """
        with self._state_lock:
            if self._state == "started":
                return self
            if self._state == "stopped":
                raise RuntimeError("a stopped Collector cannot be restarted")
            sock = self._bind()
            try:
                self._store = self._store or TraceStore()
            except BaseException:
                self._close_sampling()
                sock.close()
                raise
            self._sock, self._address = sock, sock.getsockname()[:2]
            if self._sampling is not None and self._query_api:
                from tracing.local.collector.xray_query import QueryAPI

                query = QueryAPI(self._store, self._put, self._page_size)
                self._sampling.add(query.operations())
            if self._otlp_http_listen is not None:
                from tracing.local.collector.otlp_http import OTLPHTTPReceiver

                try:
                    self._otlp_http = OTLPHTTPReceiver(
                        self._otlp_http_listen, self.submit, self._count
                    ).start()
                except BaseException:
                    self._close_sampling()
                    sock.close()
                    raise
            if not ipaddress.ip_address(self._address[0].split("%")[0]).is_loopback:
                log.warning(
                    "tracing collector listening on %s: anyone who can reach it can write traces",
                    self.address,
                )
            loops = [self._receive, self._write, self._forward_loop][: 3 if self._forward else 2]
            for loop in loops:  # in this order: stop() stops them in the same order
                stop = threading.Event()
                name = f"tracing-collector-{loop.__name__.strip('_')}"
                thread = threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
                thread.start()
                self._workers.append((thread, stop))
            self._state = "started"
            log.info("tracing collector listening on %s", self.address)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop receiving, store what was received, then stop; idempotent.

        Args:
            timeout: Most seconds to wait for each thread to finish its work.
        """
        with self._state_lock:
            if self._state != "started":
                self._state = "stopped"
                return
            self._state = "stopped"
        # Receiver first, then the others: nothing received is left in a queue.
        if self._otlp_http is not None:
            self._otlp_http.stop()
        self._close_sampling()
        for thread, stop in self._workers:
            stop.set()
            thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        if self._owns_store and self._store is not None:
            self._store.close()

    def _bind(self) -> socket.socket:
        """The UDP socket, and the sampling API on TCP at the same host and port.

        With port 0 the system picks the UDP port, which TCP may not have free:
        then both are tried again. A fixed port whose TCP side is taken keeps
        the UDP intake and goes without the sampling API (a warning says so).
        """
        family, _, _, _, target = socket.getaddrinfo(*self._listen, type=socket.SOCK_DGRAM)[0]
        attempts = 20 if self._listen[1] == 0 else 1
        for attempt in range(attempts):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                # A larger kernel buffer absorbs a flush of many documents at once.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                sock.bind(target)
                sock.settimeout(_POLL_S)
            except BaseException:
                sock.close()
                raise
            if not self._http_api:
                return sock
            from tracing.local.collector.xray_api import SamplingAPIServer

            host, port = sock.getsockname()[:2]
            try:
                self._sampling = SamplingAPIServer((host, port), self._sampling_rules).start()
            except OSError as exc:
                if attempt + 1 < attempts:
                    sock.close()
                    continue
                log.warning(
                    "tracing collector: no sampling API, TCP %s:%s is not free (%s)",
                    host,
                    port,
                    exc,
                )
            return sock
        raise AssertionError("unreachable")  # pragma: no cover

    def _close_sampling(self) -> None:
        sampling, self._sampling = self._sampling, None
        if sampling is not None:
            sampling.stop()

    @property
    def sampling_address(self) -> str | None:
        """``host:port`` of the X-Ray API (TCP: sampling and queries), when it runs."""
        if self._sampling is None:
            return None
        host, port = self._sampling.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def sampling_statistics(self) -> dict[str, dict[str, int]]:
        """Per rule, the ``RequestCount``/``SampledCount``/``BorrowCount`` clients
        reported through ``GetSamplingTargets`` (totals)."""
        rules = self._sampling_rules
        if rules is None:
            return {}
        with rules._lock:
            return {name: dict(counts) for name, counts in rules.statistics.items()}

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _receive(self, stop: threading.Event) -> None:
        assert self._sock is not None
        buffer = bytearray(MAX_DATAGRAM + 1)  # one spare byte reveals an oversize datagram
        view = memoryview(buffer)
        while not stop.is_set():
            try:
                size = self._sock.recv_into(buffer)
            except TimeoutError:
                continue
            except OSError as exc:
                if stop.is_set():
                    return
                self._warn_once("recv", "tracing collector: receive failed: %s", exc)
                time.sleep(_POLL_S)  # e.g. ICMP errors: keep going, but don't spin
                continue
            try:
                self._accept(bytes(view[:size]))
            except Exception:  # never let one datagram stop the collector
                log.exception("tracing collector: unexpected error on a datagram")

    @property
    def otlp_http_address(self) -> str | None:
        """``host:port`` of the OTLP/HTTP receiver, when there is one."""
        return self._otlp_http.address if self._otlp_http is not None else None

    def _accept(self, data: bytes) -> None:
        self._count("received")
        header, newline, body = data.partition(b"\n")
        if newline and body[:3] in (b"T1S", b"T1U"):
            self._accept_otlp(header, body, len(data))
            return
        parsed = parse_datagram(data)
        if parsed is None:
            self._count("garbage")
            log.debug("tracing collector: ignored a malformed datagram: %r", data[:100])
            return
        self._enqueue(*parsed)

    def _accept_otlp(self, header: bytes, body: bytes, size: int) -> None:
        from tracing.local.collector.otlp import otlp_datagram

        decoded = otlp_datagram(body) if size <= MAX_DATAGRAM and _header_ok(header) else None
        if decoded is None:
            self._count("garbage")
            log.debug("tracing collector: ignored a malformed OTLP datagram: %r", body[:100])
            return
        sampled, documents = decoded
        if not sampled:
            self._count("unsampled", len(documents))  # X-Ray does not store them
            return
        self.submit(documents)

    def _put(self, documents: list[tuple[Document, str]]) -> None:
        """``PutTraceSegments``' valid documents: as if each came in a datagram."""
        self._count("received", len(documents))
        for document, text in documents:
            self._enqueue(document, text)

    def submit(self, documents: list[Document]) -> None:
        """Store documents received another way (OTLP): as if each came alone."""
        for document in documents:
            self._enqueue(document, json.dumps(document, separators=(",", ":")))

    def _enqueue(self, document: Document, text: str) -> None:
        try:
            self._queue.put_nowait((document, time.time()))
        except queue.Full:
            self._count("dropped")
            self._warn_once("full", "tracing collector: queue full, dropping documents")
        try:
            if self._forward is not None:
                self._forward_queue.put_nowait(text)
        except queue.Full:
            self._count("forward_errors")
            self._warn_once("forward-full", "tracing collector: forward queue full, not forwarding")
