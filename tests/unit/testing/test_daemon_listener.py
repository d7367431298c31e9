"""DaemonListener under bursts: nothing lost while its thread cannot run, drops counted."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator

import pytest

from tracing import testing
from tracing.exporters.xray_udp import HEADER


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        yield sock


def _send(sock: socket.socket, daemon: testing.DaemonListener, count: int) -> None:
    host, _, port = daemon.address.rpartition(":")
    sock.connect((host, int(port)))
    for n in range(count):
        sock.send(HEADER + json.dumps({"n": n, "name": f"child-{n}"}).encode())


def test_a_burst_waits_in_the_socket_while_the_listener_cannot_run(
    sender: socket.socket,
) -> None:
    """One invocation of the fault matrix's oversize case (4,400 small datagrams)
    sent while the listener's thread is held: the receive buffer keeps them all,
    or as many as the kernel lets it hold (net.core.rmem_max)."""
    with testing.DaemonListener() as daemon:
        size = daemon._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        count = min(4400, size // 2048)  # the kernel counts ~1.3 KiB per small datagram
        with daemon._cond:  # the thread blocks handing its first batch over
            _send(sender, daemon, count)
        docs = daemon.sync()
        assert [doc["n"] for doc in docs] == list(range(count))
        assert daemon.dropped in (0, None)


def test_datagrams_the_kernel_dropped_are_counted(sender: socket.socket) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("drops are read from /proc/net/udp")
    with testing.DaemonListener() as daemon:
        daemon._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a few datagrams
        with daemon._cond:
            _send(sender, daemon, 200)
        received = len(daemon.sync())
        dropped = daemon.dropped
        assert dropped is not None
        # Every datagram missing was dropped by the kernel (its count may also
        # hold sync markers dropped while the buffer was still full).
        assert 0 < 200 - received <= dropped


def test_documents_are_decoded_when_asked_in_arrival_order(sender: socket.socket) -> None:
    with testing.DaemonListener() as daemon:
        _send(sender, daemon, 3)
        sender.send(HEADER + b'{"n": NaN}')
        sender.send(b"T1S")  # no header: garbage too
        assert [doc["n"] for doc in daemon.sync()] == [0, 1, 2]
        assert daemon.garbage == [HEADER + b'{"n": NaN}', b"T1S"]
        assert len(daemon.datagrams) == 5
        assert [doc["n"] for doc in daemon.wait_for(3)] == [0, 1, 2]
        daemon.clear()
        assert (daemon.documents, daemon.garbage, daemon.datagrams) == ([], [], [])
        _send(sender, daemon, 1)
        assert daemon.settle(quiet=0.01) == [{"n": 0, "name": "child-0"}]
