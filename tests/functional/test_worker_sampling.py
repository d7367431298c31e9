"""Sampling outside Lambda, on both backends, through a real UDP listener.

Where no decision arrives with the work (a polling worker's message without a
usable header, a handler called outside Lambda without ``_X_AMZN_TRACE_ID``) the
rules decide, as X-Ray's SDKs do: by default the first unit each second and 5%
of the rest. A producer's decision and Lambda's are kept as they are.

The bands are statistically safe for the draws' real randomness: 2,000 draws at
5% are 100 +- 9.7 (plus one reservoir unit a second), at 50% 1,000 +- 22.4; each
band is more than four standard deviations wide on both sides.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id, parse

MESSAGES = 2000


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _rules(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / "sampling-rules.json"
    path.write_text(json.dumps(document))
    return str(path)


def _never(tmp_path: Path, rules: list[dict[str, Any]] | None = None) -> str:
    """A rules file whose default records nothing."""
    return _rules(
        tmp_path,
        {"version": 2, "rules": rules or [], "default": {"fixed_target": 0, "rate": 0}},
    )


def _message(number: int, header: str | None = None) -> dict[str, Any]:
    """A boto3 ``ReceiveMessage`` message."""
    attributes = {"AWSTraceHeader": header} if header else {}
    return {"MessageId": f"m-{number}", "Body": "{}", "Attributes": attributes}


def _drain(count: int, header: Any = None) -> None:
    """Process ``count`` messages as a worker does, ten a batch, in about 2 s."""
    for batch in range(0, count, 10):
        for number in range(batch, min(batch + 10, count)):
            with tracing.sqs.consume(_message(number, header() if header else None)):
                pass
        time.sleep(0.01)  # receive_message's round trip, roughly


def _recorded(daemon: testing.DaemonListener) -> list[dict[str, Any]]:
    documents = daemon.sync()
    assert daemon.dropped in (0, None), "the listener lost datagrams: counts would be wrong"
    return [
        d
        for d in documents
        if str((d.get("annotations") or {}).get("MessageId", "")).startswith("m-")
    ]


def test_a_worker_records_what_x_rays_default_rule_allows(
    daemon: testing.DaemonListener, backend: str
) -> None:
    tracing.configure(service="orders-worker", backend=backend)
    _drain(MESSAGES)
    recorded = _recorded(daemon)
    assert 60 <= len(recorded) <= 160, len(recorded)
    # Each one a new trace of its own, valid, and the first message took the reservoir.
    assert len({d["trace_id"] for d in recorded}) == len(recorded)
    assert recorded[0]["annotations"]["MessageId"] == "m-0"
    for document in recorded:
        assert document["name"] == "orders-worker"
        assert "parent_id" not in document
        assert testing.check_document(document) == []


def test_a_worker_follows_a_rules_file(
    daemon: testing.DaemonListener, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = {
        "version": 2,
        "rules": [
            # An HTTP rule: a message has no path, so it does not apply.
            {"description": "api", "url_path": "/api/*", "fixed_target": 0, "rate": 1},
            {"description": "other service", "service_name": "billing", "fixed_target": 0,
             "rate": 1},
            {"description": "workers", "service_name": "orders-*", "fixed_target": 0, "rate": 0.5},
        ],
        "default": {"fixed_target": 0, "rate": 0},
    }  # fmt: skip
    monkeypatch.setenv("TRACING_SAMPLING_RULES", _rules(tmp_path, rules))
    tracing.configure(service="orders-worker", backend=backend)
    _drain(MESSAGES)
    recorded = _recorded(daemon)
    assert 850 <= len(recorded) <= 1150, len(recorded)
    assert all(testing.check_document(d) == [] for d in recorded[:50])


def test_configure_names_the_rules_file_too(
    daemon: testing.DaemonListener, backend: str, tmp_path: Path
) -> None:
    tracing.configure(
        service="orders-worker",
        backend=backend,
        sampling_rules=_rules(tmp_path, {"version": 1, "default": {"fixed_target": 0, "rate": 1}}),
    )
    _drain(100)
    assert len(_recorded(daemon)) == 100


def test_messages_with_a_sampled_header_are_always_recorded(
    daemon: testing.DaemonListener, backend: str, tmp_path: Path
) -> None:
    tracing.configure(service="orders-worker", backend=backend, sampling_rules=_never(tmp_path))

    def header() -> str:
        return f"Root={new_trace_id()};Parent={new_id()};Sampled=1"

    _drain(300, header)
    _drain(300)  # without one: the rules say never
    recorded = _recorded(daemon)
    assert len(recorded) == 300
    assert all("parent_id" in d for d in recorded)


def test_an_unsampled_worker_message_passes_its_own_new_trace_on_unsampled(
    daemon: testing.DaemonListener, backend: str, tmp_path: Path
) -> None:
    tracing.configure(service="orders-worker", backend=backend, sampling_rules=_never(tmp_path))
    params: dict[str, Any] = {"QueueUrl": "https://sqs/queue", "MessageBody": "next hop"}
    with tracing.sqs.consume(_message(1)) as span:
        assert span.recording is False
        trace_id = tracing.current_span().trace_id
        with tracing.span("inside") as inner:
            assert inner.recording is False
            tracing.sqs.inject(params)
    sent = params["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
    header = parse(sent)
    assert header is not None
    assert (header.root, header.sampled) == (trace_id, "0")
    assert header.parent is not None
    # A new trace, made now, not a zero or borrowed one.
    assert abs(int(header.root.split("-")[1], 16) - time.time()) < 60
    with tracing.sqs.consume(_message(2)):
        assert tracing.current_span().trace_id != trace_id  # each message its own
    assert daemon.sync() == []


@pytest.mark.usefixtures("in_lambda")
def test_inside_lambda_nothing_is_sampled_away(
    daemon: testing.DaemonListener,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACING_SAMPLING_RULES", _never(tmp_path))
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        for number in range(5):
            with tracing.sqs.consume(_message(number)) as record:
                assert record.recording

    for _ in range(20):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", testing.trace_header())
        handler({}, testing.FakeContext())
    invocations = [d for d in daemon.sync() if d.get("name") == "## handler"]
    assert len(invocations) == 20
    for invocation in invocations:
        records = [s for s in invocation.get("subsegments", []) if s["name"] == "SQS message"]
        assert len(records) == 5


def test_a_handler_outside_lambda_is_sampled_by_its_http_request(
    daemon: testing.DaemonListener, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = [{"description": "orders", "http_method": "POST", "url_path": "/orders/*",
              "fixed_target": 0, "rate": 1}]  # fmt: skip
    tracing.configure(service="api", backend=backend, sampling_rules=_never(tmp_path, rules))
    seen: list[tuple[bool, str | None]] = []

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        span = tracing.current_span()
        params: dict[str, Any] = {"QueueUrl": "https://sqs/queue", "MessageBody": "x"}
        tracing.sqs.inject(params)
        seen.append(
            (span.recording, params["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"])
        )

    handler({"httpMethod": "POST", "path": "/orders/7", "headers": {}}, None)
    handler({"httpMethod": "GET", "path": "/health", "headers": {}}, None)
    handler({"requestContext": {"http": {"method": "POST", "path": "/orders/8"}}}, None)
    [orders, health, orders_v2] = seen
    assert orders[0] is True
    assert orders_v2[0] is True
    assert health[0] is False
    unsampled = parse(health[1])
    assert unsampled is not None
    assert unsampled.sampled == "0"
    assert unsampled.parent
    documents = daemon.sync()
    assert {d["trace_id"] for d in documents} == {
        parse(orders[1]).root,  # type: ignore[union-attr]
        parse(orders_v2[1]).root,  # type: ignore[union-attr]
    }
    assert unsampled.root not in {d["trace_id"] for d in documents}


def test_a_handler_outside_lambda_with_a_header_keeps_its_decision(
    daemon: testing.DaemonListener, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(service="api", backend=backend, sampling_rules=_never(tmp_path))

    @tracing.handler
    def handler(event: Any, context: Any) -> bool:
        return tracing.current_span().recording

    monkeypatch.setenv("_X_AMZN_TRACE_ID", testing.trace_header())
    assert [handler({}, None) for _ in range(10)] == [True] * 10
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    assert [handler({}, None) for _ in range(10)] == [False] * 10
    assert len(daemon.sync()) == 10


def test_with_xray_otlp_centralized_rules_come_signed_from_x_rays_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No daemon after its end of support: with exporter="xray-otlp", sampling_rules="xray"
    asks X-Ray's API itself, SigV4-signed (an endpoint that checks every signature)."""
    from tests._sigv4_endpoint import ACCESS_KEY, SECRET_KEY, SigV4Endpoint
    from tracing import _sampling
    from tracing._runtime import get_runtime
    from tracing._sampling_xray import CentralizedSampler, SignedSamplingAPI

    rule = {
        "RuleName": "nothing",
        "Priority": 1,
        "FixedRate": 0.0,
        "ReservoirSize": 0,
        "ServiceName": "*",
        "ServiceType": "*",
        "Host": "*",
        "HTTPMethod": "*",
        "URLPath": "*",
        "ResourceARN": "*",
        "Version": 1,
        "Attributes": {},
    }
    answers = {
        "/GetSamplingRules": {"SamplingRuleRecords": [{"SamplingRule": rule}]},
        "/SamplingTargets": {"SamplingTargetDocuments": [], "UnprocessedStatistics": []},
    }
    with SigV4Endpoint(json_answers=answers) as xray:
        for key, value in {
            "AWS_ENDPOINT_URL_XRAY": xray.url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }.items():
            monkeypatch.setenv(key, value)
        tracing.configure(service="orders-worker", exporter="xray-otlp", sampling_rules="xray")
        runtime = get_runtime()
        assert runtime is not None
        sampler = _sampling._build(runtime)
        assert isinstance(sampler, CentralizedSampler)
        api = sampler._api
        assert isinstance(api, SignedSamplingAPI)
        # The poller's two steps, run here rather than on its thread.
        checked = CentralizedSampler(api, sampler._fallback, start=False)
        assert checked.decide("orders-worker") is True  # before rules: the default rule
        now = time.time()
        assert checked.refresh_rules(now)
        assert [r.name for r in checked.rules] == ["nothing"]
        assert not any(checked.decide("orders-worker") for _ in range(50))
        checked.report(now + 60)
        assert xray.refused == []
        assert [path for path, _ in xray.api_calls][:1] == ["/GetSamplingRules"]
        assert "/SamplingTargets" in [path for path, _ in xray.api_calls]
        sampler.close()
