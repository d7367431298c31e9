"""An OTLP/HTTP endpoint on 127.0.0.1 that checks every request's SigV4 signature.

X-Ray's OTLP endpoint, as far as a test can tell: ``POST /v1/traces`` with a
protobuf ``ExportTraceServiceRequest``, signed for the service ``xray``. The
signature is recomputed independently of the library, with botocore's own signer
(``botocore.auth.SigV4Auth``) on an ``AWSRequest`` rebuilt from what arrived: the
method, the URL (``Host`` header and path), the headers the request says it
signed, its ``X-Amz-Date`` and its body, with the endpoint's known credentials.
A mismatch, an unknown key, a wrong scope or an unsigned ``Host``/``X-Amz-Date``
is answered 403 with an AWS-style JSON message and recorded in ``refused``; a
body that is not an ``ExportTraceServiceRequest`` gets a 400. Accepted requests
are kept in ``received`` (decoded), then answered 200, or with ``answer`` when a
test sets one (X-Ray refusing spans while Transaction Search is off, say).
"""

from __future__ import annotations

import gzip
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["ACCESS_KEY", "SECRET_KEY", "Received", "SigV4Endpoint"]

#: AWS's own documentation example credentials (not a real account's).
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass
class Received:
    """One accepted request: its headers, its raw body and what it decoded to."""

    headers: dict[str, str]
    body: bytes
    request: ExportTraceServiceRequest
    access_key: str
    signed_headers: list[str]


@dataclass
class SigV4Endpoint:
    """Serves ``POST /v1/traces`` on 127.0.0.1 (port 0) in a thread.

    Args:
        secrets: access key id -> secret access key the endpoint accepts.
        region: The region signatures must be scoped to.
        service: The service signatures must be scoped to.
    """

    secrets: Mapping[str, str] = field(default_factory=lambda: {ACCESS_KEY: SECRET_KEY})
    region: str = "us-east-1"
    service: str = "xray"
    #: (status, body) to answer a correctly signed request with, instead of 200.
    answer: tuple[int, bytes] | None = None
    #: Seconds to wait, after reading a request, before answering it.
    delay_s: float = 0.0
    #: path -> JSON answer, for X-Ray API calls (``/GetSamplingRules``...) signed
    #: like the exports; each accepted call is kept in ``api_calls``.
    json_answers: Mapping[str, Any] = field(default_factory=dict)
    api_calls: list[tuple[str, Any]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as X-Ray's endpoint

            def do_POST(self) -> None:
                endpoint._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._changed = threading.Condition()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, for ``AWS_ENDPOINT_URL_XRAY``."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> SigV4Endpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """The accepted requests, once there are ``count`` (or the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.received) < count and time.monotonic() < deadline:
                self._changed.wait(0.05)
        return list(self.received)

    def spans(self) -> Iterator[Any]:
        """Every span of every accepted request."""
        for received in self.received:
            for resource_spans in received.request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    yield from scope_spans.spans

    # -- the checks ------------------------------------------------------------------

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why the request's signature is wrong, or None when botocore agrees with it."""
        lower = {name.lower(): value for name, value in headers.items()}
        found = _AUTHORIZATION.match(lower.get("authorization", ""))
        if found is None:
            return "missing or malformed Authorization header"
        secret = self.secrets.get(found["key"])
        if secret is None:
            return f"unknown access key {found['key']}"
        amz_date = lower.get("x-amz-date", "")
        if (found["region"], found["service"]) != (self.region, self.service):
            return f"scoped to {found['region']}/{found['service']}"
        if found["day"] != amz_date[:8]:
            return "credential scope date differs from X-Amz-Date"
        signed = found["signed"].split(";")
        if not {"host", "x-amz-date"} <= set(signed):
            return "host and x-amz-date must be signed"
        if any(name not in lower for name in signed):
            return "a signed header is missing"
        request = AWSRequest(
            method=method,
            url=f"http://{lower['host']}{path}",
            data=body,
            headers={name: lower[name] for name in signed},
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(
            Credentials(found["key"], secret, lower.get("x-amz-security-token")),
            self.service,
            self.region,
        )
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if signer.signed_headers(signer.headers_to_sign(request)) != found["signed"]:
            return "SignedHeaders is not what the headers give"
        if not hmac.compare_digest(expected, found["signature"]):
            return "The request signature we calculated does not match the signature you provided"
        return None

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        body = http.rfile.read(int(http.headers.get("Content-Length", "0")))
        headers = dict(http.headers.items())
        wrong = self.verify(http.command, http.path, headers, body)
        if wrong is not None:
            with self._changed:
                self.refused.append(wrong)
                self._changed.notify_all()
            self._reply(http, 403, json.dumps({"message": wrong}).encode())
            return
        if http.path in self.json_answers:
            with self._changed:
                self.api_calls.append((http.path, json.loads(body or b"{}")))
                self._changed.notify_all()
            self._reply(http, 200, json.dumps(self.json_answers[http.path]).encode())
            return
        try:
            raw = gzip.decompress(body) if http.headers.get("Content-Encoding") == "gzip" else body
            decoded = ExportTraceServiceRequest()
            decoded.ParseFromString(raw)
        except Exception:
            self._reply(http, 400, b'{"message": "not an ExportTraceServiceRequest"}')
            return
        found = _AUTHORIZATION.match(headers.get("Authorization", ""))
        assert found is not None
        with self._changed:
            self.received.append(
                Received(headers, body, decoded, found["key"], found["signed"].split(";"))
            )
            self._changed.notify_all()
        status, answer = self.answer or (200, b"")
        if self.delay_s:
            time.sleep(self.delay_s)
        self._reply(http, status, answer)

    @staticmethod
    def _reply(http: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        http.send_response(status)
        http.send_header("Content-Type", "application/json" if body else "application/x-protobuf")
        http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        http.wfile.write(body)
