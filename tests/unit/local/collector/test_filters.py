"""X-Ray filter expressions on assembled traces (``tracing.local.collector.filters``).

Every example on AWS's page is here with the page's URL: DOC is the current page
(its source: awsdocs/aws-xray-developer-guide, doc_source/xray-console-filters.md),
and DOC_OLD marks the two examples only an earlier version of the same page had.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.local import realistic_documents
from tracing.local.collector.filters import (
    SUPPORTED,
    UNSUPPORTED,
    Filter,
    FilterError,
    matches_documents,
    parse,
)
from tracing.local.collector.traces import Trace, assemble

DOC = "https://docs.aws.amazon.com/xray/latest/devguide/xray-console-filters.html"
DOC_OLD = DOC + " (an earlier version of the page)"
T0 = 1_700_000_000.0
TRACE_ID = "1-6553f100-0c0b0ea6e00b2feb16b859d9"


def _segment(name: str, seconds: float, entity_id: str = "a000000000000001", **fields: Any) -> Any:
    return {
        "trace_id": TRACE_ID,
        "id": entity_id,
        "name": name,
        "start_time": T0,
        "end_time": T0 + seconds,
        **fields,
    }


def _web(
    seconds: float = 1.0,
    status: int = 200,
    url: str = "http://api.example.com/v2/items",
    **fields: Any,
) -> Trace:
    """One ``api.example.com`` segment answering an HTTP request."""
    flags = {"fault": True} if status >= 500 else {"error": True} if status >= 400 else {}
    if status == 429:
        flags["throttle"] = True
    http = {
        "request": {
            "url": url,
            "method": "GET",
            "user_agent": "curl/8.5",
            "client_ip": "192.0.2.7",
        },
        "response": {"status": status},
    }
    return assemble([_segment("api.example.com", seconds, http=http, **flags, **fields)])


def _downstream(fault: bool = False, error: bool = False, total: float = 1.0) -> Trace:
    """api.example.com calls backend.example.com (a traced service) over HTTP."""
    call = {
        "id": "c000000000000001",
        "name": "backend.example.com",
        "namespace": "remote",
        "start_time": T0 + 0.1,
        "end_time": T0 + 0.5,
        "http": {"request": {"url": "http://backend.example.com/x", "method": "GET"}},
    }
    backend = _segment(
        "backend.example.com",
        0.3,
        "b000000000000001",
        parent_id="c000000000000001",
        start_time=T0 + 0.15,
        **({"fault": True} if fault else {}),
        **({"error": True} if error else {}),
    )
    api = _segment(
        "api.example.com",
        total,
        http={"request": {"url": "http://api.example.com/v2/a"}, "response": {"status": 200}},
        annotations={"account": "12345"},
        subsegments=[call],
    )
    return assemble([api, backend])


def _lambda(name: str, error: bool, function: bool) -> Trace:
    """A service named ``name``: a Lambda invocation (function) or a plain segment."""
    if function:
        document = {
            "trace_id": TRACE_ID,
            "id": "d000000000000001",
            "parent_id": "f000000000000001",  # Lambda's own segment, not stored locally
            "type": "subsegment",
            "name": "## handler",
            "start_time": T0,
            "end_time": T0 + 0.2,
            "annotations": {"Service": name},
            **({"error": True} if error else {}),
        }
        return assemble([document])
    return assemble([_segment(name, 0.2, **({"error": True} if error else {}))])


def _matches(text: str, trace: Trace) -> bool:
    return parse(text).matches(trace)


# -- every example of the page -----------------------------------------------------


def test_documented_number_examples() -> None:
    # DOC: "requests where response time was greater than 5 seconds"
    assert _matches("responsetime > 5", _web(6.0))
    assert not _matches("responsetime > 5", _web(4.0))
    # DOC: "requests where the total duration was 5-8 seconds"
    example = "duration >= 5 AND duration <= 8"
    assert [_matches(example, _web(s)) for s in (4.9, 5.0, 6.5, 8.0, 8.1)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    # DOC: "response status is not 200 OK"
    assert _matches("http.status != 200", _web(status=404))
    assert not _matches("http.status != 200", _web(status=200))


def test_documented_boolean_examples() -> None:
    # DOC: "response status is 2XX OK"
    assert _matches("ok", _web(status=200))
    assert not _matches("ok", _web(status=500))
    # DOC: "response status is not 2XX OK", written two ways
    for example in ("!ok", "ok = false"):
        assert _matches(example, _web(status=503))
        assert _matches(example, _web(status=404))
        assert not _matches(example, _web(status=200))
    # DOC: "requests that completed successfully in less than 3 seconds, including
    # all downstream calls" (juxtaposed terms are ANDed)
    assert _matches("ok !partial duration <3", _web(2.0))
    assert not _matches("ok !partial duration <3", _web(3.5))
    assert not _matches("ok !partial duration <3", _web(2.0, status=500))
    in_progress = _segment("api.example.com", 1.0, in_progress=True)
    del in_progress["end_time"]
    assert not _matches("ok !partial duration <3", assemble([in_progress]))


def test_documented_data_plane_root_example() -> None:
    # DOC: "requests that have a segment with the name "data-plane" as the root"
    example = 'service("data-plane") {root = true and fault = true}'
    assert _matches(example, assemble([_segment("data-plane", 0.1, fault=True)]))
    assert not _matches(example, assemble([_segment("data-plane", 0.1)]))
    # data-plane called by another service is not the root
    called = _downstream(fault=True)
    renamed = parse('service("backend.example.com") {root = true and fault = true}')
    assert not renamed.matches(called)
    assert parse('service("backend.example.com") {root = false and fault = true}').matches(called)


def test_documented_string_examples() -> None:
    # DOC: "http.url filter"
    assert _matches('http.url CONTAINS "/api/game/"', _web(url="http://x/api/game/1"))
    assert not _matches('http.url CONTAINS "/api/game/"', _web(url="http://x/api/shop/1"))
    # DOC: "user filter: find all traces with user IDs"
    assert _matches('user CONTAINS ""', _web(user="alice"))
    assert not _matches('user CONTAINS ""', _web())


def test_documented_service_and_edge_examples() -> None:
    fault, fine = _downstream(fault=True), _downstream()
    # DOC: "requests that included a call to api.example.com with a fault"
    assert _matches('service("api.example.com") { fault }', _web(status=500))
    assert not _matches('service("api.example.com") { fault }', fault)  # its callee's
    # DOC: "requests that caused a fault anywhere on your service map"
    assert _matches("service() { fault }", fault)
    assert not _matches("service() { fault }", fine)
    # DOC: "api.example.com made a call to backend.example.com that failed with an error"
    example = 'edge("api.example.com", "backend.example.com") { error }'
    assert _matches(example, _downstream(error=True))
    assert not _matches(example, fault)
    # DOC_OLD: the same edge with a fault
    assert _matches('edge("api.example.com", "backend.example.com") { fault = true }', fault)
    # DOC_OLD: a call to api.example.com with a fault or latency above 2.5 seconds,
    # and some segment annotated account = "12345"
    example = (
        'service("api.example.com") { fault = true OR responsetime > 2.5 } '
        'AND annotation.account = "12345"'
    )
    assert _matches(example, _downstream(total=3.0))
    assert not _matches(example, _downstream(total=1.0))


def test_documented_url_but_not_service_example() -> None:
    # DOC: "the URL begins with http://api.example.com/ and contains /v2/ but does
    # not reach a service named api.example.com"
    example = (
        'http.url BEGINSWITH "http://api.example.com/" AND http.url CONTAINS "/v2/" '
        'AND !service("api.example.com")'
    )
    other = assemble(
        [
            _segment(
                "gateway",
                0.5,
                http={"request": {"url": "http://api.example.com/v2/items"}},
            )
        ]
    )
    assert _matches(example, other)
    assert not _matches(example, _web())  # it reaches api.example.com
    # DOC: "http url is set and response time is greater than 2 seconds"
    assert _matches("http.url AND responseTime > 2", _web(2.5))
    assert not _matches("http.url AND responseTime > 2", _web(1.5))
    assert not _matches("http.url AND responseTime > 2", assemble([_segment("x", 2.5)]))


def test_documented_annotation_examples() -> None:
    game = _web(annotations={"gameid": "817DL6VO", "age": 30})
    young = _web(annotations={"age": 29})
    plain = _web()
    # DOC: "annotation with string value"
    assert _matches('annotation.gameid = "817DL6VO"', game)
    assert not _matches('annotation.gameid = "817DL6VO"', young)
    # DOC: "annotation is set" / "annotation is not set"
    assert [_matches("annotation.age", t) for t in (game, young, plain)] == [True, True, False]
    assert [_matches("!annotation.age", t) for t in (game, young, plain)] == [False, False, True]
    # DOC: "annotation with number value"
    assert [_matches("annotation.age > 29", t) for t in (game, young, plain)] == [
        True,
        False,
        False,
    ]


def test_documented_id_function_examples() -> None:
    function, plain = _lambda("random-name", True, True), _lambda("random-name", True, False)
    clean = _lambda("random-name", False, True)
    # DOC: "requests that include an error on any service named random-name"
    example = 'service("random-name") { error }'
    assert [_matches(example, t) for t in (function, plain, clean)] == [True, True, False]
    # DOC: "... on a service named random-name with type AWS::Lambda::Function"
    example = 'service(id(name: "random-name", type: "AWS::Lambda::Function")) { error }'
    assert [_matches(example, t) for t in (function, plain, clean)] == [True, False, False]
    # DOC: "... on a service with type AWS::Lambda::Function"
    example = 'service(id(type: "AWS::Lambda::Function")) { error }'
    assert [_matches(example, t) for t in (function, plain, clean)] == [True, False, False]


@pytest.mark.parametrize(
    ("example", "column", "what"),
    [
        # DOC: each of these; root-cause analysis, groups and JSON are X-Ray's own
        ('rootcause.fault.entity { last and name = "deserialize" }', 1, "rootcause"),
        (
            'rootcause.responsetime.entity { remote and coverage > 0.7 and name = "traces" }',
            1,
            "rootcause",
        ),
        (
            'rootcause.fault.service { inferred and name = traces and type = "AWS::DynamoDB" }',
            1,
            "rootcause",
        ),
        ("rootcause.fault.service { index > 5 }", 1, "rootcause"),
        ("rootcause.responsetime.entity { last and coverage > 0.8 }", 1, "rootcause"),
        ('rootcause.fault.service { name = "Auth" }', 1, "rootcause"),
        ('rootcause.responsetime.service { last and type = "AWS::DynamoDB" }', 1, "rootcause"),
        # (the page's own example lacks its closing brace)
        (
            'rootcause.fault.exception { last and message = "Access Denied for account_id: '
            '1234567890" ',
            1,
            "rootcause",
        ),
        ('group.name = "high_response_time" AND user = "alice"', 1, "group.name"),
        ('rootcause.json = #[{ "Services": [] }]', 1, "rootcause"),
        ('ok AND json = "x"', 8, "json"),
        ("inferred", 1, "inferred"),
    ],
)
def test_documented_but_unsupported_examples_are_refused(
    example: str, column: int, what: str
) -> None:
    with pytest.raises(FilterError) as raised:
        parse(example)
    assert raised.value.reason.startswith(f"not supported locally: {what}")
    assert raised.value.column == column


def test_the_demo_trace() -> None:
    documents = realistic_documents(T0, messages=2, poison_last=True)
    trace = assemble(documents)
    assert matches_documents(parse('annotation.sku = "book-1"'), documents)
    assert matches_documents(parse('annotation.sku = "poison"'), documents)
    assert not matches_documents(parse('annotation.sku = "book-2"'), documents)
    # the invocation (the entry, locally) succeeded; the worker's poison message failed
    assert _matches("ok AND !fault", trace)
    assert _matches('service("orders-worker") { fault }', trace)
    assert not _matches('service("orders-api") { fault }', trace)
    assert _matches('edge("orders", "orders-worker") { fault }', trace)
    assert _matches('edge("orders-api", "orders")', trace)
    # "orders" is both the queue and the worker's DynamoDB table: id() tells them apart
    assert _matches('edge("orders-worker", "orders")', trace)
    assert _matches(
        'edge("orders-worker", id(name: "orders", type: "AWS::DynamoDB::Table"))', trace
    )
    assert not _matches('edge("orders-worker", id(name: "orders", type: "AWS::SQS::Queue"))', trace)
    assert not _matches('edge("orders-api", "orders-worker")', trace)  # the queue is between
    assert _matches('service(id(name: "orders", type: "AWS::SQS::Queue"))', trace)
    assert _matches('service(id(type: "queue"))', trace)  # our own type names too
    assert _matches(
        'service(id(name: "orders-api", type: "AWS::Lambda::Function")) { root }', trace
    )
    assert _matches("annotation.ColdStart = true AND annotation.ColdStart != false", trace)
    assert not _matches("annotation.sku = 1 OR annotation.sku = true", trace)  # wrong types
    fine = realistic_documents(T0)
    assert not matches_documents(parse('service("orders-worker") { fault }'), fine)


# -- operators, types, precedence ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http.status = 404", True),
        ("http.status >= 400 AND http.status < 500", True),
        ("http.status <= 403", False),
        ('http.method = "GET"', True),
        ('http.method != "GET"', False),
        ('http.useragent BEGINSWITH "curl/"', True),
        ('http.clientip = "192.0.2.7"', True),
        ('http.url ENDSWITH "/items"', True),
        ('http.url contains "V2"', False),  # exact, case-sensitive
        ("error", True),
        ("error = true AND fault = false AND throttle != true", True),
        ('ok = "false"', True),
        ("annotation.n = 3", True),
        ("annotation.n != 3", False),
        ('annotation.s ENDSWITH "ue"', True),
        ("annotation.b = true", True),
        ("annotation.b != true", False),
        ('annotation.n = "3"', False),
        ("responsetime = 1.5 AND duration = 1.5", True),
        ("responsetime > -1", True),
    ],
)
def test_operators_and_types(text: str, expected: bool) -> None:
    trace = _web(1.5, status=404, annotations={"n": 3, "s": "value", "b": True})
    assert _matches(text, trace) is expected


def test_precedence_not_over_and_over_or() -> None:
    ok, failed = _web(status=200), _web(status=500)
    # OR binds loosest: "fault OR (ok AND duration > 5)"
    assert _matches("fault OR ok AND duration > 5", failed)
    assert not _matches("fault OR ok AND duration > 5", ok)
    assert _matches("(fault OR ok) AND duration < 5", ok)
    # ! binds tighter than AND: "(!fault) AND ok"
    assert _matches("!fault AND ok", ok)
    assert not _matches("!(fault OR ok)", ok)
    assert _matches("NOT fault and ok", ok)  # NOT and lower-case and
    assert _matches("!!ok", ok)
    assert _matches("ok or fault and error", ok)


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("responsetime > ", 16, "expected a number"),
        ('responsetime > "5"', 16, "compares with a number"),
        ("responsetime CONTAINS 5", 14, "number keyword"),
        ('http.url > "a"', 10, "string keyword"),
        ("http.url = 5", 12, "quoted string"),
        ("ok < 1", 4, "boolean keyword"),
        ("ok = 1", 6, "true or false"),
        ("ok AND (fault", 14, "expected ')'"),
        ("ok AND", 7, "expected a keyword"),
        ("ok )", 4, "expected AND, OR or the end"),
        ("latency > 5", 1, "unknown keyword"),
        ('http.url = "abc', 12, "unterminated string"),
        ('user = "a\\q"', 10, "bad escape"),
        ("ok & fault", 4, "unexpected character"),
        ("root", 1, "inside service() or edge()"),
        ('service("a") { annotation.x = "y" }', 16, "not supported locally: annotation"),
        ('service("a") { service("b") }', 16, "cannot be nested"),
        ('service(id(account.id: "1"))', 12, "not supported locally: id(account.id"),
        ('edge("a") { fault }', 9, "expected ','"),
        ("annotation.1x = 2", 1, "bad annotation key"),
        ("duration > 1.2.3", 12, "bad number"),
        ("   ", 1, "empty"),
    ],
)
def test_errors_point_at_the_column(text: str, column: int, reason: str) -> None:
    with pytest.raises(FilterError) as raised:
        parse(text)
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.column == column, error
    assert reason in error.reason
    caret_line = str(error).splitlines()[-1]
    assert caret_line.index("^") - 2 == column - 1  # two spaces of indent


def test_escapes_in_strings() -> None:
    trace = _web(user='say "hi"\\now')
    assert _matches('user = "say \\"hi\\"\\\\now"', trace)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(FilterError, match="nested too deeply"):
        parse("(" * 500 + "ok" + ")" * 500)
    with pytest.raises(FilterError, match="nested too deeply"):
        parse("!" * 5000 + "ok")


def test_public_shape() -> None:
    compiled = parse("ok")
    assert isinstance(compiled, Filter)
    assert compiled.text == "ok"
    assert compiled.select([_web(status=200), _web(status=500)])[0].roots[0].fault is False
    assert "annotation.KEY" in SUPPORTED
    assert "rootcause" in UNSUPPORTED
    assert not _matches("ok", assemble([]))  # an empty trace has no entry
    assert not _matches("duration >= 0", assemble([]))


_ALPHABET = st.sampled_from(
    [
        *'()!{}=<>,:"\\. -_#@\n',
        *("ok", "AND", "or", "NOT", "service", "edge", "id", "annotation.k", "name", "type"),
        *("http.url", "duration", "5", "2.5", '"x"', "true", "CONTAINS", "rootcause", "é"),
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=25).map(" ".join) | st.text(max_size=40))
def test_parsing_raises_only_filter_error(text: str) -> None:
    column = None
    try:
        compiled = parse(text)
    except FilterError as error:
        column = error.column
    if column is not None:
        assert 1 <= column <= len(text) + 1
    else:  # whatever parses evaluates without raising
        assert compiled.matches(_downstream(fault=True)) in (True, False)
