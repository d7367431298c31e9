"""The local Lambda environment, driving real ``awslambdaric`` processes."""

from __future__ import annotations

import gc
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracing.local.runtime import InitError, LocalLambda, RuntimeAPIServer
from tracing.local.runtime._runtime_api import _Handler

FIXTURES = Path(__file__).parent / "fixtures"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
NEXT = "/2018-06-01/runtime/invocation/next"

pytestmark = pytest.mark.integration


def make(handler: str, **kwargs: object) -> LocalLambda:
    return LocalLambda(f"runtime_handlers.{handler}", code_dir=FIXTURES, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[RuntimeAPIServer]:
    api = RuntimeAPIServer()
    api.start()
    yield api
    api.stop()


def _request(
    api: RuntimeAPIServer, method: str, path: str, body: bytes | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(api.address, timeout=5)
    conn.request(method, path, body=body)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_server_next_sends_headers_and_omits_absent_trace(
    server: RuntimeAPIServer,
) -> None:
    assert not server.wait_for_next_poll(0)
    traced = server.submit({"a": 1}, trace_header=TRACE, deadline_ms=123)
    untraced = server.submit({"b": 2})

    conn = http.client.HTTPConnection(server.address, timeout=5)
    conn.request("GET", NEXT)
    first = conn.getresponse()
    assert json.loads(first.read()) == {"a": 1}
    assert first.headers["Lambda-Runtime-Aws-Request-Id"] == traced.request_id
    assert first.headers["Lambda-Runtime-Trace-Id"] == TRACE
    assert first.headers["Lambda-Runtime-Deadline-Ms"] == "123"
    assert first.headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:local-function")
    assert server.wait_for_next_poll(0)

    conn.request("GET", NEXT)  # same keep-alive connection, like awslambdaric
    second = conn.getresponse()
    assert json.loads(second.read()) == {"b": 2}
    assert "Lambda-Runtime-Trace-Id" not in second.headers
    conn.close()

    path = f"/2018-06-01/runtime/invocation/{traced.request_id}/response"
    assert _request(server, "POST", path, b'{"ok": 1}').status == 202
    result = traced.wait(5)
    assert result is not None
    assert result.ok
    assert result.payload == {"ok": 1}
    assert _request(server, "POST", path, b"{}").status == 400  # already answered

    path = f"/2018-06-01/runtime/invocation/{untraced.request_id}/error"
    body = b'{"errorType": "KeyError", "errorMessage": "x"}'
    assert _request(server, "POST", path, body).status == 202
    failed = untraced.wait(5)
    assert failed is not None
    assert not failed.ok
    assert failed.error == {
        "errorType": "KeyError",
        "errorMessage": "x",
    }


def test_server_records_init_error(server: RuntimeAPIServer) -> None:
    body = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "nope"}'
    response = _request(server, "POST", "/2018-06-01/runtime/init/error", body)
    assert response.status == 202
    assert server.init_error == {
        "errorType": "Runtime.ImportModuleError",
        "errorMessage": "nope",
    }
    assert not server.wait_for_next_poll(0)


def test_echo_returns_event() -> None:
    event = {"hello": "world", "n": [1, 2.5, None], "unicode": "héllo ✓"}
    with make("echo") as fn:
        result = fn.invoke(event)
    assert result.ok
    assert not result.timed_out
    assert result.payload == event
    assert result.error is None
    assert result.duration_ms > 0


def test_trace_header_becomes_env_and_is_removed_when_absent() -> None:
    with make("trace_env", function_name="tracer") as fn:
        traced = fn.invoke({}, trace_header=TRACE)
        untraced = fn.invoke({})
        assert fn.cold_starts == 1
    assert traced.payload["trace"] == TRACE
    assert untraced.payload["trace"] is None  # awslambdaric deletes it
    assert traced.payload["trace_at_import"] is None
    assert traced.payload["request_id"] == traced.request_id
    assert traced.request_id != untraced.request_id
    assert traced.payload["arn"] == ("arn:aws:lambda:us-east-1:123456789012:function:tracer")
    assert traced.payload["function_name"] == "tracer"
    assert traced.payload["task_root"] == str(FIXTURES)


def test_handler_exception_is_an_error_result() -> None:
    with make("boom") as fn:
        result = fn.invoke({"n": 7})
        assert fn.invoke({"n": 8}).error["errorMessage"] == "kaboom 8"  # type: ignore[index]
        assert fn.cold_starts == 1  # a handler error does not kill the sandbox
    assert not result.ok
    assert not result.timed_out
    assert result.payload is None
    assert result.error is not None
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "kaboom 7"
    assert any("boom" in line for line in result.error["stackTrace"])


def test_deadline_kills_process_and_next_invoke_is_a_cold_start() -> None:
    with make("sleepy", timeout_s=0.5) as fn:
        first_pid = fn.pid
        started = time.monotonic()
        late = fn.invoke({"seconds": 5})
        elapsed = time.monotonic() - started
        assert late.timed_out
        assert not late.ok
        assert late.error is not None
        assert late.error["errorType"] == "Sandbox.Timedout"
        assert "Task timed out after 0.50 seconds" in late.error["errorMessage"]
        assert 0.5 <= elapsed < 2.0
        assert late.duration_ms >= 500

        quick = fn.invoke({"seconds": 0})
        assert quick.ok
        assert quick.payload["slept"] == 0
        assert quick.payload["pid"] != first_pid
        assert fn.cold_starts == 2
    assert first_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)  # killed and reaped, not a zombie


def test_process_exit_mid_invoke_is_reported_and_restarted() -> None:
    with make("crash") as fn:
        result = fn.invoke({})
        assert not result.ok
        assert not result.timed_out
        assert result.error is not None
        assert result.error["errorType"] == "Runtime.ExitError"
        assert "exit status 3" in result.error["errorMessage"]
        assert fn.pid is None
        assert fn.invoke({}).error["errorType"] == "Runtime.ExitError"  # type: ignore[index]
        assert fn.cold_starts == 2


def test_exit_between_invokes_restarts_cleanly() -> None:
    # The dead runtime's long poll is still parked in the server; the next event
    # must reach the new process, not vanish into the old connection.
    with make("exit_soon", timeout_s=2.0) as fn:
        first = fn.invoke({})
        time.sleep(0.3)
        assert fn.pid is None
        second = fn.invoke({})
        assert fn.cold_starts == 2
    assert first.ok
    assert second.ok
    assert second.payload != first.payload  # a different pid
    assert second.duration_ms < 1000


def test_unstopped_runtime_is_reaped_when_collected() -> None:
    fn = make("echo")
    fn.start()
    pid = fn.pid
    assert pid is not None
    del fn
    gc.collect()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_import_error_raises_init_error_with_message_and_logs() -> None:
    fn = make("echo", env={"RUNTIME_HANDLERS_FAIL_INIT": "init exploded on purpose"})
    try:
        with pytest.raises(InitError, match="init exploded on purpose") as info:
            fn.start()
        assert info.value.payload["errorType"] == "RuntimeError"
        assert info.value.payload["errorMessage"] == "init exploded on purpose"
        assert "runtime_handlers imported" in info.value.logs
        assert "init exploded on purpose" in info.value.logs
        assert fn.pid is None
        with pytest.raises(InitError):  # invoke starts lazily, so it raises too
            fn.invoke({})
        assert fn.cold_starts == 2  # each attempt is a fresh init, like Lambda
    finally:
        fn.stop()


def test_init_timeout_raises_init_error() -> None:
    fn = make("echo", env={"RUNTIME_HANDLERS_INIT_SLEEP": "30"}, init_timeout_s=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(InitError) as info:
            fn.start()
    finally:
        fn.stop()
    assert info.value.payload["errorType"] == "Sandbox.Timedout"
    assert time.monotonic() - started < 3.0
    assert fn.pid is None


def test_module_code_runs_before_first_poll() -> None:
    fn = make("trace_env", env={"RUNTIME_HANDLERS_INIT_SLEEP": "0.3"})
    with fn:  # __enter__ -> start() waits for the first /next
        started_at = time.time()
        result = fn.invoke({}, trace_header=TRACE)
    payload = result.payload
    assert payload["init_done_at"] - payload["imported_at"] >= 0.3
    assert payload["init_done_at"] <= started_at  # init finished before start returned
    assert payload["trace_at_import"] is None
    assert payload["trace"] == TRACE


def test_remaining_time_tracks_timeout() -> None:
    with make("trace_env", timeout_s=2.0) as fn:
        remaining = fn.invoke({}).payload["remaining_ms"]
    assert 1800 <= remaining <= 2000


def test_logs_capture_stdout_and_stderr() -> None:
    with make("printer") as fn:
        assert "runtime_handlers imported" in fn.logs
        result = fn.invoke({"marker": "m-42"})
        logs = fn.logs  # read straight after the invoke, without sleeping
    assert result.payload == "m-42"
    assert "stdout: m-42" in logs
    assert "stderr: m-42" in logs
    assert "stdout: m-42" in fn.logs  # still there after stop()


def test_child_environment() -> None:
    fn = make(
        "environ",
        function_name="env-fn",
        xray_daemon_address="127.0.0.1:2999",
        memory_mb=256,
        region="eu-west-1",
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_LAMBDA_RUNTIME_API": "10.0.0.1:9"},
    )
    with fn:
        env = fn.invoke({}).payload
    assert env["AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1:2999"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"  # caller env is passed through
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")  # never overridden
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "env-fn"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/env-fn"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["LAMBDA_TASK_ROOT"] == str(FIXTURES)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(FIXTURES)
    # python3.12+ would switch awslambdaric into thread-polling mode.
    assert env.get("AWS_EXECUTION_ENV") in (None, "AWS_Lambda_python3.11")


def test_one_invocation_in_flight_at_a_time() -> None:
    with make("sleepy") as fn:
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(fn.invoke({"seconds": 0.3})))
            for _ in range(2)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        elapsed = time.monotonic() - started
        assert fn.cold_starts == 1
    assert [r.ok for r in results] == [True, True]
    assert elapsed >= 0.6  # serialised, never concurrent


def test_runtime_api_connections_disable_nagle(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nagle + delayed ACK would stall every warm invoke by 40-90 ms. Check the
    # socket option itself; timing belongs in benchmarks, not tests.
    assert _Handler.disable_nagle_algorithm is True
    nodelay: list[int] = []
    setup = _Handler.setup

    def recording_setup(self: _Handler) -> None:
        setup(self)  # StreamRequestHandler.setup sets TCP_NODELAY when asked to
        nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(_Handler, "setup", recording_setup)
    with make("echo") as fn:
        results = [fn.invoke({"i": i}) for i in range(20)]
        assert fn.cold_starts == 1
    assert [r.payload for r in results] == [{"i": i} for i in range(20)]
    assert nodelay  # awslambdaric's connections were accepted by our handler
    assert all(nodelay)
