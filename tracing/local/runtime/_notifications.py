"""SNS subscriptions and EventBridge rules with a function target, locally.

`SNSSubscription` and `EventBridgeRule` deliver what a `LocalAWS` recorded in
its journal (published messages, put events) to a `LocalLambda`, one per
asynchronous invocation; their documented home, and what each hop does, is
`tracing.local.runtime.event_sources`.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from tracing._header import TraceHeader, new_id, new_trace_id, parse
from tracing.local.runtime._streams import _new_header
from tracing.local.runtime.event_source import (
    MAX_HOPS,
    Delivery,
    describe_delivery,
    lineage_count,
    next_lineage,
)

if TYPE_CHECKING:
    from tracing.local.runtime.aws import LocalAWS, RecordedEvent, RecordedNotification
    from tracing.local.runtime.local_lambda import LocalLambda

__all__ = ["EventBridgeRule", "SNSSubscription"]


def _async_invoke(
    function: LocalLambda, event: Any, header: str, retries: int, delivery: Delivery
) -> None:
    for _ in range(retries + 1):
        result = function.invoke(event, trace_header=header)
        delivery.invocations.append((result, header))
        delivery.events.append(event)
        if result.ok:
            return


class SNSSubscription:
    """A function subscribed to an SNS topic of a `LocalAWS`.

    Messages published to the topic after this object is made are delivered,
    one per invocation, in the event Lambda builds, with the ``Publish``
    request's trace header continued and its ``Lineage`` counted.

    Args:
        function: The function to invoke.
        aws: The `LocalAWS` the topic lives in (its journal records publishes).
        topic_arn: The topic.
        max_hops: Invocations of the function in one chain before the next is stopped.
        maximum_retry_attempts: Retries of a failed invocation (0-2; Lambda's default 2).
    """

    def __init__(
        self,
        function: LocalLambda,
        aws: LocalAWS,
        topic_arn: str,
        *,
        max_hops: int = MAX_HOPS,
        maximum_retry_attempts: int = 2,
    ) -> None:
        self.function, self.aws, self.topic_arn = function, aws, topic_arn
        self.max_hops, self.maximum_retry_attempts = max_hops, maximum_retry_attempts
        self.subscription_arn = f"{topic_arn}:{uuid.uuid4()}"
        self._cursor = len(aws.journal.notifications)

    def deliver(self, *, max_invocations: int = 100) -> Delivery:
        """Deliver every message published since the last call, including those
        published meanwhile by the function itself (or ``max_invocations``)."""
        delivery = Delivery()
        while len(delivery.invocations) < max_invocations:
            fresh = self.aws.journal.notifications_since(self._cursor)
            if not fresh:
                break
            for note in fresh:
                self._cursor += 1
                if note.topic_arn == self.topic_arn:
                    self._one(note, delivery)
                if len(delivery.invocations) >= max_invocations:
                    break
        return delivery

    def _one(self, note: RecordedNotification, delivery: Delivery) -> None:
        arn = self.function.function_arn
        event = self.event(note)
        count, pairs = lineage_count(note.trace_header, arn)
        if count >= self.max_hops:
            delivery.stopped.append(event)  # RecursiveInvocationException
            return
        upstream = parse(note.trace_header)
        root = upstream.root if upstream is not None else new_trace_id()
        parent = upstream.parent if upstream is not None and upstream.parent else new_id()
        sampled = upstream.sampled if upstream is not None and upstream.sampled else "1"
        extra = [
            (k, v) for k, v in (upstream.extra if upstream is not None else ()) if k != "Lineage"
        ]
        extra.append(("Lineage", next_lineage(pairs, arn, count)))
        header = TraceHeader(root, parent, sampled, tuple(extra)).to_string()
        _async_invoke(self.function, event, header, self.maximum_retry_attempts, delivery)

    def event(self, note: RecordedNotification) -> dict[str, Any]:
        """The Lambda event for one published message."""
        message = note.message
        if note.message_structure == "json":
            try:
                parts = json.loads(message)
                message = parts.get("lambda", parts.get("default", message))
            except (ValueError, AttributeError):
                pass
        region = self.topic_arn.split(":")[3]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(note.timestamp))
        millis = int(note.timestamp * 1000) % 1000
        attributes = {
            name: {"Type": value.get("Type"), "Value": value.get("Value")}
            for name, value in note.message_attributes.items()
            if isinstance(value, dict)
        }
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": self.subscription_arn,
                    "Sns": {
                        "Type": "Notification",
                        "MessageId": note.message_id,
                        "TopicArn": note.topic_arn,
                        "Subject": note.subject,
                        "Message": message,
                        "Timestamp": f"{stamp}.{millis:03d}Z",
                        "SignatureVersion": "1",
                        "Signature": base64.b64encode(b"local, unsigned").decode(),
                        "SigningCertUrl": (
                            f"https://sns.{region}.amazonaws.com/SimpleNotificationService-local.pem"
                        ),
                        "UnsubscribeUrl": (
                            f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
                            f"&SubscriptionArn={self.subscription_arn}"
                        ),
                        "MessageAttributes": attributes,
                    },
                }
            ]
        }

    def describe(self, delivery: Delivery) -> str:
        """One line per invocation and stop, for a console."""
        return describe_delivery(delivery)


class EventBridgeRule:
    """A rule on an event bus of a `LocalAWS` whose target is a function.

    Events put on the bus after this object is made and matching ``pattern``
    (EventBridge's event-pattern syntax, matched by moto's matcher) are
    delivered, one per invocation, with the event's trace header unchanged.

    Args:
        function: The function to invoke.
        aws: The `LocalAWS` whose ``PutEvents`` are delivered.
        pattern: The event pattern, a dict (``{"source": ["orders"]}``).
        bus: The event bus's name.
        maximum_retry_attempts: Retries of a failed invocation (0-2; Lambda's default 2).
    """

    def __init__(
        self,
        function: LocalLambda,
        aws: LocalAWS,
        *,
        pattern: dict[str, Any],
        bus: str = "default",
        maximum_retry_attempts: int = 2,
    ) -> None:
        from moto.events.models import EventPattern

        self.function, self.aws, self.bus = function, aws, bus
        self.pattern, self.maximum_retry_attempts = pattern, maximum_retry_attempts
        self._matcher = EventPattern.load(json.dumps(pattern))
        self._cursor = len(aws.journal.events)

    def matches(self, recorded: RecordedEvent) -> bool:
        """Whether the rule delivers this recorded event."""
        return recorded.bus == self.bus and bool(self._matcher.matches_event(dict(recorded.event)))  # type: ignore[arg-type]

    def deliver(self, *, max_invocations: int = 100) -> Delivery:
        """Deliver every matching event put since the last call, including those put
        meanwhile by the function itself (or ``max_invocations``)."""
        delivery = Delivery()
        while len(delivery.invocations) < max_invocations:
            fresh = self.aws.journal.events_since(self._cursor)
            if not fresh:
                break
            for recorded in fresh:
                self._cursor += 1
                if self.matches(recorded):
                    header = recorded.trace_header or _new_header()
                    event = dict(recorded.event)
                    retries = self.maximum_retry_attempts
                    _async_invoke(self.function, event, header, retries, delivery)
                if len(delivery.invocations) >= max_invocations:
                    break
        return delivery

    def describe(self, delivery: Delivery) -> str:
        """One line per invocation, for a console."""
        return describe_delivery(delivery)
