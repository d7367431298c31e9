"""Backend ``xray``: make aws-xray-sdk record into the core's documents.

The recorder gets a ``Context`` of ours (the SDK's documented extension point;
nothing of the SDK is monkeypatched). Its current entity is whatever is on top of
our context-local stack: an SDK subsegment, or a *view* of one of our spans. So
``xray_recorder.capture``, ``in_subsegment``, ``begin_subsegment`` and the SDK's
botocore patch all attach to our current span, including during init, where the
SDK's own ``LambdaContext`` would discard them ("Subsegment discarded due to
Lambda worker still initializing").

Differences from the SDK's ``LambdaContext``, on purpose:

* ``_X_AMZN_TRACE_ID`` is not re-read on every call (six parses per invocation
  in the SDK); the core parses it once per invocation.
* State is in ``contextvars``, not ``threading.local``, and is replaced at each
  invocation, so a missing header can never attach work to the previous trace.
* Work outside any trace gets an untraced dummy parent instead of a log line.

Every ``aws_xray_sdk`` import of the library lives in this module, so dropping
the SDK after its end of support means deleting this file.
"""

from __future__ import annotations

import logging
from typing import Any

from aws_xray_sdk.core import patch, xray_recorder
from aws_xray_sdk.core.context import Context
from aws_xray_sdk.core.models.dummy_entities import DummySegment
from aws_xray_sdk.core.models.segment import Segment
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler

from .._runtime import current_node, get_runtime
from .._scope import STACK
from .._span import Span, entity_dict

__all__ = ["SpanView", "XRayBackend"]

log = logging.getLogger("tracing.backends.xray")


class _Untraced(DummySegment):  # type: ignore[misc]  # the SDK ships no types
    """Parent for SDK work outside any recorded trace: keeps nothing."""

    def add_subsegment(self, subsegment: Any) -> None:
        subsegment.parent_id = self.id

    def increment(self) -> None:
        return None

    def decrement_ref_counter(self) -> None:
        return None

    def ready_to_send(self) -> bool:
        return False

    def get_total_subsegments_size(self) -> int:
        return 0


_UNTRACED = _Untraced("untraced")


class SpanView(Segment):  # type: ignore[misc]
    """An aws-xray-sdk ``Segment`` face on one of our spans.

    SDK code calls it as it would a segment; every mutation is forwarded to the
    span, and children are appended to the span so they serialize in place. It
    never sends anything itself (``ready_to_send`` is always False).
    """

    def __init__(self, span: Span) -> None:  # no super().__init__: nothing of it is needed
        scope = span.scope
        self.span = span
        self.scope = scope
        self.id = span.id
        self.name = span.name
        self.trace_id = scope.trace_id if scope is not None else None
        self.parent_id = None
        self.start_time = span.start_time
        self.sampled = True
        self.in_progress = True
        self.http: dict[str, Any] = {}
        self.annotations: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        self.aws: dict[str, Any] = {}
        self.cause: dict[str, Any] = {}
        self.subsegments: list[Any] = []
        self.user = None

    def add_subsegment(self, subsegment: Any) -> None:
        subsegment.parent_id = self.span.id
        scope = self.scope
        if scope is None or scope.admit():
            self.span.add_child(subsegment)

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def increment(self) -> None:
        return None

    def decrement_ref_counter(self) -> None:
        return None

    def decrement_subsegments_size(self) -> int:
        return 0

    def ready_to_send(self) -> bool:
        return False

    def get_total_subsegments_size(self) -> int:
        return 0

    def close(self, end_time: float | None = None) -> None:
        log.debug("tracing: ignoring an SDK request to close span %s", self.span.name)

    def put_annotation(self, key: str, value: Any) -> None:
        self.span.annotate(key, value)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.span.put_metadata(key, value, namespace)

    def put_http_meta(self, key: str, value: Any) -> None:
        if self.span.http is None:
            self.span.http = {}
        section = "response" if key in ("status", "content_length") else "request"
        self.span.http.setdefault(section, {})[key] = value

    def set_aws(self, aws_meta: dict[str, Any]) -> None:
        self.span.aws = dict(aws_meta)

    def set_user(self, user: str) -> None:
        self.span.annotate("user", user)

    def add_fault_flag(self) -> None:
        self.span.fault = True

    def add_error_flag(self) -> None:
        self.span.error = True

    def add_throttle_flag(self) -> None:
        self.span.throttle = True

    def apply_status_code(self, status_code: Any) -> None:
        if not isinstance(status_code, int):
            return
        if 400 <= status_code < 500:
            self.span.error = True
            if status_code == 429:
                self.span.throttle = True
        elif status_code >= 500:
            self.span.fault = True

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        self.span.record_exception(exception)

    def get_origin_trace_header(self) -> None:
        return None

    def save_origin_trace_header(self, trace_header: Any) -> None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return entity_dict(self.span)


def _entity_for(node: Any) -> Any:
    if node is None:
        return _UNTRACED
    if isinstance(node, Span):
        if not node.recording:
            return _UNTRACED
        view = node.view
        if view is None:
            node.view = view = SpanView(node)
        return view
    return node


class BridgeContext(Context):  # type: ignore[misc]
    """The recorder ``Context`` that stores SDK entities on our span stack."""

    def __init__(self) -> None:  # the SDK's __init__ only builds a threading.local
        self._context_missing = "IGNORE_ERROR"

    def put_segment(self, segment: Any) -> None:
        """A user-made SDK segment (outside Lambda): it becomes the current entity."""
        STACK.set((*STACK.get(), segment))

    def end_segment(self, end_time: float | None = None) -> None:
        entity = self.get_trace_entity()
        segment = entity.parent_segment if self._is_subsegment(entity) else entity
        if isinstance(segment, (SpanView, _Untraced)):
            log.debug("tracing: ignoring end_segment() on a segment owned by tracing")
            return
        segment.close(end_time)

    def put_subsegment(self, subsegment: Any) -> None:
        self.get_trace_entity().add_subsegment(subsegment)
        STACK.set((*STACK.get(), subsegment))

    def end_subsegment(self, end_time: float | None = None) -> bool:
        stack = STACK.get()
        if not stack or isinstance(stack[-1], Span) or not self._is_subsegment(stack[-1]):
            log.debug("tracing: end_subsegment() with no open SDK subsegment")
            return False
        stack[-1].close(end_time)
        STACK.set(stack[:-1])
        return True

    def get_trace_entity(self) -> Any:
        runtime = get_runtime()
        if runtime is None or runtime.bridge is not None:
            # Not configured, or configured for otel since: the SDK's botocore
            # patch (installed once per process) must not record a second copy.
            return _UNTRACED
        return _entity_for(current_node())

    def set_trace_entity(self, trace_entity: Any) -> None:
        STACK.set((trace_entity,))

    def clear_trace_entities(self) -> None:
        """Drop SDK entities, keeping our own spans (the SDK calls this after a send)."""
        stack = STACK.get()
        keep = len(stack)
        while keep and not isinstance(stack[keep - 1], Span):
            keep -= 1
        if keep != len(stack):
            STACK.set(stack[:keep])

    def handle_context_missing(self) -> None:
        return None

    @property
    def context_missing(self) -> str:
        return self._context_missing

    @context_missing.setter
    def context_missing(self, value: str) -> None:
        self._context_missing = value


class XRayBackend:
    """Installs :class:`BridgeContext` into ``xray_recorder`` and patches botocore."""

    name = "xray"

    def __init__(self, service: str, patch_botocore: bool) -> None:
        self.service = service
        self.patch_botocore = patch_botocore

    def install(self) -> None:
        # A LocalSampler: sampling decisions come from the trace header (Lambda) or
        # from us, never from the daemon. Passing it also stops configure() from
        # re-loading the DefaultSampler, which builds a boto3 X-Ray client (~60 ms)
        # outside Lambda.
        xray_recorder.configure(
            context=BridgeContext(), service=self.service, sampling=False, sampler=LocalSampler()
        )
        if self.patch_botocore:
            patch(("botocore",))

    def flush(self, timeout_s: float) -> bool:
        # Documents are sent synchronously when their scope ends: nothing is queued.
        return True
