"""Rendered Kubernetes objects read from a directory: ``publish-artifact --objects DIR``.

Unlike the ``dynamic/`` templates (:mod:`.templates`), these files are applied as
they are (``kubectl apply``, Flux's kustomize-controller), so every document must
be a complete object. :func:`read_objects` walks the directory as ``dynamic/`` is
walked (:mod:`.walk`: no link, no special file, manifest extensions, at most
:data:`~.walk.MAX_FILE_BYTES` a file, hidden files and editor back-ups left out)
and checks each file (:func:`check_objects`): UTF-8 text, YAML within the bounds
of :mod:`faas_deployment.core.yaml_limits` without a repeated key
(:mod:`.yaml_nodes`), every document a Kubernetes object with ``apiVersion``,
``kind`` and ``metadata.name`` strings, no ``{{`` placeholder, no object twice
within or across files (:class:`ObjectKey`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core import progress
from ..core.errors import Problem
from . import walk
from .yaml_nodes import compose, decode, field, is_null, string


@dataclass(frozen=True, order=True)
class ObjectKey:
    """What identifies a Kubernetes object: API group (``""`` for the core group), kind, namespace, name.

    Two objects with the same key are one object to the API server, whatever the
    version in ``apiVersion`` (``apps/v1`` and ``apps/v1beta2`` are one group): the
    later one would silently replace the earlier when applied.
    """

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


def check_objects(shown: str, data: bytes) -> tuple[list[Problem], list[tuple[ObjectKey, str]]]:
    """The problems of a file of rendered Kubernetes objects, and the objects it holds.

    The rules of a manifest in ``dynamic/`` (UTF-8 text, the bounds of
    :mod:`~faas_deployment.core.yaml_limits`, no repeated key, every document a mapping),
    and more, as the files are applied as they are (``kubectl apply``, Flux's
    kustomize-controller), not templates filled in later:

    - no template action: a line holding ``{{`` is an unrendered placeholder;
    - ``apiVersion`` and ``kind`` are strings, ``metadata`` a mapping whose ``name`` is
      a string (and ``namespace``, when present);
    - no object twice in the file (same :class:`ObjectKey`).

    Problems name the file, the line or the document, never the file's text (YAML
    errors are libyaml's fixed messages with a line and column).

    Returns:
        ``(problems, [(key, "document N"), ...])``; the objects are those whose
        identity could be read, in file order.
    """
    text = decode(shown, data, "keep only Kubernetes manifests in the directory")
    if isinstance(text, Problem):
        return [text], []
    problems: list[Problem] = []
    if "{{" in text:
        problems += [Problem(shown, f"line {number}", "unrendered template placeholder ('{{'); these files are "
                             "applied as they are", "render the manifests first (helm template, kustomize build)")
                     for number, line in enumerate(text.split("\n"), start=1) if "{{" in line]
    if problems:
        return problems, []
    composed = compose(text, shown)
    if isinstance(composed, Problem):
        return [composed], []
    documents, duplicates = composed
    for _, mark in duplicates:
        problems.append(Problem(shown, f"line {mark.line + 1}, column {mark.column + 1}", "duplicate key",
                                "keep one: YAML readers silently use the last one"))
    objects: list[tuple[ObjectKey, str]] = []
    present = [(index, doc) for index, doc in enumerate(documents, start=1) if doc is not None]
    if not present:
        problems.append(Problem(shown, "", "holds no YAML document; expected at least one Kubernetes object",
                                "remove the empty file or add a manifest"))
    seen: dict[ObjectKey, str] = {}
    for index, doc in present:
        where = f"document {index}"
        if not isinstance(doc, yaml.MappingNode):
            got = "list" if isinstance(doc, yaml.SequenceNode) else "scalar"
            problems.append(Problem(shown, where, f"expected a Kubernetes object (a mapping), got a {got}"))
            continue
        api_version, kind = string(field(doc, "apiVersion")), string(field(doc, "kind"))
        metadata = field(doc, "metadata")
        name = string(field(metadata, "name")) if isinstance(metadata, yaml.MappingNode) else None
        namespace_node = field(metadata, "namespace") if isinstance(metadata, yaml.MappingNode) else None
        namespace = "" if namespace_node is None or is_null(namespace_node) else string(namespace_node)
        wrong = [what for what, value in (("apiVersion", api_version), ("kind", kind), ("metadata.name", name),
                                          ("metadata.namespace", namespace)) if value is None]
        if wrong:
            problems.append(Problem(shown, where, f"{', '.join(wrong)}: expected a non-empty string; every Kubernetes "
                                    "object has apiVersion and kind strings and a metadata.name",
                                    "add e.g. 'apiVersion: v1', 'kind: ConfigMap', 'metadata: {name: x}'"))
            continue
        assert api_version is not None and kind is not None and name is not None and namespace is not None
        identity = ObjectKey(api_version.rpartition("/")[0], kind, namespace, name)
        if identity in seen:
            problems.append(Problem(shown, where, f"duplicate object {identity} (also {seen[identity]}); applying "
                                    "both keeps only the last", "keep one of them"))
            continue
        seen[identity] = where
        objects.append((identity, where))
    return problems, objects


def read_objects(directory: Path, *, log: Callable[[str], None] | None = progress.note) -> dict[str, bytes]:
    """Validate a directory of rendered Kubernetes objects and return its files (``publish-artifact --objects``).

    The walk of ``dynamic/`` (:func:`.templates.validate_dynamic`): the directory itself is no
    link; no symbolic link at all inside it (one leaving it would carry a file from
    elsewhere, a dangling one nothing) and no special file; names a tar carries
    safely; files of a manifest extension only, each at most :data:`~.walk.MAX_FILE_BYTES`,
    read once without following links; hidden files and editor back-ups left out
    (said on ``log``). Each file by :func:`check_objects`, and no object twice
    across files.

    Returns:
        ``{relative POSIX path: bytes}``, sorted by path.

    Raises:
        ValidationError: every problem found, each named by path (never with the file's text).
    """
    directory = Path(directory)
    scan = walk.start(directory, log, walk.ARTIFACT_WORDS)
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    owners: dict[ObjectKey, str] = {}
    for rel, shown, data in walk.readable(directory, scan, problems.append):
        found, objects = check_objects(shown, data)
        problems += found
        for key, where in objects:
            if key in owners:
                problems.append(Problem(shown, where, f"duplicate object {key} (also in {owners[key]}); applying "
                                        "both keeps only the last", "keep one of them"))
            else:
                owners[key] = f"{shown} {where}"
        files[str(rel)] = data
    walk.finish(directory, scan, problems, walk.ARTIFACT_WORDS)
    return files

