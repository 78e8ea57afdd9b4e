"""Bounds checked on a YAML text's event stream before it is composed.

PyYAML composes and constructs recursively: a document nested a few hundred
levels deep raises ``RecursionError`` in the pure-Python loader, and tens of
thousands of levels overflow the C stack of the libyaml-based loader (a crash,
not an exception). Aliases are shared, so a few kilobytes of nested aliases
("billion laughs") stand for billions of nodes once anything walks the value.
The parsers themselves are iterative state machines, so walking the *events*
(``yaml.parse``) is safe whatever the input: this module measures nesting depth
and the node count with aliases expanded, and stops at the first bound crossed.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences accepted (Kubernetes objects and
cookiecutter configs use fewer than 20 levels)."""

MAX_NODES = 1_000_000
"""Most nodes a text may stand for once every alias is expanded."""


def limit_problem(text: str, loader: Any = yaml.SafeLoader, *, max_depth: int = MAX_DEPTH,
                  max_nodes: int = MAX_NODES) -> str | None:
    """What bound ``text`` crosses, as a sentence; ``None`` when within bounds.

    Syntax errors are left to the caller's own parse (which reports them with
    their line and column): this returns ``None`` for them.

    Args:
        text: the YAML text (one or more documents).
        loader: the loader class whose parser to use (``yaml.SafeLoader`` or ``yaml.CSafeLoader``).
        max_depth: deepest nesting accepted.
        max_nodes: most nodes accepted, aliases expanded.
    """
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = []  # [anchor, nodes so far]
    total = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                stack.append([event.anchor, 1])
                if len(stack) > max_depth:
                    line = event.start_mark.line + 1 if event.start_mark else 0
                    return f"nested more than {max_depth} levels deep (at line {line}); flatten it"
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, size = stack.pop()
                if anchor:
                    sizes[anchor] = size
                if stack:
                    stack[-1][1] += size
                else:
                    total += size
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                size = 1 if isinstance(event, yaml.ScalarEvent) else sizes.get(event.anchor or "", 1)
                if isinstance(event, yaml.ScalarEvent) and event.anchor:
                    sizes[event.anchor] = 1
                if stack:
                    stack[-1][1] += size
                else:
                    total += size
            if total > max_nodes or (stack and stack[-1][1] > max_nodes):
                return f"stands for more than {max_nodes} values once its aliases (*name) are expanded; write it out"
    except yaml.YAMLError:
        return None
    return None
