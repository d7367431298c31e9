"""``tracing daemon``'s sampling API, driven by boto3, and a worker polling it.

The collector answers X-Ray's ``GetSamplingRules`` and ``GetSamplingTargets`` on
the TCP side of its UDP address, as the X-Ray daemon's proxy does; boto3's own
X-Ray client must work against it unchanged, and a worker started with
``TRACING_SAMPLING_RULES=xray`` must follow the rules it serves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tracing.local.collector.daemon import Collector
from tracing.local.collector.store import TraceStore

ROOT = Path(__file__).resolve().parents[4]

RULES = {
    "version": 2,
    "rules": [
        {
            "description": "Orders API",
            "host": "*",
            "http_method": "POST",
            "url_path": "/orders/*",
            "fixed_target": 2,
            "rate": 1,
        },
        {
            "description": "workers",
            "service_name": "orders-*",
            "fixed_target": 0,
            "rate": 0.5,
        },
    ],
    "default": {"fixed_target": 1, "rate": 0.05},
}


@pytest.fixture
def rules_file(tmp_path: Path) -> str:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES))
    return str(path)


@pytest.fixture
def collector(rules_file: str) -> Iterator[Collector]:
    with (
        TraceStore(":memory:") as store,
        Collector("127.0.0.1:0", store, sampling_rules=rules_file) as running,
    ):
        yield running


def _xray(collector: Collector) -> Any:
    assert collector.sampling_address == collector.address  # TCP beside UDP, as the daemon
    return boto3.client(
        "xray", endpoint_url=f"http://{collector.sampling_address}", region_name="us-east-1"
    )


def test_boto3_gets_the_rules_it_serves(collector: Collector) -> None:
    records = _xray(collector).get_sampling_rules()["SamplingRuleRecords"]
    rules = {r["SamplingRule"]["RuleName"]: r["SamplingRule"] for r in records}
    assert list(rules) == ["Orders-API", "workers", "Default"]
    orders = rules["Orders-API"]
    assert {k: orders[k] for k in ("Priority", "FixedRate", "ReservoirSize", "HTTPMethod")} == {
        "Priority": 1,
        "FixedRate": 1.0,
        "ReservoirSize": 2,
        "HTTPMethod": "POST",
    }
    assert (orders["URLPath"], orders["Host"], orders["ServiceName"]) == ("/orders/*", "*", "*")
    assert (rules["workers"]["ServiceName"], rules["workers"]["FixedRate"]) == ("orders-*", 0.5)
    default = rules["Default"]
    assert (default["Priority"], default["FixedRate"], default["ReservoirSize"]) == (10000, 0.05, 1)
    for rule in rules.values():
        assert (rule["Version"], rule["ResourceARN"], rule["Attributes"]) == (1, "*", {})
        assert rule["RuleARN"].endswith("sampling-rule/" + rule["RuleName"])
    assert isinstance(records[0]["ModifiedAt"], datetime)
    # The paginator (NextToken) ends after the one page.
    pages = list(_xray(collector).get_paginator("get_sampling_rules").paginate())
    assert len(pages) == 1


def test_boto3_gets_targets_for_its_statistics(collector: Collector) -> None:
    client_id = "0123456789abcdef01234567"
    before = time.time()
    answer = _xray(collector).get_sampling_targets(
        SamplingStatisticsDocuments=[
            {
                "RuleName": "Orders-API",
                "ClientID": client_id,
                "Timestamp": datetime.now(),
                "RequestCount": 10,
                "SampledCount": 4,
                "BorrowCount": 1,
            },
            {
                "RuleName": "no-such-rule",
                "ClientID": client_id,
                "Timestamp": datetime.now(),
                "RequestCount": 1,
                "SampledCount": 0,
            },
        ]
    )
    [target] = answer["SamplingTargetDocuments"]
    assert (target["RuleName"], target["FixedRate"], target["ReservoirQuota"]) == (
        "Orders-API",
        1.0,
        2,
    )
    assert target["ReservoirQuotaTTL"].timestamp() > before
    assert target["Interval"] == 10
    assert [u["RuleName"] for u in answer["UnprocessedStatistics"]] == ["no-such-rule"]
    assert isinstance(answer["LastRuleModification"], datetime)
    assert collector.sampling_statistics == {
        "Orders-API": {"RequestCount": 10, "SampledCount": 4, "BorrowCount": 1}
    }


def test_a_bad_request_is_a_client_error_and_the_daemon_goes_on(collector: Collector) -> None:
    import http.client

    host, _, port = (collector.sampling_address or "").rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("POST", "/SamplingTargets", b"[1, 2", {})
        response = connection.getresponse()
        assert response.status == 400
        assert response.getheader("x-amzn-ErrorType") == "InvalidRequestException"
        response.read()
    finally:
        connection.close()
    unchecked = boto3.client(
        "xray",
        endpoint_url=f"http://{collector.sampling_address}",
        region_name="us-east-1",
        config=Config(parameter_validation=False),  # so that the server sees it
    )
    with pytest.raises(ClientError) as caught:
        unchecked.get_sampling_targets(
            SamplingStatisticsDocuments=[
                {
                    "RuleName": "Default",
                    "ClientID": "0123456789abcdef01234567",
                    "Timestamp": datetime.now(),
                    "RequestCount": -1,
                    "SampledCount": 0,
                }
            ]
        )
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _xray(collector).get_sampling_rules()["SamplingRuleRecords"]


def test_without_a_file_the_default_rule_and_a_bad_file_is_refused(tmp_path: Path) -> None:
    with TraceStore(":memory:") as store, Collector("127.0.0.1:0", store) as running:
        records = _xray(running).get_sampling_rules()["SamplingRuleRecords"]
    assert [(r["SamplingRule"]["RuleName"], r["SamplingRule"]["FixedRate"]) for r in records] == [
        ("Default", 0.05)
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 2, "default": {"fixed_target": 1}}')
    with pytest.raises(ValueError, match="'rate'"):
        Collector("127.0.0.1:0", sampling_rules=str(bad))
    # X-Ray's own answer (aws xray get-sampling-rules > file) is served as it is.
    own = tmp_path / "own.json"
    with (
        TraceStore(":memory:") as store,
        Collector(
            "127.0.0.1:0", store, sampling_rules=str(_rules_file_from(records, own))
        ) as running,
    ):
        again = _xray(running).get_sampling_rules()["SamplingRuleRecords"]
    assert [r["SamplingRule"]["RuleName"] for r in again] == ["Default"]


def _rules_file_from(records: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(json.dumps({"SamplingRuleRecords": records}, default=str))
    return path


def test_the_cli_serves_the_file_and_refuses_a_bad_one(tmp_path: Path, rules_file: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    refused = subprocess.run(
        [sys.executable, "-m", "tracing", "daemon", "--listen", "127.0.0.1:0",
         "--db", str(tmp_path / "t.sqlite3"), "--sampling-rules", str(bad)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "bad.json" in refused.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "tracing", "daemon", "--listen", "127.0.0.1:0",
         "--db", str(tmp_path / "t.sqlite3"), "--sampling-rules", rules_file, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("listening on udp://127.0.0.1:")
        address = first.split("udp://")[1].split(" ")[0]
        assert f"(X-Ray API on http://{address}: queries, and sampling from {rules_file})" in first
        client = boto3.client("xray", endpoint_url=f"http://{address}", region_name="us-east-1")
        names = [
            r["SamplingRule"]["RuleName"]
            for r in client.get_sampling_rules()["SamplingRuleRecords"]
        ]
        assert names == ["Orders-API", "workers", "Default"]
    finally:
        process.terminate()
        process.communicate(timeout=30)


WORKER = textwrap.dedent(
    """
    import sys, time
    import tracing
    from tracing._runtime import get_runtime
    from tracing._sampling import active

    tracing.configure(service="orders-worker")
    # The first decision starts the poller; until its rules arrive the default rule
    # decides, so the measured messages wait for them (bounded).
    with tracing.sqs.consume({"MessageId": "warm-up", "Body": ""}):
        pass
    sampler = active(get_runtime())
    deadline = time.monotonic() + 20
    while not sampler.ready and time.monotonic() < deadline:
        time.sleep(0.02)
    print("ready" if sampler.ready else "not ready", flush=True)
    for number in range(int(sys.argv[1])):
        with tracing.sqs.consume({"MessageId": f"m-{number}", "Body": "{}"}):
            pass
        if number % 10 == 9:
            time.sleep(0.001)
    tracing.flush()
    print("done", flush=True)
    """
)


def test_a_worker_with_centralized_rules_follows_the_daemons_50_percent_rule(
    collector: Collector, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TRACING_", "AWS_XRAY_", "_X_AMZN_", "AWS_LAMBDA_"))
        and key != "LAMBDA_TASK_ROOT"
    }
    env.update(
        PYTHONPATH=str(ROOT),
        TRACING_SAMPLING_RULES="xray",
        AWS_XRAY_DAEMON_ADDRESS=collector.address,
    )
    done = subprocess.run(
        [sys.executable, str(script), "2000"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ready", "done"], done.stdout + done.stderr
    store = collector._store
    assert store is not None
    deadline = time.monotonic() + 20  # bounded: until what was sent is stored
    count = -1
    while time.monotonic() < deadline:
        stats = collector.stats
        if stats["received"] == stats["stored"] + stats["garbage"] + stats["dropped"]:
            count = _worker_traces(store)
            time.sleep(0.3)
            if _worker_traces(store) == count and collector.stats["received"] == stats["received"]:
                break
        time.sleep(0.05)
    assert collector.stats["dropped"] == 0
    assert 850 <= count <= 1150, count


def _worker_traces(store: TraceStore) -> int:
    total = 0
    for trace_id in store.trace_ids(limit=100_000):
        for document in store.documents(trace_id):
            message = (document.get("annotations") or {}).get("MessageId", "")
            if document.get("name") == "orders-worker" and str(message).startswith("m-"):
                total += 1
    return total
