from __future__ import annotations

import os
import random
import string
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracing._header import (
    ID_RANDOM,
    MAX_HEADER_LENGTH,
    TraceHeader,
    from_traceparent,
    new_id,
    new_trace_id,
    parse,
    reseed_ids,
    to_traceparent,
)

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"


def test_parses_a_lambda_header() -> None:
    header = parse(f"Root={ROOT};Parent={PARENT};Sampled=1")
    assert header == TraceHeader(ROOT, PARENT, "1")
    assert header.is_sampled


def test_passes_unknown_keys_through_in_order() -> None:
    text = f"Root={ROOT};Parent={PARENT};Sampled=0;Lineage=a87bd80c:1|68fd508a:5;Self=1-67890"
    header = parse(text)
    assert header is not None
    assert header.extra == (("Lineage", "a87bd80c:1|68fd508a:5"), ("Self", "1-67890"))
    assert header.to_string() == text
    assert not header.is_sampled


def test_accepts_spaces_and_key_case_like_the_sdk() -> None:
    header = parse(f"root={ROOT}; parent={PARENT}; sampled=?")
    assert header == TraceHeader(ROOT, PARENT, "?")


def test_root_only_header_has_no_parent() -> None:
    header = parse(f"Root={ROOT}")
    assert header is not None
    assert header.parent is None
    assert header.sampled is None
    assert not header.is_sampled


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        b"Root=1-5759e988-bd862e3fe1be46a994272793",
        "",
        "Root=dummy",
        f"Parent={PARENT};Sampled=1",
        f"Root={ROOT.upper()}",
        f"Root={ROOT};Parent=xyz",
        f"Root={ROOT};Parent={PARENT}0",
        f"Root={ROOT};Sampled=2",
        f"Root={ROOT};Root={ROOT}",
        f"Root={ROOT};garbage",
        f"Root={ROOT};Lineage=a b",
        f"Root={ROOT};Lineage=<script>alert(1)</script>",
        f"Root={ROOT}\n;Parent={PARENT}",
        f"Root={ROOT};Parent={PARENT};Sampled=1;Lineage=é",
        f"Root={ROOT};" + "X=" + "a" * 100_000,
        "Root=1-5759e988-bd862e3fe1be46a99427279",
    ],
)
def test_rejects_invalid_headers(value: object) -> None:
    assert parse(value) is None


def test_caps_the_length() -> None:
    padding = ";Lineage=" + "a" * (MAX_HEADER_LENGTH)
    assert parse(f"Root={ROOT}{padding}") is None


def test_with_parent_keeps_extras() -> None:
    header = parse(f"Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:1")
    assert header is not None
    child = header.with_parent("0123456789abcdef")
    assert child.to_string() == f"Root={ROOT};Parent=0123456789abcdef;Sampled=1;Lineage=a87bd80c:1"


def test_new_ids_are_well_formed() -> None:
    assert parse(f"Root={new_trace_id()};Parent={new_id()};Sampled=1") is not None
    assert new_trace_id(0x5759E988).startswith("1-5759e988-")


def test_traceparent_round_trip() -> None:
    header = TraceHeader(ROOT, PARENT, "1")
    traceparent = to_traceparent(header)
    assert traceparent == f"00-5759e988bd862e3fe1be46a994272793-{PARENT}-01"
    assert from_traceparent(traceparent) == header
    assert to_traceparent(TraceHeader(ROOT)) is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "00-00000000000000000000000000000000-53995c3f42cd8ad8-01",
        "00-5759e988bd862e3fe1be46a994272793-0000000000000000-01",
        "01-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01",
        "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8",
        "x" * 1000,
    ],
)
def test_rejects_invalid_traceparent(value: object) -> None:
    assert from_traceparent(value) is None


_header_alphabet = string.printable + "é中\x00"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_header_alphabet, max_size=700))
def test_fuzz_parse_never_raises(value: str) -> None:
    header = parse(value)
    if header is not None:
        # Anything accepted is safe to re-emit: it re-parses to itself.
        assert parse(header.to_string()) == header
        assert len(header.to_string()) <= MAX_HEADER_LENGTH
        assert header.root.startswith("1-")


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Root", "Parent", "Sampled", "Lineage", "Self", "root", "x"]),
            st.one_of(
                st.just(ROOT),
                st.just(PARENT),
                st.sampled_from(["0", "1", "?", "2"]),
                st.text(max_size=40),
            ),
        ),
        max_size=6,
    )
)
def test_fuzz_structured_headers(pairs: list[tuple[str, str]]) -> None:
    text = ";".join(f"{key}={value}" for key, value in pairs)
    header = parse(text)
    if header is not None:
        assert parse(header.to_string()) == header


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_traceparent_never_raises(value: str) -> None:
    header = from_traceparent(value)
    if header is not None:
        assert to_traceparent(header) == value.strip()


def test_ids_come_from_the_librarys_own_generator_not_the_global_random() -> None:
    """Seeding (or reseeding) ``random`` does not touch ids, and reseeding ids does
    not touch ``random``: an application that seeds ``random`` keeps its sequence."""
    state = random.getstate()
    try:
        random.seed(7)
        first = [new_id(), new_trace_id(0)]
        random.seed(7)
        assert [new_id(), new_trace_id(0)] != first
        random.seed(7)
        reseed_ids()
        new_id()
        assert random.getrandbits(64) == random.Random(7).getrandbits(64)
    finally:
        random.setstate(state)


def test_reseeding_gives_another_sequence() -> None:
    state = ID_RANDOM.getstate()
    try:
        before = [new_id() for _ in range(3)]
        ID_RANDOM.setstate(state)
        assert [new_id() for _ in range(3)] == before  # the same state, the same ids
        ID_RANDOM.setstate(state)
        reseed_ids()
        assert [new_id() for _ in range(3)] != before
    finally:
        ID_RANDOM.setstate(state)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    state = ID_RANDOM.getstate()
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads; this child
        # only draws an id and writes it.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, new_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 64).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    parent = new_id()  # drawn from the state the child was forked with
    ID_RANDOM.setstate(state)
    assert new_id() == parent
    assert len(child) == 16
    assert child != parent


_hex = st.text(alphabet="0123456789abcdefABCDEF-xz", min_size=0, max_size=26)


@settings(max_examples=400)
@given(
    epoch=st.one_of(st.text(alphabet="0123456789abcdef", min_size=8, max_size=8), _hex),
    random=st.one_of(st.text(alphabet="0123456789abcdef", min_size=24, max_size=24), _hex),
    parent=st.one_of(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16), _hex),
    sampled=st.sampled_from(["0", "1", "?", "2", "", "11"]),
    tail=st.sampled_from(["", ";Lineage=a87bd80c:2", ";", ";Root=x", ";Self=1-abc", "x"]),
)
def test_the_fast_path_agrees_with_the_general_parser(
    epoch: str, random: str, parent: str, sampled: str, tail: str
) -> None:
    """The fixed-width match (most headers) decides exactly as key-by-key parsing:
    a space after each ';' sends the same header down the general path."""
    value = f"Root=1-{epoch}-{random};Parent={parent};Sampled={sampled}{tail}"
    assert parse(value) == parse(value.replace(";", "; "))
