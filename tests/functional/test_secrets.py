"""No URL query or credentials reach a document, from any recorder, on both backends.

Every place an error message or a URL is written gets the same input: a URL
with ``user:password@`` and a ``?token=`` query. The invocation's cause, a
``tracing.span``'s, an AWS call's (botocore names the URL it could not reach),
an SQS consumer's, the library's own spans (an OTel span's exception event, an
aws-xray-sdk subsegment's exception and URL), and an exception kept as
metadata (Powertools' ``<method> error``). The X-Ray documents and the
OTLP-over-UDP spans are both read back.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import boto3
import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id

pytestmark = pytest.mark.usefixtures("in_lambda")

# Each secret holds a character that no id, timestamp or base64 text can
# (".", "_", "-"), so a document can only contain it by leaking it: a bare
# "4242" once matched a span's start time in nanoseconds.
SECRET_URL = "https://alice.q:hunter-2@api.example.com/charge?token=tok_abc123&card=card_4242#frag"
SECRETS = ("hunter-2", "alice.q", "tok_abc123", "card_4242", "token=", "#frag")


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _invoke(monkeypatch: pytest.MonkeyPatch, handler: Any) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    with pytest.raises(RuntimeError, match="payment failed"):
        handler({}, testing.FakeContext())


def _library_span(backend: str, name: str) -> Any:
    if backend == "xray":
        from aws_xray_sdk.core import xray_recorder

        return xray_recorder.in_subsegment(name)
    from opentelemetry import trace

    return trace.get_tracer("payments").start_as_current_span(name)


def _every_recorder(backend: str, port: int) -> Any:
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        # Refused; botocore writes the URL in its error.
        endpoint_url=f"http://alice.q:hunter-2@127.0.0.1:{port}",
    )

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        try:
            with tracing.span("charge"):
                raise ValueError(f"card declined at {SECRET_URL}")
        except ValueError as exc:
            tracing.metadata("error", exc)  # an exception object as metadata
        with contextlib.suppress(Exception):  # refused: botocore names the URL
            s3.list_objects_v2(Bucket="receipts", Prefix="token=tok_abc123")
        record = {"messageId": "m-1", "body": "{}", "attributes": {}, "eventSource": "aws:sqs"}
        try:
            with tracing.sqs.consume(record):
                raise KeyError(f"no order behind {SECRET_URL}")
        except KeyError:
            pass
        try:
            with _library_span(backend, "library") as library:
                if backend == "xray":
                    library.put_http_meta("url", SECRET_URL)
                raise OSError(f"timed out calling {SECRET_URL}")
        except OSError:
            pass
        raise RuntimeError(f"payment failed: {SECRET_URL}")

    return handler


@pytest.mark.parametrize("exporter", ["xray-udp", "otlp-udp"])
def test_no_query_or_credentials_in_any_document(
    backend: str,
    exporter: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    refused_port: int,
) -> None:
    tracing.configure(backend=backend, exporter=exporter)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    _invoke(monkeypatch, _every_recorder(backend, refused_port))
    docs = daemon.sync()
    if exporter == "otlp-udp":
        from google.protobuf.json_format import MessageToJson

        spans = daemon.otlp_spans()
        assert spans
        text = "\n".join(MessageToJson(span) for span in spans)
    else:
        text = json.dumps(docs)
    assert "api.example.com/charge" in text  # the URLs are there, scrubbed
    assert f"127.0.0.1:{refused_port}" in text
    for secret in SECRETS:
        assert secret not in text, (secret, text)


def test_http_query_keeps_queries_never_credentials_or_fragments(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, http_query=True)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        raise RuntimeError(f"payment failed: {SECRET_URL}")

    _invoke(monkeypatch, handler)
    [invocation] = [d for d in daemon.sync() if d["name"] == "## handler"]
    [exception] = invocation["cause"]["exceptions"]
    # The query is kept; credentials and the fragment never are.
    assert (
        exception["message"]
        == "payment failed: https://api.example.com/charge?token=tok_abc123&card=card_4242"
    )
