"""A guard against tests that send to a port they did not open.

DESIGN.md ("Style"): no test sends to a port it did not open. The library's
defaults are where a developer's own daemon listens: ``tracing daemon`` and the
X-Ray daemon on 2000 (the README starts one there), an OTLP collector on 4317 and
4318. A test that configures tracing without the ``daemon`` fixture, or an
emitter with a fixed address, fills that daemon with test documents. Fixed ports
below 1024 (``:9``, ``:1``) belong to the machine's services, never to a test.

An audit hook (PEP 578) sees every ``connect``, ``sendto`` and ``bind`` of this
process. A stray one is refused (the socket call raises :class:`StraySendError`,
an ``OSError``, so nothing leaves) and recorded; the ``no_stray_sends`` fixture of
``tests/conftest.py`` fails the test at teardown, naming the address and where
the call came from. Child processes are not seen: a real Lambda runtime
(``LocalLambda``) runs with the environment it is given, not the test's, so a
traced one needs ``xray_daemon_address=`` of a listener of the test, or it sends
to 127.0.0.1:2000.
"""

from __future__ import annotations

import sys
import threading
import traceback
from typing import Any

__all__ = ["DEFAULT_PORTS", "StraySendError", "install", "take"]

#: The library's default endpoints: the X-Ray daemon (``AWS_XRAY_DAEMON_ADDRESS``,
#: ``tracing daemon --listen``), OTLP gRPC and OTLP/HTTP (``OTEL_EXPORTER_OTLP_*``).
DEFAULT_PORTS = frozenset({2000, 4317, 4318})
_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.bind"})

_lock = threading.Lock()
_stray: list[str] = []
_installed = False


class StraySendError(OSError):
    """A test tried to reach a port it did not open; the call was refused."""


def _fixed_port(address: Any) -> int | None:
    """The port of an ``(host, port, ...)`` address when no test may use it."""
    if not isinstance(address, tuple) or len(address) < 2 or not isinstance(address[1], int):
        return None  # AF_UNIX paths, netlink and the like
    port: int = address[1]
    return port if port in DEFAULT_PORTS or 0 < port < 1024 else None


def _record(what: str) -> None:
    where = "".join(traceback.format_stack(limit=12)[:-2])
    with _lock:
        _stray.append(f"{what} from thread {threading.current_thread().name}:\n{where}")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS:
        return
    address = args[1]
    port = _fixed_port(address)
    if port is None:
        return
    what = f"{event.split('.')[1]} to {address[0]}:{port}"
    _record(what)
    raise StraySendError(f"{what}: a port this test did not open (use the `daemon` fixture)")


def install() -> None:
    """Install the audit hook (once per process; audit hooks cannot be removed)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


def take() -> list[str]:
    """The stray calls recorded since the last call, and forget them."""
    with _lock:
        found, _stray[:] = list(_stray), []
    return found
