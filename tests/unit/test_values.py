"""The value rules: every value a user can pass becomes valid JSON, by one rule."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import uuid
from pathlib import PurePosixPath
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tracing._values import MAX_SAFE_INT, annotation_key, annotation_value, json_value


def _strict(value: Any) -> Any:
    """Encode as X-Ray parses: no NaN/Infinity, string keys only."""
    text = json.dumps(value, allow_nan=False)
    return json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def test_annotation_values_by_type() -> None:
    assert annotation_value("x" * 5000) == "x" * 1000
    assert annotation_value(True) is True
    assert annotation_value(MAX_SAFE_INT) == MAX_SAFE_INT
    assert annotation_value(MAX_SAFE_INT + 1) == str(MAX_SAFE_INT + 1)
    assert annotation_value(-(10**30)) == "-" + "1" + "0" * 30
    assert annotation_value(10**2000) is None  # over 1,000 digits: dropped
    assert annotation_value(1.5) == 1.5
    for bad in (math.nan, math.inf, -math.inf):
        assert annotation_value(bad) is None
    assert annotation_value(decimal.Decimal("12.50")) == 12.5
    assert annotation_value(decimal.Decimal("7")) == 7
    assert annotation_value(decimal.Decimal("NaN")) == "NaN"
    assert annotation_value(datetime.date(2026, 12, 2)) == "2026-12-02"
    assert annotation_value(Color.RED) == "red"
    assert annotation_value(Level.HIGH) == 3
    for dropped in (None, [1], {"a": 1}, b"x", {1}, object(), BrokenRepr()):
        assert annotation_value(dropped) is None


def test_annotation_keys() -> None:
    assert annotation_key("order id") == "order_id"
    assert annotation_key("k" * 600) == "k" * 500
    assert annotation_key("") is None
    assert annotation_key(BrokenRepr()) is None
    assert annotation_key(42) == "42"


def test_metadata_values_become_json() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    value = {
        "nan": math.nan,
        "inf": [math.inf, -math.inf],
        "big": 10**30,
        "huge": 10**5000,
        "bytes": b"caf\xc3\xa9\xff",
        "set": {3, 1, 2},
        "decimal": decimal.Decimal("1.10"),
        "when": datetime.datetime(2026, 12, 2, 10, 30, tzinfo=datetime.timezone.utc),
        "uuid": uuid.UUID(int=1),
        "path": PurePosixPath("/tmp/x"),
        "color": Color.RED,
        "cycle": cyclic,
        "broken": BrokenRepr(),
        1: "int key",
        (1, 2): "tuple key",
    }
    out = _strict(json_value(value))
    assert out["nan"] == "NaN"
    assert out["inf"] == ["Infinity", "-Infinity"]
    assert out["big"] == "1" + "0" * 30
    assert out["huge"] == "<int of 16610 bits>"
    assert out["bytes"] == "café\\xff"
    assert out["set"] == [1, 2, 3]
    assert out["decimal"] == 1.1
    assert out["when"] == "2026-12-02T10:30:00+00:00"
    assert out["uuid"] == "00000000-0000-0000-0000-000000000001"
    assert out["path"] == "/tmp/x"
    assert out["color"] == "red"
    assert out["cycle"] == [1, "<cycle>"]
    assert out["broken"] == "<unrepresentable BrokenRepr>"
    assert out["1"] == "int key"
    assert out["(1, 2)"] == "tuple key"


def test_metadata_is_a_snapshot() -> None:
    original = {"items": [1, 2]}
    copy = json_value(original)
    original["items"].append(3)
    assert copy == {"items": [1, 2]}


def test_depth_and_size_are_bounded() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["d"] = {}
        node = node["d"]
    text = json.dumps(json_value(deep))
    assert "<depth limit>" in text
    assert text.count('"d"') == 32
    wide = json_value(list(range(50_000)))
    assert len(wide) <= 10_001
    assert wide[-1].endswith("more>")


_hostile_scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.text(),
    st.binary(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.datetimes(),
    st.none(),
    st.booleans(),
    st.builds(BrokenRepr),
)
_keys = st.one_of(st.text(max_size=8), st.integers(), st.floats(allow_nan=True), st.booleans())
_hostile = st.recursive(
    _hostile_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
        st.frozensets(st.integers(), max_size=4),
        st.tuples(children, children),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_hostile)
def test_any_value_encodes_as_strict_json(value: Any) -> None:
    _strict(json_value(value))
    converted = annotation_value(value)
    assert converted is None or isinstance(converted, (str, bool, int, float))
    if isinstance(converted, float):
        assert math.isfinite(converted)
    if isinstance(converted, str):
        assert len(converted) <= 1000


def test_huge_decimal_exponents_are_not_expanded() -> None:
    """``int(Decimal("1E+1000000"))`` would build a million digits; the rule must not."""
    huge = decimal.Decimal("1E+3000000")
    assert annotation_value(huge) == "1E+3000000"
    assert json_value({"v": huge}) == {"v": "1E+3000000"}
    assert annotation_value(decimal.Decimal("12345678901234567890")) == "12345678901234567890"
    assert annotation_value(decimal.Decimal("1E-1000000")) == 0.0


def test_only_what_is_kept_of_a_huge_container_is_copied() -> None:
    wide = {i: i for i in range(200_000)}
    out = json_value(wide)
    assert len(out) == 10_000
    assert out["<truncated>"] == 200_000 - 9_999
    big_set = json_value(set(range(50_000)))
    assert big_set[-1] == "<40001 more>"
