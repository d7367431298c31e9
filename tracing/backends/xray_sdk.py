"""aws-xray-sdk, connected to the core: every ``aws_xray_sdk`` import lives here.

Loaded only when the application uses aws-xray-sdk (``backends/xray.py`` watches
for its import, before or after ``configure()``). The recorder gets a ``Context``
of ours (the SDK's documented extension point; nothing of the SDK is
monkeypatched). Its current entity is whatever is on top of our context-local
stack: an SDK subsegment, or a *view* of one of our spans. So
``xray_recorder.capture``, ``in_subsegment`` and ``begin_subsegment`` all attach to
our current span, including during init, where the SDK's own ``LambdaContext``
would discard them ("Subsegment discarded due to Lambda worker still
initializing").

AWS calls are recorded by the core (``_aws_calls.py``), not by the SDK's botocore
patch. If the application applies that patch too, each call is recorded once:
inside a call the core records, the SDK's subsegment is neither attached nor
made current; around one, the core sees the SDK's ``aws`` subsegment current and
stands aside.

Differences from the SDK's ``LambdaContext``, on purpose:

* ``_X_AMZN_TRACE_ID`` is not re-read on every call (six parses per invocation
  in the SDK); the core parses it once per invocation.
* State is in ``contextvars``, not ``threading.local``, and is replaced at each
  invocation, so a missing header can never attach work to the previous trace.
* Work outside any trace gets an untraced dummy parent instead of a log line.

On the seam (``backends/_seam.py``): SDK subsegments are pushed on the core's
span stack wrapped as :class:`SdkSpan` (a ``ForeignSpan``), so the core sees them
as current without knowing the SDK, and our spans are shown to the SDK as
:class:`SpanView` segments.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import TYPE_CHECKING, Any

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.context import Context
from aws_xray_sdk.core.models.dummy_entities import DummySegment
from aws_xray_sdk.core.models.segment import Segment
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler

from .._aws_calls import AWS_NAMESPACE
from .._entity import entity_dict
from .._runtime import current_node, get_runtime
from .._scope import STACK, Scope, not_taken, over_budget, sent_when_it_ends
from .._span import Span

if TYPE_CHECKING:
    from .._scope import Node

__all__ = [
    "BridgeContext",
    "SdkEntity",
    "SdkSpan",
    "SpanView",
    "absorb_outer",
    "connect",
    "forget",
]

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


def _namespace(namespace: Any) -> Any:
    """The metadata namespace an SDK caller means: ``""`` is the service's.

    Powertools namespaces its metadata by service (``Tracer(service="orders")``
    writes under ``orders``); a ``Tracer()`` without one (the README's snippet)
    writes under ``""``, which aws-xray-sdk keeps and the core refuses (an empty
    namespace is invalid), so its ``handler response`` was lost. It lands under
    the service the invocation is annotated with (``Service``), in our spans and
    in the SDK's own subsegments alike.
    """
    if namespace != "":
        return namespace
    runtime = get_runtime()
    return runtime.settings.service if runtime is not None else "default"


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
        if scope is None or (not scope.done and scope.admit()):
            self.span.add_child(SdkEntity(subsegment))
            return
        if not scope.done:
            return  # over budget
        # Its document was sent (a thread outliving its invocation): late work,
        # by the same rules as our own spans (_scope.py, late work).
        if not scope.takes_late_work:
            if scope.sealed or scope.past_window:
                not_taken(scope)
        elif not scope.admit():
            over_budget(scope)
        elif sent_when_it_ends(self.span, scope):
            self.span.add_child(SdkEntity(subsegment))  # sent again with its open parent
        else:
            subsegment._tracing_late = True  # sent on its own when it ends

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
        self.span.put_metadata(key, value, _namespace(namespace))

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

    def get_origin_trace_header(self) -> Any:
        # The SDK's own HTTP patches (requests, httplib...) copy this header's extra
        # keys onto what they send: the trace's pass-through keys, Lineage first.
        scope = self.scope
        if scope is None or not scope.extra:
            return None
        from aws_xray_sdk.core.models.trace_header import TraceHeader as SdkTraceHeader

        return SdkTraceHeader(data=dict(scope.extra))

    def save_origin_trace_header(self, trace_header: Any) -> None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return entity_dict(self.span)


class SdkSpan:
    """An SDK segment or subsegment on the core's stack: a ``ForeignSpan``.

    Args:
        entity: The SDK entity.
        scope: The core document it lands in (that of the span it was opened
            under), or ``None`` for a segment the user opened and the SDK sends.
        into: For a second invocation subsegment (Powertools'
            ``capture_lambda_handler`` stacked with ``tracing.handler``): the
            invocation span it is folded into, or :data:`_OUTER` while it waits
            for the invocation to begin.
    """

    __slots__ = ("entity", "into", "scope")

    def __init__(self, entity: Any, scope: Scope | None, into: Any = None) -> None:
        self.entity = entity
        self.scope = scope
        self.into = into

    @property
    def name(self) -> str:
        return str(self.entity.name)

    @property
    def id(self) -> str:
        return str(self.entity.id)

    @property
    def trace_id(self) -> str | None:
        trace_id = getattr(self.entity, "trace_id", None)
        return trace_id if isinstance(trace_id, str) else None

    @property
    def recording(self) -> bool:
        return bool(getattr(self.entity, "sampled", False))

    @property
    def namespace(self) -> str | None:
        namespace = getattr(self.entity, "namespace", None)
        return namespace if isinstance(namespace, str) else None

    # An ended SDK entity raises on every change (AlreadyEndedException): a change
    # to it is dropped instead, as the core's own closed spans drop theirs.

    def _open(self) -> bool:
        return bool(getattr(self.entity, "in_progress", False))

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        if self._open():
            self.entity.put_annotation(key, value)

    def put_metadata(self, key: str, value: Any, namespace: str) -> None:
        if self._open():
            self.entity.put_metadata(key, value, namespace)

    def record_exception(self, exc: BaseException) -> None:
        if self._open():
            self.entity.add_exception(exc, traceback.extract_tb(exc.__traceback__))

    def adopt(self, child: Span) -> None:
        self.entity.subsegments.append(_SdkChild(child, self.entity.id))


class SdkEntity:
    """An SDK subsegment as a ``ForeignEntity``: its dict, in X-Ray's nested form."""

    __slots__ = ("entity",)

    def __init__(self, entity: Any) -> None:
        self.entity = entity

    @property
    def end_time(self) -> float | None:
        end = getattr(self.entity, "end_time", None)
        return end if isinstance(end, float) else None

    def to_dict(self) -> dict[str, Any]:
        return _sdk_dict(self.entity.to_dict())


def _sdk_dict(data: dict[str, Any]) -> dict[str, Any]:
    # The SDK writes ``in_progress: false`` on closed entities, and may keep a
    # ``parent_segment`` reference; neither belongs in a nested entity.
    data.pop("parent_segment", None)
    if data.get("in_progress") is False:
        del data["in_progress"]
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and "" in metadata:
        unnamed = metadata.pop("")
        named = metadata.setdefault(_namespace(""), {})
        if isinstance(unnamed, dict) and isinstance(named, dict):
            named.update(unnamed)
    if data.get("namespace") == "aws" and data.get("fault") and data.get("error"):
        # The SDK's botocore patch (when the application applies it and it wraps
        # ours) marks every failed call a fault; a 4xx answer is the caller's
        # error, as the core records it.
        status = (data.get("http") or {}).get("response", {}).get("status")
        if isinstance(status, int) and 400 <= status < 500:
            del data["fault"]
    nested = data.get("subsegments")
    if nested:
        data["subsegments"] = [_sdk_dict(item) for item in nested if isinstance(item, dict)]
    return data


#: Marks an invocation subsegment opened around ``tracing.handler``, before it began.
_OUTER = object()
#: ... and one whose annotations were already folded into the invocation.
_FOLDED = object()


def _fold(entity: Any, span: Span, children: bool) -> None:
    """Move an SDK invocation subsegment's data into our invocation span.

    The invocation's own annotations (``ColdStart``, ``Service``) are kept;
    exceptions are recorded by ``tracing.handler`` itself.
    """
    own = span.annotations or {}
    for key, value in (getattr(entity, "annotations", None) or {}).items():
        if key not in own:
            span.annotate(key, value)
    for namespace, values in (getattr(entity, "metadata", None) or {}).items():
        for key, value in (values or {}).items():
            span.put_metadata(key, value, _namespace(namespace))
    if children:
        for child in list(getattr(entity, "subsegments", None) or ()):
            span.add_child(child.span if isinstance(child, _SdkChild) else SdkEntity(child))


def _redirect(subsegment: Any, invocation: Span) -> None:
    """Make an SDK invocation subsegment write into ``invocation`` instead.

    Powertools' ``capture_lambda_handler`` keeps the subsegment object and writes
    to it directly (``ColdStart``, ``Service``, the response or error metadata,
    the exception); those writes land on the invocation. Its own ``ColdStart``
    and ``Service`` never replace the invocation's; the exception is recorded by
    ``tracing.handler`` itself.
    """
    subsegment.parent_id = invocation.id

    def put_annotation(key: str, value: Any) -> None:
        if key not in (invocation.annotations or {}):
            invocation.annotate(key, value)

    def put_metadata(key: str, value: Any, namespace: str = "default") -> None:
        invocation.put_metadata(key, value, _namespace(namespace))

    def add_exception(exception: BaseException, stack: Any = None, remote: bool = False) -> None:
        return None

    subsegment.put_annotation = put_annotation
    subsegment.put_metadata = put_metadata
    subsegment.add_exception = add_exception


def absorb_outer(invocation: Span) -> None:
    """``tracing.handler`` begins an invocation: fold in an SDK subsegment opened
    around it for the same invocation (Powertools' ``capture_lambda_handler``
    above ``tracing.handler``). What that decorator writes after the handler
    returns (its response metadata) comes too late for the invocation's document.
    """
    stack = STACK.get()
    top = stack[-1] if stack else None
    if isinstance(top, SdkSpan) and top.into is _OUTER:
        _fold(top.entity, invocation, children=False)
        top.into = _FOLDED


class _SdkChild:
    """Lets an SDK parent serialize one of our spans among its subsegments."""

    __slots__ = ("parent_id", "sampled", "span")

    def __init__(self, span: Span, parent_id: str) -> None:
        self.span = span
        self.parent_id = parent_id
        self.sampled = True

    def to_dict(self) -> dict[str, Any]:
        return entity_dict(self.span)

    def close(self, end_time: float | None = None) -> None:
        return None


class _Views:
    """The SDK face of our spans, built on demand (one kept: the SDK asks repeatedly)."""

    def __init__(self) -> None:
        self._last: tuple[Span, SpanView] | None = None

    def forget(self) -> None:
        self._last = None

    def entity_for(self, node: Node | None) -> Any:
        if node is None:
            return _UNTRACED
        if isinstance(node, Span):
            if not node.recording:
                return _UNTRACED
            last = self._last
            if last is not None and last[0] is node:
                return last[1]
            view = SpanView(node)
            self._last = (node, view)
            return view
        if isinstance(node, SdkSpan):
            return node.entity
        return _UNTRACED  # another library's span: the SDK records nothing under it


_VIEWS = _Views()


def _invocation_twin(parent: Node | None, subsegment: Any) -> Any:
    """Whether ``subsegment`` is a second invocation subsegment, and into what.

    Powertools' ``capture_lambda_handler`` opens ``## <handler>``. Under
    ``tracing.handler`` (the invocation is ``parent``, same name), it is the
    invocation itself. Around it, it opens before the invocation has begun: in
    Lambda, with an invocation's trace header set and no invocation running.
    """
    name = getattr(subsegment, "name", None)
    if not isinstance(name, str) or not name.startswith("## "):
        return None
    runtime = get_runtime()
    if runtime is None or not runtime.in_lambda:
        return None
    invocation = runtime.invocation
    if invocation is not None:
        return invocation if parent is invocation and name == invocation.name else None
    init = runtime.init
    at_start = parent is None or (init is not None and parent is init.root)
    if at_start and os.environ.get("_X_AMZN_TRACE_ID"):
        return _OUTER
    return None


def _send_late(entity: Any, scope: Scope | None, parent: Node) -> None:
    """An SDK subsegment that ended after its document was sent: sent on its own.

    Under one of our spans (an SDK parent sends its children itself), into the
    same trace, as independent subsegment (see ``_scope.py``, late work): a thread that
    outlived its invocation, or a subsegment opened before the send and ended
    after it (the document held it in progress).
    """
    runtime = get_runtime()
    if runtime is None or scope is None or not isinstance(parent, Span):
        return
    if not scope.takes_late_work:  # its late window closed meanwhile
        not_taken(scope)
        return
    document = SdkEntity(entity).to_dict()
    document.update(trace_id=scope.trace_id, parent_id=parent.id, type="subsegment")
    runtime.emit(document)
    runtime.late_sent += 1


class BridgeContext(Context):  # type: ignore[misc]
    """The recorder ``Context`` that stores SDK entities on our span stack."""

    def __init__(self) -> None:  # the SDK's __init__ only builds a threading.local
        self._context_missing = "IGNORE_ERROR"

    def put_segment(self, segment: Any) -> None:
        """A user-made SDK segment (outside Lambda): it becomes the current entity."""
        STACK.set((*STACK.get(), SdkSpan(segment, None)))

    def end_segment(self, end_time: float | None = None) -> None:
        entity = self.get_trace_entity()
        segment = entity.parent_segment if self._is_subsegment(entity) else entity
        if isinstance(segment, (SpanView, _Untraced)):
            log.debug("tracing: ignoring end_segment() on a segment owned by tracing")
            return
        segment.close(end_time)

    def put_subsegment(self, subsegment: Any) -> None:
        parent = current_node()
        if (
            isinstance(parent, Span)
            and parent.namespace in (AWS_NAMESPACE, "remote")
            and getattr(subsegment, "namespace", None) in (AWS_NAMESPACE, "remote")
        ):
            # The SDK's botocore or httplib patch (Powertools applies patch_all()),
            # inside a call the core is already recording: a second copy. Not
            # attached, not made current (the SDK's end_subsegment then finds
            # nothing to end).
            return
        into = _invocation_twin(parent, subsegment)
        if isinstance(into, Span):
            # One invocation, not two: what it is given goes to the invocation,
            # which stays the current span (so work under it keeps the
            # invocation's scope, budget, trace header and timeout snapshot).
            _redirect(subsegment, into)
            return
        if into is not None:
            # Around tracing.handler, before the invocation began: folded in then.
            subsegment.parent_id = parent.id if parent is not None else None
            STACK.set((*STACK.get(), SdkSpan(subsegment, None, into)))
            return
        self.get_trace_entity().add_subsegment(subsegment)
        scope = parent.scope if parent is not None else None
        STACK.set((*STACK.get(), SdkSpan(subsegment, scope)))

    def end_subsegment(self, end_time: float | None = None) -> bool:
        stack = STACK.get()
        top = stack[-1] if stack else None
        if not isinstance(top, SdkSpan) or not self._is_subsegment(top.entity):
            log.debug("tracing: end_subsegment() with no open SDK subsegment")
            return False
        top.entity.close(end_time)
        STACK.set(stack[:-1])
        if isinstance(top.into, Span):
            _fold(top.entity, top.into, children=True)
        elif getattr(top.entity, "_tracing_late", False) and len(stack) > 1:
            _send_late(top.entity, top.scope, stack[-2])
        return True

    def get_trace_entity(self) -> Any:
        runtime = get_runtime()
        if runtime is None or not getattr(runtime.backend, "sdk", False):
            # Not configured, or configured since without the SDK connected: the
            # SDK's botocore patch (installed once per process) must not record a copy.
            return _UNTRACED
        return _VIEWS.entity_for(current_node())

    def set_trace_entity(self, trace_entity: Any) -> None:
        if isinstance(trace_entity, SpanView):
            STACK.set((trace_entity.span,))
        else:
            STACK.set((SdkSpan(trace_entity, None),))

    def clear_trace_entities(self) -> None:
        """Drop SDK entities, keeping our own spans (the SDK calls this after a send)."""
        stack = STACK.get()
        keep = len(stack)
        while keep and isinstance(stack[keep - 1], SdkSpan):
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


def connect(service: str) -> None:
    """Make ``xray_recorder`` record into the core: our :class:`BridgeContext`.

    A ``LocalSampler``: sampling decisions come from the trace header (Lambda) or
    from us, never from the daemon. Passing it also stops ``configure()`` from
    re-loading the ``DefaultSampler``, which builds a boto3 X-Ray client (~60 ms)
    outside Lambda.
    """
    xray_recorder.configure(
        context=BridgeContext(), service=service, sampling=False, sampler=LocalSampler()
    )


def forget() -> None:
    """An invocation was sent: the cached SDK view must not keep its tree alive."""
    _VIEWS.forget()
