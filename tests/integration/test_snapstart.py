"""SnapStart through the real awslambdaric: one init, four restored copies.

The local runtime forks the snapshot process at the snapshot point and gives each
copy the PRNG state of the snapshot, as a microVM restore does (see
``tracing/local/_snapstart_boot.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.aws import LocalAWS
from tracing.local.runtime import LocalLambda

from .conftest import FIXTURES

pytestmark = pytest.mark.integration

COPIES = 4


def _restore(
    aws: LocalAWS, daemon: testing.DaemonListener, backend: str, **env: str
) -> tuple[LocalLambda, list[Any]]:
    function = LocalLambda(
        "snapstart_app.handler",
        code_dir=FIXTURES,
        function_name="snap-app",
        init_type="snap-start",
        env={**aws.env, "TRACING_BACKEND": backend, **env},
        xray_daemon_address=daemon.address,
    )
    function.start()
    return function, function.restore(COPIES)


def test_restored_copies_have_unique_ids_and_a_restore_entity(
    aws: LocalAWS, daemon: testing.DaemonListener, backend: str
) -> None:
    function, copies = _restore(aws, daemon, backend)
    try:
        roots: list[list[str]] = []
        for copy in copies:
            copy_roots = []
            for _ in range(2):
                root = new_trace_id()
                result = copy.invoke({}, trace_header=f"Root={root};Parent={new_id()};Sampled=1")
                assert result.ok, (result.error, function.logs)
                copy_roots.append(root)
            roots.append(copy_roots)
        pids = {copy.invoke({}).payload["pid"] for copy in copies}
        assert len(pids) == COPIES  # really four environments
        documents = daemon.sync()
    finally:
        function.stop()
    for document in documents:
        assert testing.check_document(document) == [], document
    ids = [e["id"] for d in documents for e in testing.iter_entities(d)]
    assert len(ids) == len(set(ids)), "an id repeated across restored environments"
    assert [d for d in documents if d["name"] == "Init"] == []  # no stale snapshot-time Init
    for first, second in roots:
        [restore] = [d for d in documents if d["trace_id"] == first and d["name"] == "Restore"]
        assert restore["annotations"] == {"ColdStart": True, "InitType": "snap-start"}
        assert [c["name"] for c in restore["subsegments"]] == ["reconnect"]
        snapshot_init = restore["metadata"]["tracing"]["snapshot_init"]
        assert snapshot_init["spans"] == 1  # "load model", summarised, not replayed
        assert snapshot_init["started_at"] < restore["start_time"]
        invocations = {
            d["trace_id"]: d["annotations"]["ColdStart"]
            for d in documents
            if d["name"] == "## handler"
        }
        assert (invocations[first], invocations[second]) == (True, False)


def test_without_tracing_the_copies_share_the_snapshots_random_state(
    aws: LocalAWS, daemon: testing.DaemonListener, backend: str
) -> None:
    """The control: the simulation is faithful, so the uniqueness above is tracing's."""
    function, copies = _restore(aws, daemon, backend, TRACING_DISABLED="1")
    try:
        draws = {copy.invoke({}).payload["draw"] for copy in copies}
    finally:
        function.stop()
    assert len(draws) == 1
