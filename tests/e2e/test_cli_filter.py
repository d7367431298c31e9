"""``tracing traces --filter``, run as a user runs it, on a store of demo-shaped traces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tracing.local.collector.store import TraceStore

from ..unit.local import realistic_documents

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0


def _traces(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_"))}
    return subprocess.run(
        [sys.executable, "-m", "tracing", "traces", "--db", str(db), *args],
        cwd=ROOT,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _fill(db: Path) -> tuple[str, str, str]:
    """Three orders-api traces: book-1 ok, book-1 with a poison message, book-2 ok."""
    book = realistic_documents(T0)
    poisoned = realistic_documents(T0 + 60, messages=2, poison_last=True)
    other = realistic_documents(T0 + 120)
    entities = list(other)
    while entities:  # every sku annotation, the worker's too
        entity = entities.pop()
        if "sku" in entity.get("annotations", {}):
            entity["annotations"]["sku"] = "book-2"
        entities.extend(entity.get("subsegments", []))
    with TraceStore(db) as store:
        for documents in (book, poisoned, other):
            store.add(documents)
    return book[0]["trace_id"], poisoned[0]["trace_id"], other[0]["trace_id"]


def test_traces_filter_lists_only_matching_traces(tmp_path: Path) -> None:
    db = tmp_path / "traces.sqlite3"
    book, poisoned, other = _fill(db)
    assert len({book, poisoned, other}) == 3

    everything = _traces(db)
    assert everything.returncode == 0, everything.stderr
    assert all(t in everything.stdout for t in (book, poisoned, other))

    by_sku = _traces(db, "--filter", 'annotation.sku = "book-1"')
    assert by_sku.returncode == 0, by_sku.stderr
    assert book in by_sku.stdout
    assert poisoned in by_sku.stdout
    assert other not in by_sku.stdout

    failing = _traces(db, "--filter", 'service("orders-worker") { fault }')
    assert failing.returncode == 0, failing.stderr
    assert poisoned in failing.stdout
    assert book not in failing.stdout
    assert other not in failing.stdout

    limited = _traces(db, "--filter", 'annotation.sku BEGINSWITH "book"', "--limit", "1")
    assert limited.returncode == 0, limited.stderr
    assert [t for t in (book, poisoned, other) if t in limited.stdout] == [other]  # newest

    none = _traces(db, "--filter", 'annotation.sku = "book-3"')
    assert none.returncode == 0, none.stderr
    assert "no stored trace matches" in none.stdout


def test_traces_filter_refuses_a_bad_expression_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "traces.sqlite3"
    _fill(db)
    expression = 'annotation.sku = "book-1" AND responsetime > "5"'
    bad = _traces(db, "--filter", expression)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1
    column = expression.index('"5"') + 1
    assert f"column {column}:" in bad.stderr
    assert "compares with a number" in bad.stderr

    unsupported = _traces(db, "--filter", "rootcause.fault.service { index > 5 }")
    assert unsupported.returncode == 2
    assert "column 1" in unsupported.stderr
    assert "not supported locally: rootcause" in unsupported.stderr

    helped = subprocess.run(
        [sys.executable, "-m", "tracing", "traces", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "X-Ray filter expression" in helped.stdout
