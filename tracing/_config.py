"""One frozen :class:`Settings`, built from ``configure()`` arguments and env vars.

Explicit arguments win over ``TRACING_*`` environment variables, which win over
defaults. A bad explicit argument raises ``ValueError`` at ``configure()`` time
(a programming error, caught in development). A bad environment value is logged
once and replaced by its default: a typo in a deployed function's environment must
not stop the function from starting.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, TypeVar

__all__ = ["BACKEND_OPTIONS", "DEFAULT_REDACT_KEYS", "Settings", "load_settings"]

log = logging.getLogger("tracing.config")

BackendName = Literal["xray", "otel"]
InitTrace = Literal["sampled", "always", "off"]
T = TypeVar("T")

DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
)

DEFAULT_SERVICE = "service"

#: Options passed through to a backend rather than kept in :class:`Settings`.
BACKEND_OPTIONS = frozenset({"tracer_provider"})


class Settings:
    """Every option of the library (immutable). See the README's configuration table.

    A plain class, not a ``NamedTuple`` or a dataclass: building one of those
    costs a few tenths of a millisecond at import, and import is cold start.
    """

    _fields = (
        "service",
        "backend",
        "disabled",
        "daemon_address",
        "patch_botocore",
        "patch_http",
        "http_query",
        "deadline_margin_ms",
        "init_trace",
        "max_init_spans",
        "max_spans_per_invocation",
        "capture_event",
        "capture_response",
        "capture_error",
        "redact_keys",
        "exporter",
        "botocore_instrumentation",
        "send_unsampled",
        "incoming_traceparent",
        "payload_context",
        "sampling_rules",
        "extra",
    )
    __slots__ = _fields

    service: str
    backend: BackendName
    disabled: bool
    daemon_address: str
    patch_botocore: bool
    patch_http: bool
    http_query: bool
    deadline_margin_ms: int
    init_trace: InitTrace
    max_init_spans: int
    max_spans_per_invocation: int
    capture_event: bool
    capture_response: bool
    capture_error: bool
    redact_keys: tuple[str, ...]
    exporter: str
    botocore_instrumentation: str
    send_unsampled: bool
    incoming_traceparent: str
    payload_context: tuple[str, ...]
    sampling_rules: str | None
    extra: Mapping[str, Any]

    def __init__(
        self,
        service: str = DEFAULT_SERVICE,
        backend: BackendName = "xray",
        disabled: bool = False,
        daemon_address: str = "127.0.0.1:2000",
        patch_botocore: bool = True,
        patch_http: bool = True,
        http_query: bool = False,
        deadline_margin_ms: int = 100,
        init_trace: InitTrace = "sampled",
        max_init_spans: int = 1000,
        max_spans_per_invocation: int = 1000,
        capture_event: bool = False,
        capture_response: bool = False,
        capture_error: bool = True,
        redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS,
        exporter: str = "xray-udp",
        botocore_instrumentation: str = "tracing",
        send_unsampled: bool = False,
        incoming_traceparent: str = "link",
        payload_context: tuple[str, ...] = (),
        sampling_rules: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        values = locals()
        for name in self._fields:
            object.__setattr__(self, name, values[name])
        object.__setattr__(self, "extra", MappingProxyType(dict(extra or {})))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self._fields if f != "extra"))

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"Settings({fields})"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {text!r}")


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 0 or isinstance(value, bool):
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return number


def _choice(*allowed: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return text

    return check


def _name(value: Any) -> str:
    text = str(value).strip()
    if not text or len(text) > 200:
        raise ValueError(f"expected a name of 1-200 characters, got {value!r}")
    return text


def _address(value: Any) -> str:
    text = str(value).strip()
    # The daemon address may be "host:port" or "tcp:h:p udp:h:p"; we only use UDP.
    for part in text.split():
        if part.startswith("udp:"):
            text = part[4:]
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return f"{host}:{port}"


def _keys(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(str(item).strip().lower() for item in items if str(item).strip()))


def _flag(value: Any) -> bool:
    return _bool(value) if isinstance(value, str) else bool(value)


#: Services whose payloads can carry the trace context (``_payload_context.py``).
PAYLOAD_SERVICES = ("kinesis", "dynamodb")
_RESOURCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _payload_targets(value: Any) -> tuple[str, ...]:
    """``payload_context``: ``"kinesis"``, ``"dynamodb"``, ``"kinesis:<stream>"`` or
    ``"dynamodb:<table>"``, as an iterable or a comma-separated string."""
    if isinstance(value, (bytes, Mapping)) or not isinstance(
        value, (str, list, tuple, set, frozenset)
    ):
        raise ValueError(
            f"expected an iterable of 'kinesis', 'dynamodb' or 'service:name', got {value!r}"
        )
    items = value.split(",") if isinstance(value, str) else list(value)
    targets: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected strings, got {item!r}")
        service, sep, name = item.strip().partition(":")
        service = service.strip().lower()
        name = name.strip()
        if not service and not sep:
            continue  # an empty item ("kinesis," or "")
        if service not in PAYLOAD_SERVICES or (sep and not name):
            raise ValueError(
                f"expected 'kinesis', 'dynamodb', 'kinesis:<stream name>' or "
                f"'dynamodb:<table name>', got {item!r}"
            )
        if name and (len(name) > 255 or not _RESOURCE_CHARS.issuperset(name)):
            raise ValueError(f"{name!r} is not a {service} stream or table name")
        targets.append(f"{service}:{name}" if name else service)
    return tuple(dict.fromkeys(targets))


def _sampling_rules(value: Any) -> str:
    """``sampling_rules``: ``"xray"`` (centralized), ``"default"``, or a rules file's
    path. The file is read at the first sampling decision (``_sampling.py``)."""
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"expected 'xray', 'default' or a path, got {value!r}")
    path = os.fspath(value)
    if isinstance(path, bytes):
        raise ValueError(f"expected 'xray', 'default' or a path, got {value!r}")
    text = path.strip()
    if not text:
        raise ValueError("expected 'xray', 'default' or a path, got an empty string")
    if text.lower() in ("xray", "default"):
        return text.lower()
    return os.path.expanduser(text)


# option -> (env vars, parser). Env vars follow one pattern, TRACING_<OPTION>; where
# Powertools has a variable for the same thing, it is read when ours is not set, so
# a Powertools user's environment works unchanged.
_OPTIONS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    # OpenTelemetry's own variable comes after ours and Powertools'; then
    # ``service.name`` in OTEL_RESOURCE_ATTRIBUTES, then the function's name.
    "service": (("TRACING_SERVICE", "POWERTOOLS_SERVICE_NAME", "OTEL_SERVICE_NAME"), _name),
    "backend": (("TRACING_BACKEND",), _choice("xray", "otel")),
    "disabled": (("TRACING_DISABLED", "POWERTOOLS_TRACE_DISABLED"), _flag),
    "daemon_address": (("AWS_XRAY_DAEMON_ADDRESS",), _address),
    "patch_botocore": (("TRACING_PATCH_BOTOCORE",), _flag),
    "patch_http": (("TRACING_PATCH_HTTP",), _flag),
    "http_query": (("TRACING_HTTP_QUERY",), _flag),
    "deadline_margin_ms": (("TRACING_DEADLINE_MARGIN_MS",), _positive_int),
    "init_trace": (("TRACING_INIT_TRACE",), _choice("sampled", "always", "off")),
    "max_init_spans": (("TRACING_MAX_INIT_SPANS",), _positive_int),
    "max_spans_per_invocation": (("TRACING_MAX_SPANS",), _positive_int),
    "capture_event": (("TRACING_CAPTURE_EVENT",), _flag),
    "capture_response": (
        ("TRACING_CAPTURE_RESPONSE", "POWERTOOLS_TRACER_CAPTURE_RESPONSE"),
        _flag,
    ),
    "capture_error": (("TRACING_CAPTURE_ERROR", "POWERTOOLS_TRACER_CAPTURE_ERROR"), _flag),
    "redact_keys": (("TRACING_REDACT_KEYS",), _keys),
    "exporter": (
        ("TRACING_EXPORTER",),
        _choice("xray-udp", "otlp-udp", "otlp", "xray-otlp", "provider"),
    ),
    "botocore_instrumentation": (
        ("TRACING_BOTOCORE_INSTRUMENTATION",),
        _choice("tracing", "contrib", "off"),
    ),
    "send_unsampled": (("TRACING_SEND_UNSAMPLED",), _flag),
    "incoming_traceparent": (
        ("TRACING_INCOMING_TRACEPARENT",),
        _choice("link", "continue", "ignore"),
    ),
    "payload_context": (("TRACING_PAYLOAD_CONTEXT",), _payload_targets),
    "sampling_rules": (("TRACING_SAMPLING_RULES",), _sampling_rules),
}


def _resource_service(env: Mapping[str, str]) -> str | None:
    """``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,...``, values
    percent-encoded), read only when no variable before it names the service."""
    found = None
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip() == "service.name":
            found = value.strip()  # the last one wins, as in OTel's resource detector
    if not found:
        return None
    if "%" in found:
        from urllib.parse import unquote

        found = unquote(found)
    try:
        return _name(found)
    except ValueError as exc:
        log.error("tracing: ignoring service.name in OTEL_RESOURCE_ATTRIBUTES (%s)", exc)
        return None


def load_settings(
    arguments: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings for ``configure()``.

    Args:
        arguments: Keyword arguments given to ``configure()``; ``None`` values
            count as not given. Unknown names are kept in ``Settings.extra`` for
            backends (for example ``tracer_provider``).
        environ: Environment to read, ``os.environ`` by default.

    Raises:
        ValueError: An explicit argument has an invalid value.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option, (variables, parse) in _OPTIONS.items():
        given = arguments.get(option)
        if given is not None:
            try:
                values[option] = parse(given)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"tracing.configure({option}=...): {exc}") from None
            continue
        for variable in variables:
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[option] = parse(raw)
            except (TypeError, ValueError) as exc:
                log.error("tracing: ignoring %s=%r (%s); using the default", variable, raw, exc)
            break  # the first one set decides, valid or not
    if "service" not in values:
        values["service"] = (
            _resource_service(env) or env.get("AWS_LAMBDA_FUNCTION_NAME") or DEFAULT_SERVICE
        )
    if "redact_keys" in values:
        values["redact_keys"] = tuple(dict.fromkeys(DEFAULT_REDACT_KEYS + values["redact_keys"]))
    known = set(Settings._fields)
    extra = {k: v for k, v in arguments.items() if k not in known and v is not None}
    unknown = sorted(set(extra) - BACKEND_OPTIONS)
    if unknown:
        raise TypeError(f"tracing.configure() got unknown option(s): {', '.join(unknown)}")
    values["extra"] = MappingProxyType(extra)
    if values.get("send_unsampled") and values.get("exporter", "xray-udp") == "xray-udp":
        # X-Ray documents have no unsampled form: only OTLP can carry them (T1U).
        message = (
            "send_unsampled needs an OTLP exporter (exporter='otlp-udp', 'otlp' or 'provider')"
        )
        if arguments.get("send_unsampled") is not None:
            raise ValueError(f"tracing.configure(send_unsampled=True): {message}")
        log.error("tracing: ignoring TRACING_SEND_UNSAMPLED: %s", message)
        values["send_unsampled"] = False
    return Settings(**values)
