"""The service map in a real headless Chromium: the demo's map, clicks, hostile names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.unit.local import realistic_documents
from tracing.local.collector.service_graph import build_map
from tracing.local.collector.traces import assemble
from tracing.local.views.render import render_html
from tracing.local.views.service_map import render_map_html

from .conftest import Viewer, assert_apart

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "service-map.png"


@pytest.fixture(scope="module")
def demo_map(demo_run: tuple[str, Path]) -> tuple[str, str]:
    """The demo's printed map, and its HTML map."""
    printed, out = demo_run
    return printed, (out / "demo-map.html").read_text(encoding="utf-8")


def test_the_demos_map_has_its_services_resources_and_the_poison_fault(
    viewer: Viewer, demo_map: tuple[str, str]
) -> None:
    printed, html = demo_map
    assert "Service map: 8 nodes, 7 edges" in printed
    assert "unknown function" not in printed  # the notifier's Init is the notifier's
    page = viewer.open(html, "map.html")
    names = sorted(n.locator(".name").text_content() or "" for n in page.locator("g.node").all())
    assert names == [
        "SSM",
        "client",
        "default",
        "orders",
        "orders",
        "orders-api",
        "orders-notifier",
        "orders-worker",
    ]
    assert page.locator("g.node.function").count() == 3
    assert page.locator("g.node.bus").count() == 1
    assert page.locator("g.node.queue").count() == 1
    assert page.locator("g.node.table").count() == 1
    assert page.locator("g.node.client").count() == 1
    assert page.locator("g.edge").count() == 7
    [faulty] = page.locator("g.edge.fault").all()
    assert "33% fault" in (faulty.text_content() or "")
    assert "orders (SQS queue) -> orders-worker" in (faulty.locator("title").text_content() or "")
    # Every box is drawn inside the picture, none on top of another.
    boxes = [n.locator("rect").bounding_box() for n in page.locator("g.node").all()]
    assert all(b is not None and b["width"] > 50 for b in boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a is not None
            assert b is not None
            apart_x = a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
            apart_y = a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"]
            assert apart_x or apart_y
    # Clicking a node lists the traces that reached it.
    page.locator("g.node.function", has_text="orders-worker").click()
    assert "orders-worker (Lambda function)" in page.locator("#details-title").inner_text()
    assert page.locator("#details-body li").count() == 3  # one trace per queued order
    page.locator("g.node.function", has_text="orders-api").press("Enter")
    assert page.locator("#details-body li").count() == 4
    viewer.assert_clean()


def test_hostile_names_render_as_text_and_never_run(viewer: Viewer) -> None:
    documents = realistic_documents(messages=1)
    payload = "<img src=x onerror=window.__pwned=1>"
    for document in documents:
        if document.get("name") == "orders-worker":
            document["name"] = payload
    page = viewer.open(render_map_html(build_map([assemble(documents)]), title=payload))
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    assert payload in (page.locator("g.node", has_text="onerror").text_content() or "")
    page.locator("g.node", has_text="onerror").click()
    assert payload in page.locator("#details-title").inner_text()
    assert page.evaluate("window.__pwned") is None
    viewer.assert_clean()


def test_show_html_draws_the_traces_own_map_above_the_timeline(viewer: Viewer) -> None:
    page = viewer.open(render_html(assemble(realistic_documents(messages=2, poison_last=True))))
    section = page.locator("section.trace-map")
    assert section.locator("g.node").count() == 6  # client, api, SSM, queue, worker, table
    assert section.locator("g.edge.fault").count() == 1
    map_box, timeline = section.bounding_box(), page.locator(".timeline").bounding_box()
    assert map_box is not None
    assert timeline is not None
    assert map_box["y"] + map_box["height"] <= timeline["y"]
    viewer.assert_clean()


def test_screenshot_of_the_demos_map(
    viewer: Viewer, demo_map: tuple[str, str], tmp_path: Path
) -> None:
    """``TRACING_UPDATE_DOCS=1`` refreshes docs/service-map.png (never by default)."""
    target = SCREENSHOT if os.environ.get("TRACING_UPDATE_DOCS") == "1" else tmp_path / "m.png"
    page = viewer.open(demo_map[1], "map.html")
    # As wide as the map is drawn (full size, never scaled down), so that the
    # picture shows all of it: a narrower page scrolls the map sideways.
    width = page.evaluate(
        "Math.max(...[...document.querySelectorAll('svg')].map(s => s.scrollWidth || "
        "s.getBoundingClientRect().width))"
    )
    page.set_viewport_size({"width": min(2600, max(1400, int(width) + 120)), "height": 520})
    page.locator("g.node.function", has_text="orders-worker").click()
    target.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size < 300_000
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    viewer.assert_clean()


# In the page: every box (nodes, edge labels), every text's size, and whether an
# edge's line passes through a label (points sampled along each path).
MEASURE = """scope => {
  const root = document.querySelector(scope);
  const rect = el => { const r = el.getBoundingClientRect();
    return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const boxes = [...root.querySelectorAll("g.node rect, g.edge rect.label-bg")].map(rect);
  const labels = [...root.querySelectorAll("g.edge rect.label-bg")].map(rect);
  const crossings = [];
  root.querySelectorAll("g.edge path.line").forEach((path, n) => {
    const matrix = path.getScreenCTM();
    const length = path.getTotalLength();
    for (let at = 0; at <= length; at += 2) {
      const p = path.getPointAtLength(at).matrixTransform(matrix);
      labels.forEach((l, i) => {
        if (p.x > l.x + 1 && p.x < l.x + l.w - 1 && p.y > l.y + 1 && p.y < l.y + l.h - 1) {
          crossings.push([n, i]);
        }
      });
    }
  });
  const texts = [...root.querySelectorAll("svg text")].map(t => ({
    text: t.textContent, size: parseFloat(getComputedStyle(t).fontSize),
    height: t.getBoundingClientRect().height}));
  return {boxes, crossings, texts};
}"""


def assert_readable(page: Page, scope: str) -> None:
    """No two boxes overlap, no edge runs through a label, no text under 11 px."""
    found = page.evaluate(MEASURE, scope)
    boxes = found["boxes"]
    assert len(boxes) > 4
    assert_apart(boxes)
    assert found["crossings"] == []
    for text in found["texts"]:
        assert text["size"] >= 11, text
        assert text["height"] >= 11, text  # drawn at that size: the map is not scaled down


def test_the_map_is_readable_with_a_legend_and_the_queue_agrees_with_its_edge(
    viewer: Viewer, demo_map: tuple[str, str]
) -> None:
    page = viewer.open(demo_map[1], "map.html")
    assert_readable(page, ".canvas")
    legend = page.locator(".map-legend").inner_text()
    for word in ("OK", "Error (4xx)", "Fault (5xx)", "Throttle (429)", "Node", "Edge"):
        assert word in legend
    assert "coloured by the calls into it" in legend
    figure = page.locator("g.node", has_text="orders-api").locator(".figure").text_content()
    assert (figure or "").startswith("4 requests · avg ")
    # The queue is as red as its edge to the consumer, and says why.
    queue = page.locator("g.node.queue")
    assert "fault" in (queue.get_attribute("class") or "").split()
    assert "33% fault" in (queue.locator(".delivered").text_content() or "")
    edge = page.locator("g.edge.fault")
    assert "33% fault" in (edge.text_content() or "")
    queue.click()
    assert "3 delivered to consumers; fault 33%" in page.locator("#details-body").inner_text()
    viewer.assert_clean()


def test_the_traces_own_map_is_readable_too(viewer: Viewer) -> None:
    documents = realistic_documents(messages=3, poison_last=True)
    page = viewer.open(render_html(assemble(documents)))
    assert_readable(page, "section.trace-map")
    assert page.locator("section.trace-map .map-legend").is_visible()
    assert "fault" in (page.locator("g.node.queue").get_attribute("class") or "").split()
    viewer.assert_clean()
