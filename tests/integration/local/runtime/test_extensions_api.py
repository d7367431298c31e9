"""The local Extensions API (2020-01-01), driven over HTTP as an extension would.

Registration during init only and for INVOKE only (every extension here is
internal), the INVOKE event's shape, and Lambda's freeze rule: the next
invocation goes to the runtime only once every extension called event/next.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tracing.local.runtime._runtime_api import RuntimeAPIServer

pytestmark = pytest.mark.integration

_EXT = "/2020-01-01/extension"
_RUNTIME = "/2018-06-01/runtime"
HEADER = "Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Parent=2be948a625588e32;Sampled=1"


@pytest.fixture
def server() -> Iterator[RuntimeAPIServer]:
    api = RuntimeAPIServer()
    api.start()
    yield api
    api.stop()


def _call(
    server: RuntimeAPIServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection(server.address, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response
    finally:
        connection.close()


def _register(server: RuntimeAPIServer, events: list[str], name: str = "probe") -> str:
    status, body, response = _call(
        server, "POST", f"{_EXT}/register", {"events": events}, {"Lambda-Extension-Name": name}
    )
    assert status == 200, body
    identifier = response.getheader("Lambda-Extension-Identifier")
    assert identifier
    return identifier


class Poller:
    """Calls event/next in a thread, as an extension's loop does."""

    def __init__(self, server: RuntimeAPIServer, identifier: str) -> None:
        self.server, self.identifier = server, identifier
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.thread: threading.Thread | None = None

    def next(self) -> None:
        def run() -> None:
            try:
                status, body, _ = _call(
                    self.server,
                    "GET",
                    f"{_EXT}/event/next",
                    headers={"Lambda-Extension-Identifier": self.identifier},
                    timeout=10.0,
                )
            except (OSError, http.client.HTTPException):
                return  # the server stopped under a pending poll (teardown)
            if status == 200:
                self.events.append((time.perf_counter(), json.loads(body)))

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait_event(self, count: int, timeout: float = 5.0) -> dict[str, Any]:
        give_up = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < give_up:
            time.sleep(0.005)
        assert len(self.events) >= count, self.events
        return self.events[count - 1][1]


def _runtime_next(server: RuntimeAPIServer, out: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            _, _, response = _call(server, "GET", f"{_RUNTIME}/invocation/next", timeout=10.0)
        except (OSError, http.client.HTTPException):
            return  # the server stopped under a pending poll (teardown)
        out.append((time.perf_counter(), response.getheader("Lambda-Runtime-Aws-Request-Id")))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_registration_answers_an_identifier_and_the_function(server: RuntimeAPIServer) -> None:
    server.function_info = {"functionName": "f", "functionVersion": "$LATEST", "handler": "a.b"}
    status, body, response = _call(
        server,
        "POST",
        f"{_EXT}/register",
        {"events": ["INVOKE"]},
        {"Lambda-Extension-Name": "tracing", "Lambda-Extension-Accept-Feature": "accountId"},
    )
    assert status == 200
    assert response.getheader("Lambda-Extension-Identifier")
    assert json.loads(body) == {
        "functionName": "f",
        "functionVersion": "$LATEST",
        "handler": "a.b",
        "accountId": "123456789012",
    }
    assert server.extensions == ["tracing"]


@pytest.mark.parametrize(
    ("events", "headers", "status"),
    [
        (["INVOKE", "SHUTDOWN"], {"Lambda-Extension-Name": "x"}, 403),  # internal: no SHUTDOWN
        (["INVOKE"], {}, 400),  # a name is required
        (["BOOT"], {"Lambda-Extension-Name": "x"}, 400),
        ("INVOKE", {"Lambda-Extension-Name": "x"}, 400),
    ],
)
def test_bad_registrations_are_refused(
    server: RuntimeAPIServer, events: Any, headers: dict[str, str], status: int
) -> None:
    answer, body, _ = _call(server, "POST", f"{_EXT}/register", {"events": events}, headers)
    assert answer == status, body
    assert "errorType" in json.loads(body)
    assert server.extensions == []


def test_registration_is_refused_after_init_and_when_switched_off(
    server: RuntimeAPIServer,
) -> None:
    server.refuse_extensions = True
    status, _, _ = _call(
        server, "POST", f"{_EXT}/register", {"events": ["INVOKE"]}, {"Lambda-Extension-Name": "x"}
    )
    assert status == 403
    server.refuse_extensions = False
    polls: list[Any] = []
    _runtime_next(server, polls)
    assert server.wait_for_next_poll(5.0)  # init is over
    status, _, _ = _call(
        server, "POST", f"{_EXT}/register", {"events": ["INVOKE"]}, {"Lambda-Extension-Name": "x"}
    )
    assert status == 403
    assert server.extensions == []


def test_an_unknown_identifier_is_refused(server: RuntimeAPIServer) -> None:
    status, _, _ = _call(
        server, "GET", f"{_EXT}/event/next", headers={"Lambda-Extension-Identifier": "nope"}
    )
    assert status == 403


def test_invoke_events_and_the_freeze_rule(server: RuntimeAPIServer) -> None:
    identifier = _register(server, ["INVOKE"])
    extension = Poller(server, identifier)
    dispatched: list[Any] = []
    # The runtime polls before the extension finished its init: nothing yet.
    first = server.submit({"n": 1}, trace_header=HEADER)
    _runtime_next(server, dispatched)
    time.sleep(0.3)
    assert dispatched == []
    extension.next()  # init done: the invocation goes to the runtime, INVOKE to us
    event = extension.wait_event(1)
    give_up = time.monotonic() + 5.0
    while not dispatched and time.monotonic() < give_up:
        time.sleep(0.005)
    assert dispatched
    assert dispatched[0][1] == first.request_id
    assert event == {
        "eventType": "INVOKE",
        "deadlineMs": first.deadline_ms,
        "requestId": first.request_id,
        "invokedFunctionArn": first.function_arn,
        "tracing": {"type": "X-Amzn-Trace-Id", "value": HEADER},
    }
    # The runtime answers: the result is there at once, the extensions are not done.
    status, _, _ = _call(server, "POST", f"{_RUNTIME}/invocation/{first.request_id}/response", 1)
    assert status == 202
    result = first.wait(5.0)
    assert result is not None
    assert result.ok
    assert result.payload == 1
    assert result.extensions_done_at() is None
    # The next invocation waits for the extension...
    second = server.submit({"n": 2})
    _runtime_next(server, dispatched)
    time.sleep(0.3)
    assert len(dispatched) == 1
    assert result.post_response_ms() is None
    # ... until it calls event/next: then the sandbox could freeze, and the next
    # event goes out to both.
    extension.next()
    assert extension.wait_event(2)["requestId"] == second.request_id
    while len(dispatched) < 2 and time.monotonic() < give_up + 5.0:
        time.sleep(0.005)
    assert dispatched[1][1] == second.request_id
    done = result.extensions_done_at(timeout=5.0)
    assert done is not None
    assert done <= dispatched[1][0]
    post = result.post_response_ms()
    assert post is not None
    assert post >= 250.0


def test_without_extensions_an_invocation_is_done_at_its_response(
    server: RuntimeAPIServer,
) -> None:
    pending = server.submit({})
    polls: list[Any] = []
    _runtime_next(server, polls).join(5.0)
    assert polls
    assert polls[0][1] == pending.request_id
    _call(server, "POST", f"{_RUNTIME}/invocation/{pending.request_id}/response", {"ok": 1})
    result = pending.wait(5.0)
    assert result is not None
    assert result.extensions_done_at() == result.responded_at
    assert result.post_response_ms() == 0.0


def test_a_reset_forgets_the_extensions_of_the_killed_runtime(server: RuntimeAPIServer) -> None:
    _register(server, ["INVOKE"])
    assert server.extensions == ["probe"]
    server.reset_runtime()
    assert server.extensions == []
    # The new runtime is in its init again: it may register.
    _register(server, ["INVOKE"], name="again")
    assert server.extensions == ["again"]
