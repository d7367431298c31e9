"""`LocalLambda` as its documentation uses it: the env mapping and the trace header."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PLACEHOLDER = "Root=...;Parent=...;Sampled=1"


def test_a_placeholder_env_is_a_clear_type_error() -> None:
    # The README's example read `env={...}`: a set holding Ellipsis, not a dict.
    with pytest.raises(TypeError) as info:
        LocalLambda("app.handler", code_dir=FIXTURES, env={...})  # type: ignore[arg-type]
    assert str(info.value) == (
        "LocalLambda(env=...) takes a mapping of variable names to str values, such as "
        "{'QUEUE_URL': url}; got a set ({...} is a set holding Ellipsis: write the variables out)"
    )
    with pytest.raises(TypeError, match=r"'PORT': names and values must be str, got str = int"):
        LocalLambda("app.handler", code_dir=FIXTURES, env={"PORT": 8080})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"'A=B' is not a valid variable"):
        LocalLambda("app.handler", code_dir=FIXTURES, env={"A=B": "1"})


def test_the_env_mapping_of_local_aws_reaches_the_function(
    aws: LocalAWS, daemon: testing.DaemonListener
) -> None:
    queue_url = aws.client("sqs").create_queue(QueueName="local-lambda-api")["QueueUrl"]
    function = LocalLambda(
        "runtime_handlers.environ",
        code_dir=FIXTURES,
        env={**aws.env, "QUEUE_URL": queue_url},
        xray_daemon_address=daemon.address,
    )
    with function:
        seen = function.invoke({}).payload
    assert seen["QUEUE_URL"] == queue_url
    assert seen["AWS_ENDPOINT_URL"] == aws.endpoint


def test_an_unparsable_trace_header_is_named_in_one_warning(
    daemon: testing.DaemonListener, caplog: pytest.LogCaptureFixture
) -> None:
    function = LocalLambda(
        "runtime_handlers.trace_env", code_dir=FIXTURES, xray_daemon_address=daemon.address
    )
    valid = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
    with caplog.at_level(logging.WARNING, logger="tracing.local.runtime"), function:
        results = [
            function.invoke({}, trace_header=header)
            for header in (PLACEHOLDER, PLACEHOLDER, valid, None)
        ]
    assert [r.ok for r in results] == [True] * 4
    assert results[0].payload["trace"] == PLACEHOLDER  # still passed on, as Lambda would
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # once, however many invocations carry it
    assert warnings[0].name == "tracing.local.runtime"
    assert repr(PLACEHOLDER) in warnings[0].getMessage()
    assert "tracing records nothing" in warnings[0].getMessage()
