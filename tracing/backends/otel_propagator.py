"""The X-Ray trace header for OTel's propagation API, by the library's one rule.

OTel's ``AwsXRayPropagator`` writes ``Root``, ``Parent`` and ``Sampled`` only: the
``Lineage`` key Lambda counts a loop's hops with is dropped, so an instrumented
HTTP client (or any ``propagate.inject``) would defeat Lambda's recursive-loop
detection. This propagator writes what every other carrier of the library writes
(``_propagation.outgoing_header``): the current trace and entity, the sampling
decision, and the invocation's pass-through keys; and nothing during init, where
no trace exists yet. Extraction is AWS's own.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from .._propagation import outgoing_header

__all__ = ["GatedPropagator", "XRayTracePropagator"]

TRACE_HEADER_KEY = "X-Amzn-Trace-Id"


class XRayTracePropagator(TextMapPropagator):
    """``X-Amzn-Trace-Id`` in and out, ``Lineage`` kept (see the module doc)."""

    def __init__(self) -> None:
        self._aws = AwsXRayPropagator()

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        return self._aws.extract(carrier, context, getter)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        header = outgoing_header()
        if context is None:
            # The current context: exactly what the core's carriers write (and
            # nothing at all where the rule passes nothing on, as during init).
            if header is not None:
                setter.set(carrier, TRACE_HEADER_KEY, header.to_string())
            return
        # An explicit context: AWS's header for it, with the invocation's keys.
        written: dict[str, Any] = {}
        self._aws.inject(written, context)
        value = written.get(TRACE_HEADER_KEY)
        if not isinstance(value, str):
            return
        if header is not None and header.extra:
            value += "".join(f";{key}={val}" for key, val in header.extra)
        setter.set(carrier, TRACE_HEADER_KEY, value)

    @property
    def fields(self) -> set[str]:
        return {TRACE_HEADER_KEY}


class GatedPropagator(TextMapPropagator):
    """Another propagator (W3C ``traceparent``), silent where the rule passes nothing.

    During init (and outside any trace) the current OTel context names the init
    window's placeholder trace, which is never sent as such: passing it on would
    strand the consumer in a trace that does not exist.
    """

    def __init__(self, inner: TextMapPropagator) -> None:
        self._inner = inner

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        return self._inner.extract(carrier, context, getter)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        if context is None and outgoing_header() is None:
            return
        self._inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return set(self._inner.fields)
