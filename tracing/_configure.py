"""``tracing.configure()``: settings, backend installation, the init window."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ._config import Settings, load_settings
from ._guard import DeadlineGuard
from ._hooks import install_handoff, when_imported
from ._init_phase import InitPhase
from ._runtime import NoLibrary, Runtime, get_runtime, in_lambda_environment, set_runtime
from ._span import clean_name
from .exporters.xray_udp import UDPEmitter

if TYPE_CHECKING:
    from .backends import Backend, Emitter

__all__ = ["configure", "ensure_configured"]

log = logging.getLogger("tracing")


def configure(service: str | None = None, backend: str | None = None, **options: Any) -> Settings:
    """Set up tracing. Call once, at module import (in the Lambda init phase).

    Opens the init window (work from now until the first invocation is kept and
    replayed into its trace), installs the backend, and instruments boto3. With
    the UDP exporters it opens no socket and starts no thread (both happen on
    first use); in Lambda, a network exporter (``otlp``, ``xray-otlp``) registers
    the in-process extension and starts its thread, so that export happens after
    the response.

    Args:
        service: Service name, annotated on every invocation. Defaults to
            ``TRACING_SERVICE``, ``POWERTOOLS_SERVICE_NAME``, ``OTEL_SERVICE_NAME``,
            ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, then
            ``AWS_LAMBDA_FUNCTION_NAME``.
        backend: ``"xray"`` (default) or ``"otel"``; env ``TRACING_BACKEND``.
        **options: Any option of the README's configuration table, for example
            ``deadline_margin_ms=200`` or ``init_trace="always"``.

    Returns:
        The effective settings. A second call changes nothing and returns the
        settings of the first.

    Raises:
        ValueError: An explicit argument has an invalid value.
        TypeError: An unknown option was given.
    """
    existing = get_runtime()
    if existing is not None:
        log.debug("tracing: configure() called again; keeping the first configuration")
        return existing.settings
    settings = load_settings({"service": service, "backend": backend, **options})
    started = time.time()
    in_lambda = in_lambda_environment()
    init = None
    if in_lambda and not settings.disabled:
        init = InitPhase(started, settings.max_init_spans, settings.init_trace)
    runtime = Runtime(
        settings=settings,
        emitter=_emitter(settings, explicit="exporter" in options),
        backend=NoLibrary(),
        in_lambda=in_lambda,
        init=init,
        service_name=clean_name(settings.service),
    )
    if init is not None and os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        from . import _snapstart

        _snapstart.install(runtime)
    if settings.deadline_margin_ms > 0:
        runtime.guard = DeadlineGuard(settings.deadline_margin_ms / 1000.0, runtime.on_deadline)
    if not settings.disabled:
        _load_backend(runtime, explicit=backend is not None or bool(options))
    set_runtime(runtime)
    if in_lambda and not settings.disabled and runtime.emitter.buffered:
        runtime.start_extension()  # network exporters: export after the response
    if settings.payload_context and not settings.disabled:
        _announce_payload_context(settings.payload_context)
    return settings


def _announce_payload_context(targets: tuple[str, ...]) -> None:
    """Say once that payloads change (``payload_context``): it is never silent."""
    what = []
    for service, label, kind in (
        ("kinesis", "Kinesis records (PutRecord, PutRecords)", "stream"),
        ("dynamodb", "DynamoDB items (PutItem, BatchWriteItem, TransactWriteItems)", "table"),
    ):
        names = [t.partition(":")[2] for t in targets if t.partition(":")[0] == service]
        if names:
            where = f"all {kind}s" if "" in names else f"{kind} " + ", ".join(names)
            what.append(f"{label} of {where}")
    log.info(
        "tracing: payload_context: %s sent from here get a '_tracing' field with the trace context",
        " and ".join(what),
    )


def _emitter(settings: Settings, explicit: bool) -> Emitter:
    """Where documents go: X-Ray documents over UDP (default), or OTLP spans."""
    if settings.exporter == "xray-udp" or settings.disabled:
        return UDPEmitter(settings.daemon_address)
    try:
        from .exporters._otlp_emitter import default_resource

        attributes = default_resource(settings.service)
        if settings.exporter == "otlp-udp":
            from .exporters.otlp_udp import OTLPUDPEmitter

            return OTLPUDPEmitter(settings.daemon_address, attributes)
        if settings.exporter == "provider":
            if settings.backend != "otel":
                raise ValueError(
                    "exporter='provider' hands spans to an OpenTelemetry tracer provider's "
                    "exporters: it needs backend='otel'"
                )
            from .exporters.provider import ProviderEmitter

            return ProviderEmitter(attributes)
        if settings.exporter == "xray-otlp":
            from .exporters.xray_otlp import XRayOTLPEmitter

            return XRayOTLPEmitter(attributes)
        from .exporters.otlp_http import OTLPHTTPEmitter

        return OTLPHTTPEmitter(attributes)
    except ValueError:
        if explicit:
            raise
        log.exception(
            "tracing: exporter %r is misconfigured; sending X-Ray documents", settings.exporter
        )
    except Exception:
        log.exception(
            "tracing: exporter %r could not be set up; sending X-Ray documents", settings.exporter
        )
    return UDPEmitter(settings.daemon_address)


def _load_backend(runtime: Runtime, explicit: bool) -> None:
    settings = runtime.settings
    backend: Backend
    try:
        if settings.backend == "otel":
            from .backends.otel import OTelBackend

            backend = OTelBackend(runtime)
        else:
            from .backends.xray import XRayBackend

            backend = XRayBackend(settings.service)
        backend.install()
        runtime.backend = backend
    except ValueError:
        if explicit:
            raise
        log.exception("tracing: backend %r is misconfigured; using the core only", settings.backend)
    except Exception:
        log.exception(
            "tracing: backend %r could not be installed (is its extra installed?); "
            "tracing.span and handler spans are still recorded, library-native spans are not",
            settings.backend,
        )
    _install_hooks(_records_aws_calls(settings, runtime.backend))


def _records_aws_calls(settings: Settings, backend: Backend) -> bool:
    """Whether the core records AWS calls (not a library's own instrumentation)."""
    if settings.backend == "otel":
        # The backend steps aside when OTel's botocore instrumentation was already
        # applied (ADOT's layer does): one span per call, not two.
        chosen = getattr(backend, "botocore", settings.botocore_instrumentation)
        return bool(chosen == "tracing")
    return settings.patch_botocore


def _install_hooks(record_aws_calls: bool) -> None:
    try:
        from . import _boto_hooks

        _boto_hooks.install(record_aws_calls)
    except Exception:
        log.exception("tracing: AWS call recording and SQS propagation could not be installed")
    # Outgoing HTTP: import hooks only. Neither urllib3, httpx nor the recorder
    # (``_http_calls``) is imported until the application imports the library.
    when_imported("urllib3", _patch_urllib3, "its HTTP calls are not recorded")
    when_imported("httpx", _patch_httpx, "its HTTP calls are not recorded")
    try:
        install_handoff()  # work handed to threads and pools keeps its trace
    except Exception:
        log.exception("tracing: work handed to threads will not be followed into its trace")


def _patch_urllib3() -> None:
    from . import _http_calls

    _http_calls.patch_urllib3()


def _patch_httpx() -> None:
    from . import _http_calls

    _http_calls.patch_httpx()


def ensure_configured() -> Runtime | None:
    """Return the runtime, configuring with defaults if needed. Never raises."""
    runtime = get_runtime()
    if runtime is None:
        try:
            configure()
        except Exception:
            log.exception("tracing: default configuration failed; tracing is off")
        runtime = get_runtime()
    return runtime
