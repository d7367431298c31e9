"""Helpers for testing your own traced handlers.

A real UDP listener standing in for the X-Ray daemon, a checker for the X-Ray
segment-document rules, Lambda-shaped events and contexts, and a reset between
tests::

    from tracing import testing

    def test_my_handler(monkeypatch):
        testing.reset()
        with testing.DaemonListener() as daemon:
            monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.address)
            tracing.configure(service="orders")
            my_handler({}, testing.FakeContext())
            docs = daemon.sync()
        assert not testing.check_document(docs[0])

With pytest, the ``tracing_daemon`` fixture (registered by the installed
``pytest11`` entry point, :mod:`tracing.testing.pytest_plugin`) does the set-up,
and ``assert_trace`` takes X-Ray's filter expressions::

    def test_an_order_is_traced(tracing_daemon):
        import app  # imported after the fixture: configure() reads its address

        app.handler({"sku": "book-1"}, testing.FakeContext())
        tracing_daemon.assert_trace('annotation.sku = "book-1"')
"""

from __future__ import annotations

from ._check import check_document, iter_entities
from ._daemon import DaemonListener, parse_datagram
from ._lambda import FakeContext, lambda_sqs_event, receive_messages, reset, trace_header

__all__ = [
    "DaemonListener",
    "FakeContext",
    "check_document",
    "iter_entities",
    "lambda_sqs_event",
    "parse_datagram",
    "receive_messages",
    "reset",
    "trace_header",
]
