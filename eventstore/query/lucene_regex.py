"""Lucene's regular expressions (``field:/.../``) matched in Python with Lucene's meaning.

Lucene's syntax is not Python's: the whole value must match (no anchors: ``^`` and ``$`` are
plain characters), ``.`` matches a newline too, ``\\`` makes any character literal (``\\d`` is a
``d``), ``"..."`` is a literal string, and Elasticsearch's query string enables the optional
operators: ``~X`` (any string but X), ``X&Y`` (both), ``@`` (any string), ``#`` (nothing),
``<n-m>`` (a decimal number in the range, zero-padded to a fixed width when both bounds have
the same number of digits, with any leading zeros otherwise).

``compile_lucene`` parses once into a small tree; a pattern without ``~`` or ``&`` becomes a
Python ``re`` (fast), one with them an automaton from ``greenery`` (complement and intersection
are automaton operations no backtracking regex has). Hand-written parser: Lucene's grammar
(``org.apache.lucene.util.automaton.RegExp``) has no Python implementation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

MAX_INTERVAL = 5000  # numbers a <n-m> interval may name (each becomes an alternative)
#: How deep a regex may nest: groups, ``~`` complements and repeats (``a**``) each add a level to the
#: tree, which the parser and both compilers walk recursively (300 nested groups ran out of Python's
#: stack: a RecursionError, not a bad-regex error). Lucene's own regexes in queries nest a few deep.
MAX_DEPTH = 20


@dataclass(frozen=True, slots=True)
class _Node:
    op: str  # lit any anystr empty class concat union inter compl repeat interval
    args: tuple[Any, ...] = ()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.depth = 0

    def deeper(self, levels: int = 1) -> None:
        """Enter ``levels`` more levels of the tree (the parser recurses once per group and ``~``)."""
        self.depth += levels
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} deep")

    def error(self, message: str) -> ValueError:
        return ValueError(f"bad regular expression /{self.text}/: {message} at {self.i}")

    def peek(self, chars: str) -> bool:
        return self.i < len(self.text) and self.text[self.i] in chars

    def union(self) -> _Node:
        parts = [self.inter()]
        while self.peek("|"):
            self.i += 1
            parts.append(self.inter())
        return parts[0] if len(parts) == 1 else _Node("union", tuple(parts))

    def inter(self) -> _Node:
        parts = [self.concat()]
        while self.peek("&"):
            self.i += 1
            parts.append(self.concat())
        return parts[0] if len(parts) == 1 else _Node("inter", tuple(parts))

    def concat(self) -> _Node:
        parts = []
        while self.i < len(self.text) and not self.peek("|&)"):
            parts.append(self.repeat())
        return parts[0] if len(parts) == 1 else _Node("concat", tuple(parts))

    def repeat(self) -> _Node:
        node = self.complement()
        repeats = 0
        while self.peek("*+?{"):
            ch = self.text[self.i]
            self.deeper()  # each repeat wraps the node once more
            repeats += 1
            self.i += 1
            if ch == "*":
                node = _Node("repeat", (node, 0, None))
            elif ch == "+":
                node = _Node("repeat", (node, 1, None))
            elif ch == "?":
                node = _Node("repeat", (node, 0, 1))
            else:
                m = re.compile(r"(\d+)(,(\d*))?}").match(self.text, self.i)
                if m is None:
                    raise self.error("expected {n}, {n,} or {n,m}")
                self.i = m.end()
                low = int(m.group(1))
                high = low if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                node = _Node("repeat", (node, low, high))
        self.depth -= repeats
        return node

    def complement(self) -> _Node:
        if self.peek("~"):
            self.deeper()
            self.i += 1
            node = _Node("compl", (self.complement(),))
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> _Node:
        if self.i >= len(self.text):
            raise self.error("unexpected end")
        ch = self.text[self.i]
        self.i += 1
        if ch == ".":
            return _Node("any")
        if ch == "@":
            return _Node("anystr")
        if ch == "#":
            return _Node("empty")
        if ch == "(":
            self.i -= 1  # the error names the group's "("
            self.deeper()
            self.i += 1
            node = _Node("concat", ()) if self.peek(")") else self.union()
            if not self.peek(")"):
                raise self.error("expected )")
            self.i += 1
            self.depth -= 1
            return node
        if ch == '"':
            end = self.text.find('"', self.i)
            if end < 0:
                raise self.error('expected "')
            literal = self.text[self.i:end]
            self.i = end + 1
            return _Node("concat", tuple(_Node("lit", (c,)) for c in literal))
        if ch == "[":
            return self.char_class()
        if ch == "<":
            m = re.compile(r"(\d+)-(\d+)>").match(self.text, self.i)
            if m is None:
                raise self.error("expected <n-m>")
            self.i = m.end()
            low, high = m.group(1), m.group(2)
            if int(low) > int(high):
                raise self.error("interval bounds in the wrong order")
            return _Node("interval", (int(low), int(high), len(low) if len(low) == len(high) else 0))
        if ch == "\\":
            if self.i >= len(self.text):
                raise self.error("unexpected end after \\")
            ch = self.text[self.i]
            self.i += 1
            if ch.isascii() and ch.isalpha():
                return _Node("class", (ch.isupper(), _SHORTHAND[self.shorthand(ch)]))
        elif ch in ")*+?{|&":
            raise self.error(f"unexpected {ch!r}")
        return _Node("lit", (ch,))

    def char_class(self) -> _Node:
        negated = self.peek("^")
        if negated:
            self.i += 1
        items: list[tuple[str, str]] = []
        while not self.peek("]"):
            if self.i >= len(self.text):
                raise self.error("expected ]")
            nxt = self.text[self.i + 1:self.i + 2]
            if self.text[self.i] == "\\" and nxt.isascii() and nxt.isalpha():
                self.i += 2
                if nxt.isupper():
                    raise self.error(f"negated class \\{nxt} inside [...] is not supported")
                items.extend(_SHORTHAND[self.shorthand(nxt)])
                continue
            low = self.class_char()
            high = low
            if self.peek("-") and self.i + 1 < len(self.text) and self.text[self.i + 1] != "]":
                self.i += 1
                high = self.class_char()
            items.append((low, high))
        self.i += 1
        if not items:
            raise self.error("empty character class")
        return _Node("class", (negated, tuple(items)))

    def shorthand(self, ch: str) -> str:
        """Lucene 9's ``\\d \\s \\w`` (upper case: the complement); any other escaped letter is refused."""
        if ch.lower() not in _SHORTHAND:
            raise self.error(f"invalid character class \\{ch}")
        return ch.lower()

    def class_char(self) -> str:
        ch = self.text[self.i]
        self.i += 1
        if ch == "\\" and self.i < len(self.text):
            ch = self.text[self.i]
            self.i += 1
            if ch.isascii() and ch.isalpha():
                raise self.error(f"character class \\{ch} inside [...] is not supported")
        return ch


#: Lucene 9's shorthand classes (ASCII only: ``\\w`` does not match ``é``).
_SHORTHAND: dict[str, tuple[tuple[str, str], ...]] = {
    "d": (("0", "9"),),
    "s": ((" ", " "), ("\t", "\r"), ("\x0b", "\x0b")),  # \t \n \v \f \r
    "w": (("a", "z"), ("A", "Z"), ("0", "9"), ("_", "_")),
}


def _numbers(low: int, high: int, width: int) -> list[str]:
    if high - low >= MAX_INTERVAL:
        raise ValueError(f"numeric interval <{low}-{high}> is wider than {MAX_INTERVAL} numbers")
    return [str(n).zfill(width) for n in range(low, high + 1)]


def _python(node: _Node) -> str:
    """The node as a Python regex (only for trees without complement or intersection)."""
    op, args = node.op, node.args
    if op == "lit":
        return re.escape(args[0])
    if op == "any":
        return "[\\s\\S]"
    if op == "anystr":
        return "[\\s\\S]*"
    if op == "empty":
        return "(?!)"
    if op == "class":
        negated, items = args
        body = "".join(re.escape(a) if a == b else f"{re.escape(a)}-{re.escape(b)}" for a, b in items)
        return f"[{'^' if negated else ''}{body}]"
    if op == "concat":
        return "(?:" + "".join(_python(a) for a in args) + ")"
    if op == "union":
        return "(?:" + "|".join(_python(a) for a in args) + ")"
    if op == "repeat":
        inner, low, high = args
        return f"(?:{_python(inner)}){{{low},{'' if high is None else high}}}"
    if op == "interval":
        low, high, width = args
        alts = "|".join(_numbers(low, high, width))
        return f"(?:{alts})" if width else f"(?:0*(?:{alts}))"
    raise ValueError(f"no Python regex for {op}")


def _fsm(node: _Node) -> Any:
    """The node as a greenery automaton (complement and intersection need one)."""
    from greenery import parse as gparse

    op, args = node.op, node.args
    if op in ("lit", "any", "class", "interval", "empty"):
        if op == "interval":
            low, high, width = args
            alts = "|".join(_numbers(low, high, width))
            return gparse(f"({alts})" if width else f"0*({alts})").to_fsm()
        if op == "empty":
            a = gparse("a").to_fsm()
            return a.difference(a)
        if op == "lit":
            return gparse(_gescape(args[0])).to_fsm()
        if op == "any":
            return gparse(".").to_fsm()
        negated, items = args
        body = "".join(_gescape(a, in_class=True) if a == b else f"{_gescape(a, True)}-{_gescape(b, True)}"
                       for a, b in items)
        return gparse(f"[{'^' if negated else ''}{body}]").to_fsm()
    if op == "anystr":
        return gparse(".*").to_fsm()
    if op == "concat":
        if not args:
            return gparse("").to_fsm()
        out = _fsm(args[0])
        for a in args[1:]:
            out = out.concatenate(_fsm(a))
        return out
    if op == "union":
        out = _fsm(args[0])
        for a in args[1:]:
            out = out.union(_fsm(a))
        return out
    if op == "inter":
        out = _fsm(args[0])
        for a in args[1:]:
            out = out.intersection(_fsm(a))
        return out
    if op == "compl":
        return _fsm(args[0]).everythingbut()
    if op == "repeat":
        inner, low, high = args
        f = _fsm(inner)
        out = f.times(low) if low else gparse("").to_fsm()
        if high is None:
            return out.concatenate(f.star())
        optional = f.union(gparse("").to_fsm())
        for _ in range(high - low):
            out = out.concatenate(optional)
        return out
    raise ValueError(f"unknown regex node {op}")


def _gescape(ch: str, in_class: bool = False) -> str:
    """One character for greenery's parser, which knows fewer escapes than ``re``."""
    special = "\\]^-[" if in_class else "\\.[](){}*+?|"
    return "\\" + ch if ch in special else ch


def _needs_fsm(node: _Node) -> bool:
    return node.op in ("compl", "inter") or any(isinstance(a, _Node) and _needs_fsm(a) for a in node.args)


@lru_cache(maxsize=512)
def compile_lucene(pattern: str) -> Callable[[str], bool]:
    """Whether a whole value matches the Lucene regex; raises ``ValueError`` if it is not one."""
    parser = _Parser(pattern)
    node = parser.union()
    if parser.i != len(pattern):
        raise parser.error(f"unexpected {pattern[parser.i]!r}")
    if _needs_fsm(node):
        fsm = _fsm(node)
        return lambda value: bool(fsm.accepts(value))
    rx = re.compile(_python(node))
    return lambda value: rx.fullmatch(value) is not None
