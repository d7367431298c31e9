"""The X-Ray trace header for OTel's propagation API, by the library's one rule.

OTel's ``AwsXRayPropagator`` writes ``Root``, ``Parent`` and ``Sampled`` only: the
``Lineage`` key Lambda counts a loop's hops with is dropped, so an instrumented
HTTP client (or any ``propagate.inject``) would defeat Lambda's recursive-loop
detection. This propagator writes what every other carrier of the library writes
(``_propagation.outgoing_header``): the current trace and entity, the sampling
decision, and the invocation's pass-through keys; and nothing during init, where
no trace exists yet. Extraction is AWS's own: that of the propagator it replaces
(``AwsXRayLambdaPropagator``, ``xray-lambda``, falls back to ``_X_AMZN_TRACE_ID``).

AWS's propagator can reach OTel's global textmap at any time: from
``OTEL_PROPAGATORS`` (ADOT's layer sets ``xray`` or ``xray-lambda``), or from
the application's own ``propagate.set_global_textmap(AwsXRayPropagator())``,
before or after ``configure()``, through the module or a name it imported.
:class:`TextmapWatch` swaps it wherever it appears: it wraps
``set_global_textmap`` (a textmap is swapped as it is set) and
``get_global_textmap``, through which ``propagate.inject`` and ``extract`` read
it (a textmap set by a reference taken before the wrap is swapped at its first
use). Both are installed only once OTel's propagation module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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

__all__ = [
    "GatedPropagator",
    "TextmapWatch",
    "XRayTracePropagator",
    "find_aws_xray",
    "is_aws_xray",
    "swap_aws_xray",
]

log = logging.getLogger("tracing.backends.otel")

TRACE_HEADER_KEY = "X-Amzn-Trace-Id"

#: Composites nested deeper than this are left as they are.
_MAX_DEPTH = 4


class XRayTracePropagator(TextMapPropagator):
    """``X-Amzn-Trace-Id`` in and out, ``Lineage`` kept (see the module doc).

    Args:
        aws: The AWS X-Ray propagator this one replaces: extraction is its own.
            A plain ``AwsXRayPropagator`` by default.
    """

    def __init__(self, aws: TextMapPropagator | None = None) -> None:
        self._aws = aws if aws is not None else AwsXRayPropagator()

    @property
    def replaced(self) -> TextMapPropagator:
        """The AWS propagator extraction is delegated to."""
        return self._aws

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


def is_aws_xray(propagator: object) -> bool:
    """AWS's X-Ray propagator, or a subclass (``AwsXRayLambdaPropagator``, ``xray-lambda``)."""
    return any(cls.__name__ == "AwsXRayPropagator" for cls in type(propagator).__mro__)


def _members(textmap: object) -> list[Any] | tuple[Any, ...] | None:
    """A composite's propagators; ``None`` for a single propagator.

    Raises:
        TypeError: A composite whose members cannot be read (logged by the caller).
    """
    if not hasattr(textmap, "_propagators"):
        return None
    members = textmap._propagators
    if not isinstance(members, (list, tuple)):
        raise TypeError(f"{type(textmap).__name__}._propagators is a {type(members).__name__}")
    return members


def find_aws_xray(textmap: object, depth: int = 0) -> TextMapPropagator | None:
    """The first AWS X-Ray propagator in ``textmap`` (itself, or a member), if any."""
    if is_aws_xray(textmap):
        return textmap  # type: ignore[return-value]
    if isinstance(textmap, XRayTracePropagator):  # swapped already (an earlier configure())
        return textmap.replaced
    try:
        members = _members(textmap)
    except TypeError:
        return None
    if members is None or depth >= _MAX_DEPTH:
        return None
    for member in members:
        found = find_aws_xray(member, depth + 1)
        if found is not None:
            return found
    return None


def swap_aws_xray(textmap: TextMapPropagator, depth: int = 0) -> TextMapPropagator:
    """``textmap`` with each AWS X-Ray propagator in it replaced by ours.

    The rest is kept (baggage, W3C, the application's own). Returns ``textmap``
    itself when it holds none.

    Raises:
        TypeError: A composite whose members cannot be read.
    """
    if is_aws_xray(textmap):
        return XRayTracePropagator(textmap)
    members = _members(textmap)
    if members is None or depth >= _MAX_DEPTH:
        return textmap
    swapped = [swap_aws_xray(member, depth + 1) for member in members]
    if all(new is old for new, old in zip(swapped, members, strict=True)):
        return textmap
    from opentelemetry.propagators.composite import CompositePropagator

    return CompositePropagator(swapped)


class TextmapWatch:
    """Keeps AWS's X-Ray propagator out of OTel's global textmap (see the module doc).

    Args:
        module: ``opentelemetry.propagate``.
    """

    def __init__(self, module: Any) -> None:
        self._module = module
        self._get: Callable[[], TextMapPropagator] = module.get_global_textmap
        self._set: Callable[[TextMapPropagator], None] = module.set_global_textmap
        #: The global textmap last checked: the common case is one identity test.
        self._checked: object = None
        self._warned = False

        def get_global_textmap() -> TextMapPropagator:
            textmap = self._get()
            if textmap is self._checked:
                return textmap
            return self._check(textmap)

        def set_global_textmap(http_text_format: TextMapPropagator) -> None:
            self._set(http_text_format)
            self._check(http_text_format)

        get_global_textmap.__doc__ = self._get.__doc__
        set_global_textmap.__doc__ = self._set.__doc__
        self._wrapped_get = get_global_textmap
        self._wrapped_set = set_global_textmap

    def install(self) -> None:
        """Swap what is set now, and watch what is set from now on."""
        module = self._module
        module.get_global_textmap = self._wrapped_get
        module.set_global_textmap = self._wrapped_set
        self._check(self._get())

    def remove(self) -> None:
        """Put OTel's own functions back (unless someone wrapped them since)."""
        module = self._module
        if module.get_global_textmap is self._wrapped_get:
            module.get_global_textmap = self._get
        if module.set_global_textmap is self._wrapped_set:
            module.set_global_textmap = self._set

    def _check(self, textmap: TextMapPropagator) -> TextMapPropagator:
        try:
            swapped = swap_aws_xray(textmap)
        except Exception as exc:
            self._checked = textmap
            self._warn(textmap, exc)
            return textmap
        if swapped is not textmap:
            self._set(swapped)
        self._checked = swapped
        return swapped

    def _warn(self, textmap: object, exc: BaseException) -> None:
        if self._warned:
            return
        self._warned = True
        log.warning(
            "tracing: could not look inside OTel's global propagator (%s: %s); if it holds "
            "AWS's X-Ray propagator, calls made through OTel's propagation API drop the "
            "Lineage key of the trace header (Lambda's recursive-loop detection counts hops "
            "with it). With backend='otel', leave X-Ray propagation to tracing: do not set "
            "AwsXRayPropagator yourself",
            type(textmap).__name__,
            exc,
        )
