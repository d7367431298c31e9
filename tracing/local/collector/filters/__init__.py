"""X-Ray filter expressions, evaluated locally on stored traces.

The language is the X-Ray console's and ``GetTraceSummaries``'s, as AWS documents
it in "Using filter expressions"
(https://docs.aws.amazon.com/xray/latest/devguide/xray-console-filters.html).
:func:`parse` compiles an expression once into closures; :meth:`Filter.matches`
then tests an assembled :class:`~tracing.local.collector.traces.Trace` without re-parsing,
:func:`matches_documents` tests a trace's stored documents, and
:meth:`Filter.matches_stored` the facts the store keeps per trace (``_stored.py``),
with the same answers and no assembly. Stdlib only.

Grammar (EBNF; keywords, ``AND``/``OR``/``NOT``, ``true``/``false`` and the word
operators are case-insensitive, as AWS's own examples mix ``AND`` with ``and``
and write ``responseTime``)::

    filter     = or_expr EOF ;
    or_expr    = and_expr { "OR" and_expr } ;
    and_expr   = unary { [ "AND" ] unary } ;     (* juxtaposition is AND:
                                                    "ok !partial duration <3" *)
    unary      = ( "!" | "NOT" ) unary | primary ;
    primary    = "(" or_expr ")" | service | edge | test ;
    service    = "service" "(" [ node ] ")" [ "{" or_expr "}" ] ;
    edge       = "edge" "(" node "," node ")" [ "{" or_expr "}" ] ;
    node       = string | "id" "(" id_arg { "," id_arg } ")" ;
    id_arg     = ( "name" | "type" ) ":" string ;
    test       = keyword [ operator value ] ;   (* alone: true, or set *)
    keyword    = "ok" | "error" | "fault" | "throttle" | "partial" | "root"
               | "responsetime" | "duration" | "http.status"
               | "http.url" | "http.method" | "http.useragent" | "http.clientip"
               | "user" | "availabilityzone" | "instance.id" | "resource.arn"
               | "annotation." KEY ;
    operator   = "=" | "!=" | "<" | "<=" | ">" | ">="
               | "CONTAINS" | "BEGINSWITH" | "ENDSWITH" ;
    value      = string | number | "true" | "false" ;
    string     = '"' { char | "\\" ( '"' | "\\" | "n" | "t" ) } '"' ;
    number     = [ "-" ] digits [ "." digits ] ;  (* seconds, for times *)
    KEY        = letter_or_underscore { letter | digit | "_" } ;

Types: boolean keywords take ``=``/``!=`` with ``true``/``false`` (bare or
quoted); number keywords and numeric annotations the six comparisons; string
keywords and string annotations ``=``, ``!=``, ``CONTAINS``, ``BEGINSWITH``,
``ENDSWITH`` with a quoted string. Anything else is a :class:`FilterError`.

SUPPORTED, and what each means here (on our stored documents):

* ``ok``, ``error``, ``fault``, ``throttle``: the trace's entry (its root
  segment), as AWS says "simple keywords find issues only at the trace level";
  ``ok`` is none of the three. The entry is the earliest root that is a segment,
  else the earliest root that is not init work (locally Lambda's own segment is
  not stored, so it is the ``## handler`` invocation), else the earliest root.
* ``partial``: some entity of the trace is still in progress.
* ``responsetime``: the entry's own duration; ``duration``: the whole trace,
  earliest start to latest end ("including all downstream calls").
* ``http.status``/``url``/``method``/``useragent``/``clientip``: the entry's
  ``http`` block. ``user``, ``availabilityzone`` (``aws.ec2``),
  ``instance.id`` (``aws.ec2``), ``resource.arn``: any entity of the trace.
* ``annotation.KEY``: some entity of the trace carries that annotation with a
  value of the compared type that satisfies the comparison; alone, the
  annotation is set somewhere; ``!annotation.KEY``, set nowhere.
* ``service(name) {f}``, ``service() {f}``, ``edge(a, b) {f}``, ``id(name:,
  type:)``: nodes and edges are those of ``tracing map``
  (:mod:`tracing.local.collector.service_graph`, the same rules). A service matches by name
  (``id(type:)`` matches the node's X-Ray type, e.g. ``AWS::Lambda::Function``,
  ``AWS::SQS::Queue``, ``client``, ``remote``, or our own type name such as
  ``function``). ``{f}`` holds when one entity of that service (its segments or
  invocations, or the calls to a resource) or one call on that edge satisfies
  ``f``; inside braces the keywords apply to that entity (``responsetime`` and
  ``duration`` are its duration, ``root`` means it was called by the client).

UNSUPPORTED locally (refused with "not supported locally: ..." at its column):
``rootcause.*`` and ``json`` (root-cause analysis is X-Ray's), ``group.name``/
``group.arn`` (groups live in X-Ray), ``inferred``, ``first``, ``last``,
``remote``, ``index``, ``coverage``, ``name``, ``type``, ``message`` (root-cause
entity keywords), ``annotation.KEY`` inside ``service()``/``edge()`` braces
(AWS refuses that combination too), ``id(account.id: ...)``, and every other
keyword.

Deviations from X-Ray: keyword comparisons are exact (X-Ray's string matching
may be case-insensitive); ``NOT`` is accepted as a synonym of ``!``; precedence
is ``!``/``NOT`` over ``AND`` over ``OR``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tracing.local.collector.filters._facts import SUPPORTED, UNSUPPORTED, _Facts
from tracing.local.collector.filters._lexer import FilterError
from tracing.local.collector.filters._parser import compile_expression
from tracing.local.collector.filters._stored import StoredFacts
from tracing.local.collector.traces import Trace, assemble

__all__ = ["SUPPORTED", "UNSUPPORTED", "Filter", "FilterError", "matches_documents", "parse"]


@dataclass(frozen=True)
class Filter:
    """A compiled filter expression; :meth:`matches` tests one trace."""

    text: str
    _predicate: Callable[[_Facts], bool] = field(repr=False, compare=False)

    def matches(self, trace: Trace) -> bool:
        """The trace satisfies the expression."""
        return bool(self._predicate(_Facts(trace)))

    def matches_stored(self, facts: StoredFacts) -> bool:
        """The trace whose stored facts (the store's index) these are satisfies it."""
        predicate: Callable[[Any], bool] = self._predicate
        return bool(predicate(facts))

    def select(self, traces: Iterable[Trace]) -> list[Trace]:
        """The traces that satisfy the expression, in order."""
        return [trace for trace in traces if self.matches(trace)]


def parse(text: str) -> Filter:
    """Compile an X-Ray filter expression.

    Args:
        text: The expression, e.g. ``service("orders-api") { fault }``.

    Returns:
        The compiled filter.

    Raises:
        FilterError: The expression is malformed or not supported locally; its
            ``column`` (1-based) says where.
    """
    if not isinstance(text, str):
        raise TypeError("a filter expression is a str")
    if not text.strip():
        raise FilterError("empty filter expression", 1, text)
    return Filter(text, compile_expression(text))


def matches_documents(filter: Filter, documents: Iterable[Any]) -> bool:
    """The trace made of these stored documents satisfies ``filter``."""
    return filter.matches(assemble(documents))
