"""orders-notifier: tells the customer that their order is stored.

Invoked by an EventBridge rule on ``OrderStored`` events. EventBridge passes the
event's trace header to Lambda, so this invocation is part of the trace of the
request that placed the order: API -> queue -> worker -> event bus -> here.
"""

from __future__ import annotations

from typing import Any

import tracing

tracing.configure(service="orders-notifier")


@tracing.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Notify the customer of one stored order."""
    sku = event["detail"]["sku"]
    with tracing.span("notify customer", sku=sku):
        return {"notified": sku}
