"""Work handed to threads stays in its invocation's trace, through the real runtime.

Each case of ``fixtures/threads_app.py`` moves work off the handler's thread the
way ordinary code does; on both backends every AWS call and span it makes must
land under the invocation that handed it over, and work that outlives its
invocation must be sent into that invocation's trace, never into the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

from .conftest import LaunchFn

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bucket(aws: LocalAWS) -> str:
    name = f"threads-{new_id()}"
    aws.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def function(launch: LaunchFn, bucket: str) -> LocalLambda:
    return launch("threads_app.handler", timeout_s=30.0, BUCKET=bucket)


def _invoke(function: LocalLambda, event: dict[str, Any]) -> tuple[str, str, Any]:
    root, parent = new_trace_id(), new_id()
    result = function.invoke(event, trace_header=f"Root={root};Parent={parent};Sampled=1")
    assert result.ok, result.error
    return root, parent, result.payload


def _walk(entity: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield entity
    for child in entity.get("subsegments", ()):
        yield from _walk(child)


def _operations(entity: dict[str, Any]) -> list[str]:
    return sorted(e["aws"]["operation"] for e in _walk(entity) if e.get("namespace") == "aws")


def _invocation(docs: list[dict[str, Any]], root: str) -> dict[str, Any]:
    [invocation] = [d for d in docs if d["trace_id"] == root and d["name"] == "## handler"]
    return invocation


def _settle(daemon: testing.DaemonListener) -> list[dict[str, Any]]:
    docs = daemon.sync()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    return docs


def test_executor_map_calls_land_under_the_invocation(
    function: LocalLambda, daemon: testing.DaemonListener
) -> None:
    keys = ["a", "b", "c", "d", "e"]
    root, parent, _ = _invoke(function, {"case": "pool_map", "keys": keys})
    invocation = _invocation(_settle(daemon), root)
    assert invocation["parent_id"] == parent
    assert _operations(invocation) == ["PutObject"] * len(keys)
    # Direct children: each task ran in a copy of the handler's context.
    assert [child["name"] for child in invocation["subsegments"]] == ["s3"] * len(keys)


def test_upload_file_multipart_parts_land_under_the_invocation(
    function: LocalLambda, daemon: testing.DaemonListener
) -> None:
    # 11 MB in 5 MB parts: three UploadPart calls on the transfer manager's threads.
    root, _, _ = _invoke(function, {"case": "upload_file", "megabytes": 11})
    invocation = _invocation(_settle(daemon), root)
    parts = ["UploadPart"] * 3
    assert _operations(invocation) == sorted(
        ["CreateMultipartUpload", *parts, "CompleteMultipartUpload"]
    )


def test_run_in_executor_calls_land_under_the_invocation(
    function: LocalLambda, daemon: testing.DaemonListener
) -> None:
    root, _, _ = _invoke(function, {"case": "run_in_executor", "keys": ["x", "y"]})
    invocation = _invocation(_settle(daemon), root)
    assert _operations(invocation) == ["PutObject", "PutObject"]


def test_a_span_opened_in_a_pool_task_nests_its_calls(
    function: LocalLambda, daemon: testing.DaemonListener
) -> None:
    root, _, _ = _invoke(function, {"case": "pool_span", "keys": ["p", "q"]})
    invocation = _invocation(_settle(daemon), root)
    spans = [child for child in invocation["subsegments"] if child["name"] == "in pool"]
    assert sorted(span["annotations"]["key"] for span in spans) == ["p", "q"]
    for span in spans:
        assert _operations(span) == ["PutObject"]
        assert span["end_time"] <= invocation["end_time"]


def test_a_plain_thread_started_in_the_handler_records_into_it(
    function: LocalLambda, daemon: testing.DaemonListener
) -> None:
    root, _, _ = _invoke(function, {"case": "plain_thread"})
    invocation = _invocation(_settle(daemon), root)
    [span] = invocation["subsegments"]
    assert span["name"] == "in thread"
    assert _operations(span) == ["PutObject"]


def test_work_outliving_its_invocation_is_sent_late_into_its_own_trace(
    function: LocalLambda, daemon: testing.DaemonListener
) -> None:
    first_root, _, _ = _invoke(function, {"case": "late_thread"})
    first = _invocation(_settle(daemon), first_root)
    # Sent while the thread's span was open: written in progress.
    [open_span] = first["subsegments"]
    assert (open_span["name"], open_span.get("in_progress")) == ("outlives its invocation", True)

    second_root, _, payload = _invoke(function, {"case": "release_late"})
    assert payload["result"] is True  # the thread finished inside the second invocation
    docs = _settle(daemon)
    second = _invocation(docs, second_root)
    # The second invocation holds its own work only.
    assert [child["name"] for child in second["subsegments"]] == ["second invocation own"]
    assert _operations(second) == ["PutObject"]
    assert not [d for d in docs if d["trace_id"] == second_root and d is not second]

    # The first one's late work went to the first trace, as independent
    # subsegments under the entities that handed it over.
    late = {
        d["name"]: d
        for d in docs
        if d["trace_id"] == first_root and d is not first and d["name"] != "Init"
    }
    assert set(late) == {"outlives its invocation", "opened after its invocation"}
    completed = late["outlives its invocation"]
    assert completed["id"] == open_span["id"]  # the in-progress entity, now complete
    assert completed["type"] == "subsegment"
    assert completed["parent_id"] == first["id"]
    assert "in_progress" not in completed
    assert completed["end_time"] > first["end_time"]
    assert _operations(completed) == ["PutObject"]
    after = late["opened after its invocation"]
    assert (after["type"], after["parent_id"]) == ("subsegment", first["id"])
    assert _operations(after) == ["PutObject"]


def test_library_spans_in_pool_tasks_and_late_threads_stay_in_their_trace(
    function: LocalLambda, daemon: testing.DaemonListener
) -> None:
    first_root, _, _ = _invoke(function, {"case": "library_span", "keys": ["k1", "k2"]})
    first = _invocation(_settle(daemon), first_root)
    spans = sorted(first["subsegments"], key=lambda entity: entity["name"])
    assert [span["name"] for span in spans] == ["library k1", "library k2"]
    for span in spans:
        assert _operations(span) == ["PutObject"]

    second_root, _, _ = _invoke(function, {"case": "release_late"})
    docs = _settle(daemon)
    second = _invocation(docs, second_root)
    assert [child["name"] for child in second["subsegments"]] == ["second invocation own"]
    # aws-xray-sdk's subsegment on xray, the OTel span on otel: sent late.
    [late_span] = [d for d in docs if d["trace_id"] == first_root and d["name"] == "library late"]
    assert (late_span["type"], late_span["parent_id"]) == ("subsegment", first["id"])
    assert _operations(late_span) == ["PutObject"]
