"""Outgoing HTTP calls (urllib3, requests, httpx sync and async) against a local server.

Every client runs on both backends in a Lambda-like process; the server is a
real HTTP server on 127.0.0.1 that records the trace header it received, so the
propagation is checked on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import boto3
import httpx
import pytest
import requests
import urllib3

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.aws import LocalAWS

pytestmark = pytest.mark.usefixtures("in_lambda")


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []
    #: Every header line received, as sent (name, value), per request.
    lines: ClassVar[list[list[tuple[str, str]]]] = []

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.seen.append((path, self.headers.get("X-Amzn-Trace-Id")))
        self.lines.append(list(self.headers.items()))
        if path == "/slow":
            time.sleep(1.0)
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = {"/missing": 404, "/busy": 429, "/boom": 500}.get(path, 200)
        body = b'{"paid": true}'
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:
            pass  # /slow: the client gave up waiting, as the test intends

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TRACING_BACKEND", request.param)
    _Handler.seen.clear()
    _Handler.lines.clear()
    return str(request.param)


def _requests(url: str) -> None:
    requests.get(url, timeout=0.5)


def _urllib3(url: str) -> None:
    urllib3.PoolManager().request("GET", url, timeout=0.5, retries=False)


def _httpx(url: str) -> None:
    with httpx.Client(timeout=0.5, follow_redirects=True) as client:
        client.get(url)


def _httpx_async(url: str) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(timeout=0.5, follow_redirects=True) as client:
            await client.get(url)

    asyncio.run(main())


CLIENTS: dict[str, Callable[[str], None]] = {
    "requests": _requests,
    "urllib3": _urllib3,
    "httpx": _httpx,
    "httpx-async": _httpx_async,
}


def _run(monkeypatch: pytest.MonkeyPatch, body: Callable[[], None], extra: str = "") -> str:
    root = new_trace_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled=1{extra}")

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        body()

    handler({}, testing.FakeContext())
    return root


def _remote(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in testing.iter_entities(doc) if e.get("namespace") == "remote"]


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_each_request_is_a_remote_subsegment_with_the_header_on_the_wire(
    client: str,
    backend: str,
    server: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing.configure()
    call = CLIENTS[client]

    def body() -> None:
        call(f"{server}/pay?token=secret")
        for path in ("/missing", "/busy", "/boom"):
            call(f"{server}{path}")
        with contextlib.suppress(Exception):  # the client's timeout, raised to the handler
            call(f"{server}/slow")

    root = _run(monkeypatch, body, ";Lineage=a87bd80c:1")
    invocation = daemon.wait_for(2)[-1]
    assert testing.check_document(invocation) == []
    remote = _remote(invocation)
    assert [r["http"]["request"]["url"] for r in remote] == [
        f"{server}/pay",  # the query string is not recorded
        f"{server}/missing",
        f"{server}/busy",
        f"{server}/boom",
        f"{server}/slow",
    ]
    for entity in remote:
        assert entity["name"] == "127.0.0.1"
        assert entity["http"]["request"]["method"] == "GET"
        assert entity["http"]["request"]["traced"] is True
    statuses = [r["http"].get("response", {}).get("status") for r in remote]
    assert statuses == [200, 404, 429, 500, None]
    assert remote[0]["http"]["response"]["content_length"] == 14
    assert [
        (r.get("error", False), r.get("throttle", False), r.get("fault", False)) for r in remote
    ] == [
        (False, False, False),
        (True, False, False),
        (True, True, False),
        (False, False, True),
        (False, False, True),
    ]
    assert remote[-1]["cause"]["exceptions"]  # the timeout, as the cause
    # On the wire: each request names its own subsegment, Lineage kept.
    for (path, header), entity in zip(_Handler.seen, remote, strict=True):
        parsed = parse(header)
        assert parsed is not None, path
        assert (parsed.root, parsed.parent, parsed.sampled) == (root, entity["id"], "1")
        assert header.endswith(";Lineage=a87bd80c:1")


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_a_redirect_is_one_subsegment_per_hop(
    client: str,
    backend: str,
    server: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing.configure()
    _run(monkeypatch, lambda: CLIENTS[client](f"{server}/redirect"))
    remote = _remote(daemon.wait_for(2)[-1])
    assert [r["http"]["response"]["status"] for r in remote] == [302, 200]
    assert [path for path, _ in _Handler.seen] == ["/redirect", "/ok"]
    assert [parse(h).parent for _, h in _Handler.seen] == [r["id"] for r in remote]  # type: ignore[union-attr]


def test_a_refused_connection_is_a_fault_and_the_error_reaches_the_handler(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    tracing.configure()
    caught: list[BaseException] = []

    def body() -> None:
        try:
            requests.get(f"http://127.0.0.1:{refused_port}/closed", timeout=0.5)
        except requests.ConnectionError as exc:
            caught.append(exc)

    _run(monkeypatch, body)
    assert len(caught) == 1
    [remote] = _remote(daemon.wait_for(2)[-1])
    assert remote["fault"] is True
    assert "response" not in remote["http"]


def test_aws_calls_are_never_a_second_http_span(
    backend: str,
    aws: LocalAWS,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in aws.env.items():
        monkeypatch.setenv(name, value)
    tracing.configure()
    ssm = boto3.client("ssm")
    _run(monkeypatch, lambda: ssm.get_parameter(Name="/app/x"))
    invocation = daemon.wait_for(2)[-1]
    assert [e["name"] for e in testing.iter_entities(invocation)] == ["## handler", "ssm"]
    assert _remote(invocation) == []


def test_unsampled_passes_sampled_0_and_records_nothing(
    backend: str, server: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    root, parent = new_trace_id(), new_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled=0")

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        requests.get(f"{server}/ok", timeout=0.5)

    handler({}, testing.FakeContext())
    assert daemon.sync() == []
    [(_, header)] = _Handler.seen
    assert header == f"Root={root};Parent={parent};Sampled=0"


def test_init_time_calls_are_recorded_under_init_and_pass_nothing_on(
    backend: str, server: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    with httpx.Client(timeout=0.5) as client:
        client.get(f"{server}/config?key=abc")  # at import
    root = _run(monkeypatch, lambda: None)
    init = daemon.wait_for(2)[0]
    assert (init["name"], init["trace_id"]) == ("Init", root)
    [remote] = _remote(init)
    assert remote["http"]["request"]["url"] == f"{server}/config"
    assert "traced" not in remote["http"]["request"]
    assert _Handler.seen == [("/config", None)]


def test_the_callers_own_header_is_kept_and_the_query_can_be_recorded(
    backend: str, server: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(http_query=True)
    mine = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
    _run(
        monkeypatch,
        lambda: requests.get(f"{server}/ok?page=2", headers={"x-amzn-trace-id": mine}, timeout=1),
    )
    [remote] = _remote(daemon.wait_for(2)[-1])
    assert remote["http"]["request"]["url"] == f"{server}/ok?page=2"
    assert "traced" not in remote["http"]["request"]
    assert _Handler.seen == [("/ok", mine)]


def test_patch_http_off_records_and_injects_nothing(
    backend: str, server: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(patch_http=False)
    _run(monkeypatch, lambda: requests.get(f"{server}/ok", timeout=1))
    assert _remote(daemon.wait_for(2)[-1]) == []
    assert _Handler.seen == [("/ok", None)]


@pytest.mark.parametrize("exporter", ["xray-udp", "otlp-udp"])
def test_the_call_is_a_remote_host_on_the_service_map(
    backend: str,
    exporter: str,
    server: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tracing.local.collector.otlp import request_documents
    from tracing.local.collector.service_graph import build_map
    from tracing.local.collector.traces import assemble

    tracing.configure(service="checkout", exporter=exporter)
    _run(monkeypatch, lambda: requests.get(f"{server}/missing", timeout=1))
    daemon.sync()
    if exporter == "xray-udp":
        documents = daemon.documents
    else:  # what X-Ray stores of the OTLP spans (the local collector's mapping)
        documents = [doc for _, body in daemon.otlp for doc in request_documents(body)]
    service_map = build_map([assemble(documents)])
    edges = {(e.source[1], e.target): e.stats for e in service_map.edges.values()}
    stats = edges[("checkout", ("remote", "127.0.0.1"))]
    assert (stats.count, stats.rate("errors")) == (1, 1.0)  # the 404


def test_aws_xray_sdks_httplib_patch_never_records_a_second_copy(
    server: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_xray_sdk.core import patch

    monkeypatch.setenv("TRACING_BACKEND", "xray")
    _Handler.seen.clear()
    tracing.configure()
    patch(["httplib"])  # what Powertools' Tracer() applies, among others
    _run(monkeypatch, lambda: urllib3.PoolManager().request("GET", f"{server}/ok", retries=False))
    invocation = daemon.wait_for(2)[-1]
    assert [e["name"] for e in testing.iter_entities(invocation)] == ["## handler", "127.0.0.1"]


def _forwarded(lines: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in lines if name.lower() == "x-forwarded-for"]


@pytest.mark.parametrize("kind", ["HTTPHeaderDict", "requests"])
def test_headers_keep_their_type_and_repeated_fields(
    kind: str,
    backend: str,
    server: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two X-Forwarded-For lines stay two lines, as they are sent untraced."""
    tracing.configure()

    def send() -> None:
        if kind == "HTTPHeaderDict":
            headers = urllib3.HTTPHeaderDict()
            headers.add("X-Forwarded-For", "10.0.0.1")
            headers.add("X-Forwarded-For", "10.0.0.2")
            before = list(headers.items())
            urllib3.PoolManager().request("GET", f"{server}/ok", headers=headers, retries=False)
            assert list(headers.items()) == before  # the caller's headers are not changed
        else:
            with requests.Session() as session:
                session.headers["X-Forwarded-For"] = "10.0.0.1"
                session.get(f"{server}/ok", timeout=1)

    send()  # untraced: outside any invocation
    _run(monkeypatch, send)
    untraced, traced = _Handler.lines
    assert _forwarded(traced) == _forwarded(untraced) != []
    assert [name for name, _ in traced if name.lower() != "x-amzn-trace-id"] == [
        name for name, _ in untraced if name.lower() != "x-amzn-trace-id"
    ]
    assert parse(dict(traced)["X-Amzn-Trace-Id"]) is not None
    [remote] = _remote(daemon.wait_for(2)[-1])
    assert remote["http"]["request"]["traced"] is True


# Each secret holds a character no id or timestamp can (".", "_", "-"), so a
# document contains it only by leaking it (a bare "4242" can be a start_time).
SECRET_URL = "http://alice.q:hunter-2@127.0.0.1:{port}/charge?token=tok_abc123&card=card_4242#frag"


def _no_secret(docs: list[dict[str, Any]]) -> None:
    text = json.dumps(docs)
    for secret in ("hunter-2", "alice.q", "tok_abc123", "card_4242", "token=", "frag"):
        assert secret not in text, (secret, text)


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_no_query_or_credentials_reach_a_document_from_a_failed_call(
    client: str,
    backend: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    refused_port: int,
) -> None:
    """The URL, the call's cause and the handler's cause: scrubbed by one rule."""
    tracing.configure()

    def body() -> None:
        CLIENTS[client](SECRET_URL.format(port=refused_port))  # refused

    with pytest.raises(Exception, match=r"(?i)refused|connect|retries"):
        _run(monkeypatch, body)
    docs = daemon.wait_for(2)
    [remote] = [r for doc in docs for r in _remote(doc)]
    assert remote["http"]["request"]["url"] == f"http://127.0.0.1:{refused_port}/charge"
    assert remote["fault"] is True
    [invocation] = [doc for doc in docs if doc["name"] == "## handler"]
    assert invocation["cause"]["exceptions"]
    _no_secret(docs)


class _ReadOnlyHeaders(dict):  # type: ignore[type-arg]
    """Headers whose copy() refuses, as some frameworks' immutable header views do."""

    def copy(self) -> Any:
        raise TypeError("immutable")


def test_headers_that_cannot_copy_themselves_are_still_traced(
    backend: str, server: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    headers = _ReadOnlyHeaders({"X-Forwarded-For": "10.0.0.1"})
    pool = urllib3.PoolManager()
    root = _run(
        monkeypatch, lambda: pool.request("GET", f"{server}/ok", headers=headers, retries=False)
    )
    [remote] = _remote(daemon.wait_for(2)[-1])
    assert remote["http"]["request"]["traced"] is True
    assert remote["http"]["response"]["status"] == 200
    [(_, header)] = _Handler.seen
    assert parse(header).root == root  # type: ignore[union-attr]
    assert headers == {"X-Forwarded-For": "10.0.0.1"}  # the caller's object untouched
