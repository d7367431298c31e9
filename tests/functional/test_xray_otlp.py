"""exporter="xray-otlp": signed OTLP/HTTP to X-Ray's OTLP endpoint, checked on the wire.

The endpoint (``tests/_sigv4_endpoint.py``) recomputes every request's SigV4
signature with botocore's own signer and decodes the body with the real
``opentelemetry-proto`` package; ``AWS_ENDPOINT_URL_XRAY`` points the exporter
at it, as botocore's endpoint resolution says it should.
"""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.session import Session
from hypothesis import given, settings
from hypothesis import strategies as st

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing._runtime import get_runtime
from tracing.exporters.xray_otlp import (
    XRayOTLPEmitter,
    configured_region,
    resolve_endpoint,
    sign,
)
from tracing.exporters.xray_udp import UDPEmitter
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

from .._sigv4_endpoint import ACCESS_KEY, SECRET_KEY, SigV4Endpoint

FIXTURES = Path(__file__).resolve().parents[1] / "integration" / "fixtures"


@pytest.fixture
def xray(monkeypatch: pytest.MonkeyPatch) -> Iterator[SigV4Endpoint]:
    """The checking endpoint, with the exporter's environment pointed at it."""
    with SigV4Endpoint() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_XRAY", endpoint.url)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield endpoint


def _header() -> tuple[str, str]:
    root = new_trace_id()
    return root, f"Root={root};Parent={new_id()};Sampled=1"


def _attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute in span.attributes:
        value = attribute.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            out[attribute.key] = [v.string_value for v in value.array_value.values]
        else:
            out[attribute.key] = getattr(value, kind)
    return out


def _traced_handler() -> Any:
    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        with tracing.span("charge", tier="gold") as span:
            span.put_metadata("order", {"sku": "b-1"})
        return "ok"

    return handler


# -- the signature and the endpoint, against botocore ------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=2000),
    path=st.sampled_from(["/v1/traces", "/prefix/v1/traces", "/a b/v1/traces", "/~x/v1/traces"]),
    host=st.sampled_from(
        [
            "https://xray.us-east-1.amazonaws.com",
            "https://xray.cn-north-1.amazonaws.com.cn:443",
            "http://127.0.0.1:4566",
            "http://[::1]:8080",
        ]
    ),
    region=st.sampled_from(["us-east-1", "eu-central-2", "cn-north-1"]),
    token=st.none() | st.text("ABCDEFabcdef0123456789/+=", min_size=1, max_size=80),
    gzip=st.booleans(),
    seconds=st.integers(0, 2_000_000_000),
)
def test_our_signature_is_botocores_on_generated_requests(
    body: bytes,
    path: str,
    host: str,
    region: str,
    token: str | None,
    gzip: bool,
    seconds: int,
) -> None:
    url = host + path
    now = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    headers = {"Content-Type": "application/x-protobuf"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    ours = sign(url, headers, body, region, ACCESS_KEY, SECRET_KEY, token, now)
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "xray", region)
    import botocore.auth

    # botocore's add_auth, at our instant (it reads the clock through this name).
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: now.replace(tzinfo=None)  # type: ignore[assignment]
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = original
    assert ours.authorization == request.headers["Authorization"]
    assert ours.amz_date == request.headers["X-Amz-Date"]


@pytest.mark.parametrize(
    ("env", "region"),
    [
        ({}, "us-east-1"),
        ({}, "eu-west-3"),
        ({}, "cn-north-1"),
        ({}, "us-gov-west-1"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}, "us-east-1"),
        ({"AWS_ENDPOINT_URL_XRAY": "http://127.0.0.1:4567/"}, "us-east-1"),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_XRAY": "http://h:2"},
            "us-east-1",
        ),
        (
            {"AWS_ENDPOINT_URL_XRAY": "http://h:2", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "us-east-1",
        ),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "us-east-1"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "eu-west-1"),
    ],
)
def test_the_endpoint_is_the_one_a_botocore_xray_client_resolves(
    env: dict[str, str], region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_XRAY",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = Session().create_client("xray", region_name=region)
    assert resolve_endpoint(Session(), region) == client.meta.endpoint_url


def test_the_region_is_aws_region_then_botocores_chain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = ap-south-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert configured_region() == "ap-south-2"  # the profile's
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert configured_region() == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    assert configured_region() == "eu-north-1"  # Lambda's and ECS's own variable first
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert configured_region() is None


def test_the_endpoint_refuses_a_tampered_body_or_a_wrong_secret(xray: SigV4Endpoint) -> None:
    url = f"{xray.url}/v1/traces"
    now = datetime.datetime.now(datetime.timezone.utc)
    headers = {"Content-Type": "application/x-protobuf"}

    def post(body: bytes, signed_body: bytes, secret: str) -> int:
        signed = sign(url, headers, signed_body, "us-east-1", ACCESS_KEY, secret, None, now)
        connection = http.client.HTTPConnection("127.0.0.1", int(xray.url.rsplit(":", 1)[1]))
        try:
            connection.request(
                "POST",
                "/v1/traces",
                body=body,
                headers={
                    **headers,
                    "X-Amz-Date": signed.amz_date,
                    "Authorization": signed.authorization,
                },
            )
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    assert post(b"", b"", SECRET_KEY) == 200  # an empty request is a valid one
    assert post(b"\x0a\x00", b"", SECRET_KEY) == 403  # the body changed after signing
    assert post(b"", b"", "not-the-secret") == 403
    assert (
        xray.refused
        == ["The request signature we calculated does not match the signature you provided"] * 2
    )


# -- the exporter, in an invocation and in a worker -------------------------------------


@pytest.mark.usefixtures("in_lambda")
@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_an_invocations_spans_arrive_signed_with_their_annotations(
    backend: str, xray: SigV4Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, exporter="xray-otlp", service="orders")
    handler = _traced_handler()
    roots = []
    for _ in range(2):
        root, header = _header()
        roots.append(root)
        monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
        assert handler({}, testing.FakeContext()) == "ok"
    assert len(xray.received) == 2  # posted before each handler returned, one request each
    assert xray.refused == []
    for received in xray.received:
        assert received.access_key == ACCESS_KEY
        assert received.signed_headers == ["content-type", "host", "x-amz-date"]
        assert received.headers["Content-Type"] == "application/x-protobuf"
        resource = {
            a.key: a.value.string_value
            for a in received.request.resource_spans[0].resource.attributes
        }
        assert resource["service.name"] == "orders"
        assert resource["cloud.platform"] == "aws_lambda"
    spans = list(xray.spans())
    charges = [s for s in spans if s.name == "charge"]
    assert len(charges) == 2
    attributes = _attributes(charges[0])
    assert attributes["tier"] == "gold"
    assert attributes["aws.xray.annotations"] == ["tier"]
    assert json.loads(attributes["order"]) == {"sku": "b-1"}
    # The X-Ray trace id's 16 bytes: a W3C id whose first 4 bytes are the epoch.
    sent = sorted({s.trace_id.hex() for s in spans if s.name == "## handler"})
    assert sent == sorted(root[2:10] + root[11:] for root in roots)
    assert {s.name for s in spans} >= {"Init", "## handler", "charge"}
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.emitter.failed == 0  # type: ignore[attr-defined]


@pytest.mark.usefixtures("in_lambda")
def test_a_session_token_is_sent_and_signed(
    xray: SigV4Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FQoGZXIvYXdzEXAMPLE//token=")
    tracing.configure(exporter="xray-otlp")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", _header()[1])
    assert _traced_handler()({}, testing.FakeContext()) == "ok"
    [received] = xray.received
    assert received.headers["X-Amz-Security-Token"] == "FQoGZXIvYXdzEXAMPLE//token="
    assert "x-amz-security-token" in received.signed_headers


@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_a_worker_outside_lambda_sends_each_unit_when_it_ends(
    backend: str, xray: SigV4Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, exporter="xray-otlp", service="worker")
    message = {"MessageId": "m-1", "ReceiptHandle": "r", "Body": "{}", "Attributes": {}}
    with tracing.sqs.consume(message), tracing.span("work", step="one"):
        pass
    assert len(xray.received) == 1  # the unit ended: its spans went at once
    # @tracing.handler called outside Lambda, given a sampled trace (without one,
    # the sampling rules decide, and the consumer just took this second's reservoir).
    root, header = _header()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    assert _traced_handler()({}, None) == "ok"
    assert len(xray.received) == 2
    assert xray.refused == []
    first, second = (
        {
            span.name: span
            for scope in r.request.resource_spans[0].scope_spans
            for span in scope.spans
        }
        for r in xray.received
    )
    assert _attributes(first["work"])["step"] == "one"
    assert first["work"].trace_id == first["worker"].trace_id  # a new trace, its segment
    assert first["worker"].kind == 5  # CONSUMER: the message's processing
    assert second["charge"].trace_id.hex() == root[2:10] + root[11:]


# -- failures: explained, logged once, counted, never the handler's ----------------------


@pytest.mark.usefixtures("in_lambda")
def test_transaction_search_off_is_explained_once(
    xray: SigV4Endpoint, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    xray.answer = (
        400,
        json.dumps(
            {
                "message": "The OTLP API is supported with CloudWatch Logs as a Trace Segment "
                "Destination. Please enable the CloudWatch Logs destination for your traces "
                "using the UpdateTraceSegmentDestination API"
            }
        ).encode(),
    )
    tracing.configure(exporter="xray-otlp")
    handler = _traced_handler()
    for _ in range(3):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", _header()[1])
        assert handler({}, testing.FakeContext()) == "ok"
    assert len(xray.received) == 3  # signed correctly, refused by "X-Ray"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "Transaction Search" in message
    assert "aws xray update-trace-segment-destination --destination CloudWatchLogs" in message
    assert "\n" not in message
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.emitter.failed >= 3  # type: ignore[attr-defined]


@pytest.mark.usefixtures("in_lambda")
def test_a_refused_signature_is_logged_once(
    xray: SigV4Endpoint, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    tracing.configure(backend="otel", exporter="xray-otlp")
    handler = _traced_handler()
    for _ in range(3):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", _header()[1])
        assert handler({}, testing.FakeContext()) == "ok"
    assert len(xray.refused) == 3
    assert xray.received == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "HTTP 403" in warnings[0]
    assert "signature we calculated does not match" in warnings[0]


@pytest.mark.usefixtures("in_lambda")
def test_an_unreachable_endpoint_never_breaks_the_handler(
    xray: SigV4Endpoint,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    refused_port: int,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_XRAY", f"http://127.0.0.1:{refused_port}")
    tracing.configure(exporter="xray-otlp")

    @tracing.handler
    def failing(event: Any, context: Any) -> None:
        raise KeyError("boom")

    for _ in range(2):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", _header()[1])
        assert _traced_handler()({}, testing.FakeContext()) == "ok"
        with pytest.raises(KeyError, match="boom"):
            failing({}, testing.FakeContext())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert f"127.0.0.1:{refused_port}" in warnings[0]
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.emitter.failed > 0  # type: ignore[attr-defined]


@pytest.mark.usefixtures("in_lambda")
def test_no_credentials_sends_nothing_and_says_so_once(
    xray: SigV4Endpoint, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    tracing.configure(exporter="xray-otlp")
    handler = _traced_handler()
    for _ in range(2):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", _header()[1])
        assert handler({}, testing.FakeContext()) == "ok"
    assert xray.received == []
    assert xray.refused == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "no AWS credentials" in warnings[0]


def test_refreshable_credentials_refresh(xray: SigV4Endpoint) -> None:
    xray.secrets = {f"AKID{n}": f"secret-{n}" for n in range(4)}
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        issued.append(f"AKID{len(issued)}")
        # Expiring within botocore's mandatory refresh window: renewed at every read.
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
        return {
            "access_key": issued[-1],
            "secret_key": f"secret-{len(issued) - 1}",
            "token": "session",
            "expiry_time": expiry.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    session = Session()
    session.get_credentials = lambda: credentials  # type: ignore[method-assign]
    emitter = XRayOTLPEmitter({"service.name": "svc"}, "us-east-1", session=session)
    try:
        for _ in range(2):
            emitter.send(
                {
                    "name": "svc",
                    "id": new_id(),
                    "trace_id": new_trace_id(),
                    "start_time": 1.0,
                    "end_time": 2.0,
                }
            )
            emitter.flush()
    finally:
        emitter.close()
    assert xray.refused == []
    keys = [received.access_key for received in xray.received]
    assert len(keys) == 2
    assert keys[0] != keys[1]  # a new key for the second export
    assert set(keys) <= set(issued)


# -- configuration ---------------------------------------------------------------------


def test_no_region_is_refused_at_configure_or_falls_back_to_udp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="AWS_REGION"):
        tracing.configure(exporter="xray-otlp")
    testing.reset()
    monkeypatch.setenv("TRACING_EXPORTER", "xray-otlp")
    tracing.configure()
    runtime = get_runtime()
    assert runtime is not None
    assert isinstance(runtime.emitter, UDPEmitter)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "xray-otlp" in errors[0]


def test_configure_imports_no_botocore() -> None:
    from ..unit.test_cold_start import _run

    result = _run(
        "",
        'tracing.configure(exporter="xray-otlp")',
        after="""
        report["emitter"] = type(tracing._runtime.get_runtime().emitter).__name__
        report["botocore"] = sorted(m for m in sys.modules if m.split(".")[0] == "botocore")
        """,
    )
    assert result["report"] == {"emitter": "XRayOTLPEmitter", "botocore": []}
    assert "tracing.exporters.xray_otlp" in result["added"]


# -- through the real Lambda runtime client --------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_the_real_runtime_sends_signed_spans(
    backend: str, aws: LocalAWS, daemon: testing.DaemonListener
) -> None:
    with SigV4Endpoint() as xray:
        function = LocalLambda(
            "traced_app.handler",
            code_dir=FIXTURES,
            function_name="traced-app",
            env={
                **aws.env,
                "TRACING_BACKEND": backend,
                "TRACING_EXPORTER": "xray-otlp",
                "AWS_ENDPOINT_URL_XRAY": xray.url,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_SESSION_TOKEN": "lambda-session-token",
            },
            xray_daemon_address=daemon.address,
        )
        with function:
            root, header = _header()
            result = function.invoke({}, trace_header=header)
            assert result.ok, result.error
            assert xray.wait_for(1)  # posted before the runtime was told the result
            second = function.invoke({}, trace_header=_header()[1])
            assert second.ok, second.error
            xray.wait_for(2)
            logs = function.logs
    assert xray.refused == [], logs
    assert len(xray.received) == 2, logs
    assert all(r.headers["X-Amz-Security-Token"] == "lambda-session-token" for r in xray.received)
    spans = list(xray.spans())
    names = {span.name for span in spans}
    assert {"Init", "load config", "## handler", "work"} <= names
    load_config = next(s for s in spans if s.name == "load config")
    assert _attributes(load_config)["aws.xray.annotations"] == ["source"]
    assert load_config.trace_id.hex() == root[2:10] + root[11:]  # init work, first trace
    assert daemon.documents == []  # nothing went over UDP
