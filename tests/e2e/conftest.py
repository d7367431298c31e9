"""A real headless Chromium, driven by Playwright, for the HTML viewer's tests.

Debian's ``chromium`` is used (``playwright install`` cannot download a browser
here). When it is missing, ``scripts/install-chromium.sh`` installs it once per
session: CI runs these tests for real rather than skipping them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Request

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
INSTALL = ROOT / "scripts" / "install-chromium.sh"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    # The pages are files and fetch nothing: no name is resolved, so the browser
    # reaches no server (it asked the resolver for update.googleapis.com, its
    # component updater, despite the flag above). Only 127.0.0.1 is reachable:
    # ``tracing ui``'s pages are served there.
    "--disable-component-update",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Chromium binary, installed with apt-get on first use."""
    if not os.access(CHROMIUM, os.X_OK):
        started = time.monotonic()
        done = subprocess.run(
            ["bash", str(INSTALL)],
            env={**os.environ, "CHROMIUM": str(CHROMIUM), "DEBIAN_FRONTEND": "noninteractive"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        took = time.monotonic() - started
        assert done.returncode == 0, f"{INSTALL} failed:\n{done.stdout}\n{done.stderr}"
        sys.stderr.write(f"\ninstalled chromium in {took:.1f} s\n")
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing after {INSTALL}"
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    """One headless Chromium for the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=ARGS)
        yield launched
        launched.close()


@dataclass
class Viewer:
    """A page that records every page error, console error/warning and request."""

    page: Page
    directory: Path
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, html: str, name: str = "trace.html") -> Page:
        """Write ``html`` to a file and open it as a user would (file://)."""
        path = self.directory / name
        path.write_text(html, encoding="utf-8")
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")
        return self.page

    def assert_clean(self) -> None:
        """No page error, no console error or warning, nothing fetched but the page."""
        assert self.problems == []
        assert all(url.startswith("file://") for url in self.requests), self.requests


def assert_apart(boxes: list[dict[str, float]]) -> None:
    """No two of these boxes (``x``, ``y``, ``w``, ``h`` in CSS px) overlap."""
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart_x = a["x"] + a["w"] <= b["x"] + 0.5 or b["x"] + b["w"] <= a["x"] + 0.5
            apart_y = a["y"] + a["h"] <= b["y"] + 0.5 or b["y"] + b["h"] <= a["y"] + 0.5
            assert apart_x or apart_y, (a, b)


@pytest.fixture
def viewer(browser: Browser, tmp_path: Path) -> Iterator[Viewer]:
    """A fresh page (own context) on a 1400x800 viewport."""
    context = browser.new_context(viewport={"width": 1400, "height": 800})
    page = context.new_page()
    view = Viewer(page=page, directory=tmp_path)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            view.problems.append(f"console.{message.type}: {message.text}")

    def on_page_error(error: Error) -> None:
        view.problems.append(f"pageerror: {error}")

    def on_request(request: Request) -> None:
        view.requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("request", on_request)
    try:
        yield view
    finally:
        context.close()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``tracing demo`` run as a user runs it, once: what it printed, and its out dir.

    The pictures in docs/ are taken from the pages this run wrote (the demo's own
    trace and map), so what a caption says is what the picture shows.
    """
    out = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_", "_X_AMZN"))}
    done = subprocess.run(
        [sys.executable, "-m", "tracing", "demo", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, out
