"""The text tree and the HTML timeline, including escaping of hostile trace data."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.local import CONSUMER, HANDLER, INIT, realistic_documents
from tracing.local.collector.traces import Trace, assemble
from tracing.local.views.render import render_html, render_text

T0 = 1_790_000_000.0

HOSTILE = [
    "<img src=x onerror=window.__pwned=1>",
    "<script>window.__pwned=1</script>",
    "</script><script>window.__pwned=1</script>",
    '"><svg onload=window.__pwned=1>',
    "'><iframe srcdoc=x>",
    "<!--",
    "</style><style>",
    "\u2028\u2029",
    "&lt;script&gt;",
    "javascript:alert(1)",
    "{title}{csp}",
    "\x1b[31mred\x1b[0m",
    "[bold red]markup[/]",
]


def trace_of(**options: Any) -> Trace:
    return assemble(realistic_documents(T0, **options))


# ------------------------------------------------------------------- text


def bar_column(line: str) -> int:
    return min(line.index(ch) for ch in "█▒" if ch in line)


def test_text_shows_the_tree_with_durations_bars_and_markers() -> None:
    out = render_text(trace_of(messages=2, poison_last=True))
    lines = out.splitlines()
    assert lines[0].startswith("trace 1-")
    assert "COLD START" in lines[0]
    assert "FAULT" in lines[0]
    for name in ("Init", "load config", "## handler", "validate order", "save order"):
        assert any(name in line for line in lines), name
    by_name = {}
    for line in lines:
        for name in ("Init ", "## handler", "└─ ◆ orders-worker", "├─ ◆ orders-worker"):
            if name in line and name not in by_name:
                by_name[name] = line
    init, handler = by_name["Init "], by_name["## handler"]
    consumer = by_name.get("└─ ◆ orders-worker") or by_name["├─ ◆ orders-worker"]
    assert "INIT" in init
    assert "COLD" in init
    assert "InitType=on-demand" in init
    assert "125.0 ms" in init
    assert "Service=orders-api" in handler
    assert "MessageId=" in consumer
    # Bars are placed by time: Init first, then the invocation, then the consumer.
    assert bar_column(init) < bar_column(handler) < bar_column(consumer)
    assert "aws.operation=SendMessage" in out
    assert any("FAULT" in line and "orders-worker" in line for line in lines)


def test_text_respects_the_width_and_has_no_escape_codes_without_colour() -> None:
    trace = trace_of(messages=3)
    for width in (60, 100, 160):
        out = render_text(trace, width=width)
        assert "\x1b" not in out
        assert max(len(line) for line in out.splitlines()) <= width
    assert "\x1b[" in render_text(trace, color=True)


def test_text_marks_work_in_progress() -> None:
    documents = realistic_documents(T0)
    del documents[1]["end_time"]
    documents[1]["in_progress"] = True
    out = render_text(assemble(documents))
    (line,) = [line for line in out.splitlines() if "## handler" in line]
    assert "IN-PROGRESS" in line
    assert "▒" in line
    assert "…" in line  # no duration yet


def test_text_does_not_pass_terminal_escapes_or_markup_through() -> None:
    documents = realistic_documents(T0)
    documents[1]["name"] = "\x1b[2J\x1b]0;owned\x07evil\u202e"
    documents[1]["annotations"]["note"] = "[bold red]markup[/]"
    out = render_text(assemble(documents), width=200)
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\u202e" not in out
    assert "\\x1b[2J" in out
    assert "note=[bold red]markup[/]" in out


def test_text_of_an_empty_trace() -> None:
    assert render_text(assemble([])).startswith("trace (none)")


def test_text_of_a_deep_trace() -> None:
    leaf: dict[str, Any] = {"id": "leaf", "name": "leaf", "start_time": T0, "end_time": T0 + 1}
    for level in range(400):
        leaf = {"id": f"n{level}", "start_time": T0, "end_time": T0 + 1, "subsegments": [leaf]}
    leaf["trace_id"] = "1-x"
    out = render_text(assemble([leaf]))
    assert "leaf" in out
    assert max(len(line) for line in out.splitlines()) <= 100


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60), st.text(max_size=20), st.one_of(st.text(max_size=20), st.floats()))
def test_text_never_raises_and_never_emits_control_characters(
    name: str, key: str, value: Any
) -> None:
    documents = realistic_documents(T0)
    documents[2]["name"] = name
    documents[2]["annotations"] = {key: value}
    out = render_text(assemble(documents))
    assert all(ch.isprintable() or ch == "\n" for ch in out)


# ------------------------------------------------------------------- HTML


class Tags(HTMLParser):
    """Every start tag and attribute the browser would see."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)


TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "div",
    "span", "b", "i", "main", "aside", "p", "script",
    # the trace's own service map, above the timeline
    "section", "svg", "path", "g", "rect", "text", "tspan",
}  # fmt: skip
TEMPLATE_ATTRIBUTES = {
    "lang", "charset", "http-equiv", "content", "name", "class", "style", "title", "role",
    "aria-label", "aria-live", "aria-selected", "id", "type", "data-i", "data-id", "tabindex",
    "viewbox", "width", "height", "d", "data-edge", "data-node", "x", "y", "rx",
    "text-anchor", "dy",
}  # fmt: skip


def parse(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser


def data_block(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


def check_escaped(page: str) -> Tags:
    """What escaping guarantees: only the template's own tags, scripts and attributes."""
    lowered = page.lower()
    assert lowered.count("<script") == 2  # the JSON data block and our script
    assert lowered.count("</script") == 2
    assert lowered.count("<img") == 0
    maps = lowered.count('<section class="trace-map"')
    assert maps == 1
    assert lowered.count("<svg") == lowered.count('<svg class="service-map"') <= 1  # ours only
    assert lowered.count("<iframe") == 0
    assert lowered.count("<style") == 1 + maps
    assert lowered.count("<!--") == 0
    tags = parse(page)
    assert set(tags.tags) <= TEMPLATE_TAGS
    assert tags.tags.count("script") == 2
    assert {name for name, _ in tags.attributes} <= TEMPLATE_ATTRIBUTES
    assert not [name for name, _ in tags.attributes if name.startswith("on")]
    return tags


def test_html_is_self_contained_and_fetches_nothing() -> None:
    page = render_html(trace_of(messages=2, poison_last=True))
    check_escaped(page)
    assert page.startswith("<!DOCTYPE html>")
    for needle in ("http://", "https://", "src=", "href=", "<link", "@import", "url(", "//fonts"):
        assert needle not in page.replace("http://127.0.0.1:41781", ""), needle
    match = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert match is not None
    csp = match.group(1)
    assert "default-src 'none'" in csp
    assert "style-src 'unsafe-inline'" in csp
    assert "connect-src" not in csp  # falls back to default-src 'none'
    # The script hash in the policy is the hash of the page's one executable script.
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "unsafe-eval" not in csp
    assert "innerHTML" not in scripts[0]
    assert "textContent" in scripts[0]


def test_html_timeline_rows_bars_legend_and_details_data() -> None:
    trace = trace_of(messages=2, poison_last=True)
    page = render_html(trace, title="Orders <demo>")
    assert "<title>Orders &lt;demo&gt;</title>" in page
    for legend in (
        "OK",
        "Error (4xx)",
        "Fault (5xx)",
        "Throttle (429)",
        "Init phase",
        "In progress",
    ):
        assert legend in page
    rows = re.findall(r'<div class="row ([^"]*)" data-i="(\d+)" data-id="([^"]+)"', page)
    assert [row[2] for row in rows] == [node.id for _, node in trace.walk()]
    classes = {entity_id: cls.split() for cls, _, entity_id in rows}
    assert "doc" in classes[INIT]
    assert "doc" in classes[CONSUMER]
    failed_ids = [node.id for _, node in trace.walk() if node.fault]
    assert len(failed_ids) == 2
    assert all("fault" in classes[entity_id] for entity_id in failed_ids)
    init_row = page[page.index(f'data-id="{INIT}"') :].split('<div class="row', 1)[0]
    assert "b-init" in init_row
    assert "bar ok init" in init_row
    assert "left:0.0000%" in init_row
    data = data_block(page)
    assert [node["id"] for node in data["nodes"]] == [node.id for _, node in trace.walk()]
    consumer = data["nodes"][[node["id"] for node in data["nodes"]].index(CONSUMER)]
    assert consumer["annotations"]["Queue"] == "orders"
    assert consumer["kind"] == "segment"
    failed = [node for node in data["nodes"] if node["status"] == "fault"]
    assert {node["name"] for node in failed} == {"orders-worker", "save order"}
    assert failed[0]["cause"]["exceptions"][0]["type"] == "PoisonOrderError"
    handler = data["nodes"][[node["id"] for node in data["nodes"]].index(HANDLER)]
    assert handler["metadata"]["orders-api"]["order"]["sku"] == "book-1"


def test_html_marks_status_colours_and_in_progress() -> None:
    documents = realistic_documents(T0, messages=3)
    documents[2]["error"] = True
    documents[3]["throttle"] = True
    del documents[4]["end_time"]
    documents[4]["in_progress"] = True
    page = render_html(assemble(documents))
    check_escaped(page)
    assert 'class="bar error"' in page
    assert 'class="bar throttle"' in page
    assert 'class="bar ok open"' in page
    assert "IN PROGRESS" in page
    assert "Pending" in page


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_strings_are_escaped_everywhere(payload: str) -> None:
    documents = realistic_documents(T0)
    trace_id = documents[0]["trace_id"]
    documents[0]["name"] = payload
    documents[0]["annotations"][payload[:10].replace("<", "k") or "k"] = payload
    documents[1]["metadata"] = {payload: {payload: [payload]}}
    documents[1]["aws"] = {"operation": payload}
    documents[2]["cause"] = {"exceptions": [{"message": payload, "type": payload}]}
    documents[2]["annotations"]["MessageId"] = payload
    page = render_html(assemble(documents), title=payload)
    check_escaped(page)
    assert html.escape(payload) in page
    data = data_block(page)
    assert data["trace_id"] == trace_id
    init = data["nodes"][0]
    assert init["name"] == payload
    assert payload in init["annotations"].values()
    assert data["nodes"][3]["metadata"] == {payload: {payload: [payload]}}


def test_an_empty_trace_renders() -> None:
    page = render_html(assemble([]))
    check_escaped(page)
    assert "No usable documents" in page


def test_values_json_cannot_hold_are_made_safe() -> None:
    documents = realistic_documents(T0)
    documents[1]["metadata"] = {
        "nan": float("nan"),
        "inf": float("-inf"),
        "object": object(),
        "tuple": (1, 2),
        "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        "lone surrogate": "\ud800",
    }
    documents[0]["name"] = "Init\ud800"
    page = render_html(assemble(documents))
    page.encode("utf-8")  # writable as a file
    check_escaped(page)
    metadata = data_block(page)["nodes"][3]["metadata"]
    assert metadata["nan"] == "nan"
    assert metadata["object"] == "object"
    assert metadata["tuple"] == [1, 2]
    assert metadata["lone surrogate"] == "\ud800"


text = st.lists(
    st.characters(codec="utf-8")
    | st.sampled_from(["<", ">", "&", '"', "'", "/", "\u2028", "\u2029"])
    | st.sampled_from(HOSTILE),
    max_size=12,
).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(text.filter(bool), min_size=3, max_size=3),
    annotations=st.dictionaries(text, text | st.integers() | st.booleans(), max_size=4),
    metadata=st.dictionaries(text, json_values, max_size=3),
    title=st.none() | text,
)
def test_html_escapes_arbitrary_strings(
    names: list[str], annotations: dict[str, Any], metadata: dict[str, Any], title: str | None
) -> None:
    documents = realistic_documents(T0)
    for document, name in zip(documents, names, strict=True):
        document["name"] = name
    documents[1]["annotations"] = annotations
    documents[2]["metadata"] = metadata
    trace = assemble(documents)
    page = render_html(trace, title=title)
    check_escaped(page)
    for name in names:
        assert html.escape(name[:300]) in page
    data = data_block(page)
    by_id = {node["id"]: node for node in data["nodes"]}
    assert [by_id[d["id"]]["name"] for d in documents] == names
    assert by_id[HANDLER]["annotations"] == {str(k): v for k, v in annotations.items()}
    assert by_id[CONSUMER]["metadata"] == json.loads(json.dumps(metadata))
