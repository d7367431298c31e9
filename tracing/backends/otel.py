"""Backend ``otel``: the same traces, through the OpenTelemetry API users already use.

The core keeps owning the Lambda lifecycle (init window, invocation, SQS
consumer, deadline guard). This backend connects OpenTelemetry to it both ways:

* **Core to OTel.** While a core span is current (an invocation, an SQS consumer
  segment, a ``tracing.span``, the init window), the OTel context holds a proxy
  for it (``otel_bridge.CoreSpanProxy``), so
  ``trace.get_tracer(...).start_as_current_span`` in user code gets the right
  trace id and parent, and records nothing in unsampled invocations.
* **The user's OTel span, seen by the core.** When the user's own OTel span is
  current, ``current()`` hands it to the core as an ``OTelSpan`` (a
  ``ForeignSpan``): ``tracing.annotate``, ``tracing.current_span()`` and
  ``tracing.span`` work inside it, and ``tracing.span`` still yields our own
  ``Span``, never the OTel one.
* **OTel to core.** A span processor of ours receives every span that ends. It is
  converted to an X-Ray entity (the Collector's mapping, see ``otel_xray.py``)
  and nested under its parent: a core span, or an OTel span that is still open
  (held until that one ends). So OTel spans land in the *same* documents as on
  the xray backend, and spans ended during init are held in the Init buffer and
  re-stamped into the first invocation's trace like any other init work.
* **AWS calls** are recorded by the core (``_aws_calls.py``), as on every
  backend, and made current in the OTel context for the call; or, with
  ``botocore_instrumentation="contrib"``, by ``opentelemetry-instrumentation-botocore``
  as CLIENT spans, converted like any OTel span.

Nothing here imports aws-xray-sdk.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import NonRecordingSpan

from .._hooks import ImportHook, when_imported
from .._runtime import Runtime
from .._scope import Scope
from .._span import Span
from .otel_bridge import (
    BridgeProcessor,
    CoreSpanProxy,
    InitRootSampler,
    OTelSpan,
    UnsampledParentSampler,
    XRayIdGenerator,
)

if TYPE_CHECKING:
    from . import ForeignSpan
    from .otel_propagator import TextmapWatch

__all__ = ["CoreSpanProxy", "OTelBackend"]

log = logging.getLogger("tracing.backends.otel")

#: Marks a ``TracerProvider`` this backend made.
_MADE_HERE = "_tracing_made_here"
#: The instrumentation scope of OTel's ``AwsLambdaInstrumentor`` spans.
_LAMBDA_SCOPE = "opentelemetry.instrumentation.aws_lambda"


class OTelBackend:
    """Installs the bridge into a ``TracerProvider`` and instruments botocore."""

    name = "otel"
    traceparent = True

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.provider: Any = settings.extra.get("tracer_provider")
        if self.provider is not None and not hasattr(self.provider, "add_span_processor"):
            raise ValueError(
                "tracer_provider must be an OpenTelemetry SDK TracerProvider "
                f"(opentelemetry.sdk.trace.TracerProvider), got {type(self.provider).__name__}"
            )
        self.botocore = settings.botocore_instrumentation
        self.processor = BridgeProcessor(runtime, self._emit_root)
        self.proxy = CoreSpanProxy(runtime)
        self._context_variable = _context_variable()
        self._init_token: object | None = None
        self._textmap_hook: ImportHook | None = None
        self._textmap_watch: TextmapWatch | None = None
        #: True once aws-xray-sdk is connected (Powertools' Tracer uses it).
        self.sdk = False
        self._sdk_hook: ImportHook | None = None

    def install(self) -> None:
        provider = self.provider
        if provider is None and isinstance(trace.get_tracer_provider(), TracerProvider):
            provider = trace.get_tracer_provider()  # already global
            if getattr(provider, _MADE_HERE, False):
                # Made by an earlier configuration in this process (OTel sets the
                # global provider once): its propagators come with it again.
                self._install_textmap()
        if provider is None:
            sampler = None
            if self.runtime.in_lambda:
                from opentelemetry.sdk.trace.sampling import ParentBased

                sampler = ParentBased(
                    root=InitRootSampler(), local_parent_not_sampled=UnsampledParentSampler()
                )
            provider = TracerProvider(
                sampler=sampler,
                id_generator=XRayIdGenerator(),
                # Resource(...) rather than Resource.create(...): create() runs the
                # resource detectors in a thread pool (threads at configure(), and
                # up to a few ms of cold start).
                resource=Resource({"service.name": self.runtime.settings.service}),
            )
            setattr(provider, _MADE_HERE, True)
            self._install_globals(provider)
        provider.add_span_processor(self.processor)
        self.provider = provider
        resource = getattr(provider, "resource", None)
        emitter = self.runtime.emitter
        update = getattr(emitter, "add_resource", None)
        made_here = getattr(provider, _MADE_HERE, False)
        if update is not None and resource is not None and not made_here:
            # The OTLP exporters take the application's (or ADOT's) resource.
            update(resource.attributes)
        if not made_here:
            self._beside(provider, emitter)
        if self.botocore == "tracing" and _botocore_instrumented():
            # ADOT's layer (or the application) applied OTel's botocore
            # instrumentation already: its CLIENT spans are the AWS calls.
            log.info("tracing: AWS calls are recorded by OTel's botocore instrumentation")
            self.botocore = "applied"
        if self.botocore == "contrib":
            from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

            BotocoreInstrumentor().instrument(  # type: ignore[no-untyped-call]
                tracer_provider=provider
            )
        # aws-xray-sdk, if the application uses it (Powertools' Tracer does): its
        # subsegments land in the same trees, as on the xray backend.
        self._sdk_hook = when_imported(
            "aws_xray_sdk.core", self._connect_sdk, "its subsegments are sent apart"
        )
        init = self.runtime.init
        if init is not None:
            # Work done at import runs in the main thread's context; the first
            # invocation runs there too and replaces this with its own span.
            self._init_token = otel_context.attach(trace.set_span_in_context(self.proxy))

    def _connect_sdk(self) -> None:
        from . import xray_sdk

        xray_sdk.connect(self.runtime.settings.service)
        self.sdk = True

    def _beside(self, provider: Any, emitter: Any) -> None:
        """Another set-up's provider (ADOT's): no span exported twice, Lineage kept."""
        from ..exporters.provider import gate_exporters

        attach = getattr(emitter, "attach", None)
        gates = gate_exporters(provider, everything=attach is not None)
        if attach is not None:
            attach(gates or [], getattr(provider, "resource", None))
        elif gates:
            log.info(
                "tracing: the tracer provider's X-Ray exporter is gated: tracing sends "
                "these spans in its own traces (exporter='provider' leaves it in charge)"
            )
        self._textmap_hook = when_imported(
            "opentelemetry.propagate",
            self._watch_textmap,
            "calls made through OTel's propagation API may drop the Lineage key",
        )

    def _install_globals(self, provider: TracerProvider) -> None:
        # Only where the application has not chosen its own provider already.
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        self._install_textmap()

    def _install_textmap(self) -> None:
        # OTel's propagation API (about 2 ms of imports) is set up when something
        # imports it: an instrumentation, or user code calling propagate.inject.
        self._textmap_hook = when_imported(
            "opentelemetry.propagate",
            self._own_textmap,
            "calls made through OTel's propagation API carry no X-Ray trace header",
        )

    def _own_textmap(self) -> None:
        install_textmap()
        self._watch_textmap()

    def _watch_textmap(self) -> None:
        """AWS's X-Ray propagator swapped for ours in OTel's global textmap, now and later."""
        from opentelemetry import propagate

        from .otel_propagator import TextmapWatch

        if self._textmap_watch is None:
            self._textmap_watch = TextmapWatch(propagate)
            self._textmap_watch.install()

    def close(self) -> None:
        """Leave the OTel context as it was before ``install`` (tests, reconfiguration)."""
        token, self._init_token = self._init_token, None
        if token is not None:
            self.exit(token)
        for hook in (self._textmap_hook, self._sdk_hook):
            if hook is not None:
                hook.remove()
        self._textmap_hook = self._sdk_hook = None
        watch, self._textmap_watch = self._textmap_watch, None
        if watch is not None:
            watch.remove()

    def flush(self, timeout_s: float) -> bool:
        try:
            return bool(self.provider.force_flush(int(timeout_s * 1000)))
        except Exception:
            log.debug("tracing: force_flush failed", exc_info=True)
            return False

    # -- the seam ------------------------------------------------------------------

    def current(self) -> ForeignSpan | None:
        """The user's own recording OTel span, when it is the current one."""
        span = trace.get_current_span()
        if isinstance(span, NonRecordingSpan) or not span.is_recording():
            return None  # ours (a CoreSpanProxy), or nothing recorded here
        return OTelSpan(span, self.processor)

    def enter(self, span: Span) -> object:
        """Make ``span`` current in the OTel context: the proxy, unless it already is."""
        proxy = self.proxy
        current = self._current_span()
        if span is self.runtime.invocation:
            if self.sdk:
                from . import xray_sdk

                xray_sdk.absorb_outer(span)  # Powertools' handler decorator around ours
            if current is not None and current is not proxy:
                self._adopt(current, span)
        if current is proxy:
            return None  # the proxy resolves to the top of the core's stack
        return otel_context.attach(trace.set_span_in_context(proxy))

    def _adopt(self, current: Any, invocation: Span) -> None:
        """One invocation span: the Lambda instrumentation's (ADOT's) gives way to ours.

        OTel's ``AwsLambdaInstrumentor`` wraps the handler outside
        ``tracing.handler``, so its span would be a second invocation span
        around ours. Its attributes (``faas.*``, ``cloud.*``) move to ours, as
        metadata, where X-Ray puts span attributes; the span itself is never
        exported.
        """
        scope = getattr(current, "instrumentation_scope", None)
        if getattr(scope, "name", None) != _LAMBDA_SCOPE or not current.is_recording():
            return
        try:
            self.processor.replace(current.get_span_context().span_id)
            for key, value in (getattr(current, "attributes", None) or {}).items():
                invocation.put_metadata(key, value)
        except Exception:
            log.debug("tracing: could not adopt the Lambda instrumentation's span", exc_info=True)

    def _current_span(self) -> Any:
        # NOTE: trace.get_current_span() is three calls deep; this runs for every
        # invocation and tracing.span. Read OTel's context variable directly when
        # the SDK keeps it where 1.x does, else take the public way.
        variable, key = self._context_variable
        if variable is None:
            return trace.get_current_span()
        return variable.get().get(key)

    def exit(self, token: object) -> None:
        """Undo :meth:`enter`."""
        if token is None:
            return
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:
            log.debug("tracing: OTel context detach failed", exc_info=True)

    def sent(self, scope: Scope) -> None:
        self.processor.forget(scope)
        self.proxy.forget()  # its cache must not keep the sent tree alive
        if self.sdk:
            from . import xray_sdk

            xray_sdk.forget()

    def open_entities(self, scope: Scope) -> dict[str, list[dict[str, Any]]]:
        """Open OTel entities under the core spans of ``scope`` (for timeouts)."""
        ids: set[str] = set()
        stack = [scope.root]
        while stack:
            node = stack.pop()
            ids.add(node.id)
            stack.extend(c for c in (node.children or ()) if isinstance(c, Span))
        return self.processor.open_entities(ids)

    def _emit_root(self, span: ReadableSpan, entity: dict[str, Any]) -> None:
        """A span with no core ancestor (a worker's own OTel root): its own document."""
        from .otel_xray import top_document

        self.runtime.emit(top_document(span, entity))


def _botocore_instrumented() -> bool:
    """True when OTel's botocore instrumentation is applied (never imports it)."""
    import sys

    module = sys.modules.get("opentelemetry.instrumentation.botocore")
    if module is None:
        return False
    try:
        return bool(module.BotocoreInstrumentor().is_instrumented_by_opentelemetry)
    except Exception:
        return False


def install_textmap() -> None:
    """X-Ray's header by the library's propagation rule (Lineage kept), and W3C's.

    Both are silent where the rule passes nothing on (during init). An AWS X-Ray
    propagator already set (``OTEL_PROPAGATORS=xray-lambda``) keeps extracting.
    """
    from opentelemetry import propagate
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from .otel_propagator import GatedPropagator, XRayTracePropagator, find_aws_xray

    aws = find_aws_xray(propagate.get_global_textmap())
    propagate.set_global_textmap(
        CompositePropagator(
            [XRayTracePropagator(aws), GatedPropagator(TraceContextTextMapPropagator())]
        )
    )


def _context_variable() -> tuple[Any, str] | tuple[None, None]:
    """OTel's current-context variable and the span key in it, if reachable."""
    try:
        from contextvars import ContextVar

        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.trace.propagation import _SPAN_KEY

        variable = getattr(_RUNTIME_CONTEXT, "_current_context", None)
        if isinstance(variable, ContextVar) and isinstance(_SPAN_KEY, str):
            return variable, _SPAN_KEY
    except Exception:
        log.debug("tracing: OTel's context variable is not where expected", exc_info=True)
    return None, None
