"""X-Ray's centralized sampling rules, polled through the daemon's proxy.

``sampling_rules="xray"``: :class:`CentralizedSampler` fetches the rules with
``GetSamplingRules`` every 5 minutes (up to 5 s of jitter) and reports each used
rule's counts with ``GetSamplingTargets`` when X-Ray asks (``Interval``; 10 s
until it says), loading the reservoir quota, its expiry and the rate X-Ray hands
this client; a rule changed at X-Ray (``LastRuleModification``) is fetched at
once. Rules apply by ``Priority`` then name, X-Ray's ``Default`` last. The calls
go unsigned to the X-Ray daemon's (or CloudWatch agent's) TCP address, which
signs and forwards them, as aws-xray-sdk's do (:class:`HTTPSamplingAPI`); with
``exporter="xray-otlp"``, where no daemon is assumed, they go SigV4-signed
straight to X-Ray's API (:class:`SignedSamplingAPI`).

Imported only when centralized sampling is chosen.
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
from typing import Any, Protocol

from ._sampling import _MATCH_CACHE, Decider
from ._sampling_rules import Rule, rule_from_record

__all__ = ["CentralizedSampler", "HTTPSamplingAPI", "SamplingAPI", "SignedSamplingAPI"]

log = logging.getLogger("tracing.sampling")

#: Seconds between rule fetches (aws-xray-sdk: 5 minutes, up to 5 s of jitter).
RULES_INTERVAL_S = 300.0
#: Seconds between target reports until X-Ray says otherwise (``Interval``).
TARGETS_INTERVAL_S = 10.0
#: Centralized rules are not used past this long after their last fetch.
RULES_TTL_S = 3600.0
#: The poller wakes at least this often, to notice it is no longer needed.
_TICK_S = 1.0


class SamplingAPI(Protocol):
    """The two X-Ray calls, as REST-JSON bodies (dicts) in and out."""

    def get_sampling_rules(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def get_sampling_targets(self, body: dict[str, Any]) -> dict[str, Any]: ...


def _exchange(connection: Any, path: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """POST ``data``; the JSON object answered, or ``OSError``/``ValueError``."""
    try:
        connection.request("POST", path, data, headers)
        response = connection.getresponse()
        answer_bytes = response.read(4 * 1024 * 1024)
    finally:
        connection.close()
    if response.status != 200:
        raise OSError(f"HTTP {response.status} from {path}: {answer_bytes[:200]!r}")
    answer = json.loads(answer_bytes)
    if not isinstance(answer, dict):
        raise ValueError(f"{path} answered {type(answer).__name__}, not an object")
    return answer


class _Calls:
    """The two calls, as POSTs of REST-JSON bodies (``_post`` says how)."""

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def get_sampling_rules(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/GetSamplingRules", body)

    def get_sampling_targets(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/SamplingTargets", body)


class HTTPSamplingAPI(_Calls):
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
        data = json.dumps(body).encode()
        return _exchange(connection, path, data, {"Content-Type": "application/json"})


class SignedSamplingAPI(_Calls):
    """The same two calls, SigV4-signed, straight to X-Ray's API: no daemon needed.

    What a worker uses with ``exporter="xray-otlp"`` (after the X-Ray daemon's
    end of support, nothing may listen on the proxy address): the endpoint is
    botocore's X-Ray endpoint (``AWS_ENDPOINT_URL_XRAY`` and ``AWS_ENDPOINT_URL``
    redirect it), the credentials botocore's chain, read before each call so
    refreshable ones refresh; signed by the exporter's own SigV4
    (``tracing._sigv4.sign``). botocore is imported at the first call,
    in the poller's thread, never at import or in a handler.

    Args:
        region: The signing region (``AWS_REGION``, else botocore's).
        timeout_s: Seconds per call.
    """

    def __init__(self, region: str, timeout_s: float = 2.0) -> None:
        self.region = region
        self.timeout_s = timeout_s
        self._session: Any = None
        self._endpoint: str | None = None
        self._keys: Any = None

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import datetime
        import http.client
        from urllib.parse import urlsplit

        from ._sigv4 import SigningKeys, canonical_host, resolve_endpoint, sign

        if self._session is None:
            import botocore.session

            self._session = botocore.session.Session()
            self._endpoint = resolve_endpoint(self._session, self.region).rstrip("/")
            self._keys = SigningKeys()
        credentials = self._session.get_credentials()
        if credentials is None:
            raise OSError("botocore's credential chain found no AWS credentials")
        frozen = credentials.get_frozen_credentials()
        url = f"{self._endpoint}{path}"
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        signed = sign(
            url,
            headers,
            data,
            self.region,
            frozen.access_key,
            frozen.secret_key,
            frozen.token,
            datetime.datetime.now(datetime.timezone.utc),
            self._keys,
        )
        headers |= {
            "Host": canonical_host(url),
            "X-Amz-Date": signed.amz_date,
            "Authorization": signed.authorization,
        }
        if frozen.token:
            headers["X-Amz-Security-Token"] = frozen.token
        parts = urlsplit(url)
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(parts.hostname or "", parts.port, timeout=self.timeout_s)
        return _exchange(connection, parts.path, data, headers)


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
