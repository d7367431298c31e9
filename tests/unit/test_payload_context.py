"""The payload format: textual JSON insertion, item sizes, readers, the option."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

import tracing
from tracing import _payload_context as payload
from tracing._config import load_settings
from tracing._header import TraceHeader

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"
HEADER = f"Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:3"
MEMBERS = {"AWSTraceHeader": HEADER}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{}", f'{{"_tracing":{{"AWSTraceHeader":"{HEADER}"}}}}'),
        (" \t\n{ }", f' \t\n{{"_tracing":{{"AWSTraceHeader":"{HEADER}"}} }}'),
        ('{"a": 1.0e3}\n', f'{{"_tracing":{{"AWSTraceHeader":"{HEADER}"}},"a": 1.0e3}}\n'),
        (
            b'{"a":"\xc3\xa9"}',
            b'{"_tracing":{"AWSTraceHeader":"%s"},"a":"\xc3\xa9"}' % HEADER.encode(),
        ),
    ],
)
def test_insertion_is_textual(data: Any, expected: Any) -> None:
    new, added, reason = payload.insert_into_json(data, MEMBERS)
    assert (new, reason) == (expected, None)
    assert added == len(new if isinstance(new, bytes) else new.encode()) - len(
        data if isinstance(data, bytes) else data.encode()
    )


def test_a_bytearray_is_not_mutated() -> None:
    data = bytearray(b'{"a": 1}')
    new, _, _ = payload.insert_into_json(data, MEMBERS)
    assert data == bytearray(b'{"a": 1}')
    assert isinstance(new, bytes)
    assert json.loads(new)["a"] == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("plain", "not a JSON object"),
        ("[1]", "not a JSON object"),
        ('{"a": ', "not a JSON object"),
        ("{} {}", "not a JSON object"),
        (b"\xff{}", "not UTF-8"),
        (b'\xef\xbb\xbf{"a": 1}', "not a JSON object"),  # a BOM: not JSON text
        ('{"_tracing": 1}', "already"),
        (42, "not bytes or str"),
    ],
)
def test_insertion_skips(data: Any, reason: str) -> None:
    new, added, why = payload.insert_into_json(data, MEMBERS)
    assert new is data
    assert added == 0
    assert why is not None
    assert reason in why


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "_tracing"), _values, max_size=4),
    st.sampled_from(["", " ", "\n\t "]),
    st.booleans(),
)
def test_insertion_keeps_every_member(obj: dict[str, Any], lead: str, indent: bool) -> None:
    text = lead + json.dumps(obj, indent=1 if indent else None)
    new, _, reason = payload.insert_into_json(text, MEMBERS)
    assert reason is None
    assert json.loads(new) == {"_tracing": MEMBERS, **obj}
    assert payload.kinesis_header(new.encode(), encoded=False) == TraceHeader(
        ROOT, PARENT, "1", (("Lineage", "a87bd80c:3"),)
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_reading_a_lambda_record_first_member_and_anywhere() -> None:
    expected = TraceHeader(ROOT, PARENT, "1", (("Lineage", "a87bd80c:3"),))
    first, _, _ = payload.insert_into_json(b'{"x": "' + b"a" * 5000 + b'"}', MEMBERS)
    assert payload.kinesis_header(_b64(first), encoded=True) == expected
    last = json.dumps(
        {"x": "a" * 5000, "_tracing": {"traceparent": f"00-{ROOT[2:10]}{ROOT[11:]}-{PARENT}-01"}}
    )
    assert payload.kinesis_header(_b64(last.encode()), encoded=True) == TraceHeader(
        ROOT, PARENT, "1"
    )


@pytest.mark.parametrize(
    "data",
    [
        "not base64 at all!",
        _b64(b"plain"),
        _b64(b'{"_tracing": "x"}'),
        _b64(b'{"_tracing": {"AWSTraceHeader": "Root=dummy"}}'),
        _b64(b'{"_tracing": {"AWSTraceHeader": ' + b"[" * 2000),
        "A" * (2 * 1024 * 1024),  # over the 1 MiB bound: not decoded
        None,
        12,
    ],
)
def test_reading_hostile_data_gives_nothing(data: Any) -> None:
    assert payload.kinesis_header(data, encoded=True) is None


def test_item_size_never_under_estimates_what_boto3_sends() -> None:
    item = {
        "sku": "é" * 10,
        "n": Decimal("123.456"),
        "big": 10**30,
        "ok": True,
        "none": None,
        "tags": {"a", "b"},
        "nested": {"list": [1, "x", b"\x00\x01"], "m": {"k": "v"}},
        "blob": b"\x00" * 7,
    }
    typed = {k: TypeSerializer().serialize(v) for k, v in item.items()}
    # AWS's rules (names + values; strings and binary by bytes, lists and maps
    # 3 + 1 per element, numbers about 1 byte per 2 digits + 1) give about 120.
    lower_bound = 3 + 20 + 1 + 5 + 3 + 16 + 2 + 1 + 4 + 1 + 4 + 2 + 6 + 20 + 4 + 7
    assert payload.item_size(typed, typed=True) >= lower_bound
    assert payload.item_size(item, typed=False) == payload.item_size(typed, typed=True)
    assert payload.is_typed(typed)
    assert not payload.is_typed(item)


def test_the_dynamodb_attribute_shapes_and_reader() -> None:
    typed, size = payload.dynamodb_attribute(MEMBERS, typed=True)
    assert typed == {"M": {"AWSTraceHeader": {"S": HEADER}}}
    assert size == payload.item_size({"_tracing": typed}, typed=True)
    plain, _ = payload.dynamodb_attribute(MEMBERS, typed=False)
    assert TypeSerializer().serialize(plain) == typed
    assert payload.dynamodb_header({"_tracing": typed}) == payload.dynamodb_header(
        {"_tracing": plain}
    )
    assert payload.dynamodb_header({"_tracing": {"S": HEADER}}) is None
    assert payload.dynamodb_header({"_tracing": {"M": {"AWSTraceHeader": {"N": "1"}}}}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["kinesis"], ("kinesis",)),
        ("Kinesis:orders, dynamodb:Orders-Table,", ("kinesis:orders", "dynamodb:Orders-Table")),
        (("dynamodb", "dynamodb"), ("dynamodb",)),
        ([], ()),
    ],
)
def test_the_option_values(value: Any, expected: tuple[str, ...]) -> None:
    assert load_settings({"payload_context": value}).payload_context == expected


@pytest.mark.parametrize("value", ["sqs", ["kinesis:"], ["kinesis:a b"], [1], {"kinesis": 1}, 5])
def test_invalid_option_values_raise_from_configure(value: Any) -> None:
    with pytest.raises(ValueError, match="payload_context"):
        tracing.configure(payload_context=value)


def test_an_invalid_env_value_is_one_error_line_and_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRACING_PAYLOAD_CONTEXT", "kinesis,s3")
    settings = tracing.configure()
    assert settings.payload_context == ()
    assert [r.levelname for r in caplog.records if "TRACING_PAYLOAD_CONTEXT" in r.message] == [
        "ERROR"
    ]


def test_enabling_is_announced_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRACING_PAYLOAD_CONTEXT", "kinesis:orders,dynamodb")
    with caplog.at_level("INFO", logger="tracing"):
        tracing.configure()
        tracing.configure()
    said = [r.message for r in caplog.records if "_tracing" in r.message]
    assert len(said) == 1
    assert "Kinesis" in said[0]
    assert "stream orders" in said[0]
    assert "all tables" in said[0]


def test_skips_are_said_once_per_reason_then_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    log = logging.getLogger("tracing.test")
    payload._logged.discard("reason %d")
    with caplog.at_level("DEBUG", logger="tracing.test"):
        for n in range(3):
            payload.skip(log, "reason %d", n)
    assert [r.levelname for r in caplog.records] == ["INFO", "DEBUG", "DEBUG"]
    assert "reason 0" in caplog.records[0].message
