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

import contextvars
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._sampling_rules import (
    DEFAULT_RULES,
    Rule,
    RulesError,
    load_rules_file,
    parse_rules,
    rule_from_record,
)

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = [
    "CentralizedSampler",
    "HTTPSamplingAPI",
    "Sampler",
    "SamplingAPI",
    "active",
    "http_attributes",
    "proxy_address",
    "sample",
]

log = logging.getLogger("tracing.sampling")

#: Seconds between rule fetches (aws-xray-sdk: 5 minutes, up to 5 s of jitter).
RULES_INTERVAL_S = 300.0
#: Seconds between target reports until X-Ray says otherwise (``Interval``).
TARGETS_INTERVAL_S = 10.0
#: Centralized rules are not used past this long after their last fetch.
RULES_TTL_S = 3600.0
#: The poller wakes at least this often, to notice it is no longer needed.
_TICK_S = 1.0
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


class SamplingAPI(Protocol):
    """The two X-Ray calls, as REST-JSON bodies (dicts) in and out."""

    def get_sampling_rules(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def get_sampling_targets(self, body: dict[str, Any]) -> dict[str, Any]: ...


class HTTPSamplingAPI:
    """``POST /GetSamplingRules`` and ``POST /SamplingTargets``, unsigned, to a proxy.

    The X-Ray daemon and the CloudWatch agent sign and forward these on their
    TCP address; so does ``tracing daemon``, answering from local rules.
    """

    def __init__(self, address: str, timeout_s: float = 2.0) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import http.client

        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read(4 * 1024 * 1024)
        finally:
            connection.close()
        if response.status != 200:
            raise OSError(f"HTTP {response.status} from {path}: {data[:200]!r}")
        answer = json.loads(data)
        if not isinstance(answer, dict):
            raise ValueError(f"{path} answered {type(answer).__name__}, not an object")
        return answer

    def get_sampling_rules(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/GetSamplingRules", body)

    def get_sampling_targets(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/SamplingTargets", body)


def _epoch(value: Any) -> float | None:
    """A REST-JSON timestamp (epoch seconds) as a float; ``None`` if it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class CentralizedSampler:
    """X-Ray's centralized rules, polled in a daemon thread (see the module).

    Args:
        api: Where ``GetSamplingRules`` and ``GetSamplingTargets`` go.
        fallback: Decides before rules arrive, after they expire, or when
            nothing else matches (X-Ray always has a ``Default`` rule).
        clock, draw, service_type: As for :class:`Sampler`.
        alive: Whether the poller is still wanted (checked every second).
        start: Start the poller at the first decision; tests call
            :meth:`refresh_rules` and :meth:`report` themselves.
    """

    def __init__(
        self,
        api: SamplingAPI,
        fallback: Decider,
        *,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] | None = None,
        service_type: str | None = None,
        alive: Callable[[], bool] = lambda: True,
        start: bool = True,
    ) -> None:
        self._api = api
        self._fallback = fallback
        self._clock = clock
        self._draw = draw or random.Random().random
        self._service_type = service_type
        self._alive = alive
        self._autostart = start
        self._started = False
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._jitter = random.Random()
        self.client_id = os.urandom(12).hex()
        #: Rules by priority then name, swapped whole when fetched again.
        self.rules: tuple[Rule, ...] = ()
        self.fetched_at: float | None = None
        self._matched: dict[tuple[str, str, str, str], Rule | None] = {}
        self._failed = False
        self.rules_due = 0.0
        self.targets_due = 0.0

    @property
    def ready(self) -> bool:
        """Whether fetched rules decide now (not the fallback)."""
        fetched = self.fetched_at
        return bool(self.rules) and fetched is not None and self._clock() <= fetched + RULES_TTL_S

    def decide(self, service: str, host: str = "", method: str = "", path: str = "") -> bool:
        if not self._started and self._autostart:
            self._start()
        rules, now = self.rules, self._clock()
        fetched = self.fetched_at
        if not rules or fetched is None or now > fetched + RULES_TTL_S:
            return self._fallback.decide(service, host, method, path)
        key = (service, host, method, path)
        matched = self._matched
        rule = matched.get(key)
        if rule is None:
            rule = _first_match(rules, service, self._service_type, host, method, path)
            if rule is None:
                return self._fallback.decide(service, host, method, path)
            if len(matched) >= _MATCH_CACHE:
                matched.clear()
            matched[key] = rule
        return rule.decide(now, self._draw)

    def close(self) -> None:
        """Stop the poller (it also stops once ``alive()`` says so)."""
        self._stop.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
            # A fresh context: the poller belongs to no unit of work, whatever
            # was current at the first decision.
            thread = threading.Thread(
                target=contextvars.Context().run,
                args=(self._run,),
                name="tracing-sampling-poller",
                daemon=True,
            )
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self._alive():
            now = self._clock()
            try:
                if now >= self.rules_due:
                    self.refresh_rules(now)
                elif now >= self.targets_due:
                    self.report(now)
            except Exception:  # never let the poller die
                log.debug("tracing: sampling poll failed", exc_info=True)
            wait = min(self.rules_due, self.targets_due) - self._clock()
            self._stop.wait(max(0.01, min(wait, _TICK_S)))

    def _fail(self, what: str, exc: BaseException) -> None:
        if self._failed:
            log.debug("tracing: %s failed: %s", what, exc)
            return
        self._failed = True
        log.warning(
            "tracing: %s failed (%s); sampling with the local rule until X-Ray answers "
            "(logged once)",
            what,
            exc,
        )

    def refresh_rules(self, now: float) -> bool:
        """Fetch the rules (``GetSamplingRules``, every page); ``False`` on failure.

        A failure keeps the rules in hand (until they expire) and tries again at
        the next targets tick rather than in 5 minutes: a worker started before
        its daemon should not wait that long.
        """
        try:
            records: list[Any] = []
            body: dict[str, Any] = {}
            for _ in range(100):  # pages; X-Ray accounts hold at most a few hundred rules
                answer = self._api.get_sampling_rules(body)
                page = answer.get("SamplingRuleRecords")
                if isinstance(page, list):
                    records.extend(page)
                token = answer.get("NextToken")
                if not isinstance(token, str) or not token:
                    break
                body = {"NextToken": token}
        except Exception as exc:
            self._fail("GetSamplingRules", exc)
            self.rules_due = now + TARGETS_INTERVAL_S
            self.targets_due = max(self.targets_due, self.rules_due)
            return False
        rules = [rule for rule in map(rule_from_record, records) if rule is not None]
        old = {rule.name: rule for rule in self.rules}
        for rule in rules:
            previous = old.get(rule.name)
            if previous is not None:
                rule.inherit(previous)
        # X-Ray's order: priority, then name (names are unique). Default last.
        rules.sort(key=lambda rule: (rule.name == "Default", rule.priority, rule.name))
        self.rules = tuple(rules)
        self._matched = {}
        self.fetched_at = now
        if self._failed:
            log.info("tracing: sampling rules fetched from X-Ray again")
            self._failed = False
        self.rules_due = now + RULES_INTERVAL_S + self._jitter.random() * 5
        if self.targets_due <= now:
            self.targets_due = now + TARGETS_INTERVAL_S + self._jitter.random() / 10
        return True

    def report(self, now: float) -> bool:
        """Report the rules used since last time and load their quotas
        (``GetSamplingTargets``); ``False`` on failure or nothing to report."""
        due = [rule for rule in self.rules if rule.requests > 0 and rule.report_due <= now]
        next_tick = now + TARGETS_INTERVAL_S + self._jitter.random() / 10
        if not due:
            self.targets_due = next_tick
            return False
        documents = []
        for rule in due:
            requests, sampled, borrowed = rule.statistics()
            documents.append(
                {
                    "RuleName": rule.name,
                    "ClientID": self.client_id,
                    "RequestCount": requests,
                    "SampledCount": sampled,
                    "BorrowCount": borrowed,
                    "Timestamp": int(now),
                }
            )
        try:
            answer = self._api.get_sampling_targets({"SamplingStatisticsDocuments": documents})
        except Exception as exc:
            self._fail("GetSamplingTargets", exc)
            self.targets_due = next_tick
            return False
        by_name = {rule.name: rule for rule in self.rules}
        intervals = []
        targets = answer.get("SamplingTargetDocuments")
        for target in targets if isinstance(targets, list) else ():
            if not isinstance(target, Mapping):
                continue
            found = by_name.get(str(target.get("RuleName")))
            if found is not None:
                _load_target(found, target, now)
                intervals.append(found.interval)
        self.targets_due = now + (min(intervals) if intervals else TARGETS_INTERVAL_S)
        self.targets_due += self._jitter.random() / 10
        modified = _epoch(answer.get("LastRuleModification"))
        if modified is not None and self.fetched_at is not None and modified > self.fetched_at:
            self.rules_due = now  # the rules changed: fetch them now, out of band
        return True


def _load_target(rule: Rule, target: Mapping[str, Any], now: float) -> None:
    """One ``SamplingTargetDocument``: the rule's new rate, quota and interval."""
    rate = _epoch(target.get("FixedRate"))
    if rate is not None and 0 <= rate <= 1:
        rule.rate = rate
    quota = target.get("ReservoirQuota")
    expires = _epoch(target.get("ReservoirQuotaTTL"))
    with rule._lock:
        if isinstance(quota, int) and not isinstance(quota, bool) and quota >= 0:
            rule.reservoir.quota = quota
        if expires is not None:
            rule.reservoir.expires = expires
    interval = _epoch(target.get("Interval"))
    if interval is not None and interval > 0:
        rule.interval = interval
    rule.report_due = now + rule.interval


def _first_match(
    rules: tuple[Rule, ...],
    service: str,
    service_type: str | None,
    host: str,
    method: str,
    path: str,
) -> Rule | None:
    for rule in rules:
        # X-Ray's Default rule applies to whatever no other rule took.
        if rule.name == "Default" or rule.matches(service, service_type, host, method, path):
            return rule
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
        address = proxy_address(settings.daemon_address)
        log.debug("tracing: centralized sampling rules through %s", address)
        return CentralizedSampler(
            HTTPSamplingAPI(address),
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
