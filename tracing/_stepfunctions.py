"""Trace context through Step Functions: ``StartExecution``'s ``traceHeader``.

``StartExecution`` and ``StartSyncExecution`` calls without a ``traceHeader``
get one, by the propagation rule (``_propagation.py``): evaluated inside the
call, so ``Parent`` is the call's own subsegment, with ``Lineage`` and the other
pass-through keys of the invocation. Nothing is written where the rule passes
nothing (outside a trace, during init). A ``traceHeader`` the caller set, even
an empty one, is never replaced.

The field is at most 256 ASCII characters (botocore's service model). Step
Functions prefers the HTTP ``X-Amzn-Trace-Id`` header when both are present,
and that header (``_boto_hooks.py``) carries the full value; the body field is
the fallback for a request whose HTTP header is lost on the way. So when the
full header is too long, the field gets the longest valid form that fits:
``Root``, ``Parent`` and ``Sampled`` plus ``Lineage`` (Lambda's loop count),
else ``Root``, ``Parent`` and ``Sampled`` alone (74 characters, which always
fit). It is never cut mid-field, never a value the API would refuse.

How this differs from others: OpenTelemetry's botocore instrumentation records
the state machine's ARN but propagates nothing beyond the HTTP header. Datadog
adds a ``_datadog`` key to the execution's ``input`` JSON, changing the user's
payload (and skipping non-JSON or non-object input). Here the field AWS made for
it is used, with the full rule and the limit respected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._header import TraceHeader
from ._propagation import outgoing_header

__all__ = ["HANDLERS", "MAX_TRACE_HEADER", "fit"]

log = logging.getLogger("tracing.aws")

_KEY = "traceHeader"
#: ``StartExecution.traceHeader`` length (botocore: max 256, ASCII).
MAX_TRACE_HEADER = 256


def fit(header: TraceHeader, limit: int = MAX_TRACE_HEADER) -> str | None:
    """The richest form of ``header`` within ``limit`` characters of ASCII.

    The full header; else ``Root``, ``Parent``, ``Sampled`` and ``Lineage``; else
    ``Root``, ``Parent`` and ``Sampled``. ``None`` when even that does not fit or
    is not ASCII (never for a header the propagation rule makes).
    """
    value = header.to_string()
    if len(value) <= limit and value.isascii():
        return value
    lineage = tuple((k, v) for k, v in header.extra if k.lower() == "lineage")
    for extra in (lineage, ()) if lineage else ((),):
        value = TraceHeader(header.root, header.parent, header.sampled, extra).to_string()
        if len(value) <= limit and value.isascii():
            log.debug(
                "tracing: trace header shortened to %d characters for Step Functions' %d",
                len(value),
                limit,
            )
            return value
    return None


def _on_start(params: dict[str, Any], **_: Any) -> None:
    try:
        if _KEY in params:
            return  # the caller's own value: never replaced
        header = outgoing_header()
        if header is None:
            return
        value = fit(header)
        if value is not None:
            params[_KEY] = value
    except Exception:
        log.debug("tracing: could not add a trace header to a Step Functions start", exc_info=True)


#: botocore operation -> ``before-parameter-build`` handler (``_boto_hooks``).
HANDLERS: dict[str, Callable[..., Any]] = {
    "StartExecution": _on_start,
    "StartSyncExecution": _on_start,
}
