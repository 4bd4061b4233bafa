"""YAML as every part of ztsoc reads it: PyYAML's safe loader (libyaml's parser when there is
one), except that a mapping with the same key twice is refused instead of keeping the last value.

Why: a rule with two ``condition:`` keys, or a policy with two ``allow:`` keys, means one thing
to the program (the last one) and may mean the other to a person reading it, so a file written
by an attacker could hide a clause in plain sight. PyYAML, pySigma's ``SigmaCollection.from_yaml``,
sigma-cli and Zircolite all keep the last value silently. Here it is a
:class:`DuplicateKeyError` (a ``yaml.YAMLError``, so code that reports bad YAML reports it too)
naming the key, where it is repeated and where it first appears.

One check for every loader (Sigma rules, exercises, playbooks, trust files, samples, guides):
``construct_mapping`` of the safe constructor, which libyaml's loader uses as well (libyaml
only parses; the constructor is Python), so the C loader stays and its speed with it: the
check is one length comparison per mapping, and keys are compared only when the mapping has
fewer entries than the YAML wrote. Merge keys (``<<: *base``) are not duplicates: a key of
the mapping itself overrides a merged one, as YAML says; two keys of the mapping itself are.
A key repeated under a merged mapping is that mapping's duplicate, reported when it is built.

Keys are compared once constructed, as Python's dict would merge them (``1`` and ``0x1``,
``yes`` and ``true``): those are duplicates for the program, so they are for the check.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_SAFE_C: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice; the mark is the second one."""

    def __init__(self, problem: str, mark: yaml.Mark | None, key: Any = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.key = key


class _NoDuplicates:
    """The check, mixed into a safe loader (pure Python or libyaml's)."""

    #: a node's own pairs, when merge keys put merged pairs in front of them (this document only)
    _own: dict[Node, list[tuple[Node, Node]]]

    def flatten_mapping(self, node: MappingNode) -> None:
        own = node.value
        super().flatten_mapping(node)  # type: ignore[misc]  # deletes merge keys from ``own`` in place
        if node.value is not own:
            if not hasattr(self, "_own"):
                self._own = {}
            self._own[node] = own

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)  # type: ignore[misc]
        if len(mapping) != len(node.value):  # fewer keys than written: a duplicate, or merged keys overridden
            own: list[tuple[Node, Node]] | None = getattr(self, "_own", {}).get(node)
            if own is None:
                own = node.value
            first: dict[Any, Node] = {}
            for key_node, _value in own:
                key = self.construct_object(key_node, deep=deep)  # type: ignore[attr-defined]  # cached
                seen = first.setdefault(key, key_node)
                if seen is not key_node:
                    line, column = seen.start_mark.line + 1, seen.start_mark.column + 1
                    key = key if isinstance(key, str | int | float | bool) or key is None else str(key)
                    raise DuplicateKeyError(f"duplicate key {key!r} (first at {line}:{column})",
                                            key_node.start_mark, key)
        return mapping

    def construct_document(self, node: Node) -> Any:
        try:
            return _plain_document(self, node)
        except Exception:  # not plain (or a scalar the constructor refuses): the constructor decides
            pass
        try:
            return super().construct_document(node)  # type: ignore[misc]
        finally:
            self._own = {}


class _NotPlain(Exception):
    """The document needs PyYAML's own constructor (see :func:`_plain_document`)."""


_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ = _TAG + "str", _TAG + "map", _TAG + "seq"
#: scalar tags whose safe constructor is a plain function of the node (no generator, no state)
_SCALARS = frozenset(_TAG + t for t in ("int", "float", "bool", "null", "timestamp"))
_KEY_TAGS = _SCALARS | {_STR}
#: containers nested deeper than this go the constructor's way (it does not recurse)
_MAX_DEPTH = 100


def _plain_document(loader: Any, root: Node) -> Any:
    """The document as the safe constructor would build it, when it holds only plain mappings,
    sequences and scalars (every Sigma rule, playbook and trust file); :class:`_NotPlain` otherwise.

    Why: PyYAML's constructor goes through ``construct_object`` for every node (a memo, a
    recursion guard, a generator per container): ~40 % of loading SigmaHQ's Windows rules with
    libyaml's parser. This walk builds the same values directly. It gives up (and the
    constructor decides, errors included) on anything else, or on any error: another tag, a merge key or
    ``=`` key, a key that is not a scalar, a key written twice (the constructor names it), a
    container inside itself, or deep nesting. A container reached twice through an alias is
    the same object twice, as the constructor makes it. ``tests/test_yaml_duplicates.py``
    compares both on generated documents.
    """
    constructors = loader.yaml_constructors
    made: dict[Node, Any] = {}

    def walk(node: Node, depth: int) -> Any:
        cls = node.__class__
        tag = node.tag
        if cls is ScalarNode:
            if tag == _STR:
                return node.value
            if tag in _SCALARS:
                return constructors[tag](loader, node)
            raise _NotPlain
        got = made.get(node)
        if got is not None:
            if got is made:  # still being built: a recursive alias
                raise _NotPlain
            return got
        if depth > _MAX_DEPTH:
            raise _NotPlain
        out: Any
        if cls is MappingNode and tag == _MAP:
            made[node] = made
            out = {}
            for key_node, value_node in node.value:
                if key_node.__class__ is not ScalarNode or key_node.tag not in _KEY_TAGS:
                    raise _NotPlain
                out[walk(key_node, depth)] = walk(value_node, depth + 1)
            if len(out) != len(node.value):
                raise _NotPlain
        elif cls is SequenceNode and tag == _SEQ:
            made[node] = made
            out = [walk(child, depth + 1) for child in node.value]
        else:
            raise _NotPlain
        made[node] = out
        return out

    return walk(root, 0)


class StrictPyLoader(_NoDuplicates, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with the duplicate-key check."""


if _SAFE_C is not None:
    class StrictCLoader(_NoDuplicates, _SAFE_C):  # type: ignore[valid-type,misc]
        """libyaml's safe loader with the duplicate-key check."""

    STRICT_LOADER: type[yaml.SafeLoader] = StrictCLoader
else:  # pragma: no cover - PyYAML built without libyaml
    STRICT_LOADER = StrictPyLoader


def load(text: str) -> Any:
    """The one document in ``text`` (None when empty); raises ``yaml.YAMLError``, including
    :class:`DuplicateKeyError`."""
    return yaml.load(text, Loader=STRICT_LOADER)


def documents(text: str, *, pure: bool = False) -> list[Any]:
    """Every document in ``text``, a document with a duplicate key as its :class:`DuplicateKeyError`
    (in its place), so a caller refuses that one and keeps the others. Any other YAML error
    ends the file (the parser cannot go on) and is raised. ``pure``: the pure-Python loader.
    """
    return each_document((StrictPyLoader if pure else STRICT_LOADER)(text))


def each_document(loader: Any) -> list[Any]:
    """:func:`documents` with a loader of the caller's (a strict loader's subclass; tests compare
    the plain walk with the constructor alone this way)."""
    out: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            try:
                out.append(loader.construct_document(node))
            except DuplicateKeyError as exc:  # the document is composed: the next one parses as usual
                loader.constructed_objects = {}
                loader.recursive_objects = {}
                loader.state_generators = []
                loader.deep_construct = False
                out.append(exc)
    finally:
        loader.dispose()
    return out
