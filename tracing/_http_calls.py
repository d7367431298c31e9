"""Outgoing HTTP calls as remote subsegments: urllib3 (so requests) and httpx.

A handler that calls a payment API with ``requests``, ``urllib3`` or ``httpx``
gets one subsegment per request sent, as X-Ray's console expects them:

* named after the host, ``namespace: "remote"``, ``http.request.method`` and
  ``url`` (the query string removed unless ``http_query=True``: it often carries
  tokens), ``http.response.status`` and ``content_length``;
* a 4xx answer is an ``error`` (429 a ``throttle`` too), a 5xx answer or no
  answer at all (refused, timed out) a ``fault`` with the exception as ``cause``;
* ``X-Amzn-Trace-Id`` is injected by the library's propagation rule (the call's
  own subsegment as ``Parent``, ``Lineage`` kept; ``Sampled=0`` in unsampled
  invocations, where nothing is recorded; nothing during init), and
  ``http.request.traced`` says so. A header the caller set is never replaced.

**Patched lazily.** Nothing is imported at ``configure()``, not even this module:
a one-shot import hook (``_configure``) wraps
``urllib3.connectionpool.HTTPConnectionPool.urlopen`` when the application
imports urllib3, and ``httpx.HTTPTransport.handle_request`` /
``AsyncHTTPTransport.handle_async_request`` when it imports httpx. aws-xray-sdk
patches ``requests`` and ``httplib`` eagerly in ``patch_all()``.

**One span per request.** botocore sends AWS calls through urllib3: inside an AWS
call (recorded by the core, by aws-xray-sdk's patch or by OTel's botocore
instrumentation) nothing is recorded or injected. urllib3's own retries and
same-pool redirects inside one ``urlopen`` are one span, with the final answer;
requests and httpx follow redirects with a new request per hop, so each hop is
its own span.

**The otel backend.** When OTel's instrumentation for the library is already
applied (ADOT's layer applies urllib3's), its CLIENT spans are the calls and
this module stands aside; otherwise the calls are recorded here, the same way
on both backends.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from ._propagation import outgoing_header
from ._runtime import current_node, get_runtime
from ._scope import STACK, ended, open_span
from ._span import CLIENT, Span, clean_name, exception_cause

__all__ = ["REMOTE_NAMESPACE", "patch_httpx", "patch_urllib3"]

log = logging.getLogger("tracing.http")

REMOTE_NAMESPACE = "remote"
HEADER = "X-Amzn-Trace-Id"
_HEADER_LOWER = HEADER.lower()
#: The last header value this context injected (to tell it from the caller's own).
_OURS: ContextVar[str | None] = ContextVar("tracing_http_header", default=None)
#: Marks a wrapper of ours (never wrap twice, even across configurations).
_MARK = "_tracing_wrapped"
#: OTel instrumentations that, once applied, own these calls on the otel backend.
_OTEL_INSTRUMENTORS = {
    "urllib3": ("opentelemetry.instrumentation.urllib3", "URLLib3Instrumentor"),
    "httpx": ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
}


# -- recording -----------------------------------------------------------------------


class _Call:
    """One outgoing request in flight: its span (if recorded) and the header to send."""

    __slots__ = ("header", "library", "span", "token")

    def __init__(self) -> None:
        self.span: Span | None = None
        self.token: Any = None
        self.library: object = None
        self.header: str | None = None


def _begin(method: str, url: str, library: str) -> _Call | None:
    """Open the call's span (made current) and work out its header; ``None``: hands off."""
    runtime = get_runtime()
    if runtime is None or runtime.settings.disabled or not runtime.settings.patch_http:
        return None
    parent = current_node()
    if parent is None:
        return None
    if getattr(parent, "namespace", None) in ("aws", REMOTE_NAMESPACE):
        return None  # botocore's own urllib3 use, or a retry inside one urlopen
    if runtime.backend.name == "otel" and _otel_applied(library):
        return None  # OTel's instrumentation records (and propagates) this call
    call = _Call()
    if parent.recording:
        host, recorded = _parts(url, runtime.settings.http_query)
        span = open_span(parent, host)
        if span is not None:
            span.kind = CLIENT
            span.namespace = REMOTE_NAMESPACE
            span.http = {"request": {"method": str(method).upper(), "url": recorded}}
            call.span = span
            call.token = STACK.set((*STACK.get(), span))
    try:
        if call.span is not None:
            call.library = runtime.backend.enter(call.span)
        header = outgoing_header()  # the call's own span as Parent, when recorded
        if header is not None:
            call.header = header.to_string()
    except Exception:
        _abandon(call)  # the span ends and the context is restored before giving up
        raise
    return call


def _end(call: _Call, status: int | None, length: Any, exc: BaseException | None) -> None:
    # NOTE: the context first, each step guarded: nothing of ours may replace the
    # call's exception or turn its answer into one.
    span = call.span
    if span is None:
        return
    try:
        STACK.reset(call.token)
    except Exception:
        STACK.set(tuple(node for node in STACK.get() if node is not span))
    runtime = get_runtime()
    if runtime is not None and call.library is not None:
        runtime.backend.exit(call.library)
    try:
        http = span.http or {}
        if isinstance(status, int):
            response: dict[str, Any] = {"status": status}
            if isinstance(length, str) and length.isdigit():
                response["content_length"] = int(length)
            http["response"] = response
            if 400 <= status < 500:
                span.error = True
                span.throttle = status == 429
            elif status >= 500:
                span.fault = True
        if exc is not None:
            # No answer is a fault; a call the caller cancelled (asyncio) or
            # interrupted is not the remote end's: described only.
            span.fault = isinstance(exc, Exception)
            span.cause = exception_cause(exc)
        span.finish()
        ended(span)
    except Exception:
        log.debug("tracing: could not describe an HTTP call", exc_info=True)


def _injected(call: _Call, headers: Mapping[str, Any] | None) -> MutableMapping[str, Any] | None:
    """A copy of ``headers`` with the trace header, or ``None`` to leave them as they are."""
    value = call.header
    if value is None:
        return None
    existing = headers or {}
    found = [key for key in existing if key.lower() == _HEADER_LOWER]
    if found and existing[found[0]] != _OURS.get():
        return None  # the caller's own header: never replaced
    # (A header we set on an earlier hop, which httpx copies into the redirected
    # request, is replaced: each hop names its own subsegment.)
    updated = _copy(existing)
    for key in found:
        del updated[key]
    updated[HEADER] = value
    if call.span is not None and call.span.http is not None:
        call.span.http["request"]["traced"] = True
    _OURS.set(value)
    return updated


def _copy(headers: Mapping[str, Any]) -> MutableMapping[str, Any]:
    """A copy of ``headers`` of the same type, repeated fields kept.

    urllib3's ``HTTPHeaderDict`` holds a field sent several times (two
    ``X-Forwarded-For`` lines) as one key: a plain ``dict`` of it would merge
    them into one line. Its own ``copy()`` (and that of requests'
    ``CaseInsensitiveDict``, or a dict) keeps them; the caller's object is never
    changed.
    """
    copy = getattr(headers, "copy", None)
    if callable(copy):
        try:
            duplicate = copy()
        except Exception:  # an immutable mapping whose copy() refuses
            duplicate = None
        if isinstance(duplicate, MutableMapping):
            return duplicate
    return dict(headers)


#: url -> (subsegment name, recorded URL): a function calls the same few URLs.
_PARTS: dict[tuple[str, bool], tuple[str, str]] = {}
_MAX_PARTS = 512


def _parts(url: str, query: bool) -> tuple[str, str]:
    """The host (the subsegment's name) and the URL as recorded: no query (unless
    asked), no ``user:password``, no fragment."""
    key = (url, query)
    found = _PARTS.get(key)
    if found is not None:
        return found
    from ._scrub import scrub_url  # on a new URL only: not at cold start

    try:
        host = clean_name(urlsplit(url).hostname or "unknown host")
        found = (host, scrub_url(url, query)[:2048])
    except ValueError:
        found = ("unknown host", "")
    if len(_PARTS) >= _MAX_PARTS:
        _PARTS.clear()  # URLs with ids in their path: start over rather than grow
    _PARTS[key] = found
    return found


def _otel_applied(library: str) -> bool:
    module_name, class_name = _OTEL_INSTRUMENTORS[library]
    module = sys.modules.get(module_name)
    if module is None:
        return False
    try:
        return bool(getattr(module, class_name)().is_instrumented_by_opentelemetry)
    except Exception:
        return False


# -- urllib3 -------------------------------------------------------------------------


def patch_urllib3() -> None:
    """Wrap ``HTTPConnectionPool.urlopen`` (once per process)."""
    from urllib3.connectionpool import HTTPConnectionPool

    original = HTTPConnectionPool.urlopen
    if getattr(original, _MARK, False):
        return

    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        call = None
        try:
            call = _begin(method, _pool_url(self, url), "urllib3")
            if call is not None:
                try:
                    args, kwargs = _with_header(call, args, kwargs, self)
                except Exception:  # headers we cannot copy: recorded, not traced
                    log.debug("tracing: could not set an HTTP call's trace header", exc_info=True)
        except Exception:
            log.debug("tracing: could not record an HTTP call", exc_info=True)
            _abandon(call)
            call = None
        if call is None:
            return original(self, method, url, *args, **kwargs)
        try:
            response = original(self, method, url, *args, **kwargs)
        except BaseException as exc:
            _end(call, None, None, exc)
            raise
        _end(call, getattr(response, "status", None), _header_of(response), None)
        return response

    functools.update_wrapper(urlopen, original)
    setattr(urlopen, _MARK, True)
    HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]


def _pool_url(pool: Any, url: str) -> str:
    if "://" in url:
        return url  # a proxy request carries the whole URL
    scheme = getattr(pool, "scheme", "http")
    host, port = getattr(pool, "host", ""), getattr(pool, "port", None)
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != default:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{url}"


def _with_header(
    call: _Call, args: tuple[Any, ...], kwargs: dict[str, Any], pool: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    # urlopen(method, url, body=None, headers=None, ...): headers may come by
    # position; None means the pool's own default headers.
    positional = len(args) >= 2
    headers = args[1] if positional else kwargs.get("headers")
    updated = _injected(call, headers if headers is not None else getattr(pool, "headers", None))
    if updated is None:
        return args, kwargs
    if positional:
        return (args[0], updated, *args[2:]), kwargs
    return args, {**kwargs, "headers": updated}


def _header_of(response: Any) -> Any:
    headers = getattr(response, "headers", None)
    try:
        return headers.get("Content-Length") if headers is not None else None
    except Exception:
        return None


# -- httpx ---------------------------------------------------------------------------


def patch_httpx() -> None:
    """Wrap httpx's sync and async transports (once per process)."""
    import httpx

    sync_original: Callable[..., Any] = httpx.HTTPTransport.handle_request
    async_original: Callable[..., Any] = httpx.AsyncHTTPTransport.handle_async_request
    if getattr(sync_original, _MARK, False):
        return

    def handle_request(self: Any, request: Any) -> Any:
        call = _httpx_begin(request)
        if call is None:
            return sync_original(self, request)
        try:
            response = sync_original(self, request)
        except BaseException as exc:
            _end(call, None, None, exc)
            raise
        _end(call, response.status_code, response.headers.get("Content-Length"), None)
        return response

    async def handle_async_request(self: Any, request: Any) -> Any:
        call = _httpx_begin(request)
        if call is None:
            return await async_original(self, request)
        try:
            response = await async_original(self, request)
        except BaseException as exc:
            _end(call, None, None, exc)
            raise
        _end(call, response.status_code, response.headers.get("Content-Length"), None)
        return response

    functools.update_wrapper(handle_request, sync_original)
    functools.update_wrapper(handle_async_request, async_original)
    setattr(handle_request, _MARK, True)
    setattr(handle_async_request, _MARK, True)
    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]


def _httpx_begin(request: Any) -> _Call | None:
    call = None
    try:
        call = _begin(request.method, str(request.url), "httpx")
        if call is not None:
            updated = _injected(call, request.headers)
            if updated is not None:
                request.headers[HEADER] = updated[HEADER]  # replaces any case of the name
        return call
    except Exception:
        log.debug("tracing: could not record an HTTP call", exc_info=True)
        _abandon(call)
        return None


def _abandon(call: _Call | None) -> None:
    """Undo a begun call that could not be prepared (its span ends, the context is restored)."""
    if call is not None:
        _end(call, None, None, None)
