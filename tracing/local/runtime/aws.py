"""Local stand-ins for AWS services: moto's real HTTP server on 127.0.0.1.

Used by the demo, the CLI and the tests. Functions reach it through
``AWS_ENDPOINT_URL`` (honoured by boto3 since 1.28), so the same function code
runs unchanged against real AWS.

**Trace context where AWS carries it.** moto ignores the ``X-Amzn-Trace-Id``
HTTP header and every service-to-service trace header. Inside our server (and
only there: a request handled by `LocalAWS`'s server, never moto's in-process
``mock_aws``), a WSGI middleware and a few wrapped moto methods make it carry
them as AWS does:

* **SQS** ``SendMessage`` / ``SendMessageBatch``: the request's header becomes
  each message's ``AWSTraceHeader`` unless the message sets its own; a batch
  entry's own ``MessageSystemAttributes`` are kept (stock moto drops them).
* **EventBridge** ``PutEvents``: each entry's ``TraceHeader``, else the
  request's header, travels with the event (an invalid one is dropped, as
  X-Ray validation does); an SQS target's message gets it as
  ``AWSTraceHeader``. Every accepted entry is recorded in `LocalAWS.journal`
  for local targets (`tracing.local.runtime.event_sources.EventBridgeRule`).
* **SNS** ``Publish`` / ``PublishBatch``: the request's header reaches SQS
  subscribers as ``AWSTraceHeader``; every message is recorded in the journal
  for local Lambda subscribers (`tracing.local.runtime.event_sources.SNSSubscription`).
* **Step Functions** ``StartExecution``: the ``traceHeader`` (else the
  request's header) is kept and returned by ``DescribeExecution``, as AWS does.

Kinesis and DynamoDB carry no trace context in AWS, so none is added here.
boto3 speaks JSON (``X-Amz-Target``) to SQS, EventBridge, Step Functions,
Kinesis and DynamoDB (Streams), and the query protocol (form bodies) to SNS.

The middleware and moto's wrapped methods are `~tracing.local.runtime._moto_trace`;
the journal's records are `~tracing.local.runtime._journal`. Both are
re-exported here.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from tracing.local.runtime._journal import AWSJournal, RecordedEvent, RecordedNotification
from tracing.local.runtime._moto_trace import (
    sqs_trace_header_middleware,
    trace_context_middleware,
)

__all__ = [
    "DUMMY_CREDENTIALS",
    "AWSJournal",
    "LocalAWS",
    "RecordedEvent",
    "RecordedNotification",
    "sqs_trace_header_middleware",
    "trace_context_middleware",
]

#: Credentials moto accepts; never real ones.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

_ACCOUNT = "123456789012"


def _server_class() -> Any:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class TracedMotoServer(ThreadedMotoServer):
        journal: AWSJournal | None = None

        def _server_entry(self) -> None:
            app = trace_context_middleware(
                DomainDispatcherApplication(create_backend_app), self.journal
            )
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return TracedMotoServer


def _TracedMotoServer(**kwargs: Any) -> Any:  # noqa: N802 - a class, built on first use
    return _server_class()(**kwargs)


class LocalAWS:
    """moto's ``ThreadedMotoServer`` on a free loopback port.

    Args:
        region: Region the clients use.

    Attributes:
        journal: What the server received that local targets are delivered
            from: EventBridge events and SNS messages, with their trace headers.

    Example::

        with LocalAWS() as aws:
            sqs = aws.client("sqs")
            env = aws.env  # pass to a function process
    """

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self._server: Any = None
        self.endpoint = ""
        self.journal = AWSJournal()

    def start(self) -> LocalAWS:
        """Start the server; idempotent."""
        if self._server is None:
            import logging

            # werkzeug logs every request at INFO to stderr; keep the demo readable.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)

            server = _TracedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.journal = self.journal
            server.start()
            host, port = server.get_host_and_port()
            self._server = server
            self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process whose boto3 clients should use this server."""
        return {
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` pointed at this server."""
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]  # any service name, checked by boto3
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        )

    def __enter__(self) -> LocalAWS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
