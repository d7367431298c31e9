"""``tracing run`` on real functions, as a new user runs it: the CLI as a subprocess.

No AWS account anywhere: the environment handed to the CLI has no AWS variable
and a ``HOME`` without ``~/.aws``; ``--aws local`` starts moto's server on a port
of its own on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tracing import testing
from tracing.local.runtime import InitError, LocalLambda

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "e2e" / "fixtures"
AWS_APP = ROOT / "examples" / "aws_app"
# The console script pip installed beside this interpreter, as a user runs it.
TRACING = Path(sys.executable).with_name("tracing")
INSTALL = "pip install 'lambda-xray-tracing[local]'"


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment: no AWS, tracing, OTel or Powertools setting, no ~/.aws."""
    prefixes = ("AWS_", "TRACING_", "OTEL_", "POWERTOOLS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    # NOTE: the credential chain would ask the EC2 metadata service (169.254.169.254)
    # last; a test talks to no address it did not open.
    env |= {"HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true", **extra}
    return env


def _tracing(
    *args: str, cwd: Path, env: dict[str, str], command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(command or [str(TRACING)]), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _one_line(stderr: str) -> str:
    """The CLI's own message: its last stderr line, with no traceback of its own."""
    assert "Traceback (most recent call last)" not in stderr.replace(_function_log(stderr), ""), (
        stderr
    )
    assert "tracing.local.runtime.local_lambda.InitError" not in stderr
    lines = stderr.rstrip().splitlines()
    assert lines, "nothing on stderr"
    assert lines[-1].startswith("tracing "), stderr
    return lines[-1]


def _function_log(text: str) -> str:
    match = re.search(r"--- (?:function|setup) log ---\n(.*?)\n---\n", text, re.S)
    return match.group(1) if match else ""


@pytest.fixture
def event(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    path.write_text("{}")
    return path


def test_a_function_using_s3_sqs_and_dynamodb_runs_with_no_aws_account(tmp_path: Path) -> None:
    # The acceptance test: the example as the documentation runs it, from its folder.
    assert TRACING.is_file(), f"{TRACING}: the project is not installed in this venv"
    done = _tracing(
        "run",
        "app.handler",
        "--event",
        "event.json",
        "--env-file",
        ".env",
        "--aws",
        "local",
        "--aws-setup",
        "setup_aws.py",
        "--db",
        str(tmp_path / "traces.sqlite3"),
        cwd=AWS_APP,
        env=_env(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^local AWS: http://127\.0\.0\.1:\d+ \(moto\)", done.stdout, re.M)
    result = re.search(r"^invocation 1: (.*)$", done.stdout, re.M)
    assert result, done.stdout
    assert json.loads(result.group(1))["order_id"] == "o-1"
    assert done.stdout.count("trace 1-") == 1
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^\W*(s3|sqs|dynamodb)\s.*$", done.stdout, re.M)
    }
    assert "aws.operation=PutObject" in rows["s3"], done.stdout
    assert "aws.operation=SendMessage" in rows["sqs"], done.stdout
    assert "aws.operation=PutItem" in rows["dynamodb"], done.stdout
    assert not any(mark in row for row in rows.values() for mark in ("FAULT", "error"))
    assert "## handler" in done.stdout
    assert "Service=orders-api" in done.stdout  # POWERTOOLS_SERVICE_NAME from .env
    assert done.stderr == ""


def test_env_and_env_files_reach_the_function_in_the_documented_order(
    tmp_path: Path, event: Path
) -> None:
    names = [
        "FROM_FILE",
        "OVERRIDDEN",
        "FROM_CLI",
        "QUEUE_URL",
        "UNLISTED",
        "POWERTOOLS_SERVICE_NAME",
        "OTEL_SERVICE_NAME",
        "TRACING_CAPTURE_EVENT",
        "AWS_REGION",
        "AWS_XRAY_DAEMON_ADDRESS",
        "QUOTED",
        "EMPTY",
    ]
    first = tmp_path / "first.env"
    first.write_text(
        "# settings\n"
        "export FROM_FILE=file-1  # a comment\n"
        "OVERRIDDEN=file-1\n"
        "POWERTOOLS_SERVICE_NAME=from-file\n"
        "AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:9\n"
        "QUOTED=\"a # b\\n'c'\"\n"
        "EMPTY=\n"
    )
    second = tmp_path / "second.env"
    second.write_text("OVERRIDDEN = 'file-2'\nAWS_REGION=eu-west-1\n")
    env = _env(
        tmp_path,
        QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/q",
        UNLISTED="never passed",
        POWERTOOLS_SERVICE_NAME="from-shell",
        OTEL_SERVICE_NAME="otel-from-shell",
        TRACING_CAPTURE_EVENT="1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    done = _tracing(
        "run",
        "env_app.report",
        "--event",
        str(event),
        "--code-dir",
        str(FIXTURES),
        "--env-file",
        str(first),
        "--env-file",
        str(second),
        "--env",
        "FROM_CLI=a=b",
        "--env",
        "QUEUE_URL",
        "--env",
        f"REPORT={','.join(names)}",
        "--db",
        str(tmp_path / "traces.sqlite3"),
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(re.search(r"^ENV (.*)$", done.stdout, re.M).group(1))  # type: ignore[union-attr]
    assert seen["FROM_FILE"] == "file-1"
    assert seen["OVERRIDDEN"] == "file-2"  # the later file wins
    assert seen["FROM_CLI"] == "a=b"  # --env wins over files; "=" in a value is kept
    assert seen["QUEUE_URL"] == env["QUEUE_URL"]  # --env NAME: the caller's value
    assert seen["UNLISTED"] is None  # other shell variables stay out, as in Lambda
    assert seen["POWERTOOLS_SERVICE_NAME"] == "from-file"  # a file wins over the shell
    assert seen["OTEL_SERVICE_NAME"] == "otel-from-shell"
    assert seen["TRACING_CAPTURE_EVENT"] == "1"
    assert seen["AWS_REGION"] == "eu-west-1"
    assert seen["AWS_XRAY_DAEMON_ADDRESS"] != "127.0.0.1:9"  # the run's own collector
    assert seen["QUOTED"] == "a # b\n'c'"
    assert seen["EMPTY"] == ""
    assert "Service=from-file" in done.stdout  # and the trace came to the run's collector
    assert done.stderr.strip() == (
        f"tracing run: ignoring AWS_XRAY_DAEMON_ADDRESS from {first}: tracing run sets it"
    )


def test_an_init_failure_prints_one_line_and_the_function_log(tmp_path: Path, event: Path) -> None:
    done = _tracing(
        "run",
        "s3_at_init_app.handler",
        "--event",
        str(event),
        "--code-dir",
        str(FIXTURES),
        "--db",
        str(tmp_path / "traces.sqlite3"),
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert _one_line(done.stderr) == (
        "tracing run: the function failed to initialise: NoCredentialsError: Unable to "
        "locate credentials (no AWS credentials: --aws local runs against local AWS; "
        "or set AWS_PROFILE)"
    )
    log = _function_log(done.stderr)
    assert "[ERROR] NoCredentialsError" in log
    # awslambdaric ends the traceback's lines with \r (one CloudWatch event): a
    # terminal would draw each over the last.
    assert "\r" not in done.stderr
    assert "\nTraceback (most recent call last):\n" in log


def test_a_missing_variable_is_named_with_the_option_that_passes_it(
    tmp_path: Path, event: Path
) -> None:
    args = ("run", "queue_app.handler", "--event", str(event), "--code-dir", str(FIXTURES))
    db = ("--db", str(tmp_path / "traces.sqlite3"))
    unset = _tracing(*args, *db, cwd=tmp_path, env=_env(tmp_path))
    assert unset.returncode == 2
    assert _one_line(unset.stderr) == (
        "tracing run: the function failed to initialise: KeyError: 'QUEUE_URL' "
        "(QUEUE_URL is not set for the function: --env QUEUE_URL=VALUE or --env-file FILE)"
    )
    assert "KeyError: 'QUEUE_URL'" in _function_log(unset.stderr)

    shell = _env(tmp_path, QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/q")
    in_shell = _tracing(*args, *db, cwd=tmp_path, env=shell)
    assert in_shell.returncode == 2
    assert _one_line(in_shell.stderr).endswith(
        "(QUEUE_URL is set in your shell, but only AWS_*, TRACING_*, OTEL_* and POWERTOOLS_* "
        "variables pass: add --env QUEUE_URL)"
    )
    passed = _tracing(*args, *db, "--env", "QUEUE_URL", cwd=tmp_path, env=shell)
    assert passed.returncode == 0, passed.stderr
    assert '{"queue": "https://sqs.us-east-1.amazonaws.com/123456789012/q"}' in passed.stdout


def test_a_module_not_found_names_the_code_directory(tmp_path: Path, event: Path) -> None:
    done = _tracing(
        "run",
        "plain_app.handler",
        "--event",
        str(event),
        "--db",
        str(tmp_path / "traces.sqlite3"),
        cwd=tmp_path,  # not the directory holding plain_app.py
        env=_env(tmp_path),
    )
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        "tracing run: the function failed to initialise: Runtime.ImportModuleError: Unable to "
        f"import module 'plain_app': No module named 'plain_app' (the code directory is "
        f"{tmp_path}: --code-dir DIR)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\n\nnot a variable\n", "line 3: expected KEY=VALUE (KEY: letters, digits and _)"),
        ('A=1\n# c\nB="open\nC=3\n', 'line 3: B: the closing " is missing'),
        ("A='x' y\n", "line 1: A: unexpected text after the closing quote"),
        ("UNSET_IN_SHELL\n", "line 1: UNSET_IN_SHELL is not set in your environment"),
    ],
)
def test_a_malformed_env_file_is_one_line_with_its_line_number(
    tmp_path: Path, event: Path, text: str, message: str
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(text)
    done = _tracing(
        "run",
        "plain_app.handler",
        "--event",
        str(event),
        "--code-dir",
        str(FIXTURES),
        "--env-file",
        ".env",
        "--aws",
        "local",
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert done.returncode == 2
    assert done.stdout == ""  # found before local AWS starts
    assert done.stderr == f"tracing run: .env {message}\n"


def test_bad_env_options_and_setup_scripts_are_one_line(tmp_path: Path, event: Path) -> None:
    base = ("run", "plain_app.handler", "--event", str(event), "--code-dir", str(FIXTURES))
    db = ("--db", str(tmp_path / "traces.sqlite3"))
    env = _env(tmp_path)
    bad_env = _tracing(*base, *db, "--env", "NOT A NAME=1", cwd=tmp_path, env=env)
    assert bad_env.returncode == 2
    assert bad_env.stderr == (
        "tracing run: --env 'NOT A NAME=1': expected KEY=VALUE (KEY: letters, digits and _)\n"
    )
    missing_file = _tracing(*base, *db, "--env-file", "nowhere.env", cwd=tmp_path, env=env)
    assert missing_file.returncode == 2
    assert missing_file.stderr.startswith("tracing run: cannot read the env file nowhere.env: ")
    assert len(missing_file.stderr.splitlines()) == 1

    setup_alone = _tracing(*base, *db, "--aws-setup", "setup.py", cwd=tmp_path, env=env)
    assert setup_alone.returncode == 2
    assert (
        setup_alone.stderr == "tracing run: --aws-setup runs against local AWS: add --aws local\n"
    )

    setup = tmp_path / "setup.py"
    setup.write_text(
        "import boto3\n"
        "print('creating the bucket')\n"
        "boto3.client('s3').create_bucket(Bucket='setup-bucket')\n"
        "boto3.client('s3').put_object(Bucket='no-such-bucket', Key='k', Body=b'')\n"
    )
    failed = _tracing(
        *base, *db, "--aws", "local", "--aws-setup", "setup.py", cwd=tmp_path, env=env
    )
    assert failed.returncode == 2
    line = _one_line(failed.stderr)
    assert line.startswith("tracing run: --aws-setup setup.py failed: ")
    assert "NoSuchBucket" in line
    assert "creating the bucket" in _function_log(failed.stderr)
    assert "invocation" not in failed.stdout  # the function never started


def test_a_closed_pipe_ends_quietly(tmp_path: Path, event: Path) -> None:
    # `tracing run ... | head -1`: the log (about 1 MB) cannot fit the pipe, so
    # the run is still writing when the reader goes away.
    process = subprocess.Popen(
        [
            str(TRACING),
            "run",
            "env_app.noisy",
            "--event",
            str(event),
            "--code-dir",
            str(FIXTURES),
            "--db",
            str(tmp_path / "traces.sqlite3"),
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        first = process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read()
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert first.startswith("invocation 1: ")
    assert stderr == ""
    assert process.returncode == 141  # as a command killed by SIGPIPE: 128 + 13


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter with the project importable and no extra: a plain ``pip install``."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "project.pth").write_text(f"{ROOT}\n")
    return python


def test_a_missing_extra_is_named_with_its_install_command(
    tmp_path: Path, event: Path, bare_python: str
) -> None:
    done = _tracing(
        "run",
        "plain_app.handler",
        "--event",
        str(event),
        "--code-dir",
        str(FIXTURES),
        "--db",
        str(tmp_path / "traces.sqlite3"),
        cwd=tmp_path,
        env=_env(tmp_path),
        command=[bare_python, "-m", "tracing"],
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"tracing run: needs 'awslambdaric' (the Lambda runtime client): {INSTALL}\n"
    )
    local = _tracing(
        "run",
        "plain_app.handler",
        "--event",
        str(event),
        "--code-dir",
        str(FIXTURES),
        "--aws",
        "local",
        cwd=tmp_path,
        env=_env(tmp_path),
        command=[bare_python, "-m", "tracing"],
    )
    assert local.returncode == 2
    assert local.stderr.startswith("tracing run: needs '")
    assert local.stderr.endswith(f": {INSTALL}\n")


def test_local_lambda_names_a_missing_runtime_client(
    bare_python: str, daemon: testing.DaemonListener
) -> None:
    function = LocalLambda(
        "plain_app.handler",
        code_dir=FIXTURES,
        python=bare_python,
        xray_daemon_address=daemon.address,
    )
    try:
        with pytest.raises(InitError) as info:
            function.start()
    finally:
        function.stop()
    assert str(info.value) == (
        "Runtime.ExitError: Runtime exited during init: exit status 1 (awslambdaric is not "
        f"installed for {bare_python}: {INSTALL})"
    )


def test_run_shows_the_export_after_the_response(tmp_path: Path, event: Path) -> None:
    """With a network exporter, the function's in-process extension exports after the
    response: `tracing run` says how long, and the spans reach the endpoint."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[bytes] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return None

    app = tmp_path / "otlp_app.py"
    app.write_text(
        "import tracing\n\ntracing.configure()\n\n\n@tracing.handler\n"
        "def handler(event, context):\n    return {'ok': True}\n"
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = _tracing(
            "run",
            "otlp_app.handler",
            "--event",
            str(event),
            "--env",
            "TRACING_EXPORTER=otlp",
            "--env",
            f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:{server.server_port}/v1/traces",
            cwd=tmp_path,
            env=_env(tmp_path),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"exported after the response in \d+\.\d ms", done.stdout), done.stdout
    assert received, "no OTLP request reached the endpoint"
