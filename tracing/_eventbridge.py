"""Trace context through EventBridge: ``PutEvents`` entries' ``TraceHeader``.

Every entry of an instrumented ``PutEvents`` call that has no ``TraceHeader``
gets one, by the propagation rule (``_propagation.py``): evaluated inside the
call, so ``Parent`` is the PutEvents call's own subsegment, and ``Lineage`` and
the other pass-through keys of the invocation are kept. EventBridge passes it
to the rule's targets (a Lambda function's ``_X_AMZN_TRACE_ID``, an SQS
target's ``AWSTraceHeader``...). Nothing is written where the rule passes
nothing (outside a trace, during init).

Limits, so that a valid request never becomes invalid:

* ``TraceHeader`` is at most 500 characters (botocore's service model). A
  longer header (only possible with unusually long pass-through keys) is not
  written: the entry's ``TraceHeader`` overrides the HTTP ``X-Amzn-Trace-Id``
  header, which carries the full value, so a shortened one would be worse than
  none. One debug line per call says so.
* The 256 KB entry size does not count ``TraceHeader`` ("Calculating PutEvents
  event entry size" counts ``Time``, ``Source``, ``DetailType``, ``Detail`` and
  ``Resources`` only), so adding it never pushes an entry over.

A ``TraceHeader`` the caller set (whatever its value) is never replaced, and
the caller's entry dicts are never mutated: an entry that gets a header is a
copy, in a new ``Entries`` list.

How this differs from others: OpenTelemetry's botocore instrumentation has no
EventBridge extension (only the HTTP header goes out). Datadog rewrites each
entry's ``Detail`` JSON to add a ``_datadog`` key, changing the user's payload
(and skipping non-JSON details). Here the field AWS reserves for it is used, with the full rule
(``Lineage`` kept, the call's own subsegment as ``Parent``) and the limits
respected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ._propagation import outgoing_header

__all__ = ["HANDLERS", "MAX_TRACE_HEADER", "with_trace_header"]

log = logging.getLogger("tracing.aws")

_KEY = "TraceHeader"
#: ``PutEventsRequestEntry.TraceHeader`` length (botocore: min 1, max 500).
MAX_TRACE_HEADER = 500


def with_trace_header(entries: list[Any], value: str) -> list[Any] | None:
    """A new ``Entries`` list where each entry without ``TraceHeader`` has ``value``.

    Args:
        entries: The caller's entries; never mutated.
        value: The header to add.

    Returns:
        The new list, or ``None`` when no entry changes (all set by the caller,
        or ``value`` does not fit the 500-character limit).
    """
    if not value or len(value) > MAX_TRACE_HEADER:
        return None
    changed = False
    result: list[Any] = []
    for entry in entries:
        if isinstance(entry, Mapping) and _KEY not in entry:
            result.append({**entry, _KEY: value})
            changed = True
        else:  # the caller's own value wins; a malformed entry is botocore's to report
            result.append(entry)
    return result if changed else None


def _on_put_events(params: dict[str, Any], **_: Any) -> None:
    try:
        entries = params.get("Entries")
        if not isinstance(entries, list):
            return
        header = outgoing_header()
        if header is None:
            return
        value = header.to_string()
        if len(value) > MAX_TRACE_HEADER:
            log.debug(
                "tracing: PutEvents trace header is %d characters, over EventBridge's %d; "
                "the entries carry none (the HTTP header still does)",
                len(value),
                MAX_TRACE_HEADER,
            )
            return
        new = with_trace_header(entries, value)
        if new is not None:
            params["Entries"] = new
    except Exception:
        log.debug("tracing: could not add a trace header to PutEvents entries", exc_info=True)


#: botocore operation -> ``before-parameter-build`` handler (``_boto_hooks``).
HANDLERS: dict[str, Callable[..., Any]] = {"PutEvents": _on_put_events}
