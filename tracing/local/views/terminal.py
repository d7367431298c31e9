"""Printing traces: the trace table and one trace's tree (and its HTML file).

Shared by the ``tracing`` command, ``tracing run`` and ``tracing demo``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["print_trace_table", "show_trace", "summary_line"]


def summary_line(summary: Any) -> str:
    marks = []
    if summary.fault:
        marks.append("FAULT")
    if summary.error:
        marks.append("error")
    if summary.cold_start:
        marks.append("cold-start")
    return (
        f"{summary.trace_id}  {summary.root_name[:30]:<30}  {summary.duration * 1000:9.1f} ms"
        f"  {' '.join(marks)}"
    ).rstrip()


def print_trace_table(summaries: Sequence[Any], out: Any = None) -> None:
    """Print a table of trace summaries (rich when available, plain otherwise)."""
    out = out or sys.stdout
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:  # the local extra is not installed: plain text
        for summary in summaries:
            print(summary_line(summary), file=out)
        return
    table = Table(show_edge=False, header_style="bold")
    table.add_column("trace id", no_wrap=True, min_width=35)
    table.add_column("start", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("root service")
    table.add_column("docs", justify="right")
    table.add_column("fault/error")
    table.add_column("cold")
    for s in summaries:
        flags = " ".join(f for f, on in (("fault", s.fault), ("error", s.error)) if on)
        table.add_row(
            Text(s.trace_id),
            time.strftime("%H:%M:%S", time.localtime(s.start)),
            f"{s.duration * 1000:.1f} ms",
            Text(s.root_name),  # trace data: never read as rich markup
            str(s.segments),
            flags,
            "yes" if s.cold_start else "",
        )
    Console(file=out, highlight=False, width=max(120, _terminal_width())).print(table)


def show_trace(documents: list[Any], html: str | None = None, out: Any = None) -> int:
    """Print a trace tree and optionally write the HTML view; returns an exit code."""
    from tracing.local.collector.traces import assemble
    from tracing.local.views.render import render_html, render_text

    out = out or sys.stdout
    trace = assemble(documents)
    if not trace.roots:
        print("trace not found (no documents)", file=sys.stderr)
        return 1
    width = max(80, min(160, _terminal_width()))
    print(render_text(trace, width=width), file=out)
    if html:
        Path(html).parent.mkdir(parents=True, exist_ok=True)
        Path(html).write_text(render_html(trace), encoding="utf-8")
        print(f"HTML timeline written to {html}", file=out)
    return 0


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 120
