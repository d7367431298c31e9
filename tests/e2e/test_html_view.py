"""The HTML timeline in a real headless Chromium: layout, clicks, hostile data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.local import CONSUMER, HANDLER, INIT, WORKER_TRACE, realistic_documents
from tracing.local.collector.traces import assemble
from tracing.local.views.render import render_html

from .conftest import Viewer

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "timeline.png"
HOSTILE_NAMES = [
    "<img src=x onerror=window.__pwned=1>",
    "<script>window.__pwned=1</script>",
]


def box(viewer: Viewer, entity_id: str) -> dict[str, float]:
    bar = viewer.page.locator(f'.row[data-id="{entity_id}"] .bar')
    assert bar.count() == 1
    assert bar.is_visible()
    found = bar.bounding_box()
    assert found is not None
    return dict(found)


def details(viewer: Viewer) -> str:
    return viewer.page.locator("#details").inner_text()


def test_bars_for_init_invocation_and_consumer_are_ordered_in_time(viewer: Viewer) -> None:
    page = viewer.open(render_html(assemble(realistic_documents())))
    init, handler, consumer = (box(viewer, i) for i in (INIT, HANDLER, CONSUMER))
    assert init["x"] < handler["x"] < consumer["x"]
    assert init["x"] + init["width"] <= handler["x"]  # init ended before the invocation
    assert handler["width"] > 0
    assert consumer["width"] > 0
    assert init["width"] > handler["width"]  # 125 ms against 7 ms
    # Rows follow the tree: the consumer segment is indented under SendMessage.
    names = page.locator(".row .label").all_inner_texts()
    assert names[:3] == ["Init", "load config", "ssm"]
    assert names.index("orders-worker") == names.index("sqs") + 1
    indent = page.locator(f'.row[data-id="{CONSUMER}"] .name').evaluate(
        "el => parseFloat(getComputedStyle(el).paddingLeft)"
    )
    assert indent > page.locator(f'.row[data-id="{HANDLER}"] .name').evaluate(
        "el => parseFloat(getComputedStyle(el).paddingLeft)"
    )
    # The Init entity is visibly marked, and the time axis is labelled.
    assert page.locator(f'.row[data-id="{INIT}"] .badge', has_text="INIT").is_visible()
    assert page.locator(".axis .tick").first.inner_text() == "0 ms"
    assert page.locator(".axis .tick").count() >= 4
    viewer.assert_clean()


def test_clicking_a_row_shows_its_annotations_and_details(viewer: Viewer) -> None:
    documents = realistic_documents(messages=2, poison_last=True)
    page = viewer.open(render_html(assemble(documents)))
    assert "Click a row" in details(viewer)

    page.locator(f'.row[data-id="{CONSUMER}"]').click()
    text = details(viewer)
    assert "MessageId" in text
    assert documents[2]["annotations"]["MessageId"] in text
    assert "Queue" in text
    assert page.locator("#details-title").inner_text() == "orders-worker"
    assert page.locator(f'.row[data-id="{CONSUMER}"]').get_attribute("aria-selected") == "true"

    page.locator(f'.row[data-id="{INIT}"]').click()
    text = details(viewer)
    assert "InitType" in text
    assert "on-demand" in text
    assert "MessageId" not in text
    assert page.locator(f'.row[data-id="{CONSUMER}"]').get_attribute("aria-selected") == "false"

    page.locator(f'.row[data-id="{HANDLER}"]').click()
    text = details(viewer)
    assert "Service" in text
    assert '"quantity": 1' in text  # metadata

    failed = documents[3]["id"]
    page.locator(f'.row[data-id="{failed}"]').click()
    text = details(viewer)
    assert "PoisonOrderError" in text  # the cause
    assert "fault" in text
    # Keyboard: Enter selects the focused row, arrows move the selection.
    page.locator(f'.row[data-id="{INIT}"]').focus()
    page.keyboard.press("Enter")
    assert page.locator("#details-title").inner_text() == "Init"
    page.keyboard.press("ArrowDown")
    assert page.locator("#details-title").inner_text() == "load config"
    viewer.assert_clean()


@pytest.mark.parametrize("payload", HOSTILE_NAMES)
def test_hostile_names_render_as_text_and_never_run(viewer: Viewer, payload: str) -> None:
    documents = realistic_documents()
    documents[0]["name"] = payload
    documents[1]["annotations"]["note"] = payload
    documents[2]["name"] = payload
    documents[2]["metadata"] = {"evil": {payload: payload}}
    page = viewer.open(render_html(assemble(documents), title=payload))

    assert page.evaluate("typeof window.__pwned") == "undefined"
    labels = page.locator(".row .label", has_text=payload)
    assert labels.count() == 2
    assert labels.first.inner_text() == payload
    assert labels.first.is_visible()
    assert page.locator("h1").inner_text() == payload
    assert page.title() == payload
    assert page.locator("img, iframe, svg:not(.service-map)").count() == 0  # only our map
    assert page.locator("script").count() == 2

    page.locator(f'.row[data-id="{HANDLER}"]').click()
    assert payload in details(viewer)
    page.locator(f'.row[data-id="{CONSUMER}"]').click()
    assert page.locator("#details-title").inner_text() == payload
    assert payload in details(viewer)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img, iframe, svg:not(.service-map)").count() == 0  # only our map
    viewer.assert_clean()


def test_work_in_progress_is_open_ended(viewer: Viewer) -> None:
    documents = realistic_documents()
    del documents[2]["end_time"]
    documents[2]["in_progress"] = True
    viewer.open(render_html(assemble(documents)))
    consumer = box(viewer, CONSUMER)
    lane = viewer.page.locator(f'.row[data-id="{CONSUMER}"] .lane').bounding_box()
    assert lane is not None
    assert consumer["x"] + consumer["width"] == pytest.approx(lane["x"] + lane["width"], abs=1.5)
    assert viewer.page.locator(f'.row[data-id="{CONSUMER}"] .badge', has_text="IN PROGRESS").count()
    viewer.assert_clean()


def test_screenshot_of_the_demos_trace(
    viewer: Viewer, demo_run: tuple[str, Path], tmp_path: Path
) -> None:
    """The demo's own trace page (``out/demo-trace.html``), the picture in docs/.

    ``TRACING_UPDATE_DOCS=1`` refreshes docs/timeline.png; tests never write into
    the repository by default: CI checks out a clean tree.
    """
    target = SCREENSHOT if os.environ.get("TRACING_UPDATE_DOCS") == "1" else tmp_path / "t.png"
    html = (demo_run[1] / "demo-trace.html").read_text(encoding="utf-8")
    page = viewer.open(html, "trace.html")
    # As wide as the map is drawn (full size, never scaled down), so that the
    # picture shows all of it: a narrower page scrolls the map sideways.
    width = page.evaluate(
        "Math.max(...[...document.querySelectorAll('svg')].map(s => s.scrollWidth || "
        "s.getBoundingClientRect().width))"
    )
    page.set_viewport_size({"width": min(2600, max(1400, int(width) + 120)), "height": 620})
    assert page.locator(".row .label").all_inner_texts()[0] == "Init"  # the first order's trace
    page.locator(".row", has_text="orders-worker").first.click()
    target.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size < 300_000
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    viewer.assert_clean()


def test_root_rows_carry_a_quiet_note_that_is_not_cut_off(viewer: Viewer) -> None:
    page = viewer.open(render_html(assemble(realistic_documents())))
    for entity in (INIT, HANDLER):
        note = page.locator(f'.row[data-id="{entity}"] .orphan')
        assert note.inner_text() == "from Lambda"
        assert "not recorded here" in (note.get_attribute("title") or "")
        cell = page.locator(f'.row[data-id="{entity}"] .name')
        assert cell.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert "parent not in trace" not in page.locator(".timeline").inner_text()
    viewer.assert_clean()


def test_a_cause_reads_as_a_stack_and_a_reference_names_its_entity(viewer: Viewer) -> None:
    documents = realistic_documents(messages=1, poison_last=True)
    consumer = documents[2]
    consumer["cause"]["exceptions"][0]["stack"].append(
        {"path": "/var/task/<b>x.py", "line": 7, "label": "run"}
    )
    work = consumer["subsegments"][0]
    work["cause"] = consumer["cause"]
    consumer["cause"] = work["cause"]["exceptions"][0]["id"]  # X-Ray's reference
    page = viewer.open(render_html(assemble(documents)))
    page.locator(f'.row[data-id="{work["id"]}"]').click()
    cause = page.locator("#details .detail-cause")
    assert cause.locator(".what").inner_text() == "PoisonOrderError: order poison has quantity 0"
    assert cause.locator("ol.frames li").all_inner_texts() == [
        "/var/task/app.py:32 in save",
        "/var/task/<b>x.py:7 in run",  # as text
    ]
    page.locator(f'.row[data-id="{CONSUMER}"]').click()
    assert cause.inner_text().endswith("same exception as save order")
    viewer.assert_clean()


PRODUCER_TRACE = "1-6763c0de-5e0d8b2a51f0f1b3a9c4d7e2"
RECORD = "5a1f0c3d9e8b7a60"


def _worker_documents(linked: str) -> list[dict[str, object]]:
    """A worker invocation's trace: its record subsegment names the producer's trace."""
    documents = realistic_documents()
    for document in documents:  # (the producer's own way to the worker: not this test's)
        document.get("annotations", {}).pop("LinkedTraceId", None)
    handler = documents[1]
    assert isinstance(handler["subsegments"], list)
    handler["subsegments"].append(
        {
            "id": RECORD,
            "name": "SQS message",
            "start_time": handler["start_time"] + 0.0004,
            "end_time": handler["start_time"] + 0.0009,
            "annotations": {"MessageId": "5de22e5e-a116", "LinkedTraceId": linked},
        }
    )
    return documents


def test_a_linked_trace_id_is_a_link_to_that_traces_page(viewer: Viewer) -> None:
    documents = _worker_documents(PRODUCER_TRACE)
    documents[1]["annotations"]["InitTraceId"] = "1-6763c0dd-000000000000000000000001"
    page = viewer.open(render_html(assemble(documents)))
    page.locator(f'.row[data-id="{RECORD}"]').click()
    link = page.locator("#details .detail-annotations a")
    assert link.count() == 1
    assert link.inner_text() == PRODUCER_TRACE
    assert (link.get_attribute("href") or "").endswith(f"{PRODUCER_TRACE}.html")
    assert link.evaluate("a => a.href").startswith(viewer.directory.as_uri() + "/")  # same folder
    assert "5de22e5e-a116" in details(viewer)  # other annotations stay text
    page.locator(f'.row[data-id="{HANDLER}"]').click()
    init_link = page.locator("#details .detail-annotations a")
    assert init_link.get_attribute("href") == "1-6763c0dd-000000000000000000000001.html"
    # The header lists both traces this one names, whichever row is selected.
    header = page.locator("header .links a")
    assert sorted(header.all_inner_texts()) == [
        "1-6763c0dd-000000000000000000000001",
        PRODUCER_TRACE,
    ]
    assert "SQS message (LinkedTraceId)" in page.locator("header .links").inner_text()
    viewer.assert_clean()


def test_the_producers_trace_links_to_the_invocation_that_consumed_its_message(
    viewer: Viewer,
) -> None:
    """The way back: the consumer segment in the producer's trace links to the
    worker's invocation trace, whose record subsegment links here."""
    page = viewer.open(render_html(assemble(realistic_documents(messages=1))))
    page.locator(f'.row[data-id="{CONSUMER}"]').click()
    link = page.locator("#details .detail-annotations a")
    assert link.inner_text() == WORKER_TRACE
    assert link.get_attribute("href") == f"{WORKER_TRACE}.html"
    assert "orders-worker (LinkedTraceId)" in page.locator("header .links").inner_text()
    viewer.assert_clean()


@pytest.mark.parametrize(
    "value", ["1-x<script>", "1-6763c0de-5e0d8b2a51f0f1b3a9c4d7e2/../x", "javascript:alert(1)"]
)
def test_a_malformed_linked_trace_id_stays_text(viewer: Viewer, value: str) -> None:
    page = viewer.open(render_html(assemble(_worker_documents(value))))
    page.locator(f'.row[data-id="{RECORD}"]').click()
    assert page.locator("#details a, header a").count() == 0
    assert page.locator("#details .detail-annotations dd", has_text=value).count() == 1
    assert page.evaluate("typeof window.__pwned") == "undefined"
    viewer.assert_clean()


def test_the_producers_trace_links_to_a_trace_its_documents_name(viewer: Viewer) -> None:
    documents = realistic_documents()
    worker_trace = "1-6763c0df-00000000000000000000abcd"
    documents[2]["annotations"]["LinkedTraceId"] = worker_trace  # the consumer segment
    page = viewer.open(render_html(assemble(documents)))
    assert page.locator("header .links a").get_attribute("href") == f"{worker_trace}.html"
    page.locator(f'.row[data-id="{CONSUMER}"]').click()
    assert page.locator("#details a").get_attribute("href") == f"{worker_trace}.html"
    viewer.assert_clean()


QUICK = "00000000000000c0"
TINY = "00000000000000d0"


def _zoom_documents() -> list[dict[str, object]]:
    """A 2 s segment whose 8 ms and 0.4 ms children are slivers on the whole trace's axis."""
    t0 = 1_765_000_000.0
    return [
        {
            "trace_id": "1-6934e280-00000000000000000000000a",
            "id": "00000000000000a0",
            "name": "api",
            "start_time": t0,
            "end_time": t0 + 2.0,
            "subsegments": [
                {"id": "00000000000000b0", "name": "slow", "start_time": t0, "end_time": t0 + 1.9},
                {"id": QUICK, "name": "quick", "start_time": t0 + 1.0, "end_time": t0 + 1.008},
                {"id": TINY, "name": "tiny", "start_time": t0 + 1.5, "end_time": t0 + 1.5004},
            ],
        }
    ]


def _ticks(viewer: Viewer) -> list[str]:
    return viewer.page.locator(".axis .tick").all_inner_texts()


def _ms_of(label: str) -> float:
    number, unit = label.split()
    return float(number) * (1000.0 if unit == "s" else 1.0)


def test_dragging_across_the_axis_zooms_and_reset_restores(viewer: Viewer) -> None:
    page = viewer.open(render_html(assemble(_zoom_documents())))
    whole = _ticks(viewer)
    assert whole[0] == "0 ms"
    assert _ms_of(whole[-1]) == 2000.0
    quick = box(viewer, QUICK)
    assert quick["width"] < 5
    lane = page.locator("#axis-lane").bounding_box()
    assert lane is not None
    # Drag from 4 px left of the sliver to 8 px right of it, across the axis.
    start, end = quick["x"] - 4, quick["x"] + 8
    y = lane["y"] + lane["height"] / 2
    page.mouse.move(start, y)
    page.mouse.down()
    page.mouse.move(start + 6, y)
    page.mouse.move(end, y)
    page.mouse.up()
    per_px = 2000.0 / lane["width"]
    low, high = (start - lane["x"]) * per_px, (end - lane["x"]) * per_px
    zoomed = _ticks(viewer)
    step = _ms_of(zoomed[1]) - _ms_of(zoomed[0])
    assert low - 1 <= _ms_of(zoomed[0]) <= low + step + 1
    assert high - step - 1 <= _ms_of(zoomed[-1]) <= high + 1
    assert box(viewer, QUICK)["width"] > 50
    assert page.locator("#zoom-range").inner_text().startswith("Zoomed to")
    # The whole-trace bar runs past both ends of the range: it fills the lane.
    assert box(viewer, "00000000000000a0")["width"] == pytest.approx(lane["width"], abs=1.5)
    # Clicking a row after a drag still selects it.
    page.locator(f'.row[data-id="{QUICK}"]').click()
    assert page.locator("#details-title").inner_text() == "quick"

    reset = page.get_by_role("button", name="Reset zoom")
    assert reset.is_visible()
    reset.click()
    assert _ticks(viewer) == whole
    assert box(viewer, QUICK)["width"] < 5
    assert reset.is_disabled()
    viewer.assert_clean()


def test_shift_drag_across_the_rows_zooms_without_selecting(viewer: Viewer) -> None:
    page = viewer.open(render_html(assemble(_zoom_documents())))
    quick = box(viewer, QUICK)
    y = quick["y"] + quick["height"] / 2
    page.keyboard.down("Shift")
    page.mouse.move(quick["x"] - 4, y)
    page.mouse.down()
    page.mouse.move(quick["x"] + 8, y)
    page.mouse.up()
    page.keyboard.up("Shift")
    assert box(viewer, QUICK)["width"] > 50
    assert page.locator(".row.selected").count() == 0
    viewer.assert_clean()


def test_z_zooms_to_the_focused_row_and_escape_resets(viewer: Viewer) -> None:
    page = viewer.open(render_html(assemble(_zoom_documents())))
    whole = _ticks(viewer)
    lane = page.locator("#axis-lane").bounding_box()
    assert lane is not None
    page.locator(f'.row[data-id="{QUICK}"]').focus()
    page.keyboard.press("z")
    quick = box(viewer, QUICK)
    assert quick["width"] == pytest.approx(lane["width"], abs=1.5)
    ticks = _ticks(viewer)
    assert ticks[0] == "1000.0 ms"  # one decimal below 10 ms
    assert ticks[-1] == "1008.0 ms"
    page.keyboard.press("Escape")
    assert _ticks(viewer) == whole
    assert box(viewer, QUICK)["width"] < 5
    # A 0.4 ms row: ticks every 0.1 ms, each label distinct.
    page.locator(f'.row[data-id="{TINY}"]').focus()
    page.keyboard.press("z")
    assert _ticks(viewer) == ["1500.0 ms", "1500.1 ms", "1500.2 ms", "1500.3 ms", "1500.4 ms"]
    page.keyboard.press("Escape")
    assert _ticks(viewer) == whole
    viewer.assert_clean()
