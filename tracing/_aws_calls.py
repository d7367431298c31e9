"""AWS calls as subsegments: one recorder for every backend.

Every boto3/botocore API call made while something is recorded becomes a core
span named after the service (``sqs``, ``dynamodb``...), ``namespace: "aws"``,
with the ``aws`` block X-Ray's console reads (``operation``, ``region``,
``request_id``, ``retries`` and the resource: ``queue_url``, ``table_name``,
``bucket_name``, ``function_name``, ``topic_arn``, ``stream_name``,
``event_bus_name``, ``state_machine_arn``, ``stream_arn``) and
``http.response.status``.
It is made current for the call, in the backend's library too, so what runs
inside (our SQS trace-header injection, an HTTP instrumentation's span) nests
under it.

Errors follow X-Ray's meaning: a 4xx answer is an ``error`` (``throttle`` too for
429 and AWS's throttling codes), a 5xx answer or no answer at all is a ``fault``.
aws-xray-sdk's patch marks every failed call as a fault, so a missing SSM
parameter looked like an outage; here it is the caller's error, as in the OTel
Collector's mapping. The exception itself propagates unchanged, and nothing of
ours runs unguarded around the user's call.

Calls outside any recorded trace (a worker polling between messages, an
unsampled invocation) are not recorded: recording them would start a trace per
poll.

aws-xray-sdk's own botocore patch, if the application applies it too
(``patch(['botocore'])``), would record every call twice; whichever of the two
wraps the other, only the outer one records (see ``backends/xray.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._runtime import current_node, get_runtime
from ._scope import STACK, ended, open_span
from ._span import CLIENT, Span, exception_cause

__all__ = ["AWS_NAMESPACE", "record_async_call", "record_call"]

log = logging.getLogger("tracing.aws")

AWS_NAMESPACE = "aws"


def _stream_of_arn(value: object) -> str | None:
    """A Kinesis stream's name from its ARN (``arn:...:stream/<name>``)."""
    if isinstance(value, str) and ":stream/" in value:
        return value.rpartition(":stream/")[2]
    return None


def _machine_of_execution(value: object) -> str | None:
    """A state machine's ARN from one of its executions' (``arn:...:execution:<sm>:<id>``)."""
    if isinstance(value, str) and value.count(":") == 7:
        head, found, rest = value.partition(":execution:")
        if found:
            return f"{head}:stateMachine:{rest.partition(':')[0]}"
    return None


def _first_bus(value: object) -> str | None:
    """The event bus of ``PutEvents``: the first entry's (``default`` when it names none).

    Entries may name several buses; the first is the one recorded.
    """
    if isinstance(value, list) and value and isinstance(value[0], dict):
        bus = value[0].get("EventBusName")
        return bus if isinstance(bus, str) and bus else "default"
    return None


_Resource = tuple[str, str, Callable[[object], str | None] | None]

#: Request parameters named in the ``aws`` block (parameter, field, conversion).
#: X-Ray's console reads the first five (aws-xray-sdk's parameter list); the
#: others name the resources of the hops beyond SQS, in the same style.
_RESOURCES: tuple[_Resource, ...] = (
    ("QueueUrl", "queue_url", None),
    ("TableName", "table_name", None),
    ("Bucket", "bucket_name", None),
    ("FunctionName", "function_name", None),
    ("TopicArn", "topic_arn", None),
)
#: The same per service (botocore's endpoint prefix): one look-up for the
#: common calls. Services not named here get every field of ``_RESOURCES``.
_SERVICE_RESOURCES: dict[str, tuple[_Resource, ...]] = {
    "sqs": (("QueueUrl", "queue_url", None),),
    "dynamodb": (("TableName", "table_name", None),),
    "s3": (("Bucket", "bucket_name", None),),
    "lambda": (("FunctionName", "function_name", None),),
    "sns": (("TopicArn", "topic_arn", None),),
    "ssm": (),
    "secretsmanager": (),
    "sts": (),
    "kms": (),
    "kinesis": (("StreamName", "stream_name", None), ("StreamARN", "stream_name", _stream_of_arn)),
    "events": (("Entries", "event_bus_name", _first_bus), ("EventBusName", "event_bus_name", None)),
    "states": (
        ("stateMachineArn", "state_machine_arn", None),
        ("executionArn", "state_machine_arn", _machine_of_execution),
    ),
    "streams.dynamodb": (("StreamArn", "stream_arn", None), ("TableName", "table_name", None)),
}
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)


def record_call(client: Any, operation: str, params: Any, call: Callable[[], Any]) -> Any:
    """Run ``call()`` (one botocore API call) recorded as an AWS subsegment.

    The ``around`` hook of ``_boto_hooks``. Returns what ``call()`` returns and
    raises what it raises.
    """
    begun = _begin(client, operation, params)
    if begun is None:
        return call()
    try:
        result = call()
    except BaseException as exc:
        _close(*begun, exc, None)
        raise
    _close(*begun, None, result)
    return result


async def record_async_call(
    client: Any, operation: str, params: Any, call: Callable[[], Awaitable[Any]]
) -> Any:
    """:func:`record_call` for aiobotocore's coroutine ``_make_api_call`` (aioboto3).

    The span is current in the awaiting task's context only: calls gathered
    concurrently each nest under the span that was current where they started.
    """
    begun = _begin(client, operation, params)
    if begun is None:
        return await call()
    try:
        result = await call()
    except BaseException as exc:
        _close(*begun, exc, None)
        raise
    _close(*begun, None, result)
    return result


def _begin(client: Any, operation: str, params: Any) -> tuple[Span, Any, object] | None:
    """Open the call's span and make it current; ``None`` when it is not recorded."""
    try:
        span = _open(client, operation, params)
    except Exception:
        log.debug("tracing: could not record an AWS call", exc_info=True)
        return None
    if span is None:
        return None
    runtime = get_runtime()
    token = STACK.set((*STACK.get(), span))
    try:
        library = runtime.backend.enter(span) if runtime is not None else None
    except Exception:
        log.debug("tracing: could not make an AWS call current", exc_info=True)
        library = None
    return span, token, library


def _open(client: Any, operation: str, params: Any) -> Span | None:
    parent = current_node()
    if parent is None or not parent.recording:
        return None
    if isinstance(parent, Span) and parent.namespace == AWS_NAMESPACE:
        return None  # a call made while another is in flight (a credential refresh...)
    if getattr(parent, "namespace", None) == AWS_NAMESPACE:
        return None  # aws-xray-sdk's own patch is already recording this call
    meta = client.meta
    service = meta.service_model.endpoint_prefix
    span = open_span(parent, service)
    if span is None:
        return None
    span.kind = CLIENT
    span.namespace = AWS_NAMESPACE
    aws: dict[str, Any] = {"operation": operation, "region": meta.region_name}
    if isinstance(params, dict):
        for parameter, field, convert in _SERVICE_RESOURCES.get(service, _RESOURCES):
            value = params.get(parameter)
            if value is None:
                continue
            if convert is not None:
                value = convert(value)
            if isinstance(value, str) and field not in aws:
                aws[field] = value[:2048]
    span.aws = aws
    return span


def _close(span: Span, token: Any, library: object, exc: BaseException | None, result: Any) -> None:
    # NOTE: restore the context first and guard every step separately: nothing of
    # ours may replace the call's own exception or turn its success into one.
    try:
        STACK.reset(token)
    except Exception:
        STACK.set(tuple(node for node in STACK.get() if node is not span))
    runtime = get_runtime()
    if runtime is not None and library is not None:
        runtime.backend.exit(library)
    try:
        response = result if exc is None else getattr(exc, "response", None)
        metadata = response.get("ResponseMetadata") if isinstance(response, dict) else None
        status = None
        if isinstance(metadata, dict):
            request_id = metadata.get("RequestId")
            if isinstance(request_id, str):
                span.aws["request_id"] = request_id  # type: ignore[index]
            retries = metadata.get("RetryAttempts")
            if isinstance(retries, int) and retries:
                span.aws["retries"] = retries  # type: ignore[index]
            status = metadata.get("HTTPStatusCode")
            if isinstance(status, int):
                span.http = {"response": {"status": status}}
        if exc is not None:
            _failure(span, exc, status, response)
        span.finish()
        ended(span)
    except Exception:
        log.debug("tracing: could not describe an AWS call", exc_info=True)


def _failure(span: Span, exc: BaseException, status: Any, response: Any) -> None:
    if not isinstance(exc, Exception):
        # Cancelled (asyncio's CancelledError: a wait_for timeout, a task.cancel()),
        # interrupted or exiting: the caller stopped waiting, the service did not
        # fail. Described, not marked a fault of the service.
        span.cause = exception_cause(exc)
        return
    cause = exception_cause(exc)
    for entry in cause["exceptions"]:
        entry["remote"] = True  # the error came from the service
    span.cause = cause
    code = None
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        code = response["Error"].get("Code")
    if isinstance(status, int) and 400 <= status < 500:
        span.error = True
        if status == 429 or code in _THROTTLING:
            span.throttle = True
    else:
        span.fault = True
        if code in _THROTTLING:
            span.throttle = True
