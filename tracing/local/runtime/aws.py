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
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

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


@dataclass(frozen=True)
class RecordedEvent:
    """One EventBridge ``PutEvents`` entry, as the bus received it.

    Attributes:
        bus: The event bus's name (``"default"`` unless the entry named one).
        event: The event as EventBridge delivers it to a Lambda target
            (``version``, ``id``, ``detail-type``, ``source``, ``account``,
            ``time``, ``region``, ``resources``, ``detail``).
        trace_header: The entry's ``TraceHeader``, else the request's
            ``X-Amzn-Trace-Id``; None when neither was a valid X-Ray header.
    """

    bus: str
    event: dict[str, Any]
    trace_header: str | None


@dataclass(frozen=True)
class RecordedNotification:
    """One message published to an SNS topic (``Publish`` or a ``PublishBatch`` entry).

    Attributes:
        topic_arn: The topic.
        message_id: SNS's message id.
        message: The message (for ``MessageStructure="json"``, the whole JSON text).
        subject: The subject, or None.
        message_attributes: ``{name: {"Type": ..., "Value": ...}}`` as SNS keeps them.
        message_structure: ``"json"`` or None.
        timestamp: When it was published, epoch seconds.
        trace_header: The request's ``X-Amzn-Trace-Id``; None when absent or invalid.
    """

    topic_arn: str
    message_id: str
    message: str
    subject: str | None
    message_attributes: dict[str, Any]
    message_structure: str | None
    timestamp: float
    trace_header: str | None


@dataclass
class AWSJournal:
    """What a `LocalAWS` server received that local targets are delivered from.

    Appended to by the server's threads; read with the ``*_since`` methods,
    which return a copy. Kept for the server's life (a local run is short).
    """

    events: list[RecordedEvent] = field(default_factory=list)
    notifications: list[RecordedNotification] = field(default_factory=list)
    #: Step Functions execution ARN -> the trace header it was started with.
    executions: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, item: RecordedEvent | RecordedNotification) -> None:
        with self._lock:
            if isinstance(item, RecordedEvent):
                self.events.append(item)
            else:
                self.notifications.append(item)

    def events_since(self, index: int) -> list[RecordedEvent]:
        """Events recorded from position ``index`` on."""
        with self._lock:
            return self.events[index:]

    def notifications_since(self, index: int) -> list[RecordedNotification]:
        """SNS messages recorded from position ``index`` on."""
        with self._lock:
            return self.notifications[index:]


class _Carry(threading.local):
    """What the request being handled on this server thread carries."""

    active: bool = False
    header: str | None = None
    journal: AWSJournal | None = None
    batch: list[str | None] | None = None


_CARRY = _Carry()
_PATCH_LOCK = threading.Lock()
_patched = False


def _valid(header: str | None) -> str | None:
    """``header`` if X-Ray would accept it, else None (X-Ray drops invalid headers)."""
    from tracing._header import parse

    return header if header and parse(header) is not None else None


def _system_attribute(header: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": header}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _bus_name(name: str | None) -> str:
    if not name:
        return "default"
    return name.rsplit("/", 1)[-1] if name.startswith("arn:") else name


def _recorded_event(backend: Any, entry: dict[str, Any], event_id: str) -> dict[str, Any]:
    import json

    when = entry.get("Time")
    try:
        epoch = float(when) if when is not None else time.time()
    except (TypeError, ValueError):
        epoch = time.time()
    return {
        "version": "0",
        "id": event_id,
        "detail-type": entry.get("DetailType"),
        "source": entry.get("Source"),
        "account": backend.account_id,
        "time": _iso(epoch),
        "region": backend.region_name,
        "resources": list(entry.get("Resources") or []),
        "detail": json.loads(entry.get("Detail") or "{}"),
    }


def _patch_moto() -> None:
    """Wrap the moto methods where AWS carries a trace header between services.

    Idempotent. Every wrapper acts only while our middleware handles a request
    on the current thread (``_CARRY.active``); otherwise it is moto unchanged.
    """
    global _patched
    with _PATCH_LOCK:
        if _patched:
            return
        from moto.events.models import EventsBackend
        from moto.sns.models import Topic
        from moto.sqs.models import SQSBackend

        send_message = SQSBackend.send_message
        send_message_batch = SQSBackend.send_message_batch
        put_events = EventsBackend.put_events
        publish = Topic.publish

        def carried_send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _CARRY.active:
                batch = _CARRY.batch
                header = batch.pop(0) if batch else _CARRY.header
                if header:
                    system = dict(kwargs.get("system_attributes") or {})
                    system.setdefault("AWSTraceHeader", _system_attribute(header))
                    kwargs["system_attributes"] = system
            return send_message(self, *args, **kwargs)

        def carried_send_message_batch(self: Any, queue_name: str, entries: Any) -> Any:
            if not _CARRY.active:
                return send_message_batch(self, queue_name, entries)
            carried: list[str | None] = []
            for entry in entries.values():
                own = (entry.get("MessageSystemAttributes") or {}).get("AWSTraceHeader") or {}
                carried.append(own.get("StringValue") or _CARRY.header)
            _CARRY.batch = carried
            try:
                return send_message_batch(self, queue_name, entries)
            finally:
                _CARRY.batch = None

        def carried_put_events(self: Any, events: list[dict[str, Any]]) -> Any:
            if not _CARRY.active or len(events) > 10:  # moto answers the error
                return put_events(self, events)
            outer = _CARRY.header
            results = []
            try:
                for entry in events:
                    # The entry's TraceHeader wins over the request's header.
                    header = _valid(entry.get("TraceHeader") or outer)
                    _CARRY.header = header
                    [result] = put_events(self, [entry])
                    results.append(result)
                    journal = _CARRY.journal
                    if "EventId" in result and journal is not None:
                        event = _recorded_event(self, entry, result["EventId"])
                        bus = _bus_name(entry.get("EventBusName"))
                        journal.add(RecordedEvent(bus, event, header))
            finally:
                _CARRY.header = outer
            return results

        def carried_publish(self: Any, message: str, **kwargs: Any) -> Any:
            if not _CARRY.active:
                return publish(self, message, **kwargs)
            outer = _CARRY.header
            _CARRY.header = header = _valid(outer)
            try:
                message_id = publish(self, message, **kwargs)
            finally:
                _CARRY.header = outer
            journal = _CARRY.journal
            if journal is not None:
                journal.add(
                    RecordedNotification(
                        topic_arn=self.arn,
                        message_id=message_id,
                        message=message,
                        subject=kwargs.get("subject"),
                        message_attributes=dict(kwargs.get("message_attributes") or {}),
                        message_structure=kwargs.get("message_structure"),
                        timestamp=time.time(),
                        trace_header=header,
                    )
                )
            return message_id

        SQSBackend.send_message = carried_send_message  # type: ignore[method-assign]
        SQSBackend.send_message_batch = carried_send_message_batch  # type: ignore[method-assign]
        EventsBackend.put_events = carried_put_events  # type: ignore[method-assign]
        Topic.publish = carried_publish  # type: ignore[method-assign,assignment]
        _patched = True


def _step_functions(
    app: Any,
    environ: dict[str, Any],
    start_response: Any,
    header: str | None,
    journal: AWSJournal | None,
) -> Any:
    """StartExecution keeps its trace header; DescribeExecution returns it, as AWS does."""
    import io
    import json

    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        request = json.loads(raw or b"{}")
    except ValueError:
        request = {}
    answer: dict[str, Any] = {}
    chunks: list[bytes] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, headers
        return chunks.append

    result = app(environ, capture)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    data = b"".join(chunks)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if journal is not None and answer.get("status", "").startswith("200"):
        try:
            reply = json.loads(data)
        except ValueError:
            reply = None
        if isinstance(reply, dict) and isinstance(request, dict):
            if target.endswith(".StartExecution"):
                trace = request.get("traceHeader") or header
                if trace and reply.get("executionArn"):
                    journal.executions[reply["executionArn"]] = str(trace)
            elif (trace := journal.executions.get(request.get("executionArn", ""))) is not None:
                reply.setdefault("traceHeader", trace)
                data = json.dumps(reply).encode()
    headers = [(k, v) for k, v in answer["headers"] if k.lower() != "content-length"]
    start_response(answer["status"], [*headers, ("Content-Length", str(len(data)))])
    return [data]


_STEP_FUNCTIONS = frozenset(
    {"AWSStepFunctions.StartExecution", "AWSStepFunctions.DescribeExecution"}
)


def trace_context_middleware(app: Any, journal: AWSJournal | None = None) -> Any:
    """WSGI middleware giving moto the trace-header behaviour of AWS (see the module).

    Real SQS stores the ``X-Amzn-Trace-Id`` header of a ``SendMessage`` request
    as the message's ``AWSTraceHeader`` system attribute when the request sets
    none itself. That is how the ``Lineage`` botocore copies from
    ``_X_AMZN_TRACE_ID`` reaches the next function, and how Lambda counts a
    loop's hops even with no tracer at all. The same header travels through
    SNS and EventBridge to their SQS targets; ``journal`` (when given) records
    what local targets are delivered from.
    """
    from urllib.parse import unquote

    _patch_moto()

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        raw = environ.get("HTTP_X_AMZN_TRACE_ID")
        header = unquote(raw) if raw else None
        if environ.get("HTTP_X_AMZ_TARGET", "") in _STEP_FUNCTIONS:
            return _step_functions(app, environ, start_response, header, journal)
        _CARRY.active, _CARRY.header, _CARRY.journal = True, header, journal
        try:
            return app(environ, start_response)
        finally:
            _CARRY.active, _CARRY.header, _CARRY.journal, _CARRY.batch = False, None, None, None

    return wrapped


#: The former name, from when only SQS carried the header.
sqs_trace_header_middleware = trace_context_middleware


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
