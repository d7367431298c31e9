"""The ``tracing`` command: a local X-Ray daemon, trace list and viewer, runner, demo.

Usage::

    tracing daemon [--listen 127.0.0.1:2000] [--db PATH] [--forward] [--otlp-http 127.0.0.1:4318]
                   [--sampling-rules FILE] [--quiet]
    tracing traces [--db PATH] [--since 10m] [--limit 20]
    tracing show TRACE_ID [--db PATH] [--html FILE] [--from-xray [--region R]]
    tracing map [--db PATH] [--since 1h] [--limit 1000] [--html FILE]
    tracing ui [--db PATH] [--listen 127.0.0.1:8000]
    tracing run module.handler --event FILE [--invocations N] [--code-dir DIR] [--snapstart N]
                [--env KEY=VALUE]... [--env-file FILE]... [--aws local [--aws-setup FILE]]
    tracing demo [--backend xray|otel]

Everything listens on and talks to 127.0.0.1 only, unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

log = logging.getLogger("tracing.cli")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(text: str) -> float:
    """``10m`` / ``2h`` / ``30`` (seconds) ago, or an epoch timestamp, as epoch seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 10m, 2h or 30s, got {text!r}")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    return value if value > 1e9 else time.time() - value


def _store(path: str | None) -> Any:
    from .local.collector.store import TraceStore

    return TraceStore(path)


def _cmd_traces(args: argparse.Namespace) -> int:
    from .local.collector.traces import summarize
    from .local.views.terminal import print_trace_table

    if args.filter is not None:
        return _filtered_traces(args)
    with _store(args.db) as store:
        summaries = [summarize(store.documents(t)) for t in store.trace_ids(args.since, args.limit)]
    if not summaries:
        print("no traces yet (is `tracing daemon` running, and AWS_XRAY_DAEMON_ADDRESS set?)")
        return 0
    print_trace_table(summaries)
    return 0


def _filtered_traces(args: argparse.Namespace) -> int:
    """``tracing traces --filter``: the newest ``--limit`` stored traces that match.

    Answered by the collector's ``GetTraceSummaries`` (its per-trace index), as
    ``tracing ui`` and ``aws xray get-trace-summaries`` are: the three agree.
    """
    from .local.collector.traces import summarize
    from .local.collector.xray_query import QueryAPI, QueryError
    from .local.views.terminal import print_trace_table

    request: dict[str, Any] = {
        "StartTime": args.since or 0.0,
        "EndTime": time.time() + 60.0,  # (traces still arriving)
        "FilterExpression": args.filter,
    }
    with _store(args.db) as store:
        api = QueryAPI(store, page_size=max(1, min(args.limit, 1000)))
        ids: list[str] = []
        try:
            while len(ids) < args.limit:
                answer = api.get_trace_summaries(request)
                ids += [s["Id"] for s in answer["TraceSummaries"]]
                if "NextToken" not in answer:
                    break
                request["NextToken"] = answer["NextToken"]
        except QueryError as exc:
            print(f"tracing traces: --filter: {exc}", file=sys.stderr)
            return 2
        summaries = [summarize(store.documents(t)) for t in ids[: args.limit]]
    if not summaries:
        print(f"no stored trace matches {args.filter}")
        return 0
    print_trace_table(summaries)
    return 0


class _CommandError(Exception):
    """A failure the command explains in one line (exit status 2)."""


def _region(region: str | None, option: str) -> str:
    """The region for an X-Ray API call: ``--region``, else what boto3 would find."""
    import botocore.exceptions
    import botocore.session

    try:
        found = region or botocore.session.Session().get_config_variable("region")
    except botocore.exceptions.BotoCoreError as exc:  # e.g. AWS_PROFILE names no profile
        raise _CommandError(f"{option}: {exc}") from None
    if not found:
        raise _CommandError(
            f"{option} needs an AWS region: pass --region (e.g. --region us-east-1) "
            "or set AWS_REGION"
        )
    return str(found)


def _fetch_from_xray(trace_id: str, region: str | None, endpoint_url: str | None) -> list[Any]:
    import boto3
    import botocore.exceptions

    client = boto3.client(
        "xray", region_name=_region(region, "--from-xray"), endpoint_url=endpoint_url
    )
    documents: list[Any] = []
    try:
        traces = client.batch_get_traces(TraceIds=[trace_id]).get("Traces", [])
    except botocore.exceptions.NoCredentialsError:
        raise _CommandError(
            "--from-xray: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY)"
        ) from None
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise _CommandError(f"--from-xray: X-Ray BatchGetTraces failed: {exc}") from None
    for trace in traces:
        for segment in trace.get("Segments", []):
            documents.append(json.loads(segment["Document"]))
    return documents


def _cmd_show(args: argparse.Namespace) -> int:
    from .local.views.terminal import show_trace

    if args.from_xray:
        documents = _fetch_from_xray(args.trace_id, args.region, args.endpoint_url)
    else:
        with _store(args.db) as store:
            documents = store.documents(args.trace_id)
    return show_trace(documents, args.html)


def _cmd_map(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .local.collector.service_graph import build_map
    from .local.collector.traces import assemble
    from .local.views.service_map import render_map_html, render_map_text

    with _store(args.db) as store:
        ids = store.trace_ids(args.since, args.limit)
        service_map = build_map(assemble(store.documents(t)) for t in ids)
    print(render_map_text(service_map))
    if args.html:
        window = "all stored traces" if args.since is None else "traces since the window's start"
        page = render_map_html(service_map, facts=f"{window}, newest {args.limit} at most")
        Path(args.html).write_text(page, encoding="utf-8")
        print(f"HTML map written to {args.html} (click a node to list its traces)")
    return 0


def _cmd_daemon(args: argparse.Namespace) -> int:
    from .local.collector.daemon import Collector, ForwardConfig
    from .local.collector.traces import summarize
    from .local.views.terminal import summary_line

    forward = None
    if args.forward:
        forward = ForwardConfig(
            region=_region(args.region, "--forward"), endpoint_url=args.endpoint_url
        )
    stop = threading.Event()

    def on_trace(trace_id: str, documents: list[Any]) -> None:
        if args.quiet or stop.is_set():
            return
        try:
            print(summary_line(summarize(documents)), flush=True)
        except BrokenPipeError:  # `tracing daemon | head`: the reader is gone, stop
            _silence_stdout()
            stop.set()

    try:
        from .local.collector.xray_api import SamplingRules

        SamplingRules(args.sampling_rules)  # a bad file: said before anything starts
    except ValueError as exc:
        print(f"tracing daemon: {exc}", file=sys.stderr)
        return 2
    with (
        _store(args.db) as store,
        Collector(
            args.listen,
            store,
            forward=forward,
            on_trace=on_trace,
            otlp_http=args.otlp_http,
            sampling_rules=args.sampling_rules,
        ) as collector,
    ):
        # One line: scripts read the address from it, and the next line is the first
        # trace's (or, with --quiet, "stopped:").
        sampling = ""
        if collector.sampling_address:
            rules = args.sampling_rules or "X-Ray's default rule"
            sampling = (
                f" (X-Ray API on http://{collector.sampling_address}: queries, and sampling "
                f"from {rules})"
            )
        print(
            f"listening on udp://{collector.address}{sampling}, storing in {store.path}",
            flush=True,
        )
        if collector.otlp_http_address:
            print(f"OTLP/HTTP on http://{collector.otlp_http_address}/v1/traces", flush=True)
        if not args.quiet:
            print("a line per completed trace follows (--quiet: none)", flush=True)
        _stop_on_signals()
        try:
            while not stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
        print(f"stopped: {collector.stats}")
    return 141 if stop.is_set() else 0  # stopped by a closed pipe, as SIGPIPE would


def _cmd_ui(args: argparse.Namespace) -> int:
    from .local.views.web import TraceUI

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        print(f"tracing ui: --listen wants host:port, got {args.listen!r}", file=sys.stderr)
        return 2
    try:
        store = _store(args.db)
    except Exception as exc:  # e.g. a --db path in a directory that does not exist
        print(f"tracing ui: cannot open the store: {exc}", file=sys.stderr)
        return 2
    try:
        ui = TraceUI(store, host.strip("[]"), int(port))
    except OSError as exc:
        store.close()
        print(f"tracing ui: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    with store, ui:
        print(f"traces of {store.path} on {ui.url} (Ctrl-C stops)", flush=True)
        if not _loopback(host.strip("[]")):
            print(
                f"tracing ui: listening on {host}, not 127.0.0.1: anyone who can reach it "
                "can read your traces",
                file=sys.stderr,
            )
        _stop_on_signals()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the daemon cleanly, storing what it received.

    Set explicitly: a process started in the background by a shell without job
    control (``nohup``, CI scripts) inherits SIGINT *ignored*, and Python keeps
    it ignored; supervisors (systemd, Docker) stop with SIGTERM, whose default
    kills without storing the queue.
    """
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def _cmd_run(args: argparse.Namespace) -> int:
    from .local.runtime.run import run_handler

    return run_handler(
        args.handler,
        event_file=args.event,
        invocations=args.invocations,
        code_dir=args.code_dir,
        db=args.db,
        backend=args.backend,
        timeout_s=args.timeout,
        snapstart=args.snapstart,
        env=args.env,
        env_files=args.env_file,
        aws=args.aws,
        aws_setup=args.aws_setup,
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from .local.demo import run_demo

    return run_demo(backend=args.backend, out_dir=args.out, examples=args.examples)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracing", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    db_help = "SQLite store (default: $TRACING_DB or ~/.cache/tracing/traces.sqlite3)"
    daemon = commands.add_parser(
        "daemon",
        help="X-Ray-daemon-compatible local collector",
        description="An X-Ray-daemon-compatible collector: stores every document it "
        "receives and prints a line per completed trace (also into a file or a pipe; "
        "--quiet: none). Ctrl-C or SIGTERM stops it.",
    )
    daemon.add_argument("--listen", default="127.0.0.1:2000", help="UDP host:port")
    daemon.add_argument("--db", help=db_help)
    daemon.add_argument(
        "--forward", action="store_true", help="also send to X-Ray PutTraceSegments"
    )
    daemon.add_argument(
        "--region", help="AWS region for --forward (default: AWS_REGION, your profile's)"
    )
    daemon.add_argument("--endpoint-url", help="X-Ray endpoint for --forward (tests, proxies)")
    daemon.add_argument(
        "--quiet",
        action="store_true",
        help="print no line per completed trace (by default one is printed, also when "
        "the output is a file or a pipe)",
    )
    # Before lines were printed whenever stdout is not a terminal: kept, a no-op.
    daemon.add_argument("--print-traces", action="store_true", help=argparse.SUPPRESS)
    daemon.add_argument(
        "--otlp-http",
        metavar="HOST:PORT",
        help="also take OTLP/HTTP (exporter=otlp) on this address, e.g. 127.0.0.1:4318",
    )
    daemon.add_argument(
        "--sampling-rules",
        metavar="FILE",
        help="sampling rules GetSamplingRules/GetSamplingTargets answer with, on TCP at the "
        "--listen address (aws-xray-sdk's JSON format; default: X-Ray's default rule)",
    )
    daemon.set_defaults(func=_cmd_daemon)

    traces = commands.add_parser("traces", help="list stored traces")
    traces.add_argument("--db", help=db_help)
    traces.add_argument("--since", type=_since, help="only traces newer than e.g. 10m, 2h")
    traces.add_argument("--limit", type=int, default=20)
    traces.add_argument(
        "--filter",
        metavar="EXPR",
        help="only traces matching EXPR, an X-Ray filter expression (X-Ray's own language, "
        "e.g. 'annotation.sku = \"book-1\"' or 'service(\"orders-api\") { fault }'); "
        "rootcause.*, groups and json are not supported locally",
    )
    traces.set_defaults(func=_cmd_traces)

    show = commands.add_parser("show", help="show one trace as a tree, optionally as HTML")
    show.add_argument("trace_id")
    show.add_argument("--db", help=db_help)
    show.add_argument("--html", metavar="FILE", help="write a self-contained HTML timeline")
    show.add_argument("--from-xray", action="store_true", help="fetch with BatchGetTraces instead")
    show.add_argument(
        "--region", help="AWS region for --from-xray (default: AWS_REGION, your profile's)"
    )
    show.add_argument("--endpoint-url", help="X-Ray endpoint for --from-xray")
    show.set_defaults(func=_cmd_show)

    service_map = commands.add_parser(
        "map", help="the service map of the stored traces (terminal summary, optional HTML)"
    )
    service_map.add_argument("--db", help=db_help)
    service_map.add_argument("--since", type=_since, help="only traces newer than e.g. 10m, 2h")
    service_map.add_argument("--limit", type=int, default=1000, help="newest traces to include")
    service_map.add_argument("--html", metavar="FILE", help="write a self-contained HTML map")
    service_map.set_defaults(func=_cmd_map)

    ui = commands.add_parser(
        "ui",
        help="the stored traces in a browser: a trace list with a filter box, timelines, map",
        description="Serve the stored traces on 127.0.0.1: the trace list searched with "
        "X-Ray filter expressions, each trace's timeline and the service map. Read-only; "
        "run it beside `tracing daemon` (same --db). Ctrl-C or SIGTERM stops it.",
    )
    ui.add_argument("--db", help=db_help)
    ui.add_argument("--listen", default="127.0.0.1:8000", help="host:port (default %(default)s)")
    ui.set_defaults(func=_cmd_ui)

    run = commands.add_parser(
        "run",
        help="run a handler in the local Lambda runtime",
        description="Run a handler in the real Lambda runtime client (awslambdaric), "
        "print each result, the function's log and each invocation's trace. "
        "Exit status: 0 every invocation returned, 1 one failed, 2 the function "
        "could not start (or an argument is wrong), 141 the output pipe was closed.",
        epilog="The function's environment, each layer winning over the ones before: "
        "Lambda's own variables; your AWS_*, TRACING_*, OTEL_* and POWERTOOLS_* "
        "variables (with --aws local, of AWS_* only AWS_REGION and AWS_DEFAULT_REGION); "
        "--aws local's endpoint, dummy credentials and region; --env-file files in order; "
        "--env values in order; --backend. AWS_LAMBDA_RUNTIME_API and "
        "AWS_XRAY_DAEMON_ADDRESS are always the run's own.",
    )
    run.add_argument("handler", help="module.function, as in Lambda's handler setting")
    run.add_argument("--event", required=True, help="JSON file with the event")
    run.add_argument("--invocations", type=int, default=1)
    run.add_argument("--code-dir", default=".", help="directory holding the module")
    run.add_argument("--db", help=db_help)
    run.add_argument("--backend", choices=("xray", "otel"))
    run.add_argument("--timeout", type=float, default=30.0, help="function timeout, seconds")
    run.add_argument(
        "--snapstart",
        type=int,
        default=0,
        metavar="N",
        help="SnapStart: initialise once, restore N environments, invoke each",
    )
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="a variable for the function (repeatable); KEY alone passes your own value",
    )
    run.add_argument(
        "--env-file",
        action="append",
        default=[],
        metavar="FILE",
        help="dotenv file of KEY=VALUE lines for the function (repeatable)",
    )
    run.add_argument(
        "--aws",
        choices=("local",),
        help="local: start local AWS (moto's server) for the run; the function gets its "
        "endpoint (AWS_ENDPOINT_URL), dummy credentials and a region; no AWS account needed",
    )
    run.add_argument(
        "--aws-setup",
        metavar="FILE",
        help="with --aws local: a Python script run first, with the function's environment, "
        "to create the buckets, queues and tables the function expects",
    )
    run.set_defaults(func=_cmd_run)

    demo = commands.add_parser("demo", help="the example application, end to end, locally")
    demo.add_argument("--backend", choices=("xray", "otel"), default="xray")
    demo.add_argument("--out", default="out", help="where the database and HTML go")
    demo.add_argument("--examples", help="the examples/ directory (default: ./examples)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tracing`` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # so a closed pipe is noticed here, not at exit
        return code
    except BrokenPipeError:
        # `tracing ... | head`: the reader has gone; end quietly, as a command
        # killed by SIGPIPE would (128 + 13).
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:  # the local tools are an extra
        print(
            f"tracing {args.command}: needs {exc.name!r}: pip install 'lambda-xray-tracing[local]'",
            file=sys.stderr,
        )
        return 2
    except (_CommandError, OSError, ValueError) as exc:
        print(f"tracing {args.command}: {exc}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail too.

    See https://docs.python.org/3/library/signal.html#note-on-sigpipe.
    """
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (replaced by a test, or closed)
        pass
