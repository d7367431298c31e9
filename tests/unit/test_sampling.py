"""Sampling outside Lambda: reservoirs, rates, rule matching, rules files, centralized rules.

Written from X-Ray's documented behaviour (the default rule is 1 a second plus 5%
of the rest; local rules apply in file order, centralized ones by priority; a
rule with a reservoir borrows one a second until X-Ray hands out its quota),
with the clock and the random draws injected.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

import tracing
from tracing import _sampling
from tracing._config import load_settings
from tracing._runtime import get_runtime
from tracing._sampling import Sampler, http_attributes, proxy_address
from tracing._sampling_rules import (
    BORROW,
    NO,
    TAKE,
    Reservoir,
    Rule,
    RulesError,
    load_rules_file,
    parse_rules,
    rule_from_record,
    wildcard,
)
from tracing._sampling_xray import CentralizedSampler


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def draws(*values: float) -> Any:
    """A draw returning ``values`` in turn, then the last one forever."""
    queue = list(values)

    def draw() -> float:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return draw


# -- reservoir and rate ------------------------------------------------------------


def test_reservoir_gives_its_quota_each_second_and_no_more() -> None:
    reservoir = Reservoir(2)
    now = 100.0
    assert [reservoir.take(now + 0.1 * i) for i in range(4)] == [TAKE, TAKE, NO, NO]
    assert [reservoir.take(101.0), reservoir.take(101.9), reservoir.take(101.95)] == [
        TAKE,
        TAKE,
        NO,
    ]
    assert reservoir.take(105.5) == TAKE  # a new second, after a gap


def test_an_empty_reservoir_takes_nothing() -> None:
    assert Reservoir(0).take(1.0) == NO


def test_a_centralized_reservoir_borrows_one_a_second_until_its_quota_arrives() -> None:
    reservoir = Reservoir(None, can_borrow=True)
    assert [reservoir.take(10.0), reservoir.take(10.5), reservoir.take(11.0)] == [
        BORROW,
        NO,
        BORROW,
    ]
    reservoir.quota, reservoir.expires = 3, 20.0
    assert [reservoir.take(12.0) for _ in range(4)] == [TAKE, TAKE, TAKE, NO]
    # Expired: borrowing again, one a second.
    assert [reservoir.take(21.0), reservoir.take(21.2)] == [BORROW, NO]
    assert Reservoir(None, can_borrow=False).take(1.0) == NO


def test_default_rule_records_the_first_each_second_then_five_percent() -> None:
    clock = Clock(50.0)
    sampler = Sampler.from_document(
        {"version": 2, "default": {"fixed_target": 1, "rate": 0.05}},
        clock=clock,
        draw=draws(0.5, 0.049, 0.05, 0.9),
    )
    # 1st: reservoir (no draw); then 0.5 > 0.05, 0.049 < 0.05, 0.05 is not < 0.05.
    assert [sampler.decide("svc") for _ in range(4)] == [True, False, True, False]
    clock.now = 51.0
    assert sampler.decide("svc") is True  # a new second: the reservoir again
    rule = sampler.default
    assert (rule.requests, rule.sampled, rule.borrowed) == (5, 3, 0)


def test_rate_one_and_rate_zero() -> None:
    always = Sampler.from_document({"version": 2, "default": {"fixed_target": 0, "rate": 1}})
    never = Sampler.from_document({"version": 2, "default": {"fixed_target": 0, "rate": 0}})
    assert all(always.decide("svc") for _ in range(100))
    assert not any(never.decide("svc") for _ in range(100))


# -- matching ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*", "", True),
        ("*", "anything", True),
        ("", "", True),
        ("", "x", False),
        ("orders", "ORDERS", True),
        ("orders", "orders-api", False),
        ("orders-*", "orders-api", True),
        ("orders-*", "Orders-", True),
        ("/api/move/*", "/api/move/left", True),
        ("/api/move/*", "/api/jump", False),
        ("/api/move/*", "", False),
        ("?ET", "GET", True),
        ("?ET", "ET", False),
        ("a?c*e", "abcdxe", True),
        ("a.c", "abc", False),  # a dot is a dot, not a regular expression
        ("a+", "aa", False),
        ("*\n*", "x\ny", True),
    ],
)
def test_wildcards(pattern: str, text: str, expected: bool) -> None:
    assert wildcard(pattern)(text) is expected


def _rules_sampler(rules: list[dict[str, Any]], **options: Any) -> Sampler:
    document = {"version": 2, "rules": rules, "default": {"fixed_target": 0, "rate": 0}}
    return Sampler.from_document(document, **options)


def test_the_first_matching_rule_in_file_order_applies_then_the_default() -> None:
    sampler = _rules_sampler(
        [
            {"description": "health", "url_path": "/health", "fixed_target": 0, "rate": 0},
            {
                "description": "api",
                "http_method": "*",
                "url_path": "/api/*",
                "fixed_target": 0,
                "rate": 1,
            },
            {"description": "all of api", "url_path": "/api/*", "fixed_target": 0, "rate": 0},
            {"description": "orders", "service_name": "orders-*", "fixed_target": 0, "rate": 1},
        ]
    )
    assert sampler.match("svc", "h", "GET", "/api/x").name == "api"
    assert sampler.match("svc", "h", "GET", "/health").name == "health"
    assert sampler.match("orders-worker").name == "orders"  # a worker: no HTTP at all
    assert sampler.match("billing").name == "Default"
    assert sampler.decide("svc", "h", "GET", "/api/x") is True
    assert sampler.decide("svc", "h", "GET", "/other") is False


def test_a_worker_matches_only_rules_whose_http_patterns_accept_nothing() -> None:
    sampler = _rules_sampler(
        [
            {"description": "web", "host": "*", "http_method": "GET", "url_path": "*",
             "fixed_target": 0, "rate": 1},
            {"description": "any", "host": "*", "http_method": "*", "url_path": "*",
             "fixed_target": 0, "rate": 1},
        ]
    )  # fmt: skip
    assert sampler.match("svc").name == "any"
    assert sampler.match("svc", "example.com", "GET", "/").name == "web"


def test_matches_are_remembered_but_bounded() -> None:
    sampler = _rules_sampler([{"url_path": "/a/*", "fixed_target": 0, "rate": 1}])
    for i in range(1000):
        sampler.match("svc", "", "GET", f"/a/{i}")
    assert len(sampler._matched) <= 256
    assert sampler.match("svc", "", "GET", "/a/x").name == "rule 0"


def test_service_type_unknown_matches_any_known_matches_its_own() -> None:
    rule = Rule("r", 1.0, Reservoir(0), service_type="AWS::ECS::Container")
    assert rule.matches("svc", None, "", "", "")
    assert rule.matches("svc", "aws::ecs::container", "", "", "")
    assert not rule.matches("svc", "AWS::EC2::Instance", "", "", "")


# -- rules files -------------------------------------------------------------------


def test_the_sdks_documented_example_parses() -> None:
    rules, default = parse_rules(
        {
            "version": 2,
            "rules": [
                {
                    "description": "Player moves.",
                    "host": "*",
                    "http_method": "*",
                    "url_path": "/api/move/*",
                    "fixed_target": 0,
                    "rate": 0.05,
                }
            ],
            "default": {"fixed_target": 1, "rate": 0.1},
        }
    )
    assert [(r.name, r.rate, r.reservoir.quota) for r in rules] == [("Player moves.", 0.05, 0)]
    assert (default.name, default.rate, default.reservoir.quota) == ("Default", 0.1, 1)


def test_version_1_service_name_is_the_host() -> None:
    rules, _ = parse_rules(
        {
            "version": 1,
            "rules": [{"service_name": "api.example.com", "http_method": "*", "url_path": "*",
                       "fixed_target": 0, "rate": 1}],
            "default": {"fixed_target": 0, "rate": 0},
        }
    )  # fmt: skip
    assert rules[0].matches("any-service", None, "API.example.com", "GET", "/")
    assert not rules[0].matches("any-service", None, "other.example.com", "GET", "/")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a JSON object"),
        ({"default": {"fixed_target": 1, "rate": 0.1}}, "'version' must be 1 or 2"),
        ({"version": 3, "default": {"fixed_target": 1, "rate": 0.1}}, "'version' must be 1 or 2"),
        ({"version": True, "default": {"fixed_target": 1, "rate": 0.1}}, "'version'"),
        ({"version": 2}, "'default' rule"),
        ({"version": 2, "default": {"fixed_target": 1}}, "default: 'rate' must be a number"),
        ({"version": 2, "default": {"fixed_target": 1, "rate": 1.5}}, "between 0 and 1"),
        ({"version": 2, "default": {"fixed_target": -1, "rate": 0.1}}, ">= 0"),
        ({"version": 2, "default": {"fixed_target": 1.5, "rate": 0.1}}, "a whole number"),
        ({"version": 2, "default": {"fixed_target": True, "rate": 0.1}}, "a whole number"),
        ({"version": 2, "default": {"fixed_target": 1, "rate": "0.1"}}, "must be a number"),
        (
            {"version": 2, "default": {"fixed_target": 1, "rate": 0.1, "url_path": "/x"}},
            "cannot have 'url_path'",
        ),
        ({"version": 2, "default": {"fixed_target": 1, "rate": 0.1}, "rules": {}}, "a list"),
        (
            {"version": 2, "default": {"fixed_target": 1, "rate": 0.1}, "rules": [{"rate": 0.1}]},
            "rules[0]: 'fixed_target'",
        ),
        (
            {
                "version": 2,
                "default": {"fixed_target": 1, "rate": 0.1},
                "rules": [{"fixed_target": 1, "rate": 0.1, "url_path": 7}],
            },
            "rules[0]: 'url_path' must be a string",
        ),
    ],
)
def test_invalid_rules_say_what_is_wrong(document: Any, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(document)
    assert message in str(caught.value)


def test_rules_files_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(RulesError, match=r"cannot read sampling rules file .*missing\.json"):
        load_rules_file(str(missing))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(RulesError, match=r"broken\.json.* is not JSON"):
        load_rules_file(str(broken))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"version": 2}))
    with pytest.raises(RulesError, match=r"wrong\.json.*'default' rule"):
        load_rules_file(str(wrong))
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (1024 * 1024 + 1))
    with pytest.raises(RulesError, match="larger than"):
        load_rules_file(str(huge))


def test_a_bad_file_is_one_error_and_the_default_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text('{"version": 2, "default": {"fixed_target": 1, "rate": 7}}')
    monkeypatch.setenv("TRACING_SAMPLING_RULES", str(bad))
    tracing.configure(service="svc")
    runtime = get_runtime()
    assert runtime is not None
    with caplog.at_level(logging.ERROR, logger="tracing.sampling"):
        for _ in range(3):
            _sampling.sample(runtime)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "rules.json" in errors[0].getMessage()
    assert "'rate' must be between 0 and 1" in errors[0].getMessage()
    sampler = _sampling.active(runtime)
    assert isinstance(sampler, Sampler)
    assert (sampler.default.rate, sampler.default.reservoir.quota, sampler.rules) == (0.05, 1, ())


# -- settings ----------------------------------------------------------------------


def test_the_setting_from_configure_and_from_the_environment(tmp_path: Path) -> None:
    assert load_settings({}, {}).sampling_rules is None
    assert load_settings({"sampling_rules": "XRay"}, {}).sampling_rules == "xray"
    assert load_settings({"sampling_rules": tmp_path / "r.json"}, {}).sampling_rules == str(
        tmp_path / "r.json"
    )
    env = {"TRACING_SAMPLING_RULES": " /etc/rules.json "}
    assert load_settings({}, env).sampling_rules == "/etc/rules.json"
    assert load_settings({"sampling_rules": "default"}, env).sampling_rules == "default"
    with pytest.raises(ValueError, match="sampling_rules"):
        load_settings({"sampling_rules": 3}, {})
    with pytest.raises(ValueError, match="sampling_rules"):
        load_settings({"sampling_rules": "  "}, {})


def test_the_proxy_address_is_the_daemons_tcp_side() -> None:
    assert proxy_address("127.0.0.1:2000", {}) == "127.0.0.1:2000"
    assert proxy_address("10.0.0.1:3000", {"AWS_XRAY_DAEMON_ADDRESS": "10.0.0.1:3000"}) == (
        "10.0.0.1:3000"
    )
    both = {"AWS_XRAY_DAEMON_ADDRESS": "tcp:10.0.0.2:2001 udp:10.0.0.1:2000"}
    assert proxy_address("10.0.0.1:2000", both) == "10.0.0.2:2001"


def test_http_attributes_of_the_http_event_shapes() -> None:
    rest = {"httpMethod": "POST", "path": "/orders", "headers": {"Host": "api.example.com"}}
    http = {
        "requestContext": {"http": {"method": "GET", "path": "/items/1"}},
        "headers": {"host": "x.lambda-url.us-east-1.on.aws"},
    }
    assert http_attributes(rest) == ("api.example.com", "POST", "/orders")
    assert http_attributes(http) == ("x.lambda-url.us-east-1.on.aws", "GET", "/items/1")
    assert http_attributes({"Records": []}) == ("", "", "")
    assert http_attributes({"httpMethod": 3, "path": "/x"}) == ("", "", "")
    assert http_attributes({"httpMethod": "GET", "path": None, "headers": None}) == ("", "GET", "")
    assert http_attributes("not an event") == ("", "", "")


# -- centralized rules ---------------------------------------------------------------


def _record(name: str, priority: int, rate: float, size: int, **fields: Any) -> dict[str, Any]:
    rule = {
        "RuleName": name,
        "RuleARN": f"arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}",
        "ResourceARN": "*",
        "Priority": priority,
        "FixedRate": rate,
        "ReservoirSize": size,
        "ServiceName": "*",
        "ServiceType": "*",
        "Host": "*",
        "HTTPMethod": "*",
        "URLPath": "*",
        "Version": 1,
        "Attributes": {},
    }
    rule.update(fields)
    return {"SamplingRule": rule, "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9}


class FakeAPI:
    """X-Ray's two calls, answering what the test says and keeping the requests."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.targets: list[dict[str, Any]] = []
        self.modified = 0.0
        self.fail: Exception | None = None
        self.rule_requests: list[dict[str, Any]] = []
        self.target_requests: list[dict[str, Any]] = []

    def get_sampling_rules(self, body: dict[str, Any]) -> dict[str, Any]:
        self.rule_requests.append(body)
        if self.fail is not None:
            raise self.fail
        if body.get("NextToken") is None and len(self.records) > 1:
            return {"SamplingRuleRecords": self.records[:1], "NextToken": "page-2"}
        return {"SamplingRuleRecords": self.records[1:] if body else self.records}

    def get_sampling_targets(self, body: dict[str, Any]) -> dict[str, Any]:
        self.target_requests.append(body)
        if self.fail is not None:
            raise self.fail
        return {
            "SamplingTargetDocuments": self.targets,
            "LastRuleModification": self.modified,
            "UnprocessedStatistics": [],
        }


def _centralized(api: FakeAPI, clock: Clock, draw: Any = None) -> CentralizedSampler:
    fallback = Sampler.from_document(
        {"version": 2, "default": {"fixed_target": 0, "rate": 0}}, clock=clock
    )
    return CentralizedSampler(api, fallback, clock=clock, draw=draw or draws(0.99), start=False)


def test_only_rules_the_sdk_can_apply_are_kept() -> None:
    assert rule_from_record(_record("ok", 1, 0.5, 1)) is not None
    assert rule_from_record(_record("v2", 1, 0.5, 1, Version=2)) is None
    assert rule_from_record(_record("arn", 1, 0.5, 1, ResourceARN="arn:aws:...")) is None
    assert rule_from_record(_record("attrs", 1, 0.5, 1, Attributes={"a": "b"})) is None
    assert rule_from_record(_record("rate", 1, 1.5, 1)) is None
    assert rule_from_record(_record("host", 1, 0.5, 1, Host=None)) is None
    assert rule_from_record({"SamplingRule": "nope"}) is None
    assert rule_from_record(None) is None


def test_centralized_rules_by_priority_then_name_default_last_over_pages() -> None:
    clock = Clock()
    api = FakeAPI(
        [
            _record("Default", 10000, 0.0, 1),
            _record("b-orders", 5, 1.0, 0, ServiceName="orders*"),
            _record("a-orders", 5, 0.0, 0, ServiceName="orders*"),
            _record("first", 1, 1.0, 0, URLPath="/api/*"),
        ]
    )
    sampler = _centralized(api, clock)
    assert sampler.refresh_rules(clock.now) is True
    assert [r.name for r in sampler.rules] == ["first", "a-orders", "b-orders", "Default"]
    assert api.rule_requests == [{}, {"NextToken": "page-2"}]
    assert sampler.ready
    assert sampler.decide("orders-worker") is False  # a-orders (rate 0) wins the tie by name
    assert sampler.decide("svc", "h", "GET", "/api/x") is True  # first
    assert sampler.decide("billing") is True  # Default: borrows its one a second
    assert sampler.decide("billing") is False


def test_before_rules_arrive_and_after_they_expire_the_fallback_decides() -> None:
    clock = Clock()
    api = FakeAPI([_record("Default", 10000, 1.0, 0)])
    sampler = _centralized(api, clock)
    assert sampler.decide("svc") is False  # fallback: rate 0
    sampler.refresh_rules(clock.now)
    assert sampler.decide("svc") is True
    clock.now += 3601
    assert not sampler.ready
    assert sampler.decide("svc") is False


def test_targets_report_statistics_and_load_quota_rate_and_interval() -> None:
    clock = Clock(1000.0)
    api = FakeAPI([_record("Default", 10000, 0.0, 5), _record("unused", 1, 0.0, 1, Host="x")])
    sampler = _centralized(api, clock)
    sampler.refresh_rules(clock.now)
    assert [sampler.decide("svc") for _ in range(3)] == [True, False, False]  # borrowed 1
    api.targets = [
        {
            "RuleName": "Default",
            "FixedRate": 0.0,
            "ReservoirQuota": 2,
            "ReservoirQuotaTTL": clock.now + 60,
            "Interval": 20,
        }
    ]
    assert sampler.report(clock.now) is True
    [request] = api.target_requests
    [document] = request["SamplingStatisticsDocuments"]  # "unused" never matched: not reported
    assert document == {
        "RuleName": "Default",
        "ClientID": sampler.client_id,
        "RequestCount": 3,
        "SampledCount": 1,
        "BorrowCount": 1,
        "Timestamp": 1000,
    }
    assert len(sampler.client_id) == 24
    assert 1020 <= sampler.targets_due <= 1020.1
    clock.now = 1001.0
    assert [sampler.decide("svc") for _ in range(3)] == [True, True, False]  # the quota: 2
    default = sampler.rules[-1]
    assert (default.requests, default.sampled, default.borrowed) == (3, 2, 0)
    # Not due before its interval: nothing to report.
    assert sampler.report(1010.0) is False
    assert len(api.target_requests) == 1
    # Past the quota's TTL: borrowing again.
    clock.now = 1061.5
    assert [sampler.decide("svc") for _ in range(2)] == [True, False]


def test_a_rule_fetched_again_keeps_its_quota_and_counts() -> None:
    clock = Clock(1000.0)
    api = FakeAPI([_record("Default", 10000, 0.0, 5)])
    sampler = _centralized(api, clock)
    sampler.refresh_rules(clock.now)
    sampler.decide("svc")
    api.targets = [{"RuleName": "Default", "FixedRate": 0.5, "ReservoirQuota": 4,
                    "ReservoirQuotaTTL": clock.now + 60}]  # fmt: skip
    sampler.report(clock.now)
    sampler.decide("svc")
    sampler.refresh_rules(clock.now + 1)
    [rule] = sampler.rules
    assert (rule.reservoir.quota, rule.requests) == (4, 1)
    assert rule.rate == 0.0  # the rule's own rate until the next target


def test_a_rule_change_at_x_ray_fetches_the_rules_at_once() -> None:
    clock = Clock(1000.0)
    api = FakeAPI([_record("Default", 10000, 0.0, 5)])
    sampler = _centralized(api, clock)
    sampler.refresh_rules(clock.now)
    assert sampler.rules_due >= 1300
    sampler.decide("svc")
    api.modified = 1005.0
    sampler.report(1010.0)
    assert sampler.rules_due == 1010.0


def test_a_failing_proxy_falls_back_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(1000.0)
    api = FakeAPI([_record("Default", 10000, 1.0, 0)])
    api.fail = ConnectionRefusedError(111, "Connection refused")
    sampler = _centralized(api, clock)
    with caplog.at_level(logging.WARNING, logger="tracing.sampling"):
        assert sampler.refresh_rules(clock.now) is False
        assert sampler.refresh_rules(clock.now + 10) is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "GetSamplingRules" in warnings[0].getMessage()
    assert sampler.rules_due == clock.now + 20  # tried again soon, not in 5 minutes
    assert sampler.decide("svc") is False  # the fallback
    api.fail = None
    assert sampler.refresh_rules(clock.now + 20) is True
    clock.now += 20
    assert sampler.decide("svc") is True


def test_the_poller_thread_starts_at_the_first_decision_and_stops_with_its_runtime() -> None:
    import threading

    api = FakeAPI([_record("Default", 10000, 1.0, 0)])
    alive = threading.Event()
    alive.set()
    fallback = Sampler.from_document({"version": 2, "default": {"fixed_target": 0, "rate": 0}})
    sampler = CentralizedSampler(api, fallback, alive=alive.is_set)
    names = {t.name for t in threading.enumerate()}
    assert "tracing-sampling-poller" not in names
    sampler.decide("svc")
    [poller] = [t for t in threading.enumerate() if t.name == "tracing-sampling-poller"]
    assert poller.daemon
    for _ in range(500):  # bounded: the first fetch happens at once
        if sampler.ready:
            break
        poller.join(0.01)
    assert sampler.ready
    assert sampler.decide("svc") is True
    alive.clear()
    poller.join(5)
    assert not poller.is_alive()
