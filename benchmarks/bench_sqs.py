"""5. SQS trace propagation: inject per message, consume per record.

Inject: ``tracing.sqs.inject(params)`` on a fresh ``SendMessage`` parameter dict
(``QueueUrl`` + ``MessageBody``) with ``header=None``, so the parent comes from
the current-context lookup, as in the botocore hook. It runs inside
``with tracing.span("send")`` inside a sampled ``@tracing.handler`` invocation
(fresh ``_X_AMZN_TRACE_ID`` per invocation, 100 messages per invocation); only
the inject loop is timed. Anchors, each on a fresh empty ``dict`` carrier with an
OTel SDK span current (``TracerProvider`` without exporter): OTel
``TraceContextTextMapPropagator().inject`` and ``AwsXRayPropagator().inject``;
and aws-xray-sdk ``TraceHeader(root=, parent=, sampled=1).to_header_str()``.

Consume: ``with tracing.sqs.consume(record): pass`` for Lambda SQS records with a
fresh, valid, sampled ``AWSTraceHeader`` each, including emission (one consumer
segment datagram per record to the live 127.0.0.1 listener):

* in an invocation: a ``@tracing.handler`` handler looping over a 10-record
  event (Lambda's default batch size) minus the same handler looping without
  ``consume``, per record. The difference also holds what the 10 ``SQS message``
  subsegments add to the invocation's own document.
* in a worker: a process without ``LAMBDA_TASK_ROOT``, outside any invocation;
  the loop is timed directly.

Anchors (parse only: they build no span and send nothing): OTel
``TraceContextTextMapPropagator().extract`` of a ``traceparent`` carrier and
``AwsXRayPropagator().extract`` of an ``X-Amzn-Trace-Id`` carrier; aws-xray-sdk
``TraceHeader.from_header_str``.

Each kind of child (ours inject, ours consume, ours worker, OTel, aws-xray-sdk)
runs in its own fresh processes, interleaved; the anchors' children never import
ours. One sample = one batch's time per message or record, in µs; the loop
overhead (tens of ns) is in every figure alike. Ratios are against the OTel X-Ray
propagator, which reads and writes the same header format as ours.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _harness as bh

MODULE = "benchmarks.bench_sqs"
ORDER = 50
INJECT = "5 SQS inject"
CONSUME = "5 SQS consume"

KEY = "_X_AMZN_TRACE_ID"
TIMEOUT_MS = 15 * 60 * 1000
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders"
PER_INVOCATION_INJECT = 100  # messages sent per invocation
PER_INVOCATION_CONSUME = 10  # records per event: Lambda's default batch size

#: Child kind -> the cases it measures (case key -> table label).
KINDS: dict[str, dict[str, str]] = {
    "ours-inject": {"inject": "ours: sqs.inject(params), in invocation"},
    "ours-consume": {"consume": "ours: sqs.consume(record), in invocation"},
    "ours-worker": {"worker": "ours: sqs.consume(record), worker"},
    "otel": {
        "otel-tc-inject": "otel: TraceContext inject",
        "otel-xray-inject": "otel: AwsXRayPropagator inject",
        "otel-tc-extract": "otel: TraceContext extract",
        "otel-xray-extract": "otel: AwsXRayPropagator extract",
    },
    "sdk": {
        "sdk-format": "aws-xray-sdk: TraceHeader.to_header_str",
        "sdk-parse": "aws-xray-sdk: TraceHeader.from_header_str",
    },
}


# --- inputs -------------------------------------------------------------------------


def send_params(n: int) -> list[dict[str, Any]]:
    """``n`` fresh SendMessage parameter dicts, as a caller passes them to boto3."""
    return [{"QueueUrl": QUEUE_URL, "MessageBody": f"order {i}"} for i in range(n)]


def sqs_record(header: str) -> dict[str, Any]:
    """A Lambda SQS record carrying ``header`` as its ``AWSTraceHeader``."""
    now_ms = str(int(time.time() * 1000))
    return {
        "messageId": f"{os.urandom(4).hex()}-{os.urandom(2).hex()}-{os.urandom(2).hex()}-"
        f"{os.urandom(2).hex()}-{os.urandom(6).hex()}",
        "receiptHandle": "AQEB" + os.urandom(48).hex(),
        "body": '{"order": 1}',
        "attributes": {
            "ApproximateReceiveCount": "1",
            "AWSTraceHeader": header,
            "SentTimestamp": now_ms,
            "SenderId": "AROAEXAMPLE:producer",
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def traceparent(header: str) -> str:
    """The W3C ``traceparent`` of an X-Ray header in the exact Lambda shape."""
    root, parent = header[5:40], header[48:64]
    return f"00-{root[2:10]}{root[11:]}-{parent}-01"


# --- child --------------------------------------------------------------------------

Batch = Callable[[], float]  # runs one fresh batch, returns µs per item


def _timed_loop(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def _sent() -> int:
    from tracing._runtime import get_runtime

    runtime = get_runtime()
    return runtime.emitter.sent if runtime is not None else 0


def _ours_inject(batch: int, out: dict[str, Any]) -> dict[str, Batch]:
    import tracing
    import tracing.sqs
    from tracing.testing import FakeContext

    tracing.configure()
    inject = tracing.sqs.inject
    spent = [0.0]
    last: list[dict[str, Any]] = []

    @tracing.handler
    def send(event: list[dict[str, Any]], context: Any) -> None:
        with tracing.span("send"):
            start = time.perf_counter()
            for params in event:
                inject(params)
            spent[0] += time.perf_counter() - start
        last[:] = event[-1:]

    context = FakeContext(timeout_ms=TIMEOUT_MS)
    environ = os.environ
    invocations = max(1, batch // PER_INVOCATION_INJECT)
    out["invocations"] = 0

    def one() -> float:
        events = [send_params(PER_INVOCATION_INJECT) for _ in range(invocations)]
        headers = [bh.trace_header() for _ in range(invocations)]
        gc.collect()
        spent[0] = 0.0
        for header, event in zip(headers, events, strict=True):
            environ[KEY] = header
            send(event, context)
        out["invocations"] += invocations
        system = last[0].get("MessageSystemAttributes", {})
        if "AWSTraceHeader" not in system:
            raise SystemExit("inject added no AWSTraceHeader: the benchmark measures nothing")
        return spent[0] / (invocations * PER_INVOCATION_INJECT) * 1e6

    # The cold invocation (it also sends the Init subsegment), excluded.
    environ[KEY] = bh.trace_header()
    send(send_params(1), context)
    out["cold_sent"] = _sent()
    return {"inject": one}


def _ours_consume(batch: int, out: dict[str, Any]) -> dict[str, Batch]:
    import tracing
    import tracing.sqs
    from tracing.testing import FakeContext

    tracing.configure()
    consume = tracing.sqs.consume

    @tracing.handler
    def traced(event: dict[str, Any], context: Any) -> None:
        for record in event["Records"]:
            with consume(record):
                pass

    @tracing.handler
    def bare(event: dict[str, Any], context: Any) -> None:
        for _record in event["Records"]:
            pass

    context = FakeContext(timeout_ms=TIMEOUT_MS)
    environ = os.environ
    invocations = max(1, batch // PER_INVOCATION_CONSUME)
    out["invocations"] = 0
    out["records"] = 0
    flip = [False]

    def loop(fn: Callable[[Any, Any], Any], pairs: Sequence[tuple[str, Any]]) -> float:
        start = time.perf_counter()
        for header, event in pairs:
            environ[KEY] = header
            fn(event, context)
        return time.perf_counter() - start

    def one() -> float:
        pairs = [
            (
                bh.trace_header(),
                {"Records": [sqs_record(bh.trace_header()) for _ in range(PER_INVOCATION_CONSUME)]},
            )
            for _ in range(invocations)
        ]
        gc.collect()
        flip[0] = not flip[0]
        if flip[0]:
            t_traced, t_bare = loop(traced, pairs), loop(bare, pairs)
        else:
            t_bare, t_traced = loop(bare, pairs), loop(traced, pairs)
        out["invocations"] += 2 * invocations
        out["records"] += invocations * PER_INVOCATION_CONSUME
        return (t_traced - t_bare) / (invocations * PER_INVOCATION_CONSUME) * 1e6

    environ[KEY] = bh.trace_header()
    traced({"Records": [sqs_record(bh.trace_header())]}, context)  # cold, excluded
    out["cold_sent"] = _sent()
    return {"consume": one}


def _ours_worker(batch: int, out: dict[str, Any]) -> dict[str, Batch]:
    import tracing
    import tracing.sqs

    if os.environ.get("LAMBDA_TASK_ROOT"):
        raise SystemExit("the worker child must run without LAMBDA_TASK_ROOT")
    tracing.configure()
    consume = tracing.sqs.consume
    out["invocations"] = 0
    out["records"] = 0

    def process(record: dict[str, Any]) -> None:
        with consume(record):
            pass

    def one() -> float:
        records = [sqs_record(bh.trace_header()) for _ in range(batch)]
        out["records"] += batch
        return _timed_loop(process, records)

    return {"worker": one}


def _otel(batch: int, out: dict[str, Any]) -> dict[str, Batch]:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.propagators.aws import AwsXRayPropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    tracer = TracerProvider().get_tracer("bench")
    span = tracer.start_span("send")
    otel_context.attach(trace.set_span_in_context(span))
    tc, xray = TraceContextTextMapPropagator(), AwsXRayPropagator()

    def injecting(propagator: Any, field: str) -> Batch:
        def one() -> float:
            carriers: list[dict[str, str]] = [{} for _ in range(batch)]
            result = _timed_loop(propagator.inject, carriers)
            if field not in carriers[-1]:
                raise SystemExit(f"OTel inject wrote no {field}")
            return result

        return one

    def extracting(propagator: Any, field: str, convert: Callable[[str], str]) -> Batch:
        def one() -> float:
            carriers = [{field: convert(bh.trace_header())} for _ in range(batch)]
            result = _timed_loop(propagator.extract, carriers)
            extracted = trace.get_current_span(propagator.extract(carriers[-1]))
            if not extracted.get_span_context().is_valid:
                raise SystemExit(f"OTel extract found no context in {carriers[-1]}")
            return result

        return one

    return {
        "otel-tc-inject": injecting(tc, "traceparent"),
        "otel-xray-inject": injecting(xray, "X-Amzn-Trace-Id"),
        "otel-tc-extract": extracting(tc, "traceparent", traceparent),
        "otel-xray-extract": extracting(xray, "X-Amzn-Trace-Id", str),
    }


def _sdk(batch: int, out: dict[str, Any]) -> dict[str, Batch]:
    from aws_xray_sdk.core.models.trace_header import TraceHeader

    def formatting() -> float:
        ids = [(h[5:40], h[48:64]) for h in (bh.trace_header() for _ in range(batch))]

        def fmt(pair: tuple[str, str]) -> str:
            return str(TraceHeader(root=pair[0], parent=pair[1], sampled=1).to_header_str())

        return _timed_loop(fmt, ids)

    def parsing() -> float:
        headers = [bh.trace_header() for _ in range(batch)]
        result = _timed_loop(TraceHeader.from_header_str, headers)
        if TraceHeader.from_header_str(headers[-1]).parent is None:
            raise SystemExit("aws-xray-sdk parsed no parent")
        return result

    return {"sdk-format": formatting, "sdk-parse": parsing}


SETUPS: dict[str, Callable[[int, dict[str, Any]], dict[str, Batch]]] = {
    "ours-inject": _ours_inject,
    "ours-consume": _ours_consume,
    "ours-worker": _ours_worker,
    "otel": _otel,
    "sdk": _sdk,
}


def child(kind: str, rounds: int, batch: int) -> None:
    out: dict[str, Any] = {}
    cases = SETUPS[kind](batch, out)
    names = list(cases)
    for name in names:  # warm-up batch, excluded
        cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(cases[name]())
    out["samples"] = samples
    if kind.startswith("ours"):
        from tracing._runtime import get_runtime

        runtime = get_runtime()
        if runtime is not None:
            out["sent"] = runtime.emitter.sent
            out["failed"] = runtime.emitter.failed
    bh.emit_json(out)


# --- parent -------------------------------------------------------------------------


def measure(
    *, children: int = 4, rounds: int = 5, batch: int = 2000
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Run ``children`` fresh processes of every kind, interleaved.

    Returns per case its samples and datagram counts, and the problems that
    ``tracing.testing.check_document`` found in the last documents received.
    """
    from tracing.testing import check_document

    children = bh.scaled(children, 2)
    rounds = bh.scaled(rounds, 2)
    acc: dict[str, dict[str, Any]] = {}
    for cases in KINDS.values():
        for name in cases:
            acc[name] = {
                "samples": [],
                "sent": 0,
                "received": 0,
                "failed": 0,
                "expected": 0,
            }
    problems: list[str] = []
    with bh.Listener() as daemon:
        lambda_env = bh.lambda_env(daemon.address)
        worker_env = dict(lambda_env)
        del worker_env["LAMBDA_TASK_ROOT"]
        for _ in range(children):
            for kind, cases in KINDS.items():
                env = worker_env if kind == "ours-worker" else lambda_env
                before = daemon.quiet()
                out = bh.run_module(MODULE, kind, str(rounds), str(batch), env=env)
                got = daemon.quiet() - before
                for name in cases:
                    row = acc[name]
                    row["samples"] += out["samples"][name]
                    row["sent"] += out.get("sent", 0)
                    row["failed"] += out.get("failed", 0)
                    row["received"] += got
                    row["expected"] += (
                        out.get("cold_sent", 0) + out.get("invocations", 0) + out.get("records", 0)
                    )
                if kind.startswith("ours"):
                    docs = daemon.documents()[-16:]
                    for doc in docs:
                        problems += [f"{kind}: {p}" for p in check_document(doc)]
    return acc, problems


def run() -> list[dict[str, Any]]:
    acc, problems = measure()
    rows: dict[str, dict[str, Any]] = {}
    for kind, cases in KINDS.items():
        for name, case in cases.items():
            a = acc[name]
            extra: dict[str, Any] = {}
            if kind.startswith("ours"):
                extra["datagrams"] = f"{a['received']}/{a['sent']} rx"
                extra["expected_datagrams"] = a["expected"]
                extra["failed_sends"] = a["failed"]
            bench = INJECT if "inject" in name or "format" in name else CONSUME
            rows[name] = bh.measured(bench, case, a["samples"], "µs", **extra)

    inject, consume, worker = rows["inject"], rows["consume"], rows["worker"]
    bh.compare(inject, rows["otel-xray-inject"], vs="otel xray inject")
    bh.target(inject, 3.0, "≤ 3 µs")
    for row in (consume, worker):
        bh.compare(row, rows["otel-xray-extract"], vs="otel xray extract")
        bh.target(row, 20.0, "≤ 20 µs")

    def counted(name: str) -> str:
        sent, expected = acc[name]["sent"], rows[name]["expected_datagrams"]
        if sent == expected:
            return ""
        return f"; MISMATCH: the tracer sent {sent} datagrams, {expected} expected"

    inject["note"] = (
        f"inject(params) with header=None on a fresh SendMessage dict, inside "
        f"tracing.span inside a sampled @tracing.handler invocation, "
        f"{PER_INVOCATION_INJECT} messages per invocation, only the inject loop timed; "
        f"'sent' = the invocations' datagrams, received / sent (inject sends nothing); "
        f"anchors inject into an empty dict with an OTel SDK span current" + counted("inject")
    )
    consume["note"] = (
        f"per record = (handler looping over {PER_INVOCATION_CONSUME} records with consume() "
        f"- same handler without) / {PER_INVOCATION_CONSUME}, fresh _X_AMZN_TRACE_ID and "
        f"AWSTraceHeader per invocation/record; includes the consumer segment's UDP "
        f"emission and the record's 'SQS message' subsegment in the invocation document; "
        f"'sent' = all datagrams of the children (invocations + one per record)"
        + counted("consume")
    )
    checked = "the last 16 documents of each of our children pass testing.check_document"
    worker["note"] = (
        "child without LAMBDA_TASK_ROOT, outside any invocation: one segment in the "
        "producer's trace per record, emitted on exit; "
        + (checked if not problems else f"{len(problems)} problems: {problems[:3]}")
        + counted("worker")
    )
    rows["otel-xray-extract"]["note"] = (
        "anchors only parse the header into a context: they create no span and send "
        "nothing, while ours includes building, encoding and sending a segment per record"
    )
    order = [
        "inject",
        "otel-tc-inject",
        "otel-xray-inject",
        "sdk-format",
        "consume",
        "worker",
        "otel-tc-extract",
        "otel-xray-extract",
        "sdk-parse",
    ]
    return [rows[name] for name in order]


def main(argv: Sequence[str]) -> None:
    if argv[:1] == ["--child"]:
        kind, rounds, batch = argv[1:4]
        child(kind, int(rounds), int(batch))
        return
    for row in run():
        print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
