"""Sampling outside Lambda: the decision where none arrives with the work.

In Lambda, Lambda decides (``Sampled=`` in ``_X_AMZN_TRACE_ID``), and a message's
header carries its producer's decision: both are kept as they are. What is left
is work that starts a trace of its own outside Lambda: a polling worker's
message without a usable header, and ``@tracing.handler`` called without
``_X_AMZN_TRACE_ID``. For those, :func:`sample` decides as X-Ray's SDKs do, after
the ``sampling_rules`` setting (env ``TRACING_SAMPLING_RULES``):

* not set, or ``"default"``: X-Ray's default rule, the first unit each second
  and 5% of the rest;
* a path: a local rules file in aws-xray-sdk's format (``_sampling_rules.py``);
  a bad file is one error in the log, and the default rule;
* ``"xray"``: X-Ray's centralized rules, fetched with ``GetSamplingRules`` every
  5 minutes and their reservoir quotas with ``GetSamplingTargets`` when X-Ray
  asks (``Interval``, 10 s at first), through the X-Ray daemon's (or the
  CloudWatch agent's) proxy on ``AWS_XRAY_DAEMON_ADDRESS``'s TCP side, unsigned,
  as aws-xray-sdk does. One daemon thread, started at the first decision (never
  at import); until rules arrive, or when the proxy fails (logged once), the
  default rule decides.

The attributes a rule matches: ``service_name`` is the service (the segment's
name); ``service_type`` is ``AWS::ECS::Container`` in ECS, unknown elsewhere
(matching any, as aws-xray-sdk without a platform plugin); ``host``,
``http_method`` and ``url_path`` are the request's for an HTTP event (API
Gateway, function URL, ALB shapes) and empty otherwise, which only a ``*``
pattern matches.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._sampling_rules import DEFAULT_RULES, Rule, RulesError, load_rules_file, parse_rules

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = [
    "Decider",
    "Sampler",
    "active",
    "http_attributes",
    "proxy_address",
    "sample",
]

log = logging.getLogger("tracing.sampling")

#: Distinct request attributes whose matched rule is remembered.
_MATCH_CACHE = 256


class Decider(Protocol):
    """What :func:`sample` asks: record a unit with these attributes?"""

    def decide(self, service: str, host: str = "", method: str = "", path: str = "") -> bool: ...

    def close(self) -> None: ...


class Sampler:
    """Local rules: the first that matches, in order, else the default.

    Args:
        rules: Rules in the order they apply.
        default: The rule for everything else.
        clock: Epoch seconds (``time.time``); tests pass their own.
        draw: A uniform draw in [0, 1) (a private ``random.Random``'s).
        service_type: The platform's X-Ray origin, ``None`` when unknown.
    """

    def __init__(
        self,
        rules: tuple[Rule, ...],
        default: Rule,
        *,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] | None = None,
        service_type: str | None = None,
    ) -> None:
        self.rules = rules
        self.default = default
        self._clock = clock
        self._draw = draw or random.Random().random
        self._service_type = service_type
        self._matched: dict[tuple[str, str, str, str], Rule] = {}

    @classmethod
    def from_document(cls, document: Any, **options: Any) -> Sampler:
        """From rules in aws-xray-sdk's format (:func:`parse_rules`)."""
        return cls(*parse_rules(document), **options)

    def match(self, service: str, host: str = "", method: str = "", path: str = "") -> Rule:
        """The rule that applies to a unit with these attributes."""
        key = (service, host, method, path)
        rule = self._matched.get(key)
        if rule is None:
            rule = self.default
            for candidate in self.rules:
                if candidate.matches(service, self._service_type, host, method, path):
                    rule = candidate
                    break
            if len(self._matched) >= _MATCH_CACHE:
                self._matched.clear()  # many distinct paths: start over, stay bounded
            self._matched[key] = rule
        return rule

    def decide(self, service: str, host: str = "", method: str = "", path: str = "") -> bool:
        """Record this unit? (See the module.)"""
        rule = self.match(service, host, method, path) if self.rules else self.default
        return rule.decide(self._clock(), self._draw)

    def close(self) -> None:
        return None


# -- the process's sampler ------------------------------------------------------------

_lock = threading.Lock()
#: ``(runtime, decider)``: rebuilt when ``configure()`` runs anew.
_active: tuple[object, Decider] | None = None


def proxy_address(daemon_address: str, environ: Mapping[str, str] | None = None) -> str:
    """The daemon's TCP ``host:port``: ``tcp:`` of ``AWS_XRAY_DAEMON_ADDRESS`` if it
    names one (``tcp:h:p udp:h:p``), else the (UDP) ``daemon_address`` setting."""
    env = os.environ if environ is None else environ
    for part in env.get("AWS_XRAY_DAEMON_ADDRESS", "").split():
        if part.startswith("tcp:"):
            return part[4:]
    return daemon_address


def _service_type(environ: Mapping[str, str]) -> str | None:
    if environ.get("ECS_CONTAINER_METADATA_URI_V4") or environ.get("ECS_CONTAINER_METADATA_URI"):
        return "AWS::ECS::Container"
    return None


def _build(runtime: Runtime) -> Decider:
    settings = runtime.settings
    source = settings.sampling_rules
    service_type = _service_type(os.environ)
    default = Sampler.from_document(DEFAULT_RULES, service_type=service_type)
    if source is None or source == "default":
        return default
    if source == "xray":
        from ._sampling_xray import (
            CentralizedSampler,
            HTTPSamplingAPI,
            SamplingAPI,
            SignedSamplingAPI,
        )

        api: SamplingAPI
        emitter_region = getattr(runtime.emitter, "region", None)
        if settings.exporter == "xray-otlp" and isinstance(emitter_region, str):
            # No daemon with xray-otlp: X-Ray's API itself, signed.
            log.debug("tracing: centralized sampling rules from X-Ray's API, signed")
            api = SignedSamplingAPI(emitter_region)
        else:
            address = proxy_address(settings.daemon_address)
            log.debug("tracing: centralized sampling rules through %s", address)
            api = HTTPSamplingAPI(address)
        return CentralizedSampler(
            api,
            default,
            service_type=service_type,
            alive=lambda: _active is not None and _active[0] is runtime,
        )
    try:
        return Sampler(*load_rules_file(source), service_type=service_type)
    except RulesError as exc:
        log.error("tracing: %s; sampling with X-Ray's default rule instead", exc)
        return default


def active(runtime: Runtime) -> Decider:
    """The sampler of ``runtime``, made on first use (a new ``configure()``: anew)."""
    global _active
    current = _active
    if current is not None and current[0] is runtime:
        return current[1]
    with _lock:
        current = _active
        if current is not None and current[0] is runtime:
            return current[1]
        if current is not None:
            current[1].close()
        decider = _build(runtime)
        _active = (runtime, decider)
        return decider


def sample(runtime: Runtime, host: str = "", method: str = "", path: str = "") -> bool:
    """Record a unit that starts its own trace outside Lambda? Never raises.

    Args:
        runtime: The configured runtime.
        host, method, path: An HTTP request's, or empty (a worker's message).
    """
    try:
        current = _active
        decider = current[1] if current is not None and current[0] is runtime else active(runtime)
        return decider.decide(runtime.service_name, host, method, path)
    except Exception:
        runtime.log_once("sampling", "tracing: sampling failed; recording (logged once)")
        return True


def sample_event(runtime: Runtime, event: Any = None) -> bool:
    """:func:`sample` for ``event`` (an HTTP event's attributes; none for a message)."""
    return sample(runtime, *http_attributes(event))


def http_attributes(event: Any) -> tuple[str, str, str]:
    """``(host, method, path)`` of an API Gateway, function URL or ALB event; empty
    strings for anything else. Never raises."""
    if type(event) is not dict:
        return "", "", ""
    method = event.get("httpMethod")
    path = event.get("path")
    context = event.get("requestContext")
    if method is None and type(context) is dict:
        http = context.get("http")  # HTTP API (payload 2.0) and function URLs
        if type(http) is dict:
            method, path = http.get("method"), http.get("path")
    if type(method) is not str:
        return "", "", ""
    host = None
    headers = event.get("headers")
    if type(headers) is dict:
        host = headers.get("host") or headers.get("Host")
    return (
        host if type(host) is str else "",
        method,
        path if type(path) is str else "",
    )
