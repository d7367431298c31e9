"""Sampling rules as X-Ray defines them: matching, reservoirs, and their two sources.

A rule says which units of work it applies to (``host``, ``http_method``,
``url_path``, ``service_name``, ``service_type``: case-insensitive patterns
where ``*`` is any run of characters and ``?`` any one character) and how many
of them to record: the first ``fixed_target`` each second (the *reservoir*),
then a ``rate`` share of the rest.

Two sources:

* a local rules file in aws-xray-sdk's documented format (:func:`parse_rules`):
  ``{"version": 2, "rules": [...], "default": {"fixed_target": 1, "rate": 0.05}}``,
  rules applied in the order given, the default for anything else;
* X-Ray's centralized rules (:func:`rule_from_record`), a ``GetSamplingRules``
  record each, applied by ``Priority`` then name, whose reservoir quota X-Ray
  hands out per client through ``GetSamplingTargets``; until it has (or once it
  expired), a rule with a reservoir *borrows* one unit a second.

Nothing here reads a clock or draws a random number by itself: both are passed
in, so tests decide them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_RULES",
    "MAX_RULES_FILE",
    "BORROW",
    "NO",
    "TAKE",
    "Reservoir",
    "Rule",
    "RulesError",
    "load_rules_file",
    "parse_rules",
    "rule_from_record",
    "wildcard",
]

#: Reservoir outcomes.
NO, TAKE, BORROW = 0, 1, 2
#: A rules file larger than this is refused (a misnamed file, not rules).
MAX_RULES_FILE = 1024 * 1024

Matcher = Callable[[str], bool]


def _anything(text: str) -> bool:
    return True


def wildcard(pattern: str) -> Matcher:
    """A case-insensitive matcher for an X-Ray pattern (``*`` any run, ``?`` one).

    ``*`` alone matches everything, the empty string included; a pattern without
    wildcards is an equality test; others compile to a regular expression once,
    here (when rules are loaded, never at import or per decision).
    """
    if pattern == "*":
        return _anything
    if "*" not in pattern and "?" not in pattern:
        folded = pattern.casefold()
        return lambda text: text.casefold() == folded
    import re

    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    compiled = re.compile(regex, re.IGNORECASE | re.DOTALL)
    return lambda text: compiled.fullmatch(text) is not None


class RulesError(ValueError):
    """A rules file or document that is not valid sampling rules."""


class Reservoir:
    """How many units a rule records each second before its rate applies.

    A local rule's quota is its ``fixed_target``, forever. A centralized rule's
    quota comes from X-Ray with an expiry (``ReservoirQuotaTTL``); without a
    fresh one, a rule whose ``ReservoirSize`` is not zero may borrow one unit
    a second, as aws-xray-sdk does, so that a new client records something
    before its first target arrives.

    Not locked: :meth:`Rule.decide` holds the rule's lock around it.
    """

    __slots__ = ("_borrowed", "_second", "_taken", "can_borrow", "expires", "quota")

    def __init__(
        self, quota: int | None, *, can_borrow: bool = False, expires: float = float("inf")
    ) -> None:
        self.quota = quota
        self.expires = expires
        self.can_borrow = can_borrow
        self._second = -1
        self._taken = 0
        self._borrowed = 0

    def take(self, now: float) -> int:
        """:data:`TAKE` from the quota, :data:`BORROW` one, or :data:`NO`."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._taken = 0
            self._borrowed = 0
        quota = self.quota
        if quota is not None and now <= self.expires:
            if self._taken >= quota:
                return NO
            self._taken += 1
            return TAKE
        if self.can_borrow and self._borrowed < 1:
            self._borrowed += 1
            return BORROW
        return NO


class Rule:
    """One sampling rule, with its reservoir and the counts X-Ray asks for.

    Attributes:
        name: ``RuleName`` (centralized), or ``"rule N"`` / ``"Default"`` (local).
        priority: Lower applies first (centralized); file order for local rules.
        rate: Share of the units past the reservoir that are recorded, 0..1.
        reservoir: The per-second quota.
        requests, sampled, borrowed: Counts since the last report to X-Ray.
        interval: Seconds between reports of this rule (X-Ray's ``Interval``).
        report_due: When this rule's statistics are next reported (epoch s).
    """

    __slots__ = (
        "_host",
        "_lock",
        "_method",
        "_path",
        "_service",
        "_service_type",
        "borrowed",
        "interval",
        "name",
        "priority",
        "rate",
        "report_due",
        "requests",
        "reservoir",
        "sampled",
    )

    def __init__(
        self,
        name: str,
        rate: float,
        reservoir: Reservoir,
        *,
        priority: int = 0,
        host: str = "*",
        method: str = "*",
        path: str = "*",
        service: str = "*",
        service_type: str = "*",
    ) -> None:
        self.name = name
        self.priority = priority
        self.rate = rate
        self.reservoir = reservoir
        self._host = wildcard(host)
        self._method = wildcard(method)
        self._path = wildcard(path)
        self._service = wildcard(service)
        self._service_type = wildcard(service_type)
        self._lock = threading.Lock()
        self.requests = 0
        self.sampled = 0
        self.borrowed = 0
        self.interval = 10.0
        self.report_due = 0.0

    def matches(
        self, service: str, service_type: str | None, host: str, method: str, path: str
    ) -> bool:
        """Whether the rule applies to a unit with these attributes.

        An empty ``host``/``method``/``path`` (no HTTP request) matches only a
        pattern that accepts the empty string (``*``); an unknown
        ``service_type`` (``None``) matches any, as aws-xray-sdk does without a
        platform plugin.
        """
        return (
            self._service(service)
            and (service_type is None or self._service_type(service_type))
            and self._host(host)
            and self._method(method)
            and self._path(path)
        )

    def decide(self, now: float, draw: Callable[[], float]) -> bool:
        """Record this unit? The reservoir first, then ``rate``; counts it."""
        with self._lock:
            self.requests += 1
            taken = self.reservoir.take(now)
            if taken == BORROW:
                self.borrowed += 1
            elif taken == NO and not draw() < self.rate:
                return False
            self.sampled += 1
            return True

    def statistics(self) -> tuple[int, int, int]:
        """``(requests, sampled, borrowed)`` since the last call, and reset them."""
        with self._lock:
            counts = (self.requests, self.sampled, self.borrowed)
            self.requests = self.sampled = self.borrowed = 0
            return counts

    def inherit(self, old: Rule) -> None:
        """Keep ``old``'s counts and quota: the same rule, fetched again."""
        with old._lock:
            self.requests, self.sampled, self.borrowed = old.requests, old.sampled, old.borrowed
            self.reservoir.quota = old.reservoir.quota
            self.reservoir.expires = old.reservoir.expires
            self.interval, self.report_due = old.interval, old.report_due


# -- local rules ---------------------------------------------------------------------

#: X-Ray's default rule: the first unit each second, then 5% of the rest.
DEFAULT_RULES: dict[str, Any] = {"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}


def _number(rule: Mapping[str, Any], key: str, where: str, *, integer: bool) -> Any:
    value = rule.get(key)
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        kind = "a whole number" if integer else "a number"
        raise RulesError(f"{where}: {key!r} must be {kind}, got {value!r}")
    if value < 0 or (not integer and not value <= 1):
        limits = ">= 0" if integer else "between 0 and 1"
        raise RulesError(f"{where}: {key!r} must be {limits}, got {value!r}")
    return value


def _pattern(rule: Mapping[str, Any], key: str, where: str) -> str:
    value = rule.get(key, "*")
    if not isinstance(value, str):
        raise RulesError(f"{where}: {key!r} must be a string pattern, got {value!r}")
    return value


def parse_rules(document: Any) -> tuple[tuple[Rule, ...], Rule]:
    """Rules in aws-xray-sdk's local format, version 1 or 2.

    ``default`` (``fixed_target``, ``rate``) is required; each of ``rules``
    needs ``fixed_target`` and ``rate``, and may name ``host``,
    ``http_method``, ``url_path`` and ``service_name`` patterns (``*`` when
    absent) and a ``description``. In version 1, ``service_name`` is what
    version 2 calls ``host`` (as in aws-xray-sdk).

    Returns:
        ``(rules in file order, default rule)``.

    Raises:
        RulesError: The document is not valid rules; the message says where.
    """
    if not isinstance(document, Mapping):
        raise RulesError("sampling rules must be a JSON object")
    version = document.get("version")
    if version not in (1, 2) or isinstance(version, bool):
        raise RulesError(f"'version' must be 1 or 2, got {version!r}")
    default = document.get("default")
    if not isinstance(default, Mapping):
        raise RulesError("a 'default' rule (an object with fixed_target and rate) is required")
    for key in ("host", "http_method", "url_path", "service_name"):
        if key in default:
            raise RulesError(f"the default rule applies to everything: it cannot have {key!r}")
    fallback = Rule(
        "Default",
        _number(default, "rate", "default", integer=False),
        Reservoir(_number(default, "fixed_target", "default", integer=True)),
        priority=10000,
    )
    listed = document.get("rules", [])
    if not isinstance(listed, list):
        raise RulesError("'rules' must be a list")
    rules = []
    for index, item in enumerate(listed):
        where = f"rules[{index}]"
        if not isinstance(item, Mapping):
            raise RulesError(f"{where} must be an object")
        description = item.get("description", "")
        if not isinstance(description, str):
            raise RulesError(f"{where}: 'description' must be a string")
        host_key = "service_name" if version == 1 else "host"
        rules.append(
            Rule(
                description or f"rule {index}",
                _number(item, "rate", where, integer=False),
                Reservoir(_number(item, "fixed_target", where, integer=True)),
                priority=index,
                host=_pattern(item, host_key, where),
                method=_pattern(item, "http_method", where),
                path=_pattern(item, "url_path", where),
                service=_pattern(item, "service_name", where) if version == 2 else "*",
            )
        )
    return tuple(rules), fallback


def load_rules_file(path: str) -> tuple[tuple[Rule, ...], Rule]:
    """:func:`parse_rules` of a JSON file.

    Raises:
        RulesError: Unreadable, too large, not JSON, or not valid rules; the
            message names the file.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_RULES_FILE + 1)
    except OSError as exc:
        raise RulesError(
            f"cannot read sampling rules file {path!r}: {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_RULES_FILE:
        raise RulesError(f"sampling rules file {path!r} is larger than {MAX_RULES_FILE} bytes")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RulesError(f"sampling rules file {path!r} is not JSON: {exc}") from None
    try:
        return parse_rules(document)
    except RulesError as exc:
        raise RulesError(f"sampling rules file {path!r}: {exc}") from None


# -- centralized rules ----------------------------------------------------------------

_RECORD_STRINGS = ("RuleName", "ServiceName", "ServiceType", "Host", "HTTPMethod", "URLPath")


def rule_from_record(record: Any) -> Rule | None:
    """A rule from one ``GetSamplingRules`` ``SamplingRuleRecords`` item, or ``None``.

    As aws-xray-sdk, only what it can apply is kept: ``Version`` 1, a
    ``ResourceARN`` of ``*`` and no ``Attributes`` (a unit here has no resource
    ARN nor attributes to match). Anything malformed is ``None``, never an error.
    """
    rule = record.get("SamplingRule") if isinstance(record, Mapping) else None
    if not isinstance(rule, Mapping):
        return None
    if rule.get("Version") != 1 or rule.get("ResourceARN") != "*" or rule.get("Attributes"):
        return None
    if not all(isinstance(rule.get(key), str) for key in _RECORD_STRINGS):
        return None
    priority, rate, size = rule.get("Priority"), rule.get("FixedRate"), rule.get("ReservoirSize")
    if (
        not isinstance(priority, int)
        or not isinstance(size, int)
        or not isinstance(rate, (int, float))
        or isinstance(rate, bool)
        or not 0 <= rate <= 1
        or size < 0
    ):
        return None
    return Rule(
        rule["RuleName"],
        float(rate),
        Reservoir(None, can_borrow=size > 0),
        priority=priority,
        host=rule["Host"],
        method=rule["HTTPMethod"],
        path=rule["URLPath"],
        service=rule["ServiceName"],
        service_type=rule["ServiceType"],
    )
