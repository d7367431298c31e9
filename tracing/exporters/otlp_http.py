"""``exporter="otlp"``: OTLP/HTTP (protobuf) to a collector, with the standard settings.

For teams that run an OTel or ADOT collector. The spans are the same as on the
``otlp-udp`` path (``_otlp_spans.py``; the application's own OTel spans
exactly as the SDK recorded them, events and links included), buffered during a
unit of work and posted when it ends (``flush``), within a bounded time,
because the Lambda sandbox freezes right after the handler returns.

The standard OTLP exporter environment is honoured (trace-specific variables
win over the general ones):

* ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as given), else
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else
  ``http://localhost:4318/v1/traces``;
* ``OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`` (``key=value,...``, values
  URL-encoded), ``OTEL_EXPORTER_OTLP[_TRACES]_COMPRESSION`` (``gzip``),
  ``OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT`` (milliseconds; at most 2 s here),
  ``OTEL_EXPORTER_OTLP[_TRACES]_CERTIFICATE`` (CA bundle for ``https``).

It posts with the standard library (``http.client``): no OTel exporter, no
``requests``, nothing imported before the first export. A 429, 502, 503 or 504
answer is retried once if time is left; a failure is logged once and counted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .._otlp_fit import fit_spans, pack_requests
from .._otlp_spans import document_spans, scope_spans
from ._otlp_emitter import OTLPBase

if TYPE_CHECKING:
    import http.client

    from .._scope import Scope

__all__ = ["OTLPHTTPEmitter", "SUPPORTED_PROTOCOL", "endpoint_settings"]

log = logging.getLogger("tracing.emitter")

#: Most span bytes buffered between flushes; beyond, the oldest are dropped.
MAX_BUFFERED_BYTES = 16 * 1024 * 1024
#: Largest request body posted (collectors accept 4 MiB by default).
MAX_REQUEST = 3 * 1024 * 1024
#: Longest one export may take: the handler's return waits for it.
MAX_TIMEOUT_S = 2.0
_RETRY = frozenset({429, 502, 503, 504})
#: The one OTLP protocol this exporter speaks (``OTEL_EXPORTER_OTLP_PROTOCOL``).
SUPPORTED_PROTOCOL = "http/protobuf"


def _env(name: str) -> str | None:
    value = os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or os.environ.get(
        f"OTEL_EXPORTER_OTLP_{name}"
    )
    return value.strip() if value and value.strip() else None


def _check_protocol() -> None:
    """Refuse an OTLP protocol other than ``http/protobuf`` (the trace variable wins)."""
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        if value.lower() != SUPPORTED_PROTOCOL:
            raise ValueError(
                f"{variable}={value!r} is not supported: exporter='otlp' sends OTLP/HTTP "
                f"protobuf only ({variable}={SUPPORTED_PROTOCOL}, or unset it)"
            )
        return


def endpoint_settings() -> dict[str, Any]:
    """The OTLP/HTTP settings from the environment (see the module doc).

    Raises:
        ValueError: The environment asks for a protocol other than ``http/protobuf``.
    """
    _check_protocol()
    url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not url:
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "http://localhost:4318"
        url = base.rstrip("/") + "/v1/traces"
    headers: dict[str, str] = {}
    for item in (_env("HEADERS") or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip())] = unquote(value.strip())
    timeout_s = MAX_TIMEOUT_S
    raw = _env("TIMEOUT")
    if raw is not None:
        try:
            timeout_s = min(MAX_TIMEOUT_S, max(0.05, float(raw) / 1000.0))
        except ValueError:
            log.error("tracing: ignoring OTEL_EXPORTER_OTLP_TIMEOUT=%r (milliseconds)", raw)
    compression = (_env("COMPRESSION") or "none").lower()
    return {
        "url": url,
        "headers": headers,
        "timeout_s": timeout_s,
        "gzip": compression == "gzip",
        "certificate": _env("CERTIFICATE"),
    }


class OTLPHTTPEmitter(OTLPBase):
    """Buffers spans and posts them as OTLP/HTTP protobuf on :meth:`flush`.

    Args:
        resource_attributes: The ``Resource`` of every request.
        settings: Override :func:`endpoint_settings` (tests).

    Raises:
        ValueError: The endpoint is not an ``http(s)`` URL.
    """

    buffered = True

    def __init__(
        self, resource_attributes: Mapping[str, Any], settings: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(resource_attributes)
        config = dict(settings or endpoint_settings())
        self._use_url(config["url"])
        self._headers = {
            "Content-Type": "application/x-protobuf",
            **config.get("headers", {}),
        }
        self._timeout = float(config.get("timeout_s", MAX_TIMEOUT_S))
        self._gzip = bool(config.get("gzip", False))
        self._certificate = config.get("certificate")
        self._spans: list[bytes] = []
        self._bytes = 0
        self._connection: http.client.HTTPConnection | None = None
        self._errors_seen: set[str] = set()
        self.sent = 0
        self.failed = 0

    def _use_url(self, url: str) -> None:
        """Post to ``url`` from now on.

        Raises:
            ValueError: ``url`` is not an ``http(s)`` URL.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OTLP endpoint must be an http(s) URL, got {url!r}")
        self.url: str = url
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = (parts.path or "/v1/traces") + (f"?{parts.query}" if parts.query else "")

    # -- buffering -------------------------------------------------------------------

    def send_scope(self, scope: Scope) -> None:
        """Buffer one finished scope's spans (an unsampled scope, recorded only with
        ``send_unsampled``, goes with its spans flagged not sampled)."""
        for attempt in range(3):
            try:
                self._buffer(scope_spans(scope, links=self.links))
                return
            except Exception as exc:  # a thread changed the tree while it was read
                if attempt == 2:
                    self._fail("encode", exc)

    def send(self, document: dict[str, Any], body: bytes | None = None) -> None:
        """Buffer one top-level X-Ray document's entities as spans. Never raises."""
        try:
            self._buffer(document_spans(document, links=self.links))
        except Exception as exc:
            self._fail("encode", exc)

    def send_encoded(self, body: bytes) -> None:
        """Buffer one top-level document given as JSON. Never raises."""
        import json

        try:
            self.send(json.loads(body))
        except ValueError as exc:
            self._fail("encode", exc)

    def _buffer(self, spans: list[bytes]) -> None:
        for span in spans:
            self._spans.append(span)
            self._bytes += len(span)
        while self._bytes > MAX_BUFFERED_BYTES and self._spans:
            self._bytes -= len(self._spans.pop(0))
            self.failed += 1

    # -- export ----------------------------------------------------------------------

    def flush(self) -> None:
        """Post everything buffered. Never raises; bounded by the timeout."""
        self.export()

    def export(self) -> bool:
        """Post everything buffered; True when all of it was accepted."""
        spans, self._spans, self._bytes = self._spans, [], 0
        if not spans:
            return True
        deadline = time.monotonic() + self._timeout
        ok = True
        for body in self._requests(spans):
            if not self._post(body, deadline):
                ok = False
        if ok:
            self.sent += len(spans)
        else:
            self.failed += len(spans)
        return ok

    def _requests(self, spans: list[bytes]) -> Iterator[bytes]:
        """The request bodies that carry ``spans``, each within the endpoint's limits."""
        fitting = fit_spans(self.request, spans, MAX_REQUEST)
        return pack_requests(self.request, fitting, MAX_REQUEST)

    def _signed(self, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The headers of one attempt to post ``body`` (an authenticating exporter
        signs them here, once per attempt)."""
        return headers

    def _refusal(self, status: int, payload: bytes) -> Exception:
        """What to log for a non-2xx answer (``payload``: the answer's body)."""
        return RuntimeError(f"HTTP {status} from {self.url}")

    def _post(self, body: bytes, deadline: float) -> bool:
        headers = self._headers
        if self._gzip:
            import gzip

            body = gzip.compress(body, compresslevel=6)
            headers = {**headers, "Content-Encoding": "gzip"}
        for attempt in range(2):
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail("export", TimeoutError("no time left before the sandbox freezes"))
                return False
            try:
                signed = self._signed(body, headers)
            except Exception as exc:
                self._fail("sign", exc)
                return False
            try:
                connection = self._connect(left)
                connection.request("POST", self._path, body=body, headers=signed)
                response = connection.getresponse()
                payload = response.read()
            except Exception as exc:
                self._drop_connection()
                if attempt == 0:
                    continue  # a kept-alive connection the collector closed: reconnect once
                self._fail("export", exc)
                return False
            if 200 <= response.status < 300:
                return True
            if response.status in _RETRY and attempt == 0:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                continue
            self._fail("export", self._refusal(response.status, payload))
            return False
        return False

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        connection = self._connection
        if connection is None:
            import http.client

            if self._scheme == "https":
                import ssl

                context = ssl.create_default_context(cafile=self._certificate)
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=context
                )
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                log.debug("tracing: closing the OTLP connection failed", exc_info=True)

    def _fail(self, what: str, exc: BaseException) -> None:
        self.failed += 1
        kind = f"{what}:{type(exc).__name__}"
        if kind in self._errors_seen:
            log.debug("tracing: OTLP %s failed again: %s", what, exc)
            return
        self._errors_seen.add(kind)
        log.warning(
            "tracing: could not %s trace spans to %s (%s); further %s errors are counted, "
            "not logged",
            what,
            self.url,
            exc,
            kind,
        )

    def close(self) -> None:
        """Post what is buffered, then close the connection."""
        self.flush()
        self._drop_connection()
