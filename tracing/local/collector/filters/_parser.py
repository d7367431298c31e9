"""The recursive-descent parser: it compiles an expression into closures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracing.local.collector.filters._facts import (
    _ANY_STRINGS,
    _BOOLEAN,
    _ENTRY_STRINGS,
    _NUMBER,
    UNSUPPORTED,
    _as_number,
    _compare,
    _Facts,
    _http,
    _NodeRef,
)
from tracing.local.collector.filters._lexer import _WORD_OPS, FilterError, _Token, _tokens
from tracing.local.collector.traces import Node

# -- parser ------------------------------------------------------------------------

_TracePred = Callable[[_Facts], bool]
_NodePred = Callable[[Node, bool], bool]


@dataclass
class _Parser:
    text: str
    tokens: list[_Token]
    pos: int = 0
    depth: int = 0
    inside: bool = False  # within service()/edge() braces
    _stack_limit: int = field(default=100, repr=False)

    @property
    def token(self) -> _Token:
        return self.tokens[self.pos]

    def fail(self, reason: str, token: _Token | None = None) -> FilterError:
        at = token or self.token
        return FilterError(at.value if at.kind == "bad" else reason, at.column, self.text)

    def word(self, *words: str) -> bool:
        token = self.token
        return token.kind == "word" and token.value.lower() in words

    def expect(self, kind: str, what: str) -> _Token:
        token = self.token
        if token.kind != kind:
            raise self.fail(f"expected {what}, found {_describe(token)}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        predicate = self.or_expr()
        if self.token.kind != "end":
            raise self.fail(f"expected AND, OR or the end, found {_describe(self.token)}")
        return predicate

    def or_expr(self) -> Any:
        self.depth += 1
        if self.depth > self._stack_limit:
            raise self.fail("expression nested too deeply")
        parts = [self.and_expr()]
        while self.word("or"):
            self.pos += 1
            parts.append(self.and_expr())
        self.depth -= 1
        if len(parts) == 1:
            return parts[0]
        return lambda *a: any(p(*a) for p in parts)

    def and_expr(self) -> Any:
        parts = [self.unary()]
        while True:
            if self.word("and"):
                self.pos += 1
            elif not self._starts_term():
                break
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        return lambda *a: all(p(*a) for p in parts)

    def _starts_term(self) -> bool:
        token = self.token
        return token.kind in ("!", "(") or (token.kind == "word" and not self.word("or", "and"))

    def unary(self) -> Any:
        if self.token.kind == "!" or self.word("not"):
            self.pos += 1
            self.depth += 1
            if self.depth > self._stack_limit:
                raise self.fail("expression nested too deeply")
            inner = self.unary()
            self.depth -= 1
            return lambda *a: not inner(*a)
        return self.primary()

    def primary(self) -> Any:
        token = self.token
        if token.kind == "(":
            self.pos += 1
            inner = self.or_expr()
            self.expect(")", "')'")
            return inner
        if token.kind != "word":
            raise self.fail(f"expected a keyword, found {_describe(token)}")
        lowered = token.value.lower()
        if lowered in ("service", "edge"):
            if self.inside:
                raise self.fail(f"{lowered}() cannot be nested in service() or edge() braces")
            return self.service() if lowered == "service" else self.edge()
        return self.test()

    # service(...) / edge(...)

    def node_ref(self) -> _NodeRef:
        token = self.token
        if token.kind == "string":
            self.pos += 1
            return _NodeRef(name=token.value)
        if not self.word("id"):
            raise self.fail(f'expected a name ("...") or id(...), found {_describe(token)}')
        self.pos += 1
        self.expect("(", "'(' after id")
        found: dict[str, str] = {}
        while True:
            key = self.token
            if key.kind != "word":
                raise self.fail(f"expected name: or type: in id(), found {_describe(key)}")
            if key.value.lower() not in ("name", "type"):
                raise self.fail(f"not supported locally: id({key.value}: ...)", key)
            if key.value.lower() in found:
                raise self.fail(f"id() names {key.value} twice", key)
            self.pos += 1
            self.expect(":", f"':' after {key.value}")
            found[key.value.lower()] = self.expect("string", 'a quoted string ("...")').value
            if self.token.kind != ",":
                break
            self.pos += 1
        self.expect(")", "')' closing id(")
        return _NodeRef(found.get("name"), found.get("type"))

    def braces(self) -> _NodePred | None:
        if self.token.kind != "{":
            return None
        self.pos += 1
        self.inside = True
        inner: _NodePred = self.or_expr()
        self.inside = False
        self.expect("}", "'}'")
        return inner

    def service(self) -> _TracePred:
        self.pos += 1
        self.expect("(", "'(' after service")
        ref = _NodeRef() if self.token.kind == ")" else self.node_ref()
        self.expect(")", "')' closing service(")
        inner = self.braces()

        def service(facts: _Facts) -> bool:
            for entities in facts.map.services(ref):
                if inner is None or any(inner(n, r) for n, r in entities):
                    return True
            return False

        return service

    def edge(self) -> _TracePred:
        self.pos += 1
        self.expect("(", "'(' after edge")
        source = self.node_ref()
        self.expect(",", "',' between edge()'s two services")
        target = self.node_ref()
        self.expect(")", "')' closing edge(")
        inner = self.braces()

        def edge(facts: _Facts) -> bool:
            for calls in facts.map.calls(source, target):
                if inner is None or any(inner(n, r) for n, r in calls):
                    return True
            return False

        return edge

    # keyword [operator value]

    def test(self) -> Any:
        token = self.token
        name = token.value.lower()
        head = name.split(".", 1)[0]
        if head == "annotation" and "." in name:
            return self.annotation(token)
        if name in UNSUPPORTED or head in ("rootcause", "group"):
            why = UNSUPPORTED.get(name) or UNSUPPORTED.get(head, "")
            raise self.fail(f"not supported locally: {token.value} ({why})")
        self.pos += 1
        if name in _BOOLEAN:
            return self.boolean(token, name)
        if name in _NUMBER:
            return self.number(token, name)
        if name in _ENTRY_STRINGS or name in _ANY_STRINGS:
            return self.string(token, name)
        raise self.fail(f"unknown keyword {token.value!r}", token)

    def operator(self) -> _Token | None:
        token = self.token
        if token.kind == "op" or (token.kind == "word" and token.value.lower() in _WORD_OPS):
            self.pos += 1
            return token
        return None

    def value(self, expected: str) -> _Token:
        token = self.token
        if token.kind in ("string", "number") or self.word("true", "false"):
            self.pos += 1
            return token
        raise self.fail(f"expected {expected}, found {_describe(token)}")

    def boolean(self, token: _Token, name: str) -> Any:
        on_trace, on_node = _BOOLEAN[name]
        if on_trace is None and not self.inside:
            raise self.fail(f"{token.value} applies only inside service() or edge() braces", token)
        op = self.operator()
        want = True
        if op is not None:
            if op.value not in ("=", "!="):
                raise self.fail(
                    f"{token.value} is a boolean keyword: use = or != with true/false", op
                )
            value = self.value("true or false")
            literal = str(value.value).lower() if value.kind != "number" else ""
            if literal not in ("true", "false"):
                raise self.fail(f"{token.value} compares with true or false", value)
            want = (literal == "true") == (op.value == "=")
        if self.inside:
            return (lambda n, r: bool(on_node(n, r))) if want else (lambda n, r: not on_node(n, r))
        assert on_trace is not None
        get = on_trace
        return (lambda f: bool(get(f))) if want else (lambda f: not get(f))

    def number(self, token: _Token, name: str) -> Any:
        on_trace, on_node = _NUMBER[name]
        op = self.operator()
        if op is None:  # set
            if self.inside:
                return lambda n, r: _as_number(on_node(n, r)) is not None
            return lambda f: _as_number(on_trace(f)) is not None
        if op.kind != "op":
            raise self.fail(f"{token.value} is a number keyword: use = != < <= > >=", op)
        value = self.value("a number")
        if value.kind != "number":
            raise self.fail(f"{token.value} compares with a number", value)
        test = _compare(op.value, value.value)

        def check(raw: Any) -> bool:
            number = _as_number(raw)
            return number is not None and test(number)

        if self.inside:
            return lambda n, r: check(on_node(n, r))
        return lambda f: check(on_trace(f))

    def string(self, token: _Token, name: str) -> Any:
        op = self.operator()
        test: Callable[[Any], bool]
        if op is None:  # set
            test = lambda v: isinstance(v, str)  # noqa: E731
        else:
            if op.value.lower() not in ("=", "!=", *_WORD_OPS):
                raise self.fail(
                    f"{token.value} is a string keyword: use = != CONTAINS BEGINSWITH ENDSWITH", op
                )
            value = self.value('a quoted string ("...")')
            if value.kind != "string":
                raise self.fail(f"{token.value} compares with a quoted string", value)
            compare = _compare(op.value.lower(), value.value)
            test = lambda v: isinstance(v, str) and compare(v)  # noqa: E731
        if name in _ENTRY_STRINGS:
            part, key = _ENTRY_STRINGS[name]
            if self.inside:
                return lambda n, r: test(_http(n, part, key))
            return lambda f: test(_http(f.entry, part, key))
        read = _ANY_STRINGS[name]
        if self.inside:
            return lambda n, r: test(read(n))
        return lambda f: any(test(value) for value in f.strings(name))

    def annotation(self, token: _Token) -> _TracePred:
        key = token.value.split(".", 1)[1]
        if self.inside:
            raise self.fail(
                "not supported locally: annotation.KEY inside service() or edge() braces "
                "(X-Ray refuses the combination too)"
            )
        if not key or "." in key or not (key[0].isalpha() or key[0] == "_"):
            raise self.fail(f"bad annotation key {key!r}: letters, digits and _ only")
        self.pos += 1
        op = self.operator()
        if op is None:
            return lambda f: f.annotated(key)
        value = self.value("a string, a number, true or false")
        lowered = op.value.lower()
        if value.kind == "string":
            if lowered not in ("=", "!=", *_WORD_OPS):
                raise self.fail("a string annotation takes = != CONTAINS BEGINSWITH ENDSWITH", op)
            want: Any = value.value
            kind: Callable[[Any], bool] = lambda v: isinstance(v, str)  # noqa: E731
        elif value.kind == "number":
            if op.kind != "op":
                raise self.fail("a number annotation takes = != < <= > >=", op)
            want = value.value
            kind = lambda v: _as_number(v) is not None  # noqa: E731
        else:
            if lowered not in ("=", "!="):
                raise self.fail("a boolean annotation takes = or !=", op)
            want = value.value.lower() == "true"
            kind = lambda v: isinstance(v, bool)  # noqa: E731
        test = _compare(lowered, want)

        def annotation(facts: _Facts) -> bool:
            return any(kind(found) and test(found) for found in facts.annotation(key))

        return annotation


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end"
    if token.kind == "string":
        return "a string"
    if token.kind == "number":
        return "a number"
    return repr(token.value)


def compile_expression(text: str) -> Callable[[_Facts], bool]:
    """The expression's predicate over a trace's facts; raises FilterError."""
    predicate: Callable[[_Facts], bool] = _Parser(text, _tokens(text)).parse()
    return predicate
