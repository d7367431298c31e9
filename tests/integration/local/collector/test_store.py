"""TraceStore: SQLite round trips, ordering, hostile values, default path."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from tracing._header import new_id, new_trace_id
from tracing.local.collector.store import DEFAULT_DB, TraceStore, default_path


def make_doc(
    trace_id: str, name: Any = "svc", start: float = 1000.0, **extra: Any
) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "id": new_id(),
        "name": name,
        "start_time": start,
        "end_time": start + 0.5,
        **extra,
    }


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with TraceStore(tmp_path / "traces.sqlite3") as opened:
        yield opened


def test_round_trip_keeps_documents_in_arrival_order(store: TraceStore) -> None:
    trace = new_trace_id()
    docs = [
        make_doc(trace, "first", start=3.0, annotations={"ColdStart": True}),
        make_doc(trace, "second", start=1.0, subsegments=[make_doc(trace, "child")]),
        make_doc(trace, "third", start=2.0, metadata={"k": {"nested": [1, 2.5, None]}}),
    ]
    assert store.add(docs) == 3

    assert store.documents(trace) == docs  # arrival order, not start order
    assert store.documents(new_trace_id()) == []
    assert store.stats() == {"documents": 3, "traces": 1}


def test_trace_ids_newest_first_with_since_and_limit(store: TraceStore) -> None:
    a, b, c = new_trace_id(), new_trace_id(), new_trace_id()
    store.add([make_doc(a)], received_at=100.0)
    store.add([make_doc(b)], received_at=200.0)
    store.add([make_doc(c)], received_at=300.0)
    store.add([make_doc(a)], received_at=400.0)  # a's last document makes it newest

    assert store.trace_ids() == [a, c, b]
    assert store.trace_ids(limit=2) == [a, c]
    assert store.trace_ids(since=250.0) == [a, c]
    assert store.trace_ids(since=401.0) == []


def test_same_batch_ties_broken_by_arrival(store: TraceStore) -> None:
    a, b = new_trace_id(), new_trace_id()
    store.add([make_doc(a), make_doc(b)], received_at=5.0)

    assert store.trace_ids() == [b, a]


def test_traces_view_summarises_each_trace(store: TraceStore) -> None:
    trace = new_trace_id()
    store.add([make_doc(trace, start=50.0)], received_at=10.0)
    store.add([make_doc(trace, start=40.0), make_doc(trace, start=60.0)], received_at=20.0)

    conn = sqlite3.connect(store.path)
    try:
        row = conn.execute(
            "SELECT documents, first_received, last_received, start_time FROM traces"
            " WHERE trace_id = ?",
            (trace,),
        ).fetchone()
    finally:
        conn.close()
    assert row == (3, 10.0, 20.0, 40.0)


HOSTILE = [
    "x'); DROP TABLE documents;--",
    "Robert'); DELETE FROM documents WHERE ('1'='1",
    '" OR 1=1 --',
    "name\x00with nul",
    "<script>alert(1)</script>",
    "lone surrogate \ud800",
]


def test_sql_looking_values_are_stored_verbatim(store: TraceStore) -> None:
    trace = new_trace_id()
    docs = [make_doc(trace, name, annotations={"q": name}) for name in HOSTILE]
    sneaky_trace = "1-00000000-'; DROP TABLE documents;--"
    docs.append(make_doc(sneaky_trace, HOSTILE[0], parent_id=HOSTILE[1]))

    assert store.add(docs) == len(docs)

    assert [d["name"] for d in store.documents(trace)] == HOSTILE
    assert [d["annotations"]["q"] for d in store.documents(trace)] == HOSTILE
    assert store.documents(sneaky_trace)[0]["parent_id"] == HOSTILE[1]
    assert set(store.trace_ids()) == {trace, sneaky_trace}
    assert store.stats() == {"documents": len(docs), "traces": 2}
    conn = sqlite3.connect(store.path)
    try:
        names = conn.execute(
            "SELECT name FROM documents WHERE trace_id = ? ORDER BY id", (trace,)
        ).fetchall()
    finally:
        conn.close()
    assert [n for (n,) in names][:5] == HOSTILE[:5]


def test_bad_documents_are_skipped(store: TraceStore) -> None:
    trace = new_trace_id()
    good = make_doc(trace)
    bad: list[Any] = [
        {"id": new_id(), "name": "no trace id"},
        {"trace_id": trace, "name": "no id"},
        {"trace_id": 12345, "id": new_id()},
        {"trace_id": trace, "id": 7},
        {"trace_id": trace, "id": new_id(), "metadata": {"not json": {1, 2}}},
        ["not", "a", "dict"],
        None,
    ]

    assert store.add([bad[0], good, *bad[1:]]) == 1
    assert store.add(bad) == 0
    assert store.documents(trace) == [good]


def test_odd_column_values_do_not_break_the_row(store: TraceStore) -> None:
    trace = new_trace_id()
    doc = make_doc(trace, end_time="soon", name=["not", "a", "string"])
    doc["start_time"] = 10**400  # an int no float can hold

    assert store.add([doc]) == 1
    assert store.documents(trace) == [doc]


def test_concurrent_writers_and_readers(store: TraceStore) -> None:
    traces = [new_trace_id() for _ in range(8)]
    errors: list[BaseException] = []

    def work(trace: str) -> None:
        try:
            for _ in range(25):
                store.add([make_doc(trace), make_doc(trace)])
                store.trace_ids(limit=5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in traces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.stats() == {"documents": 8 * 25 * 2, "traces": 8}


def test_file_database_uses_wal_and_is_readable_from_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "t.sqlite3"  # parents are created
    trace = new_trace_id()
    with TraceStore(path) as store:
        store.add([make_doc(trace)])
        other = sqlite3.connect(path)
        try:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert other.execute("SELECT trace_id FROM documents").fetchall() == [(trace,)]
        finally:
            other.close()
    with TraceStore(path) as reopened:  # data survives closing
        assert reopened.trace_ids() == [trace]


def test_memory_database_and_close(tmp_path: Path) -> None:
    store = TraceStore(":memory:")
    assert store.add([make_doc(new_trace_id())]) == 1
    assert store.stats()["documents"] == 1
    store.close()
    store.close()  # idempotent
    with pytest.raises(sqlite3.ProgrammingError):
        store.trace_ids()


def test_default_path_honours_tracing_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "from-env" / "mine.sqlite3"
    monkeypatch.setenv("TRACING_DB", str(target))

    with TraceStore() as store:
        store.add([make_doc(new_trace_id())])
        assert store.path == str(target)

    assert target.is_file()


def test_default_path_without_env_is_under_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    assert default_path() == tmp_path / ".cache" / "tracing" / "traces.sqlite3"
    assert DEFAULT_DB == "~/.cache/tracing/traces.sqlite3"
    with TraceStore():
        pass
    assert (tmp_path / ".cache" / "tracing" / "traces.sqlite3").is_file()
