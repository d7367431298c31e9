"""Helpers for testing your own traced handlers.

A real UDP listener standing in for the X-Ray daemon, a checker for the X-Ray
wire rules, and a reset between tests::

    from tracing import testing

    def test_my_handler(monkeypatch):
        testing.reset()
        with testing.DaemonListener() as daemon:
            monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.address)
            tracing.configure(service="orders")
            my_handler({}, testing.FakeContext())
            docs = daemon.wait_for(1)
        assert not testing.check_document(docs[0])
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._runtime import get_runtime, set_runtime
from ._scope import STACK
from .backends.xray_udp import HEADER, MAX_DATAGRAM

__all__ = [
    "DaemonListener",
    "FakeContext",
    "check_document",
    "iter_entities",
    "lambda_sqs_event",
    "receive_messages",
    "reset",
]


def reset() -> None:
    """Forget the configuration and any open spans, so ``configure()`` runs anew.

    Library instrumentation already installed (the botocore patch) stays in place,
    as it would in a real process.
    """
    runtime = get_runtime()
    if runtime is not None:
        runtime.emitter.close()
        close = getattr(runtime.backend, "close", None)
        if close is not None:
            close()
    set_runtime(None)
    STACK.set(())


@dataclass
class FakeContext:
    """A minimal Lambda context with a real deadline.

    Args:
        timeout_ms: Milliseconds left when the context is created.
    """

    timeout_ms: float = 3000.0
    function_name: str = "test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the deadline, never negative."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class DaemonListener:
    """A UDP listener on 127.0.0.1 that decodes X-Ray daemon datagrams.

    Every datagram must be the daemon header line plus one JSON document;
    anything else is kept in :attr:`garbage` so tests can assert on it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._sock.bind((host, port))
        self._sock.settimeout(0.05)
        self.address = "{}:{}".format(*self._sock.getsockname())
        self.datagrams: list[bytes] = []
        self.garbage: list[bytes] = []
        self._docs: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="daemon-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.datagrams.append(data)
                if data.startswith(HEADER):
                    try:
                        doc = json.loads(data[len(HEADER) :])
                    except ValueError:
                        self.garbage.append(data)
                    else:
                        self._docs.append(doc)
                else:
                    self.garbage.append(data)
                self._cond.notify_all()

    @property
    def documents(self) -> list[dict[str, Any]]:
        """Documents received so far, in arrival order."""
        with self._cond:
            return list(self._docs)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` documents arrived; return all of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._docs) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._docs)

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until nothing arrived for ``quiet`` seconds; return all documents."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            with self._cond:
                if len(self.datagrams) == seen:
                    return list(self._docs)
                seen = len(self.datagrams)
            time.sleep(quiet)
        return self.documents

    def clear(self) -> None:
        """Forget everything received."""
        with self._cond:
            self._docs.clear()
            self.datagrams.clear()
            self.garbage.clear()

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def __enter__(self) -> DaemonListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_TRACE_ID = re.compile(r"1-([0-9a-f]{8})-[0-9a-f]{24}\Z")
_ID = re.compile(r"[0-9a-f]{16}\Z")
_KEY = re.compile(r"[A-Za-z0-9_]+\Z")
_THIRTY_DAYS = 30 * 24 * 3600


def iter_entities(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The document and all its nested subsegments, depth first."""
    out = [document]
    for child in document.get("subsegments", ()):
        out.extend(iter_entities(child))
    return out


def check_document(document: dict[str, Any], *, now: float | None = None) -> list[str]:
    """Check one top-level document against the X-Ray wire rules.

    Returns:
        Human-readable violations; empty when the document is valid.
    """
    problems: list[str] = []
    size = len(HEADER) + len(json.dumps(document, separators=(",", ":")).encode())
    if size > MAX_DATAGRAM:
        problems.append(f"document is {size} bytes, over {MAX_DATAGRAM}")
    match = _TRACE_ID.match(str(document.get("trace_id", "")))
    if match is None:
        problems.append(f"bad trace_id {document.get('trace_id')!r}")
    elif (now or time.time()) - int(match.group(1), 16) > _THIRTY_DAYS:
        problems.append("trace_id older than 30 days")
    if document.get("type") == "subsegment" and not _ID.match(str(document.get("parent_id", ""))):
        problems.append("independent subsegment without a valid parent_id")
    for entity in iter_entities(document):
        where = f"entity {entity.get('name')!r}"
        if not _ID.match(str(entity.get("id", ""))):
            problems.append(f"{where}: bad id {entity.get('id')!r}")
        name = entity.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            problems.append(f"{where}: name must be 1-200 characters")
        if not isinstance(entity.get("start_time"), (int, float)):
            problems.append(f"{where}: start_time must be a number")
        has_end = isinstance(entity.get("end_time"), (int, float))
        if has_end == bool(entity.get("in_progress")):
            problems.append(f"{where}: needs exactly one of end_time or in_progress")
        if has_end and entity["end_time"] < entity.get("start_time", 0):
            problems.append(f"{where}: ends before it starts")
        for key, value in (entity.get("annotations") or {}).items():
            if not _KEY.match(key):
                problems.append(f"{where}: annotation key {key!r}")
            if not isinstance(value, (str, int, float, bool)):
                problems.append(f"{where}: annotation {key!r} has type {type(value).__name__}")
        if len(entity.get("annotations") or {}) > 50:
            problems.append(f"{where}: more than 50 annotations")
        for namespace in entity.get("metadata") or {}:
            if namespace.startswith("AWS."):
                problems.append(f"{where}: reserved metadata namespace {namespace!r}")
    return problems


def lambda_sqs_event(
    messages: list[dict[str, Any]],
    queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:queue",
) -> dict[str, Any]:
    """Build the Lambda SQS event for ``ReceiveMessage`` messages, as Lambda does.

    Lambda's event source mapping renames the fields of each received message
    (``MessageId`` -> ``messageId``, ``Attributes`` -> ``attributes``, message
    attribute values to ``stringValue``/``dataType``...). Use it to feed messages
    received from a real (or moto) queue to a consumer handler in tests.
    """
    region = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1"
    records = []
    for message in messages:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message.get("ReceiptHandle", ""),
                "body": message.get("Body", ""),
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": attributes,
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def receive_messages(
    client: Any, queue_url: str, count: int, *, attempts: int = 20
) -> list[dict[str, Any]]:
    """Receive up to ``count`` messages with every attribute, in bounded attempts.

    ``client`` is a boto3 SQS client; each attempt long-polls for one second.
    Pair it with :func:`lambda_sqs_event` to feed a consumer handler.
    """
    messages: list[dict[str, Any]] = []
    for _ in range(attempts):
        reply = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages.extend(reply.get("Messages", []))
        if len(messages) >= count:
            break
    return messages
