"""The pytest plugin: a ``tracing_daemon`` fixture for your own tests.

Registered through the ``pytest11`` entry point, so installing the library is
enough: any test can ask for ``tracing_daemon``, a real UDP listener standing in
for the X-Ray daemon, with ``AWS_XRAY_DAEMON_ADDRESS`` pointed at it and the
library reset before and after the test::

    import tracing

    def test_an_order_is_traced(tracing_daemon, monkeypatch):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", tracing.testing.trace_header())
        tracing.configure(service="orders")
        handler({"sku": "book-1"}, tracing.testing.FakeContext())
        tracing_daemon.assert_trace('annotation.sku = "book-1"')

``assert_trace`` takes X-Ray's filter-expression language, the one of the X-Ray
console's search box, ``tracing traces --filter`` and the local daemon's
``GetTraceSummaries``: what a test asserts is what you would search for.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import reset
from ._daemon import DaemonListener

__all__ = ["tracing_daemon"]


@pytest.fixture
def tracing_daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[DaemonListener]:
    """A started :class:`~tracing.testing.DaemonListener`, the library reset around it."""
    reset()
    with DaemonListener() as daemon:
        monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.address)
        yield daemon
    reset()
