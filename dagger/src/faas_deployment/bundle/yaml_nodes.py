"""YAML texts of manifest files composed to nodes within bounds: for :mod:`.templates` and :mod:`.objects`.

Shared by the ``dynamic/`` templates and the rendered objects of
``publish-artifact --objects``:

- :func:`decode` reads a file's bytes as UTF-8 text (no NUL byte, the byte-order
  mark dropped), or gives the one :class:`~faas_deployment.core.errors.Problem`
  naming the line of the first undecodable byte;
- :func:`compose` composes every YAML document of a text (JSON is parsed as the
  YAML subset it is) by libyaml (``yaml.CSafeLoader``), within the nesting and
  size bounds of :mod:`faas_deployment.core.yaml_limits`, and lists the keys
  repeated in a mapping; an error is one Problem with libyaml's fixed message, its
  line and column, never the file's text;
- :func:`is_null`, :func:`string` and :func:`field` read the composed nodes as
  the checks need them (null as PyYAML's YAML 1.1 resolver reads it).

The composed nodes are walked once, without recursion, so any nesting the bounds
admit is measured without exhausting the stack.
"""

from __future__ import annotations

import gc
from typing import cast

import yaml

from ..core.errors import Problem
from ..core.yaml_limits import MAX_DEPTH, MAX_NODES, limit_problem

DIRECT_COMPOSE_INDICATORS = 2000
"""Texts with at most this many ``[ { - ? :`` characters are composed without an event pre-pass.

Each mapping or sequence starts at an indicator of its own (``[``, ``{``, ``-``,
``?`` or the ``:`` of its first entry), so such a text nests at most this deep:
far below the ~20,000 levels where libyaml's recursive composer would exhaust the
C stack. Deeper-looking texts, and texts with anchors (``&``: aliases can stand
for billions of nodes), go through :func:`~faas_deployment.core.yaml_limits.limit_problem`
first; the bounds themselves are the same for every text."""


_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_BASE_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_STR_TAG, _MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Loader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """The safe loader, resolving only the tags the checks read: null and the merge key ``<<``.

    The composer asks the resolver for every node's tag; PyYAML's resolver tries
    its implicit regular expressions (bool, int, float, timestamp, ...) and path
    resolvers, a third of the composition's time. The checks need only whether a
    plain scalar is null (``~``, ``null``, ``Null``, ``NULL`` or empty, YAML 1.1 as
    PyYAML's ``Resolver`` reads it) or the merge key; every other scalar is tagged
    ``str``. Syntax errors, marks and structure are libyaml's, unchanged.
    """

    def descend_resolver(self, current_node: object, current_index: object) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type, value: object, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0] and value in _NULLS:
                return _NULL_TAG
            if implicit[0] and value == "<<":
                return _MERGE_TAG
            return _STR_TAG
        return _MAP_TAG if kind is yaml.MappingNode else _SEQ_TAG


_LOADER = _Loader


def decode(shown: str, data: bytes, hint: str) -> str | Problem:
    """``data`` as UTF-8 text without its byte-order mark, or the problem (``hint`` for a binary file)."""
    if b"\x00" in data:
        return Problem(shown, "", "binary file (it holds NUL bytes); expected UTF-8 text", hint)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return Problem(shown, f"line {line}", f"not UTF-8 text (byte offset {exc.start}: {exc.reason})",
                       "re-save the file as UTF-8")
    return text.removeprefix("\ufeff")


#: PyYAML's own resolver: whether a plain scalar is a string for YAML 1.1 readers (kubectl's is YAML 1.2-ish;
#: both read 5, true and 1.5 as non-strings).
_STANDARD = yaml.resolver.Resolver()


def string(node: yaml.Node | None) -> str | None:
    """The node's text when it is a non-empty string scalar (quoted, or plain and not a number, bool or null)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR_TAG or not node.value:
        return None
    if not node.style and _STANDARD.resolve(yaml.ScalarNode, node.value, (True, False)) != _STR_TAG:
        return None
    return node.value


def field(mapping: yaml.MappingNode, name: str) -> yaml.Node | None:
    """The value of the scalar key ``name`` in ``mapping`` (the first one), or ``None``."""
    return next((value for key, value in mapping.value if isinstance(key, yaml.ScalarNode) and key.value == name),
                None)


def compose(text: str, shown: str) -> tuple[list[yaml.Node | None], list[tuple[str, yaml.Mark]]] | Problem:
    """``(documents, duplicate keys)`` of a YAML text (``None`` for a null document), or its one problem.

    A text that crosses a bound of :mod:`~faas_deployment.core.yaml_limits` is reported
    by it, before any syntax error after the crossing, as the event pass would.
    """
    screened = "&" in text or sum(map(text.count, "[{-?:")) > DIRECT_COMPOSE_INDICATORS
    if screened:
        too_big = limit_problem(text, _LOADER)
        if too_big:
            return Problem(shown, "", too_big)
    paused = gc.isenabled()
    gc.disable()  # composition allocates a node per value and frees none: collections would find nothing
    try:
        documents = [None if is_null(node) else node for node in yaml.compose_all(text, Loader=_LOADER)]
    except yaml.YAMLError as exc:
        too_big = None if screened else limit_problem(text, _LOADER)
        if too_big:
            return Problem(shown, "", too_big)
        if isinstance(exc, yaml.MarkedYAMLError):
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = " ".join(part for part in (exc.context, exc.problem) if part)
            return Problem(shown, where, f"invalid YAML: {what}",
                           "fix the syntax; template actions must sit inside a value or alone on a line")
        return Problem(shown, "", f"invalid YAML: {exc}", "fix the syntax")
    finally:
        if paused:
            gc.enable()
    depth, nodes, duplicates = _measure(documents)
    if not screened and (depth > MAX_DEPTH or nodes > MAX_NODES):
        return Problem(shown, "", limit_problem(text, _LOADER) or f"more than {MAX_NODES} values or "
                       f"{MAX_DEPTH} levels of nesting")
    return documents, duplicates


def _measure(documents: list[yaml.Node | None]) -> tuple[int, int, list[tuple[str, yaml.Mark]]]:
    """``(deepest nesting, nodes, duplicate keys as (key, mark))`` of composed documents.

    Walks each node once, without recursion (an alias is the same node again:
    counted once here; :func:`~faas_deployment.core.yaml_limits.limit_problem` counts
    aliases expanded for texts that have them). Nesting counts collections only,
    as the event pass does.
    """
    mapping, scalar = yaml.MappingNode, yaml.ScalarNode
    duplicates: list[tuple[str, yaml.Mark]] = []
    deepest, nodes = 0, 0
    seen: set[int] = set()
    pending = [(doc, 1) for doc in documents if doc is not None]
    while pending:
        node, depth = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes += 1
        kind = type(node)
        if kind is scalar:
            continue
        deepest = max(deepest, depth)
        if kind is mapping:
            keys = [key.value for key, _ in node.value if type(key) is scalar and key.tag != _MERGE_TAG]
            if len(keys) != len(set(keys)):
                duplicates += _repeated(cast(yaml.MappingNode, node))
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value
        for child in children:
            if type(child) is scalar:
                nodes += 1  # at each place it appears: exact without anchors, the only texts whose count is used
            else:
                pending.append((child, depth + 1))
    duplicates.sort(key=lambda item: (item[1].line, item[1].column))
    return deepest, nodes, duplicates


def _repeated(node: yaml.MappingNode) -> list[tuple[str, yaml.Mark]]:
    """``(key, mark)`` of each scalar key of ``node`` that repeats an earlier one."""
    keys: set[str] = set()
    found = []
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
            if key.value in keys:
                found.append((key.value, key.start_mark))
            keys.add(key.value)
    return found


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG

