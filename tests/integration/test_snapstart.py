"""SnapStart through the real awslambdaric: one init, four restored copies.

The local runtime forks the snapshot process at the snapshot point and gives each
copy the PRNG state of the snapshot, as a microVM restore does (see
``tracing/local/runtime/_snapstart_boot.py``).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

from .conftest import FIXTURES

pytestmark = pytest.mark.integration

COPIES = 4


def _restore(
    aws: LocalAWS, daemon: testing.DaemonListener, backend: str, copies: int = COPIES, **env: str
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
    return function, function.restore(copies)


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
        payloads = [copy.invoke({}).payload for copy in copies]
    finally:
        function.stop()
    assert len({p["pid"] for p in payloads}) == COPIES
    assert len({p["draw"] for p in payloads}) == 1
    # The library's own generator too: nothing reseeds it without tracing's hook.
    assert len({p["id"] for p in payloads}) == 1


def test_a_restore_leaves_the_applications_seeded_random_alone(
    aws: LocalAWS, daemon: testing.DaemonListener, backend: str
) -> None:
    """An application that seeds ``random`` keeps its sequence in every restored
    copy; only the library's own generator is reseeded, so its ids differ."""
    seed = 20260101
    function, copies = _restore(aws, daemon, backend, copies=2, APP_SEED=str(seed))
    try:
        payloads = [
            [
                copy.invoke({}, trace_header=f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
                for _ in range(2)
            ]
            for copy in copies
        ]
        documents = daemon.sync()
    finally:
        function.stop()
    for results in payloads:
        assert all(result.ok for result in results), [r.error for r in results]
    expected = random.Random(seed)
    sequence = [expected.getrandbits(64) for _ in range(2)]
    for results in payloads:
        assert [result.payload["draw"] for result in results] == sequence
    ids = [result.payload["id"] for results in payloads for result in results]
    assert len(set(ids)) == len(ids)
    entity_ids = [e["id"] for d in documents for e in testing.iter_entities(d)]
    assert len(entity_ids) == len(set(entity_ids))
    if backend == "otel":  # OTel's span ids come from the library's generator too
        assert sum(e["name"] == "otel work" for d in documents for e in testing.iter_entities(d))
