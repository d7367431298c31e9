"""The function's environment in ``tracing run``: dotenv files, ``--env``, passthrough."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracing.local.runtime.run import function_env, parse_env_option, passthrough_env, read_env_file


def _file(tmp_path: Path, text: str, name: str = ".env") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_dotenv_syntax(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "\ufeff# a comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=1\n"
        "  SPACED = padded value  \n"
        "COMMENTED=kept # dropped\n"
        "HASH=a#b\n"
        "SINGLE='no $escapes \\n here # kept'\n"
        'DOUBLE="tab\\there \\"quoted\\" back\\\\slash"  # comment\n'
        "EMPTY=\n"
        "EMPTY_QUOTED=''\n"
        'MULTI="first\n'
        'second"\n'
        "EQUALS=a=b=c\n"
        "URL=https://sqs.us-east-1.amazonaws.com/123456789012/orders\r\n"
        "DOLLAR=$HOME\n"
        "FROM_SHELL\n"
        "LAST=after the multi-line value",
    )
    assert read_env_file(path, {"FROM_SHELL": "shell value"}) == {
        "PLAIN": "value",
        "EXPORTED": "1",
        "SPACED": "padded value",
        "COMMENTED": "kept",
        "HASH": "a#b",
        "SINGLE": "no $escapes \\n here # kept",
        "DOUBLE": 'tab\there "quoted" back\\slash',
        "EMPTY": "",
        "EMPTY_QUOTED": "",
        "MULTI": "first\nsecond",
        "EQUALS": "a=b=c",
        "URL": "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
        "DOLLAR": "$HOME",
        "FROM_SHELL": "shell value",
        "LAST": "after the multi-line value",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nB C=2\n", "line 2: expected KEY=VALUE (KEY: letters, digits and _)"),
        ("=value\n", "line 1: expected KEY=VALUE"),
        ("1ABC=x\n", "line 1: expected KEY=VALUE"),
        ("A=1\nB='secret\n\nC=3\n", "line 2: B: the closing ' is missing"),
        ('A="x"y\n', "line 1: A: unexpected text after the closing quote"),
        ('M="a\nb"\nbad line\n', "line 3: expected KEY=VALUE"),  # counts lines inside quotes
        ("MISSING\n", "line 1: MISSING is not set in your environment"),
    ],
)
def test_a_malformed_line_is_named_by_number(tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ValueError, match=r"^.* line \d+: ") as info:
        read_env_file(path, {})
    assert str(info.value).startswith(f"{path} {message}")
    assert "secret" not in str(info.value)  # a value is never echoed


def test_an_unreadable_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read the env file .*missing\.env"):
        read_env_file(tmp_path / "missing.env")
    binary = _file(tmp_path, "", "binary.env")
    binary.write_bytes(b"A=\xff\n")
    with pytest.raises(ValueError, match=r"cannot read the env file"):
        read_env_file(binary)


def test_env_options() -> None:
    assert parse_env_option("A=b=c") == ("A", "b=c")
    assert parse_env_option("A=") == ("A", "")
    assert parse_env_option("QUEUE_URL", {"QUEUE_URL": "q"}) == ("QUEUE_URL", "q")
    with pytest.raises(ValueError, match=r"--env QUEUE_URL: QUEUE_URL is not set"):
        parse_env_option("QUEUE_URL", {})
    with pytest.raises(ValueError, match=r"--env '-x': expected KEY=VALUE"):
        parse_env_option("-x")


SHELL = {
    "AWS_PROFILE": "dev",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "real-looking",
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:4566",
    "AWS_LAMBDA_FUNCTION_NAME": "left-in-the-shell",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "TRACING_SERVICE": "svc",
    "OTEL_SERVICE_NAME": "otel-svc",
    "POWERTOOLS_SERVICE_NAME": "pt-svc",
    "QUEUE_URL": "not passed by default",
    "HOME": "/home/someone",
}


def test_passthrough_keeps_settings_and_leaves_lambdas_own(tmp_path: Path) -> None:
    env = passthrough_env(environ=SHELL)
    assert env == {
        "AWS_PROFILE": "dev",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "real-looking",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:4566",
        "TRACING_SERVICE": "svc",
        "OTEL_SERVICE_NAME": "otel-svc",
        "POWERTOOLS_SERVICE_NAME": "pt-svc",
        # so that AWS_PROFILE works as for `python app.py`
        "AWS_CONFIG_FILE": os.path.expanduser("~/.aws/config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.expanduser("~/.aws/credentials"),
    }
    files = {**SHELL, "AWS_CONFIG_FILE": "/etc/aws/config"}
    assert passthrough_env(environ=files)["AWS_CONFIG_FILE"] == "/etc/aws/config"
    local = passthrough_env(aws_local=True, environ=SHELL)
    assert {k for k in local if k.startswith("AWS_")} == {"AWS_REGION"}
    assert passthrough_env("otel", environ={})["TRACING_BACKEND"] == "otel"


def test_layers_win_in_the_documented_order(tmp_path: Path) -> None:
    first = _file(tmp_path, "A=file1\nB=file1\nPOWERTOOLS_SERVICE_NAME=from-file\n", "1.env")
    second = _file(tmp_path, "B=file2\nC=file2\nAWS_ENDPOINT_URL=http://file\n", "2.env")
    local = {"AWS_ENDPOINT_URL": "http://local", "AWS_ACCESS_KEY_ID": "testing"}
    warnings: list[str] = []
    env = function_env(
        env_files=[first, second],
        env=["C=cli", "QUEUE_URL", "TRACING_BACKEND=xray"],
        local_aws=local,
        backend="otel",
        environ=SHELL,
        warn=warnings.append,
    )
    assert env["A"] == "file1"
    assert env["B"] == "file2"  # a later file wins
    assert env["C"] == "cli"  # --env wins over files
    assert env["QUEUE_URL"] == "not passed by default"  # unless named
    assert env["POWERTOOLS_SERVICE_NAME"] == "from-file"  # a file wins over the shell
    assert env["AWS_ENDPOINT_URL"] == "http://file"  # explicit wins over --aws local
    assert env["AWS_ACCESS_KEY_ID"] == "testing"  # --aws local wins over the shell
    assert "AWS_PROFILE" not in env
    assert env["TRACING_BACKEND"] == "otel"  # --backend last
    assert warnings == []


def test_the_runs_own_variables_are_ignored_with_a_warning(tmp_path: Path) -> None:
    path = _file(tmp_path, "AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000\nAWS_PROFILE=dev\n")
    warnings: list[str] = []
    env = function_env(
        env_files=[path],
        env=["AWS_LAMBDA_RUNTIME_API=10.0.0.1:9001"],
        local_aws={},
        environ={},
        warn=warnings.append,
    )
    assert not {"AWS_XRAY_DAEMON_ADDRESS", "AWS_LAMBDA_RUNTIME_API", "AWS_PROFILE"} & set(env)
    assert warnings == [
        f"ignoring AWS_XRAY_DAEMON_ADDRESS from {path}: tracing run sets it",
        f"ignoring AWS_PROFILE from {path}: with --aws local the function uses local AWS's "
        "dummy credentials",
        "ignoring AWS_LAMBDA_RUNTIME_API from --env: tracing run sets it",
    ]
    # Without --aws local a profile is the caller's choice.
    assert function_env(env_files=[path], environ={})["AWS_PROFILE"] == "dev"
