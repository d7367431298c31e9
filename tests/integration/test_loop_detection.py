"""Lambda's recursive-loop detection, locally: tracing must not defeat it.

A function that sends each message back to its own queue, delivered by the local
SQS event source mapping (``tracing.local.runtime.event_source``), which counts the hops
in ``Lineage`` as Lambda does. With tracing (either backend) the loop must stop
at the same hop as without it.
"""

from __future__ import annotations

import pytest

from tracing import testing
from tracing._header import new_id
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS
from tracing.local.runtime.event_source import MAX_HOPS, Delivery, SQSEventSource

from .conftest import FIXTURES

pytestmark = pytest.mark.integration


def _loop(aws: LocalAWS, daemon: testing.DaemonListener, backend: str, **env: str) -> Delivery:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=f"loop-{new_id()}")["QueueUrl"]
    function = LocalLambda(
        "loop_app.handler",
        code_dir=FIXTURES,
        function_name="loop-app",
        env={**aws.env, "QUEUE_URL": url, "TRACING_BACKEND": backend, **env},
        xray_daemon_address=daemon.address,
    )
    with function:
        sqs.send_message(QueueUrl=url, MessageBody="start")  # from outside: no chain yet
        return SQSEventSource(function, sqs, url).deliver(max_batches=3 * MAX_HOPS)


def test_a_loop_stops_at_the_same_hop_with_and_without_tracing(
    aws: LocalAWS, daemon: testing.DaemonListener, backend: str
) -> None:
    traced = _loop(aws, daemon, backend)
    untraced = _loop(aws, daemon, backend, TRACING_DISABLED="1")
    assert all(result.ok for result, _ in traced.invocations)
    assert len(untraced.invocations) == MAX_HOPS
    assert len(untraced.stopped) == 1
    assert len(traced.invocations) == len(untraced.invocations)
    assert len(traced.stopped) == 1
    counts = [header.rpartition(":")[2] for _, header in traced.invocations]
    assert counts == [str(n) for n in range(1, MAX_HOPS + 1)]
    # Traced all along: each hop's processing joined the previous hop's trace.
    documents = daemon.sync()
    consumers = [
        d for d in documents if d["name"] == "loop-app" and "MessageId" in d.get("annotations", {})
    ]
    assert len(consumers) == MAX_HOPS - 1  # the first message came from outside: untraced
