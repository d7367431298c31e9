from __future__ import annotations

from tracing._entity import entity_dict
from tracing._scope import Scope, seal_open
from tracing._span import MAX_ANNOTATIONS, NOOP, Span, clean_name


def test_names_are_cleaned_and_capped() -> None:
    assert clean_name("x" * 300) == "x" * 200
    assert clean_name("<script>") == "_script_"
    assert clean_name("") == "unnamed"
    assert clean_name("## handler: GET /orders") == "## handler: GET /orders"


def test_annotations_follow_the_wire_rules() -> None:
    span = Span("s")
    span.annotate("ok", 1)
    span.annotate("has space", True)
    span.annotate("list", [1])  # dropped: not indexable
    span.annotate("long", "v" * 5000)
    assert span.annotations is not None
    assert span.annotations["ok"] == 1
    assert span.annotations["has_space"] is True
    assert "list" not in span.annotations
    assert len(str(span.annotations["long"])) == 1000
    for index in range(100):
        span.annotate(f"k{index}", index)
    assert len(span.annotations) == MAX_ANNOTATIONS


def test_reserved_metadata_namespace_is_refused() -> None:
    span = Span("s")
    span.put_metadata("k", 1, namespace="AWS.xray")
    span.put_metadata("k", 2)
    assert span.metadata == {"default": {"k": 2}}


def test_noop_span_records_nothing() -> None:
    NOOP.annotate("a", 1)
    NOOP.put_metadata("b", 2)
    NOOP.add_child(Span("c"))
    assert NOOP.annotations is None
    assert NOOP.children is None
    assert not NOOP.recording


def test_open_spans_serialize_in_progress_and_seal_as_timeouts() -> None:
    root = Span("root")
    child = Span("child")
    root.add_child(child)
    done = Span("done")
    done.finish()
    root.add_child(done)
    doc = Scope(root, "1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8").document()
    assert doc["in_progress"] is True
    assert doc["type"] == "subsegment"
    assert seal_open(doc, now=doc["start_time"] + 1) == 2
    assert doc["fault"] is True
    assert doc["annotations"]["Timeout"] is True
    assert doc["subsegments"][1].get("fault") is None


def test_exception_cause_has_type_message_and_stack() -> None:
    span = Span("s")
    try:
        raise KeyError("missing")
    except KeyError as exc:
        span.record_exception(exc)
    data = entity_dict(span)
    assert data["fault"] is True
    [exception] = data["cause"]["exceptions"]
    assert exception["type"] == "KeyError"
    assert exception["stack"][0]["label"] == "test_exception_cause_has_type_message_and_stack"


def test_deep_nesting_is_flattened_not_lost() -> None:
    import json

    from tracing._entity import MAX_DEPTH
    from tracing.exporters.xray_udp import encode

    root = Span("root")
    node = root
    for depth in range(2000):
        child = Span(f"level {depth}")
        child.finish()
        node.add_child(child)
        node = child
    root.finish()
    data = entity_dict(root)
    encoded = json.loads(encode(data))  # would hit the recursion limit when nested
    ids = []
    stack = [encoded]
    while stack:
        entity = stack.pop()
        ids.append(entity["id"])
        stack.extend(entity.get("subsegments", ()))
    assert len(ids) == 2001
    deepest = encoded
    for _ in range(MAX_DEPTH):
        deepest = deepest["subsegments"][0]
    assert deepest["metadata"]["tracing"]["flattened"] == 2000 - MAX_DEPTH


def test_the_metadata_budget_counts_bytes_as_sent_and_each_key_once() -> None:
    from tracing._span import MAX_METADATA_BYTES

    span = Span("s")
    for n in range(200):  # the same key again and again: counted once
        span.put_metadata("progress", {"done": n, "pad": "p" * 1000})
    assert span.metadata is not None
    assert span.metadata["default"]["progress"]["done"] == 199
    accented = "é" * 20_000  # 120,000 bytes once escaped as \\u00e9
    span.put_metadata("accented", accented)
    assert span.metadata["default"]["accented"].startswith("<120002 bytes: over the")
    span.put_metadata("small", "kept")
    assert span.metadata["default"]["small"] == "kept"
    assert span.metadata_bytes <= MAX_METADATA_BYTES
