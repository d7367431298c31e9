"""botocore hooks: AWS calls, the HTTP trace header, and SQS carriers.

botocore gives each client its own *copy* of the session's event emitter, so a
handler registered on a session after a client exists never reaches that client.
To cover clients created before ``configure()`` (module-level clients are the
norm), ``BaseClient._make_api_call`` gets a thin wrapper that registers our
handlers on a client's own emitter the first time it makes a call. The handlers
then run inside botocore's own ``_make_api_call``, after any tracer wrapped around
it (ours, or aws-xray-sdk's botocore patch) has opened the call's subsegment, so
the ``Parent`` they pass on is that subsegment, whatever the wrapping order.

aiobotocore (and so aioboto3) gets the same, around its coroutine
``_make_api_call``, patched when the application imports it.

The ``X-Amzn-Trace-Id`` HTTP header of every call follows the propagation rule
(``_propagation.py``). botocore itself copies ``_X_AMZN_TRACE_ID`` into that
header in Lambda (``add_recursion_detection_header``, a ``before-call`` handler
that steps aside when the header is already set); ours runs first and sets a
header at least as rich: the same ``Root``, the same pass-through keys (Lambda
counts a loop's hops in ``Lineage``), and the call's own subsegment as ``Parent``.
When the rule has nothing to pass on, botocore's own header is left alone. A
header the caller set, in the request or in a ``before-call`` handler of their
own, is never replaced. aws-xray-sdk's botocore patch, when the application
applies it, rewrites the header later, in ``prepare_request`` (without
``Lineage``, and with zero ids when unsampled); a ``before-send`` handler puts
ours back (the header is not signed, so this is safe after signing).
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from ._hooks import ImportHook, when_imported
from ._propagation import outgoing_header
from ._runtime import get_runtime

__all__ = ["HEADER", "install"]

log = logging.getLogger("tracing.aws")

HEADER = "X-Amzn-Trace-Id"
_MARK = "_tracing_hooked"
#: The header our ``before-call`` handler set for the call in flight, for
#: ``before-send`` to restore; ``None`` when we set none (the caller's own).
_SENT: ContextVar[str | None] = ContextVar("tracing_trace_header", default=None)
# What botocore's own handler leaves unquoted (botocore/handlers.py).
_SAFE = "-=;:+&[]{}\"',"

Around = Callable[[Any, str, Any, Callable[[], Any]], Any]
_AROUND: list[Around | None] = [None]


#: The module whose ``HANDLERS`` (operation -> ``before-parameter-build``
#: handler) put the trace context where each service carries it, by botocore
#: service name. Imported on the first call of a client of that service, so a
#: function pays only for the services it calls.
_CARRIERS = {
    "sqs": ".sqs",
    "events": "._eventbridge",
    "stepfunctions": "._stepfunctions",
}
#: Carriers that add nothing under the default settings (Kinesis and DynamoDB
#: carry context only where ``payload_context`` names them; SNS only a
#: ``traceparent``, on the otel backend): their operations get a stand-in that
#: imports the module on the first call that can use it, so a function that
#: writes to DynamoDB without the option never imports it. Checked against the
#: modules' ``HANDLERS`` by the tests.
_OPT_IN_CARRIERS = {
    "sns": ("._sns", ("Publish", "PublishBatch")),
    "kinesis": (".kinesis", ("PutRecord", "PutRecords")),
    "dynamodb": (".dynamodb", ("PutItem", "BatchWriteItem", "TransactWriteItems")),
}

_HOOK: list[ImportHook | None] = [None]
_AIO_HOOK: list[ImportHook | None] = [None]


def install(record_calls: bool) -> None:
    """Wrap botocore's ``_make_api_call`` once; hook every client on its first call.

    Args:
        record_calls: Record every API call as a subsegment (``_aws_calls.py``);
            False where a library's own instrumentation records them.

    Installing twice only updates ``record_calls``. Nothing is imported for it:
    botocore is wrapped now if it is already imported, else when it is (a
    function that never imports boto3 never pays botocore's 100 ms import on
    our account). The recorder is imported on the first API call and the SQS
    carriers (``sqs.py``) on the first SQS client's first call, so a function
    that never calls AWS pays for neither at cold start.
    """
    _AROUND[0] = _record_first_call if record_calls else None
    if _HOOK[0] is None or _HOOK[0] not in sys.meta_path:
        _HOOK[0] = when_imported(
            "botocore.client", _wrap_clients, "AWS calls are not recorded and carry no trace header"
        )
    if _AIO_HOOK[0] is None or _AIO_HOOK[0] not in sys.meta_path:
        _AIO_HOOK[0] = when_imported(
            "aiobotocore.client",
            _wrap_aio_clients,
            "aiobotocore (aioboto3) calls are not recorded and carry no trace header",
        )


def _wrap_clients() -> None:
    from botocore.client import BaseClient

    current = BaseClient._make_api_call  # type: ignore[attr-defined]  # private in the stubs
    if getattr(current, _MARK, False):
        return

    @functools.wraps(current)
    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if _MARK not in self.__dict__:
            _register_once(self)
        token = _SENT.set(None)
        try:
            wrap = _AROUND[0]
            if wrap is None:
                return current(self, operation_name, api_params)
            return wrap(
                self, operation_name, api_params, lambda: current(self, operation_name, api_params)
            )
        finally:
            _SENT.reset(token)

    setattr(_make_api_call, _MARK, True)
    BaseClient._make_api_call = _make_api_call  # type: ignore[attr-defined]


def _wrap_aio_clients() -> None:
    """aiobotocore's client (aioboto3's too): the same hooks, around a coroutine.

    ``AioBaseClient`` overrides ``_make_api_call`` with a coroutine, so the
    wrapper of botocore's never runs for it. Its event emitter awaits handlers
    that return awaitables and calls plain ones as botocore does, so the same
    ``before-call``/``before-send`` handlers and SQS carriers serve it.
    """
    from aiobotocore.client import AioBaseClient

    current = AioBaseClient._make_api_call
    if getattr(current, _MARK, False):
        return

    @functools.wraps(current)
    async def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if _MARK not in self.__dict__:
            _register_once(self)
        token = _SENT.set(None)
        try:
            if _AROUND[0] is None:
                return await current(self, operation_name, api_params)
            from ._aws_calls import record_async_call

            return await record_async_call(
                self, operation_name, api_params, lambda: current(self, operation_name, api_params)
            )
        finally:
            _SENT.reset(token)

    setattr(_make_api_call, _MARK, True)
    AioBaseClient._make_api_call = _make_api_call


def _register_once(client: Any) -> None:
    """Hook a client on its first call; never breaks the user's call."""
    try:
        _register(client)
    except Exception:
        log.debug("tracing: could not hook a botocore client", exc_info=True)


def _register(client: Any) -> None:
    client.__dict__[_MARK] = True
    events = client.meta.events
    # First: before botocore's own recursion-detection handler on the same event.
    events.register_first("before-call", _before_call)
    events.register("request-created", _request_created)
    events.register("before-send", _before_send)
    service = client.meta.service_model.service_name
    carrier = _CARRIERS.get(service)
    if carrier is not None:
        handlers = importlib.import_module(carrier, __package__).HANDLERS
        for operation, handler in handlers.items():
            events.register(f"before-parameter-build.{service}.{operation}", handler)
    elif service in _OPT_IN_CARRIERS:
        module, operations = _OPT_IN_CARRIERS[service]
        for operation in operations:
            events.register(
                f"before-parameter-build.{service}.{operation}",
                _when_carried(service, module, operation),
            )


def _when_carried(service: str, module: str, operation: str) -> Callable[..., None]:
    """The stand-in for an opt-in carrier's handler (see ``_OPT_IN_CARRIERS``)."""
    found: list[Callable[..., Any]] = []

    def handler(**kwargs: Any) -> None:
        if not _carries(service):
            return
        if not found:
            found.append(importlib.import_module(module, __package__).HANDLERS[operation])
        found[0](**kwargs)

    return handler


def _carries(service: str) -> bool:
    """Whether an opt-in carrier (``_OPT_IN_CARRIERS``) can add anything now:
    read per call, so a later ``configure()`` counts. ``tracing.kinesis.inject``
    and the like work by hand whatever this says."""
    runtime = get_runtime()
    if runtime is None:
        return False
    if service == "sns":
        return bool(runtime.backend.traceparent)
    return any(
        t == service or t.startswith(service + ":") for t in runtime.settings.payload_context
    )


def _record_first_call(client: Any, operation: str, params: Any, call: Callable[[], Any]) -> Any:
    """The recorder, imported on the first API call; it then replaces this stand-in."""
    from ._aws_calls import record_call

    if _AROUND[0] is _record_first_call:
        _AROUND[0] = record_call
    return record_call(client, operation, params, call)


def http_value(text: str) -> str:
    """A trace header as botocore writes it in HTTP (``|`` in Lineage becomes ``%7C``)."""
    from urllib.parse import quote

    return quote(text, safe=_SAFE)


def _before_call(params: Any, **_: Any) -> None:
    try:
        headers = params.get("headers") if isinstance(params, dict) else None
        if headers is None or HEADER in headers:
            return  # the caller's own header: never replaced
        header = outgoing_header()
        if header is None:
            return  # nothing to pass on: botocore's own header, if any, stands
        value = http_value(header.to_string())
        headers[HEADER] = value
        _SENT.set(value)
    except Exception:
        log.debug("tracing: could not set the trace header of an AWS call", exc_info=True)


def _request_created(request: Any, **_: Any) -> None:
    # After every before-call handler, before aws-xray-sdk's prepare_request: a
    # header that differs now was set by the caller's own handler, and is theirs.
    value = _SENT.get()
    if value is None:
        return
    try:
        if request.headers.get(HEADER) != value:
            _SENT.set(None)
    except Exception:
        log.debug("tracing: could not read the trace header of an AWS call", exc_info=True)


def _before_send(request: Any, **_: Any) -> None:
    value = _SENT.get()
    if value is None:
        return
    try:
        current = request.headers.get(HEADER)  # bytes once the request is prepared
        if isinstance(current, bytes):
            current = current.decode("latin-1")
        if current != value:
            request.headers[HEADER] = value  # rewritten by a tracer applied after us
    except Exception:
        log.debug("tracing: could not restore the trace header of an AWS call", exc_info=True)
