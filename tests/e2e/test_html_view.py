"""The HTML timeline in a real headless Chromium: layout, clicks, hostile data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.local import CONSUMER, HANDLER, INIT, realistic_documents
from tracing.local.render import render_html
from tracing.local.traces import assemble

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
    page.set_viewport_size({"width": 1400, "height": 620})
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
