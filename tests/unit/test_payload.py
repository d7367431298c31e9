from __future__ import annotations

from tracing._config import DEFAULT_REDACT_KEYS
from tracing._payload import MASK, redact


def test_masks_sensitive_keys_at_any_depth() -> None:
    event = {
        "headers": {"Authorization": "Bearer x", "Cookie": "c", "accept": "json"},
        "body": [{"password": "p", "db_secret_arn": "arn", "ok": 1}],
        "refresh_token": "t",
    }
    assert redact(event, DEFAULT_REDACT_KEYS) == {
        "headers": {"Authorization": MASK, "Cookie": MASK, "accept": "json"},
        "body": [{"password": MASK, "db_secret_arn": MASK, "ok": 1}],
        "refresh_token": MASK,
    }


def test_bounds_depth_and_width() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(50):
        node["next"] = {}
        node = node["next"]  # type: ignore[assignment]
    text = repr(redact(deep, ()))
    assert "<depth limit>" in text
    wide = redact(list(range(1000)), ())
    assert len(wide) == 201
    assert wide[-1] == "<800 more>"


def test_unknown_objects_become_short_strings() -> None:
    assert redact({"x": object()}, ())["x"].startswith("<object object")
