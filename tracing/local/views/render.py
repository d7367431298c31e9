"""Draw an assembled trace: a text tree for the terminal, an HTML timeline file.

Both show every entity of a :class:`~tracing.local.collector.traces.Trace` with a bar placed
by time, its duration, and markers for fault / error / throttle / in progress /
``Init`` / cold start.

Every string drawn here comes from trace data, and trace data comes from anyone who
can write to the queue or the daemon port (DESIGN.md: "The HTML viewer escapes every
string from trace data"). So:

* text: control characters (terminal escape sequences, bidi overrides) are shown
  as ``\\x..`` escapes, and data is never read as ``rich`` markup;
* HTML: text and attributes go through :func:`html.escape`; the data the page's
  script shows on click is a JSON ``<script type="application/json">`` block with
  ``<``, ``>``, ``&`` and U+2028/U+2029 escaped, and the script builds the details
  panel with ``textContent`` only; a Content-Security-Policy lets nothing load and
  only our own script (by its hash) run, so a missed escape could still not
  execute or fetch anything.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from tracing.local.collector.traces import Node, Trace

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["render_html", "render_text"]

# Entity keys shown in the HTML details panel, besides annotations and metadata.
_DETAIL_KEYS = ("aws", "http", "cause", "sql", "namespace", "origin", "type", "precursor_ids")
_MAX_ANNOTATIONS = 6  # annotations listed per line of text
_MAX_NOTE = 80  # characters of one annotation value in text
_MAX_DEPTH_INDENT = 24  # HTML indentation levels, however deep
_MAX_NAME = 300  # characters of a name drawn in a row
_MAX_STRING = 20_000  # characters of one string in the details data
_MAX_ITEMS = 1_000  # entries of one list/dict in the details data
_MAX_NESTING = 32  # levels of one value in the details data


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    millis = seconds * 1000.0
    if millis >= 10_000:
        return f"{millis / 1000.0:.2f} s"
    return f"{millis:.1f} ms"


def _printable(text: str) -> str:
    """Show control and format characters (ANSI escapes, bidi overrides) as escapes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return type(value).__name__


def _status(node: Node) -> str:
    if node.fault:
        return "fault"
    if node.error:
        return "error"
    if node.throttle:
        return "throttle"
    return "ok"


def _markers(node: Node) -> list[str]:
    marks = [
        label
        for flag, label in (
            (node.fault, "FAULT"),
            (node.error, "ERROR"),
            (node.throttle, "THROTTLE"),
            (node.in_progress, "IN-PROGRESS"),
            (node.is_init, "INIT"),
            (node.cold_start, "COLD"),
        )
        if flag
    ]
    return marks


def _operation(node: Node) -> str | None:
    aws = node.entity.get("aws")
    operation = aws.get("operation") if isinstance(aws, dict) else None
    return operation if isinstance(operation, str) else None


def _tree_rows(trace: Trace, max_prefix: int) -> list[tuple[str, Node]]:
    """(tree-guide prefix, node) in display order; iterative, prefix length bounded."""
    rows: list[tuple[str, Node]] = []
    stack: list[tuple[Node, str, str]] = [(root, "", "") for root in reversed(trace.roots)]
    while stack:
        node, guide, child_guide = stack.pop()
        rows.append((guide, node))
        last = len(node.children) - 1
        for index in range(last, -1, -1):
            is_last = index == last
            prefix = child_guide + ("└─ " if is_last else "├─ ")
            below = (child_guide + ("   " if is_last else "│  "))[-max_prefix:]
            stack.append((node.children[index], prefix[-max_prefix:], below))
    return rows


def _bar(trace: Trace, node: Node, cells: int) -> str:
    """The bar's text for ``cells`` columns: placed by start, as long as the entity."""
    total = trace.duration
    if total <= 0:
        first, last = 0, cells
    else:
        first = int((node.start - trace.start) / total * cells)
        first = min(max(first, 0), cells - 1)
        last = round((node.display_end - trace.start) / total * cells)
        last = min(max(last, first + 1), cells)
    fill = "▒" if node.in_progress else "█"
    return " " * first + fill * (last - first) + " " * (cells - last)


_TEXT_STYLES = {
    "fault": "bold red",
    "error": "dark_orange",
    "throttle": "magenta",
    "ok": "green",
}


def render_text(trace: Trace, width: int = 100, *, color: bool = False) -> str:
    """The trace as a tree of entities with a timeline bar each, for a terminal.

    Each line shows an entity (indented under its parent, ``◆`` before a segment),
    its duration, a bar placed by time relative to the trace's start and as long as
    the entity lasted (``▒`` when still in progress, drawn to the latest time seen),
    and markers (``FAULT``, ``ERROR``, ``THROTTLE``, ``IN-PROGRESS``, ``INIT``,
    ``COLD``), the AWS operation and the annotations.

    Args:
        trace: An assembled trace.
        width: Columns of the output.
        color: Add ANSI colours; without, the output has no escape codes at all
            (fit for files, pipes and tests).

    Returns:
        The rendered text, lines separated by ``\\n``.
    """
    # NOTE: rich costs ~40 ms to import; only the local tools need it.
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    width = max(int(width), 40)
    name_width = max(14, width * 30 // 100)
    bar_width = max(10, width * 28 // 100)
    ms_width = 9
    notes_width = max(8, width - name_width - bar_width - ms_width - 3)
    # However deep the tree, tree guides take at most half the name column.
    max_prefix = max(3, name_width // 2 // 3 * 3)

    total = _ms(trace.duration)
    axis = "0" + total.rjust(bar_width - 1)
    table = Table(box=None, show_header=True, pad_edge=False, padding=(0, 1, 0, 0), expand=False)
    table.add_column("entity", width=name_width, no_wrap=True, overflow="ellipsis")
    table.add_column("duration", width=ms_width, justify="right", no_wrap=True)
    table.add_column(axis, width=bar_width, no_wrap=True, overflow="crop")
    # Notes wrap (a row may take several lines) rather than hide annotations.
    table.add_column("notes", width=notes_width, overflow="fold")

    for guide, node in _tree_rows(trace, max_prefix):
        status = _status(node)
        name = Text(guide, style="dim")
        label = _printable(node.name[:_MAX_NAME])
        if node.document_root and node.kind == "segment":
            name.append("◆ ", style="bold")
        name.append(label, style="bold" if node.document_root else "")
        bar = _bar(trace, node, bar_width)
        style = _TEXT_STYLES[status]
        if status == "ok" and node.is_init:
            style = "blue"
        notes = Text(" ".join(_markers(node)), style=style if status != "ok" else "bold")
        extras = []
        operation = _operation(node)
        if operation:
            extras.append(f"aws.operation={_printable(operation)}")
        shown = [(k, v) for k, v in node.annotations.items() if k != "ColdStart"]  # COLD
        extras.extend(
            f"{_printable(str(key))}={_printable(_scalar(value)[:_MAX_NOTE])}"
            for key, value in shown[:_MAX_ANNOTATIONS]
        )
        if len(shown) > _MAX_ANNOTATIONS:
            extras.append(f"(+{len(shown) - _MAX_ANNOTATIONS} more)")
        if extras:
            if notes.plain:
                notes.append(" ")
            notes.append(" ".join(extras))
        table.add_row(name, _ms(node.duration), Text(bar, style=style), notes)

    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        force_jupyter=False,
        force_interactive=False,
        legacy_windows=False,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
    )
    console.print(_header(trace, Text))
    console.print(table)
    console.print(
        Text(
            "◆ segment   █ complete   ▒ in progress   FAULT ERROR THROTTLE IN-PROGRESS INIT COLD",
            style="dim",
        )
    )
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _header(trace: Trace, text: type[Text]) -> Text:
    header = text(f"trace {_printable(trace.trace_id) or '(none)'}", style="bold")
    header.append(
        f"  {_ms(trace.duration)}  {_count(trace.nodes, 'entity', 'entities')}"
        f" in {_count(trace.documents, 'document', 'documents')}"
    )
    flags = [
        label
        for flag, label in (
            (trace.fault, "FAULT"),
            (trace.error, "ERROR"),
            (trace.throttle, "THROTTLE"),
            (trace.in_progress, "IN-PROGRESS"),
            (trace.cold_start, "COLD START"),
        )
        if flag
    ]
    if flags:
        header.append("  " + " ".join(flags), style="bold red" if trace.fault else "bold")
    return header


# ---------------------------------------------------------------- HTML


def render_html(trace: Trace, title: str | None = None) -> str:
    """The trace as one self-contained HTML page (see :mod:`tracing.local.views.html_view`)."""
    from tracing.local.views.html_view import render_html as render

    return render(trace, title)
