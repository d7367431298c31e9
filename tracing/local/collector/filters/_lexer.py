"""Tokens of a filter expression, and the error every stage raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class FilterError(ValueError):
    """A filter expression that cannot be parsed or is not supported locally.

    Attributes:
        reason: What is wrong, in one line.
        column: Where, 1-based in the expression.
        text: The expression.
    """

    def __init__(self, reason: str, column: int, text: str) -> None:
        self.reason = reason
        self.column = column
        self.text = text
        shown = text.replace("\n", " ").replace("\t", " ")
        super().__init__(f"{reason} (column {column})\n  {shown}\n  {' ' * (column - 1)}^")


# -- tokens ------------------------------------------------------------------------

_PUNCT = {"(": "(", ")": ")", "{": "{", "}": "}", ",": ",", ":": ":"}
_COMPARE = ("<=", ">=", "!=", "=", "<", ">")
_WORD_OPS = frozenset({"contains", "beginswith", "endswith"})
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "/": "/"}


@dataclass(frozen=True)
class _Token:
    kind: str  # word, string, number, op, !, ( ) { } , :, end; bad (value: why)
    value: Any
    column: int


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        column = i + 1
        if char.isspace():
            i += 1
        elif char in _PUNCT:
            found.append(_Token(char, char, column))
            i += 1
        elif char == '"':
            i, value = _string(text, i)
            found.append(_Token("string", value, column))
        elif char.isascii() and (char.isdigit() or (char == "-" and text[i + 1 : i + 2].isdigit())):
            j = i + 1
            while j < size and text[j].isascii() and (text[j].isdigit() or text[j] == "."):
                j += 1
            try:
                number = float(text[i:j])
            except ValueError:
                raise FilterError(f"bad number {text[i:j]!r}", column, text) from None
            found.append(_Token("number", number, column))
            i = j
        elif char.isascii() and (char.isalpha() or char == "_"):
            j = i + 1
            while j < size and text[j].isascii() and (text[j].isalnum() or text[j] in "_."):
                j += 1
            found.append(_Token("word", text[i:j], column))
            i = j
        elif char == "#":  # (the parser reports it, unless it fails earlier in the text)
            found.append(_Token("bad", "not supported locally: JSON values (#[...])", column))
            break
        else:
            op = next((o for o in _COMPARE if text.startswith(o, i)), None)
            if op is None and char == "!":
                found.append(_Token("!", "!", column))
                i += 1
            elif op is None:
                found.append(_Token("bad", f"unexpected character {char!r}", column))
                break
            else:
                found.append(_Token("op", op, column))
                i += len(op)
    found.append(_Token("end", None, size + 1))
    return found


def _string(text: str, start: int) -> tuple[int, str]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return i + 1, "".join(out)
        if char == "\\":
            escaped = _ESCAPES.get(text[i + 1 : i + 2])
            if escaped is None:
                raise FilterError('bad escape: use \\" \\\\ \\n or \\t', i + 1, text)
            out.append(escaped)
            i += 2
        else:
            out.append(char)
            i += 1
    raise FilterError("unterminated string", start + 1, text)
