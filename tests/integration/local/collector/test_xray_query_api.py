"""``tracing daemon``'s X-Ray query API, driven by boto3's own ``xray`` client.

The collector answers ``GetTraceSummaries``, ``BatchGetTraces``, ``GetTraceGraph``,
``GetServiceGraph`` and ``PutTraceSegments`` on the TCP side of its UDP address,
with X-Ray's REST-JSON shapes: boto3's client, its paginators and its error
parsing must work against it unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tracing.local.collector.daemon import Collector
from tracing.local.collector.store import TraceStore
from tracing.local.collector.xray_query import QueryAPI

ROOT = Path(__file__).resolve().parents[4]
HEADER = b'{"format":"json","version":1}\n'
NOW = time.time()


def _filters_missing() -> bool:
    return importlib.util.find_spec("tracing.local.collector.filters") is None


needs_filters = pytest.mark.skipif(
    _filters_missing(),
    reason="tracing.local.collector.filters (filter expressions) is not there yet",
)


def _trace_id(start: float, n: int) -> str:
    return f"1-{int(start):08x}-{n:024x}"


def _order(n: int, start: float, sku: str, *, fault: bool = False) -> dict[str, Any]:
    """A segment: an API taking an order, with a SendMessage call to the orders queue."""
    document: dict[str, Any] = {
        "trace_id": _trace_id(start, n),
        "id": f"{n:016x}",
        "name": "orders-api",
        "start_time": start,
        "end_time": start + 0.25,
        "http": {
            "request": {"method": "POST", "url": "https://shop.example/orders"},
            "response": {"status": 500 if fault else 202},
        },
        "annotations": {"sku": sku, "quantity": n, "express": n % 2 == 0},
        "subsegments": [
            {
                "id": f"{n + 1000:016x}",
                "name": "SQS",
                "namespace": "aws",
                "start_time": start + 0.1,
                "end_time": start + 0.15,
                "aws": {"operation": "SendMessage", "queue_url": "https://sqs/123/orders"},
            }
        ],
    }
    if fault:
        document["fault"] = True
    return document


def _xray(collector: Collector) -> Any:
    return boto3.client(
        "xray",
        endpoint_url=f"http://{collector.sampling_address}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _wait(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _send(collector: Collector, store: TraceStore, documents: list[dict[str, Any]]) -> None:
    """Through UDP, as traced code sends them; returns once all are stored."""
    before = store.stats()["documents"]
    host, _, port = collector.address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for document in documents:
            sock.sendto(HEADER + json.dumps(document).encode(), (host, int(port)))
    _wait(lambda: store.stats()["documents"] >= before + len(documents))


@pytest.fixture
def store() -> Iterator[TraceStore]:
    with TraceStore(":memory:") as opened:
        yield opened


@pytest.fixture
def collector(store: TraceStore) -> Iterator[Collector]:
    with Collector("127.0.0.1:0", store, page_size=2) as running:
        assert running.sampling_address == running.address  # TCP beside UDP
        yield running


@pytest.fixture
def orders(collector: Collector, store: TraceStore) -> list[dict[str, Any]]:
    """Five orders a minute apart in the last ten minutes, and one from yesterday."""
    documents = [
        _order(n, NOW - 600 + 60 * n, "book-1" if n % 2 else "pen-2", fault=n == 3)
        for n in range(1, 6)
    ]
    _send(collector, store, [*documents, _order(9, NOW - 86_400, "book-1")])
    return documents


def _page(client: Any, **params: Any) -> dict[str, Any]:
    answer: dict[str, Any] = client.get_trace_summaries(
        StartTime=datetime.fromtimestamp(NOW - 3600, timezone.utc),
        EndTime=datetime.fromtimestamp(NOW + 60, timezone.utc),
        **params,
    )
    return answer


def test_summaries_in_the_time_range_page_by_page(
    collector: Collector, orders: list[dict[str, Any]]
) -> None:
    client = _xray(collector)
    first = _page(client)
    newest = [o["trace_id"] for o in reversed(orders)]
    assert [s["Id"] for s in first["TraceSummaries"]] == newest[:2]  # page_size=2
    assert first["TracesProcessedCount"] == 2
    assert isinstance(first["ApproximateTime"], datetime)
    second = _page(client, NextToken=first["NextToken"])
    assert [s["Id"] for s in second["TraceSummaries"]] == newest[2:4]
    third = _page(client, NextToken=second["NextToken"])
    assert [s["Id"] for s in third["TraceSummaries"]] == newest[4:]
    assert "NextToken" not in third  # yesterday's trace is out of the range
    # boto3's own paginator follows NextToken to the same traces.
    pages = list(
        client.get_paginator("get_trace_summaries").paginate(StartTime=NOW - 3600, EndTime=NOW + 60)
    )
    assert len(pages) == 3
    assert [s["Id"] for p in pages for s in p["TraceSummaries"]] == newest
    # A range that only holds yesterday's trace; one that holds nothing.
    old = client.get_trace_summaries(StartTime=NOW - 86_500, EndTime=NOW - 86_300)
    assert [s["Id"] for s in old["TraceSummaries"]] == [_trace_id(NOW - 86_400, 9)]
    empty = client.get_trace_summaries(StartTime=NOW - 5000, EndTime=NOW - 4000)
    assert (empty["TraceSummaries"], "NextToken" in empty) == ([], False)


def test_a_summary_has_x_rays_shape(collector: Collector, orders: list[dict[str, Any]]) -> None:
    pages = list(
        _xray(collector)
        .get_paginator("get_trace_summaries")
        .paginate(StartTime=NOW - 3600, EndTime=NOW + 60)
    )
    summaries = {s["Id"]: s for p in pages for s in p["TraceSummaries"]}
    fault = summaries[orders[2]["trace_id"]]  # n == 3
    assert (fault["HasFault"], fault["HasError"], fault["HasThrottle"]) == (True, False, False)
    assert fault["IsPartial"] is False
    assert fault["Duration"] == pytest.approx(0.25)
    assert fault["ResponseTime"] == pytest.approx(0.25)
    assert fault["StartTime"].timestamp() == pytest.approx(orders[2]["start_time"], abs=1e-3)
    assert fault["Http"] == {
        "HttpURL": "https://shop.example/orders",
        "HttpMethod": "POST",
        "HttpStatus": 500,
    }
    api = {"Name": "orders-api", "Names": ["orders-api"]}
    assert fault["EntryPoint"] == api
    assert fault["Annotations"] == {
        "sku": [{"AnnotationValue": {"StringValue": "book-1"}, "ServiceIds": [api]}],
        "quantity": [{"AnnotationValue": {"NumberValue": 3.0}, "ServiceIds": [api]}],
        "express": [{"AnnotationValue": {"BooleanValue": False}, "ServiceIds": [api]}],
    }
    assert {"Name": "orders", "Names": ["orders"], "Type": "AWS::SQS::Queue"} in fault["ServiceIds"]
    assert summaries[orders[0]["trace_id"]]["HasFault"] is False


def test_time_range_by_trace_id(collector: Collector, store: TraceStore) -> None:
    # A trace whose id says it began an hour before its documents' times.
    late = {**_order(1, NOW, "book-1"), "trace_id": _trace_id(NOW - 3600, 1)}
    _send(collector, store, [late])
    client = _xray(collector)
    by_id = client.get_trace_summaries(
        StartTime=NOW - 3700, EndTime=NOW - 3500, TimeRangeType="TraceId"
    )
    assert [s["Id"] for s in by_id["TraceSummaries"]] == [late["trace_id"]]
    by_event = client.get_trace_summaries(
        StartTime=NOW - 3700, EndTime=NOW - 3500, TimeRangeType="Event"
    )
    assert by_event["TraceSummaries"] == []


def test_bad_requests_are_invalid_request_exceptions(collector: Collector) -> None:
    client = _xray(collector)
    with pytest.raises(ClientError) as raised:
        client.get_trace_summaries(StartTime=NOW, EndTime=NOW - 60)
    assert raised.value.response["Error"]["Code"] == "InvalidRequestException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError, match="NextToken"):
        client.get_trace_summaries(StartTime=NOW - 60, EndTime=NOW, NextToken="garbage")
    with pytest.raises(ClientError, match="at most 5"):
        client.batch_get_traces(TraceIds=[_trace_id(NOW, n) for n in range(6)])


@needs_filters
def test_a_filter_expression_selects_traces(
    collector: Collector, orders: list[dict[str, Any]]
) -> None:
    client = _xray(collector)
    pages = client.get_paginator("get_trace_summaries").paginate(
        StartTime=NOW - 3600, EndTime=NOW + 60, FilterExpression='annotation.sku = "book-1"'
    )
    found = [s["Id"] for p in pages for s in p["TraceSummaries"]]
    assert found == [o["trace_id"] for o in reversed(orders) if o["annotations"]["sku"] == "book-1"]
    faults = _page(client, FilterExpression="fault")["TraceSummaries"]
    assert [s["Id"] for s in faults] == [orders[2]["trace_id"]]


@needs_filters
def test_a_bad_filter_expression_says_where(collector: Collector) -> None:
    with pytest.raises(ClientError) as raised:
        _page(_xray(collector), FilterExpression='annotation.sku = "book-1" AND (')
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidRequestException"
    assert "column" in error["Message"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@needs_filters
def test_pages_cut_short_by_the_time_budget_lose_nothing(
    collector: Collector, orders: list[dict[str, Any]], store: TraceStore
) -> None:
    # With no time to spare, each page reads one trace: pages come back empty or
    # with one summary, and following NextToken still finds every match once.
    api = QueryAPI(store, page_size=10, budget_s=0.0)
    body: dict[str, Any] = {
        "StartTime": NOW - 3600,
        "EndTime": NOW + 60,
        "FilterExpression": 'annotation.sku = "book-1"',
    }
    found, pages = [], 0
    while True:
        page = api.get_trace_summaries(body)
        pages += 1
        assert page["TracesProcessedCount"] == 1
        found += [s["Id"] for s in page["TraceSummaries"]]
        if "NextToken" not in page:
            break
        body["NextToken"] = page["NextToken"]
    assert pages == len(orders)
    assert found == [o["trace_id"] for o in reversed(orders) if o["annotations"]["sku"] == "book-1"]


def test_batch_get_traces_returns_the_documents(
    collector: Collector, orders: list[dict[str, Any]]
) -> None:
    wanted = [orders[0]["trace_id"], orders[4]["trace_id"]]
    missing = _trace_id(NOW, 777)
    answer = _xray(collector).batch_get_traces(TraceIds=[*wanted, missing])
    assert [t["Id"] for t in answer["Traces"]] == wanted
    assert answer["UnprocessedTraceIds"] == [missing]
    first = answer["Traces"][0]
    assert first["Duration"] == pytest.approx(0.25)
    assert [json.loads(s["Document"]) for s in first["Segments"]] == [orders[0]]
    assert [s["Id"] for s in first["Segments"]] == [orders[0]["id"]]
    pages = list(_xray(collector).get_paginator("batch_get_traces").paginate(TraceIds=wanted))
    assert [t["Id"] for p in pages for t in p["Traces"]] == wanted


def test_put_trace_segments_stores_valid_documents(collector: Collector, store: TraceStore) -> None:
    good = _order(42, NOW - 30, "book-1")
    answer = _xray(collector).put_trace_segments(
        TraceSegmentDocuments=[
            json.dumps(good),
            '{"id": "00000000000000aa", "name": "no trace id"}',
            "not json",
        ]
    )
    unprocessed = answer["UnprocessedTraceSegments"]
    assert [u["Id"] for u in unprocessed] == ["00000000000000aa", ""]
    assert all(u["ErrorCode"] for u in unprocessed)
    _wait(lambda: store.stats()["documents"] == 1)
    assert store.documents(good["trace_id"]) == [good]
    assert collector.stats["received"] == 1
    traces = _xray(collector).batch_get_traces(TraceIds=[good["trace_id"]])["Traces"]
    assert [json.loads(s["Document"]) for s in traces[0]["Segments"]] == [good]


def test_trace_graph_of_given_traces(collector: Collector, orders: list[dict[str, Any]]) -> None:
    services = _xray(collector).get_trace_graph(
        TraceIds=[orders[0]["trace_id"], orders[2]["trace_id"]]
    )["Services"]
    by_name = {(s["Name"], s.get("Type")): s for s in services}
    assert set(by_name) == {
        ("client", "client"),
        ("orders-api", None),
        ("orders", "AWS::SQS::Queue"),
    }
    client, api, queue = (
        by_name["client", "client"],
        by_name["orders-api", None],
        by_name["orders", "AWS::SQS::Queue"],
    )
    assert [e["ReferenceId"] for e in client["Edges"]] == [api["ReferenceId"]]
    assert api["Root"] is True
    (to_queue,) = api["Edges"]
    assert to_queue["ReferenceId"] == queue["ReferenceId"]
    assert to_queue["SummaryStatistics"]["TotalCount"] == 2
    assert to_queue["SummaryStatistics"]["TotalResponseTime"] == pytest.approx(0.1, abs=1e-4)
    stats = client["Edges"][0]["SummaryStatistics"]
    assert (stats["TotalCount"], stats["OkCount"], stats["FaultStatistics"]["TotalCount"]) == (
        2,
        1,
        1,
    )
    assert api["SummaryStatistics"]["FaultStatistics"]["TotalCount"] == 1
    assert sum(h["Count"] for h in to_queue["ResponseTimeHistogram"]) == 2


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tracing demo --out DIR`` run as a user runs it; its store."""
    out = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_", "_X_AMZN"))}
    done = subprocess.run(
        [sys.executable, "-m", "tracing", "demo", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "demo.sqlite3"


def test_service_graph_of_the_demo(demo_db: Path) -> None:
    with (
        TraceStore(demo_db) as store,
        Collector("127.0.0.1:0", store, page_size=2) as collector,
    ):
        client = _xray(collector)
        start, end = time.time() - 3600, time.time() + 60
        graph = client.get_service_graph(StartTime=start, EndTime=end)
        assert graph["StartTime"].timestamp() == pytest.approx(start, abs=1e-3)
        services = {(s["Name"], s.get("Type")): s for s in graph["Services"]}
        by_reference = {s["ReferenceId"]: s for s in graph["Services"]}

        def targets(key: tuple[str, str]) -> set[tuple[str, str | None]]:
            return {
                (by_reference[e["ReferenceId"]]["Name"], by_reference[e["ReferenceId"]].get("Type"))
                for e in services[key]["Edges"]
            }

        function = "AWS::Lambda::Function"
        assert targets(("client", "client")) == {("orders-api", function)}
        assert ("orders", "AWS::SQS::Queue") in targets(("orders-api", function))
        assert targets(("orders", "AWS::SQS::Queue")) == {("orders-worker", function)}
        assert ("default", "AWS::Events::EventBus") in targets(("orders-worker", function))
        assert targets(("default", "AWS::Events::EventBus")) == {("orders-notifier", function)}
        # The poison message: a fault on the queue -> worker edge.
        (to_worker,) = services["orders", "AWS::SQS::Queue"]["Edges"]
        assert to_worker["SummaryStatistics"]["FaultStatistics"]["TotalCount"] >= 1
        assert services["orders-api", function]["Root"] is True
        # Nothing in a range before the demo ran.
        assert client.get_service_graph(StartTime=start - 7200, EndTime=start)["Services"] == []
        # The demo's traces page by page, the paginator's pages of two.
        pages = list(
            client.get_paginator("get_trace_summaries").paginate(StartTime=start, EndTime=end)
        )
        ids = [s["Id"] for p in pages for s in p["TraceSummaries"]]
        assert len(ids) == len(set(ids)) == store.stats()["traces"]
        assert all(len(p["TraceSummaries"]) <= 2 for p in pages)


def test_either_api_can_be_left_out(store: TraceStore) -> None:
    with Collector("127.0.0.1:0", store, sampling_api=False) as queries_only:
        client = _xray(queries_only)
        assert client.get_trace_summaries(StartTime=NOW - 60, EndTime=NOW)["TraceSummaries"] == []
        with pytest.raises(ClientError) as raised:
            client.get_sampling_rules()
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with Collector("127.0.0.1:0", store, query_api=False) as sampling_only:
        client = _xray(sampling_only)
        assert client.get_sampling_rules()["SamplingRuleRecords"]
        with pytest.raises(ClientError) as raised:
            client.get_trace_summaries(StartTime=NOW - 60, EndTime=NOW)
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with Collector("127.0.0.1:0", store, sampling_api=False, query_api=False) as udp_only:
        assert udp_only.sampling_address is None
