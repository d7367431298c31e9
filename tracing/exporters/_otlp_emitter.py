"""What the OTLP emitters share: the resource, the instrumentation scope, links."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from .._otlp import Request, resource

__all__ = ["MAX_LINKED", "OTLPBase", "default_resource"]

#: Most core spans with pending links (a span that is never emitted leaves its
#: entry behind; the oldest go first).
MAX_LINKED = 10_000


def default_resource(service: str) -> dict[str, Any]:
    """``service.name``, ``OTEL_RESOURCE_ATTRIBUTES``, and Lambda's own attributes.

    The Lambda attributes are those ADOT's layer sets (``cloud.*``, ``faas.*``),
    so traces read the same whichever of the two sent them.
    """
    attributes: dict[str, Any] = {}
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attributes[unquote(key.strip())] = unquote(value.strip())
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if function:
        attributes.update(
            {
                "cloud.provider": "aws",
                "cloud.platform": "aws_lambda",
                "faas.name": function,
            }
        )
        for key, variable in (
            ("cloud.region", "AWS_REGION"),
            ("faas.version", "AWS_LAMBDA_FUNCTION_VERSION"),
            ("faas.instance", "AWS_LAMBDA_LOG_STREAM_NAME"),
        ):
            found = os.environ.get(variable)
            if found:
                attributes[key] = found
    attributes["service.name"] = service
    return attributes


class OTLPBase:
    """The resource and link table of an OTLP emitter."""

    otlp = True

    def __init__(self, resource_attributes: Mapping[str, Any]) -> None:
        self.resource_attributes = dict(resource_attributes)
        self.request = Request(resource(self.resource_attributes), "tracing")
        #: span id -> linked (trace id, span id) contexts, consumed when written.
        self.links: dict[str, list[tuple[str, str]]] = {}

    def link(self, span_id: str, trace_id: str | None, other_id: str | None) -> None:
        """Note an OTel link from core span ``span_id`` to another context."""
        if trace_id is None or other_id is None:
            return
        links = self.links
        if len(links) >= MAX_LINKED and span_id not in links:
            links.pop(next(iter(links)))
        links.setdefault(span_id, []).append((trace_id, other_id))

    def add_resource(self, attributes: Mapping[str, Any]) -> None:
        """Take a tracer provider's resource (its attributes win, except an
        ``unknown_service`` name, OTel's placeholder when none was set)."""
        merged = {**self.resource_attributes, **attributes}
        name = str(attributes.get("service.name", ""))
        if not name or name.startswith("unknown_service"):
            merged["service.name"] = self.resource_attributes.get("service.name", name)
        self.resource_attributes = merged
        self.request = Request(resource(merged), "tracing")
