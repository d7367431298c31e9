"""botocore hooks: trace-header injection for SQS producers and consumers.

botocore gives each client its own *copy* of the session's event emitter, so a
handler registered on a session after a client exists never reaches that client.
To cover clients created before ``configure()`` (module-level clients are the
norm), ``BaseClient._make_api_call`` gets a thin wrapper that registers our
handlers on a client's own emitter the first time it makes one of the SQS calls we
care about. The handlers then run inside botocore's own ``_make_api_call``, after
any tracer wrapped around it (aws-xray-sdk's botocore patch) has opened the call's
subsegment, so the injected ``Parent`` is that subsegment, whatever the wrapping
order.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["install"]

log = logging.getLogger("tracing.sqs")

_MARK = "_tracing_sqs_hooked"
_OPERATIONS = frozenset({"SendMessage", "SendMessageBatch", "ReceiveMessage"})


Around = Callable[[Any, str, Any, Callable[[], Any]], Any]
_AROUND: list[Around | None] = [None]


def install(handlers: dict[str, Callable[..., Any]], around: Around | None = None) -> bool:
    """Route ``before-parameter-build.sqs.<Operation>`` events to ``handlers``.

    Args:
        handlers: Operation name (``SendMessage``...) to event handler.
        around: Optional ``around(client, operation, params, call)`` run around
            every API call (the otel backend records CLIENT spans with it).
            Replaces the previous one.

    Returns:
        False when botocore is not importable. Installing twice only updates
        ``around``.
    """
    _AROUND[0] = around
    try:
        from botocore.client import BaseClient
    except ImportError:
        return False
    current = BaseClient._make_api_call  # type: ignore[attr-defined]  # private in the stubs
    if getattr(current, _MARK, False):
        return True

    def register(client: Any) -> None:
        client.__dict__[_MARK] = True
        if client.meta.service_model.service_name != "sqs":
            return
        for operation, handler in handlers.items():
            client.meta.events.register(f"before-parameter-build.sqs.{operation}", handler)

    @functools.wraps(current)
    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if operation_name in _OPERATIONS and _MARK not in self.__dict__:
            try:
                register(self)
            except Exception:  # never break the user's call
                log.debug("tracing: could not hook an SQS client", exc_info=True)
        wrap = _AROUND[0]
        if wrap is None:
            return current(self, operation_name, api_params)
        return wrap(
            self, operation_name, api_params, lambda: current(self, operation_name, api_params)
        )

    setattr(_make_api_call, _MARK, True)
    BaseClient._make_api_call = _make_api_call  # type: ignore[attr-defined]
    return True
