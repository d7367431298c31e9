"""11. The local collector: ingest without loss, and filter queries over 100,000 traces.

**Ingest.** A :class:`~tracing.local.collector.daemon.Collector` on 127.0.0.1
(an ephemeral port) with an on-disk :class:`TraceStore`; one UDP sender in
another process sends X-Ray segment documents (a Lambda invocation's segment
with a DynamoDB and an SQS call, about 540 bytes each), paced at 12,000 a second,
and then as fast as it can. The figure is documents stored per second, from the
first datagram sent to the last document stored, and how many were lost (sent -
stored). The anchor the issue names, aws-xray-daemon (Go), cannot run here (no
Go toolchain, no binary): the paced row is held against the target, 10,000
segments/s with no loss; the flat-out row (about a million datagrams a second
offered, more than any one receiver's socket buffer holds) has no target and
shows the collector's capacity.

**Queries.** 100,000 traces (two documents each: an ``orders-api`` invocation
and the ``orders-worker`` consumer segment under its ``SendMessage``) are put
into a TraceStore directly, in batches (not over UDP), and indexed; then each
filter expression is asked through ``QueryAPI.get_trace_summaries`` over the
whole time range, following ``NextToken`` until the last page: the figure is
the seconds for all pages, held against the target of 1 s. Anchor: moto's
``xray`` stores segments but evaluates no filter expressions ("no filters").
"""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _harness as bh

MODULE = "benchmarks.bench_collector"
ORDER = 97
BENCH = "11 local collector"

TRACES = 100_000
EXPRESSIONS = {
    "annotation": 'annotation.sku = "book-1"',
    "service": 'service("orders-worker") { fault }',
    "responsetime": "responsetime > 1",
}
_HEADER = b'{"format":"json","version":1}\n'
_BASE = 1_700_000_000.0


def _hex(n: int, width: int) -> str:
    return f"{n:0{width}x}"[-width:]


def trace_documents(i: int, base: float = _BASE) -> list[dict[str, Any]]:
    """The two documents of trace number ``i``: deterministic, varied by ``i``."""
    start = base + i * 0.01
    trace_id = f"1-{int(start):08x}-{_hex(i * 2654435761, 24)}"
    api, dynamo, send, worker = (_hex(i * 4 + k, 16) for k in range(4))
    fault = i % 20 == 7
    slow = i % 50 == 3
    took = 1.5 if slow else 0.05 + (i % 17) * 0.01
    api_doc = {
        "trace_id": trace_id,
        "id": api,
        "name": "orders-api",
        "origin": "AWS::Lambda::Function",
        "start_time": start,
        "end_time": start + took,
        "http": {
            "request": {"method": "POST", "url": f"https://api.example.com/orders/{i}"},
            "response": {"status": 500 if i % 31 == 0 else 200},
        },
        "annotations": {"sku": f"book-{i % 100}", "tier": "gold" if i % 3 else "silver"},
        "subsegments": [
            {
                "id": dynamo,
                "name": "DynamoDB",
                "namespace": "aws",
                "start_time": start + 0.001,
                "end_time": start + 0.011,
                "aws": {"operation": "GetItem", "table_name": "orders"},
            },
            {
                "id": send,
                "name": "SQS",
                "namespace": "aws",
                "start_time": start + 0.012,
                "end_time": start + 0.02,
                "aws": {
                    "operation": "SendMessage",
                    "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
                },
            },
        ],
    }
    worker_doc = {
        "trace_id": trace_id,
        "id": worker,
        "parent_id": send,
        "name": "orders-worker",
        "start_time": start + 0.03,
        "end_time": start + 0.08,
        "fault": fault,
        "annotations": {"Queue": "orders", "order_id": f"o-{i}"},
    }
    return [api_doc, worker_doc]


# --- queries ----------------------------------------------------------------------------


def populate(store: Any, traces: int, batch: int = 5_000) -> dict[str, float]:
    """Put ``traces`` traces into the store directly, then index them; seconds of each."""
    start = time.perf_counter()
    for first in range(0, traces, batch):
        documents = [
            d for i in range(first, min(traces, first + batch)) for d in trace_documents(i)
        ]
        store.add(documents, received_at=_BASE + first)
    stored = time.perf_counter()
    refresh = getattr(store, "refresh_index", None)
    if refresh is not None:
        refresh()
    return {"add_s": stored - start, "index_s": time.perf_counter() - stored}


def query_all(api: Any, expression: str) -> dict[str, Any]:
    """One query over every stored trace, page after page; seconds, pages, matches."""
    body: dict[str, Any] = {
        "StartTime": _BASE - 10,
        "EndTime": _BASE + TRACES,
        "FilterExpression": expression,
    }
    pages = matches = 0
    start = time.perf_counter()
    while True:
        answer = api.get_trace_summaries(body)
        pages += 1
        matches += len(answer["TraceSummaries"])
        token = answer.get("NextToken")
        if token is None:
            break
        body = {**body, "NextToken": token}
    return {"seconds": time.perf_counter() - start, "pages": pages, "matches": matches}


def child_query(traces: int, rounds: int, path: str) -> None:
    from tracing.local.collector.store import TraceStore
    from tracing.local.collector.xray_query import QueryAPI

    with TraceStore(path) as store:
        timings = populate(store, traces)
        api = QueryAPI(store)
        samples: dict[str, list[float]] = {name: [] for name in EXPRESSIONS}
        info: dict[str, Any] = {}
        for _ in range(rounds):
            for name, expression in EXPRESSIONS.items():
                gc.collect()
                out = query_all(api, expression)
                samples[name].append(out["seconds"])
                info[name] = {"pages": out["pages"], "matches": out["matches"]}
        stats = store.stats()
    bh.emit_json({"samples": samples, "info": info, "timings": timings, "stats": stats})


# --- ingest -------------------------------------------------------------------------------


def child_send(address: str, count: int, traces_from: int, rate: int) -> None:
    """Send ``count`` documents, one per datagram: ``rate`` a second, or flat out (0)."""
    host, _, port = address.rpartition(":")
    datagrams = [
        _HEADER + json.dumps(document, separators=(",", ":")).encode()
        for i in range(traces_from, traces_from + count // 2 + 1)
        for document in trace_documents(i, time.time())
    ][:count]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = (host, int(port))
    start = time.time()
    sent = 0
    for data in datagrams:
        sock.sendto(data, target)
        sent += 1
        if rate and sent % 100 == 0:  # paced in bursts of 100
            ahead = start + sent / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
    end = time.time()
    sock.close()
    size = sum(len(d) for d in datagrams) / max(1, len(datagrams))
    bh.emit_json({"start": start, "end": end, "sent": sent, "bytes": size})


def child_ingest(rounds: int, count: int, path: str, rate: int) -> None:
    from tracing.local.collector.daemon import Collector
    from tracing.local.collector.store import TraceStore

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_"))}
    results = []
    for r in range(rounds):
        db = f"{path}.{r}"
        with TraceStore(db) as store:
            collector = Collector("127.0.0.1:0", store, sampling_api=False, query_api=False)
            with collector:
                sender = bh.run_module(
                    MODULE,
                    "send",
                    collector.address,
                    str(count),
                    str(r * count),
                    str(rate),
                    env=env,
                )
                # Stored: wait until the writer has caught up (nothing new for 0.5 s).
                last, seen = time.time(), -1
                while time.time() - last < 0.5:
                    time.sleep(0.05)
                    stored = collector.stats["stored"]
                    if stored != seen:
                        seen, last = stored, time.time()
                done = last
            stats = collector.stats
        results.append(
            {
                "sent": sender["sent"],
                "stored": stats["stored"],
                "dropped": stats["dropped"],
                "received": stats["received"],
                "seconds": done - sender["start"],
                "send_seconds": sender["end"] - sender["start"],
                "bytes": sender["bytes"],
            }
        )
        for suffix in ("", "-wal", "-shm"):
            Path(db + suffix).unlink(missing_ok=True)
    bh.emit_json({"rounds": results})


def _ingest_row(ingest: list[dict[str, Any]], count: int, rate: int) -> dict[str, Any]:
    stored = [r["stored"] / r["seconds"] for r in ingest]
    lost = [r["sent"] - r["stored"] for r in ingest]
    sent = [r["sent"] / r["send_seconds"] for r in ingest]
    pace = f"paced at {rate:,}/s" if rate else "flat out"
    row = bh.measured(BENCH, f"ingest, one UDP sender, {pace}", stored, "docs/s")
    if rate:
        row["target"] = "≥ 10,000/s, no loss"
        row["met"] = min(stored) >= 10_000 and not any(lost)
    # Flat out, the sender offers far more than any one receiver takes (about a
    # million datagrams a second): the kernel's receive buffer overflows, so loss
    # is expected and no target applies; what is stored per second is the
    # collector's capacity.
    row["datagrams"] = f"{sum(r['stored'] for r in ingest)}/{sum(r['sent'] for r in ingest)}"
    row["note"] = (
        f"{count} documents ({ingest[0]['bytes']:.0f} bytes) per round, {pace} (sent at "
        f"{bh.median(sent):,.0f}/s); stored/s from the first datagram sent to the last "
        f"document stored; lost per round (sent - stored): {lost}; the anchor, "
        "aws-xray-daemon (Go), cannot run here (no Go toolchain or binary): held "
        "against the target"
    )
    return row


def run() -> list[dict[str, Any]]:
    rounds = 2 if bh.QUICK else 3
    count = 20_000 if bh.QUICK else 30_000
    traces = 20_000 if bh.QUICK else TRACES
    env = bh.lambda_env("127.0.0.1:9")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (0, 12_000):
            out = bh.run_module(
                MODULE,
                "ingest",
                str(rounds),
                str(count),
                str(Path(tmp) / "ingest.sqlite3"),
                str(rate),
                env=env,
            )
            rows.append(_ingest_row(out["rounds"], count, rate))
        out = bh.run_module(
            MODULE,
            "query",
            str(traces),
            str(rounds),
            str(Path(tmp) / "query.sqlite3"),
            env=env,
            timeout_s=900,
        )
    timings = out["timings"]
    for name, expression in EXPRESSIONS.items():
        info = out["info"][name]
        row = bh.measured(BENCH, f"query `{expression}`", out["samples"][name], "s")
        bh.target(row, 1.0, "≤ 1 s")
        row["vs"] = "moto xray: no filters"
        row["note"] = (
            f"{traces:,} traces ({out['stats']['documents']:,} documents): {info['matches']} "
            f"matches in {info['pages']} pages of GetTraceSummaries, all pages timed"
        )
        rows.append(row)
    rows[-1]["note"] += (
        f"; populating took {timings['add_s']:.1f} s (TraceStore.add, batches of 5,000 "
        f"documents) + {timings['index_s']:.1f} s indexing"
    )
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind == "send":
            child_send(args[0], int(args[1]), int(args[2]), int(args[3]))
        elif kind == "ingest":
            child_ingest(int(args[0]), int(args[1]), args[2], int(args[3]))
        else:
            child_query(int(args[0]), int(args[1]), args[2])
    else:
        print(bh.format_table(run()))
