"""``tracing ui`` in a real headless Chromium: the trace list and its filter box over
the demo's store, the trace pages it links to, and the map; hostile data; the CLI."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tracing.local.collector.store import TraceStore
from tracing.local.collector.xray_query import QueryAPI
from tracing.local.views.web import TraceUI

from .conftest import assert_apart

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "trace-list.png"
TRACE_ID = "1-6763c0de-5e0d8b2a51f0f1b3a9c4d7e2"


@pytest.fixture(scope="module")
def demo_store(demo_run: tuple[str, Path]) -> Iterator[TraceStore]:
    with TraceStore(demo_run[1] / "demo.sqlite3") as store:
        yield store


@pytest.fixture
def ui(demo_store: TraceStore) -> Iterator[TraceUI]:
    with TraceUI(demo_store) as served:
        yield served


class Browsing:
    """A page on the UI that records page errors, console errors and every request."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base
        self.problems: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console.{m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("request", lambda r: self.requests.append(r.url))

    def assert_clean(self) -> None:
        assert self.problems == []
        assert all(url.startswith(self.base) for url in self.requests), self.requests


@pytest.fixture
def browsing(browser: Browser, ui: TraceUI) -> Iterator[Browsing]:
    context = browser.new_context(viewport={"width": 1400, "height": 800})
    try:
        yield Browsing(context.new_page(), ui.url)
    finally:
        context.close()


def _search(browsing: Browsing, expression: str, since: str = "all") -> Page:
    page = browsing.page
    page.goto(browsing.base)
    page.select_option("#since", since)
    page.fill("#filter", expression)
    with page.expect_navigation():
        page.press("#filter", "Enter")  # the keyboard submits the form
    return page


def _listed(page: Page) -> list[str]:
    return page.locator("tbody td.id a").all_inner_texts()


def _expected(store: TraceStore, expression: str) -> list[str]:
    """What GetTraceSummaries itself answers (the same evaluator)."""
    request = {"StartTime": 0, "EndTime": time.time() + 60, "FilterExpression": expression}
    answer = QueryAPI(store).get_trace_summaries(request)
    return [s["Id"] for s in answer["TraceSummaries"]]


@pytest.mark.parametrize(
    "expression",
    ['annotation.sku = "book-1"', 'service("orders-worker") { fault }', "responsetime > 0"],
)
def test_the_filter_box_lists_exactly_what_the_query_api_finds(
    browsing: Browsing, demo_store: TraceStore, expression: str
) -> None:
    page = _search(browsing, expression)
    expected = _expected(demo_store, expression)
    assert expected  # the demo has such traces: the test can fail
    assert _listed(page) == expected
    assert page.input_value("#filter") == expression  # kept in the box
    assert f"{len(expected)} trace" in page.locator("[role=status]").inner_text()
    browsing.assert_clean()


def test_a_filter_matching_nothing_says_so_and_lists_nothing(browsing: Browsing) -> None:
    page = _search(browsing, 'annotation.sku = "no-such-book"')
    assert _listed(page) == []
    assert "No traces match this expression" in page.locator("[role=status]").inner_text()
    assert page.locator("[role=status] a").count() == 0  # (all stored traces were searched)
    browsing.assert_clean()


def test_an_empty_window_offers_all_stored_traces(browser: Browser, tmp_path: Path) -> None:
    two_hours_ago = time.time() - 7200
    with TraceStore(tmp_path / "old.sqlite3") as store:
        store.add(
            [
                {
                    "trace_id": TRACE_ID,
                    "id": "70de5b6f19ff9a0a",
                    "name": "orders-api",
                    "start_time": two_hours_ago,
                    "end_time": two_hours_ago + 0.2,
                    "annotations": {"sku": "book-1"},
                }
            ]
        )
        with TraceUI(store) as ui:
            context = browser.new_context()
            try:
                page = context.new_page()
                page.goto(ui.url + "?filter=annotation.sku+%3D+%22book-1%22")  # the last hour
                assert _listed(page) == []
                wider = page.locator("[role=status] a", has_text="Search all stored traces")
                with page.expect_navigation():
                    wider.click()
                assert page.input_value("#filter") == 'annotation.sku = "book-1"'
                assert page.input_value("#since") == "all"
                assert _listed(page) == [TRACE_ID]
            finally:
                context.close()


def test_a_bad_expression_is_answered_with_a_caret_under_its_column(browsing: Browsing) -> None:
    page = _search(browsing, "annotation.sku = ")
    alert = page.locator("[role=alert]")
    message = alert.locator("p").inner_text()
    assert message.startswith("Invalid filter expression at column 17: ")
    assert "annotation.sku" not in message  # the expression is shown once, in the caret block
    caret_line = alert.locator("pre").inner_text().split("\n")
    assert caret_line == ["annotation.sku =", " " * 16 + "^"]  # (the box's value, trimmed)
    assert _listed(page) == []
    browsing.assert_clean()


def test_traces_link_to_their_timelines_and_linked_traces_lead_both_ways(
    browsing: Browsing, demo_store: TraceStore
) -> None:
    """From the list to the producer's trace; from its consumer segment to the
    worker's invocation trace; and from that invocation's record back."""
    page = _search(browsing, 'service("orders-worker")')
    first = _listed(page)[-1]  # the oldest: the first order
    page.locator("tbody td.id a", has_text=first).click()
    page.wait_for_load_state("load")
    assert page.url == f"{browsing.base}{first}.html"
    worker = page.locator(".row", has_text="orders-worker").first
    worker.click()
    link = page.locator("#details .detail-annotations a")
    assert link.count() == 1
    invocation = link.inner_text()
    assert invocation != first
    link.click()
    page.wait_for_load_state("load")
    assert page.url == f"{browsing.base}{invocation}.html"
    back = page.locator("header .links a", has_text=first)
    assert back.count() == 1
    back.click()
    page.wait_for_load_state("load")
    assert page.url == f"{browsing.base}{first}.html"
    browsing.assert_clean()


def test_one_name_per_node_type_on_the_traces_map_and_the_service_map(
    browsing: Browsing,
) -> None:
    page = _search(browsing, 'service("orders-worker")')
    page.locator("tbody td.id a").first.click()
    page.wait_for_load_state("load")
    kinds = {}
    for where in ("trace", "map"):
        if where == "map":
            page.goto(f"{browsing.base}map.html?since=all")
        node = page.locator("g.node", has_text="orders-worker").first
        kinds[where] = (node.get_attribute("class"), node.locator(".kind").text_content())
    assert kinds["trace"][1] == kinds["map"][1] == "Lambda function"
    browsing.assert_clean()


def test_the_list_is_usable_with_the_keyboard_alone(browsing: Browsing) -> None:
    page = browsing.page
    page.goto(browsing.base + "?since=all")
    assert page.evaluate("document.activeElement.id") == "filter"  # autofocus
    page.keyboard.type("responsetime > 0")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "since"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "BUTTON"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "filter=responsetime+%3E+0" in page.url
    assert len(_listed(page)) >= 1
    # Every trace link is reachable with Tab and opens with Enter.
    page.locator("tbody td.id a").first.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(".html")
    browsing.assert_clean()


def test_no_text_overlaps_and_nothing_is_cut_off(browsing: Browsing) -> None:
    page = _search(browsing, "")
    found = page.evaluate(
        """() => {
      const boxes = [...document.querySelectorAll('td, th, label, input, select, button, h1,'
        + ' .examples a')].map(e => { const r = e.getBoundingClientRect();
          return {x: r.x, y: r.y, w: r.width, h: r.height, t: e.textContent.slice(0, 30)}; });
      const cut = [...document.querySelectorAll('td, th')]
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent);
      const small = [...document.querySelectorAll('td, th, label, p')]
        .filter(e => parseFloat(getComputedStyle(e).fontSize) < 11).map(e => e.textContent);
      return {boxes, cut, small};
    }"""
    )
    boxes = found["boxes"]
    assert len(boxes) > 20
    assert_apart(boxes)
    assert found["cut"] == []
    assert found["small"] == []
    browsing.assert_clean()


def test_screenshot_of_the_trace_list(browsing: Browsing, tmp_path: Path) -> None:
    """``TRACING_UPDATE_DOCS=1`` refreshes docs/trace-list.png (never by default)."""
    target = SCREENSHOT if os.environ.get("TRACING_UPDATE_DOCS") == "1" else tmp_path / "l.png"
    page = _search(browsing, 'annotation.sku = "book-1"')
    page.set_viewport_size({"width": 1400, "height": 520})
    page.screenshot(path=str(target), full_page=True)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size < 300_000
    browsing.assert_clean()


def test_hostile_names_and_annotations_are_text(browser: Browser, tmp_path: Path) -> None:
    hostile = '<img src=x onerror="window.__pwned=1">'
    now = time.time()
    with TraceStore(tmp_path / "t.sqlite3") as store:
        store.add(
            [
                {
                    "trace_id": TRACE_ID,
                    "id": "70de5b6f19ff9a0a",
                    "name": hostile,
                    "start_time": now - 1,
                    "end_time": now,
                    "annotations": {"note": hostile},
                    "http": {"request": {"method": "GET", "url": f"http://x/{hostile}"}},
                }
            ]
        )
        with TraceUI(store) as ui:
            context = browser.new_context()
            try:
                page = context.new_page()
                page.goto(
                    ui.url + "?since=all&filter=" + "annotation.note%20BEGINSWITH%20%22%3C%22"
                )
                row = page.locator("tbody tr")
                assert row.count() == 1
                assert hostile in row.inner_text()
                assert page.locator("tbody img").count() == 0
                page.locator("tbody td.id a").click()
                page.wait_for_load_state("load")
                assert page.evaluate("typeof window.__pwned") == "undefined"
            finally:
                context.close()


def _get(ui: TraceUI, path: str, host: str | None = None) -> tuple[int, dict[str, str], str]:
    address = ui.url.split("//")[1].rstrip("/")
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        headers = {"Host": host} if host is not None else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def test_only_its_own_address_is_served_and_only_reads(ui: TraceUI) -> None:
    status, headers, _ = _get(ui, "/")
    assert status == 200
    assert "script-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    port = ui.url.rstrip("/").rsplit(":", 1)[1]
    assert _get(ui, "/", host=f"attacker.example:{port}")[0] == 421  # DNS rebinding
    assert _get(ui, "/", host="127.0.0.1:1")[0] == 421  # another port
    assert _get(ui, "/", host=f"localhost:{port}")[0] == 200
    assert _get(ui, "/", host=f"[::1]:{port}")[0] == 200
    assert _get(ui, f"/{TRACE_ID}.html")[0] == 404
    assert _get(ui, "/../../etc/passwd")[0] == 404
    address = ui.url.split("//")[1].rstrip("/")
    connection = http.client.HTTPConnection(address, timeout=10)
    connection.request("POST", "/TraceSegments", body=b"{}")
    assert connection.getresponse().status == 501  # no PutTraceSegments here
    connection.close()


def test_the_command_serves_the_store_and_stops_on_sigterm(demo_run: tuple[str, Path]) -> None:
    db = demo_run[1] / "demo.sqlite3"
    command = [sys.executable, "-m", "tracing", "ui", "--db", str(db), "--listen", "127.0.0.1:0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(f"traces of {db} on http://127.0.0.1:"), line
        url = line.split(" on ")[1].split(" ")[0]
        connection = http.client.HTTPConnection(url.split("//")[1].rstrip("/"), timeout=10)
        connection.request("GET", "/?since=all&filter=responsetime+%3E+0")
        response = connection.getresponse()
        assert response.status == 200
        assert "<table>" in response.read().decode()
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert err == ""


def test_the_command_says_when_its_address_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "tracing", "ui", "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.startswith(f"tracing ui: cannot listen on 127.0.0.1:{port}: "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_command_refuses_a_bad_address_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tracing", "ui", "--listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "tracing ui: --listen wants host:port, got 'nowhere'"
