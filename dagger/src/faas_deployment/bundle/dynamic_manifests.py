"""Operator dynamic manifests: validate ``env/<env>/operator/dynamic/`` and bundle it.

The operator reads Kubernetes manifest templates for function deployments from a
zip uploaded to its admin API (``docs/admin-api.md``; ``docs/design.md``, "Operator
admin API"). This module owns the two steps before the upload:

**Validation** (:func:`validate_dynamic`), every problem reported together, each
named by path:

- the directory exists and holds at least one manifest;
- every file is UTF-8 text (no NUL byte), at most :data:`MAX_FILE_BYTES`, with a
  manifest extension (:data:`MANIFEST_SUFFIXES`);
- every file parses as YAML (JSON is parsed as the YAML subset it is) once the
  template actions are neutralised (below), within the nesting and size bounds of
  :mod:`faas_deployment.core.yaml_limits`, without a key repeated in a mapping, and
  every document in it is a mapping with ``apiVersion`` and ``kind``, as
  Kubernetes objects are;
- symbolic links and special files are rejected (a link may point outside the
  directory; the bundle carries regular files only), as are names the zip could
  not carry safely (backslashes, control characters, undecodable bytes);
- hidden files and directories (``.name``) and editor back-ups (``name~``,
  ``#name#``, ``*.swp``, ``*.swo``, ``*.bak``, ``*.orig``) are left out of the
  bundle, each with a message.

**Placeholders.** The templates use Go ``text/template`` syntax, the operator's
template engine: ``{{ .FunctionName }}``, ``{{- range $k, $v := .Env }}``.
Validation replaces every action that shares its line with YAML text by the plain
scalar ``PLACEHOLDER`` and blanks every line that holds only actions (control
lines such as ``{{- if .X }}``/``{{- end }}``), so line numbers in YAML errors
still match the file; both branches of a conditional are therefore checked.
An action must be closed on the line it opens; a stray ``{{`` is reported.

**Bundle** (:func:`write_bundle`): a zip whose bytes depend only on the files'
relative paths and contents: entries sorted by their forward-slash path relative
to ``dynamic/`` (files only, no directory entries), timestamp 1980-01-01 00:00:00,
Unix permissions ``-rw-r--r--``, creator system Unix, deflate level 6, no extra
fields and no comment. The same files give a byte-identical zip with the same
zlib (Python's bundled build); its sha256 names the bundle.

**Rendered manifests** (:func:`read_objects`, ``publish-artifact --manifests DIR``):
the same walk, reads and bounds, for files applied as they are: every document a
Kubernetes object with ``apiVersion``, ``kind`` and ``metadata.name`` strings, no
``{{`` placeholder, no object twice within or across files (:class:`ObjectKey`).

**Speed and memory.** Each file is read once: the same bytes are checked and
deflated into the zip, which is written to a temporary file while validation
runs and kept only if every check passes. YAML is composed by libyaml
(``yaml.CSafeLoader``) and the checks walk the composed nodes once. A tree of at
least :data:`PARALLEL_MIN_BYTES` is checked by worker processes (one per CPU,
at most :data:`MAX_WORKERS`) while this process deflates, with at most
:data:`IN_FLIGHT_BATCHES` batches of :data:`BATCH_BYTES` waiting, so memory stays
bounded by a few batches plus the largest file, whatever the size of the tree.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, cast

import yaml

from ..core import layout, progress
from ..core.errors import Problem, UserError, ValidationError
from ..core.yaml_limits import MAX_DEPTH, MAX_NODES, limit_problem

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
"""Extensions a manifest template may have."""

MAX_FILE_BYTES = 8 * 1024 * 1024
"""Largest manifest file accepted, in bytes (Kubernetes stores an object in at most ~1.5 MiB)."""

CHUNK_BYTES = 1024 * 1024
"""Read chunk size while hashing a bundle, in bytes."""

ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
"""Timestamp of every zip entry: the earliest a zip can record."""

ZIP_FILE_MODE = 0o100644
"""Unix mode of every zip entry: a regular file, ``-rw-r--r--``."""

ZIP_CREATE_SYSTEM = 3
"""Zip "version made by" host system: 3 = Unix, so the mode above is honoured."""

ZIP_COMPRESSLEVEL = 6
"""zlib deflate level (zlib's and ``zip``'s default)."""

PLACEHOLDER = "PLACEHOLDER"
"""Plain YAML scalar put in place of a template action during validation."""

PARALLEL_MIN_BYTES = 8 * 1024 * 1024
"""Trees at least this large (bytes) are checked by worker processes; smaller ones in this process."""

MAX_WORKERS = 4
"""Most worker processes checking one tree."""

BATCH_BYTES = 1024 * 1024
"""Bytes of files handed to a worker at once."""

IN_FLIGHT_BATCHES = 8
"""Most batches handed to workers and not yet checked (bounds memory)."""

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
_ACTION = re.compile(r"\{\{.*?\}\}")
_BACKUP = re.compile(r"(~$)|(^#.*#$)|(\.(swp|swo|swx|bak|orig)$)", re.IGNORECASE)
#: Characters a zip entry name cannot carry safely: a backslash, a control character, and what Windows
#: forbids in a file name (``< > : " | ? *``; Info-ZIP's ``unzip`` and Windows' extractor refuse or
#: rewrite them), or a name ending in a dot or a space (Windows drops them).
_UNSAFE_NAME = re.compile(r'[\\\x00-\x1f\x7f<>:"|?*]|[. ]$')


@dataclass(frozen=True)
class Bundle:
    """A written bundle.

    Attributes:
        path: where the zip was written.
        sha256: hex sha256 of the zip's bytes.
        size: size of the zip, in bytes.
        entries: number of files in it.
        left_out: one message per hidden file or editor back-up left out.
    """

    path: Path
    sha256: str
    size: int
    entries: int
    left_out: tuple[str, ...] = field(default=())


def neutralise_placeholders(text: str) -> tuple[str, list[tuple[int, str]]]:
    """Make a Go-template manifest parseable as YAML, keeping line numbers.

    Only lines holding ``{{`` are touched (found with ``str.find``, so a text
    without actions costs one scan).

    Returns the text to parse and the unbalanced delimiters found, as
    ``(line number, message)`` pairs (line numbers from 1).
    """
    start = text.find("{{")
    if start < 0:
        return text, []
    pieces: list[str] = []
    unbalanced: list[tuple[int, str]] = []
    done = 0  # text[:done] is copied or replaced
    number, counted = 1, 0  # line number of text[counted]
    while start >= 0:
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        number += text.count("\n", counted, line_start)
        counted = line_start
        line = text[line_start:line_end]
        pieces.append(text[done:line_start])
        if _ACTION.search(line) and not _ACTION.sub("", line).strip():
            pieces.append("")  # a control line: {{- if ... }}, {{- end }}, {{/* comment */}}
        else:
            replaced = _ACTION.sub(PLACEHOLDER, line)
            if "{{" in replaced:  # a stray "}}" is ordinary JSON or flow YAML; a stray "{{" is not
                unbalanced.append((number, "template action not closed on its line ('{{' without '}}')"))
            pieces.append(replaced)
        done = line_end
        start = text.find("{{", line_end)
    pieces.append(text[done:])
    return "".join(pieces), unbalanced


def check_content(shown: str, data: bytes) -> list[Problem]:
    """The problems of one manifest file's bytes (empty when valid).

    Args:
        shown: the file's path as messages name it.
        data: its content (at most :data:`MAX_FILE_BYTES`).
    """
    problems: list[Problem] = []
    text = _text(shown, data, "keep only Kubernetes manifest templates in dynamic/")
    if isinstance(text, Problem):
        return [text]
    parseable, unbalanced = neutralise_placeholders(text)
    if unbalanced:
        return [Problem(shown, f"line {line}", message, "write placeholders as {{ .Field }}")
                for line, message in unbalanced]
    composed = _compose(parseable, shown)
    if isinstance(composed, Problem):
        return [composed]
    documents, duplicates = composed
    for key, mark in duplicates:
        problems.append(Problem(shown, f"line {mark.line + 1}, column {mark.column + 1}", f"duplicate key {key!r}",
                                "keep one: YAML readers silently use the last one"))
    if all(doc is None for doc in documents):
        problems.append(Problem(shown, "", "holds no YAML document; expected at least one Kubernetes object",
                                "remove the empty file or add a manifest"))
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        key = f"document {index}" if len(documents) > 1 else ""
        if not isinstance(doc, yaml.MappingNode):
            got = "list" if isinstance(doc, yaml.SequenceNode) else "scalar"
            problems.append(Problem(shown, key, f"expected a Kubernetes object (a mapping), got a {got}"))
            continue
        present = {k.value for k, v in doc.value if isinstance(k, yaml.ScalarNode) and not _is_null(v)}
        missing = [name for name in ("apiVersion", "kind") if name not in present]
        if missing:
            problems.append(Problem(shown, key, f"missing {' and '.join(missing)}; every Kubernetes object has both",
                                    "add e.g. 'apiVersion: v1' and 'kind: ConfigMap'"))
    return problems


def _text(shown: str, data: bytes, hint: str) -> str | Problem:
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


#: PyYAML's own resolver: whether a plain scalar is a string for YAML 1.1 readers (kubectl's is YAML 1.2-ish;
#: both read 5, true and 1.5 as non-strings).
_STANDARD = yaml.resolver.Resolver()


def _string(node: yaml.Node | None) -> str | None:
    """The node's text when it is a non-empty string scalar (quoted, or plain and not a number, bool or null)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR_TAG or not node.value:
        return None
    if not node.style and _STANDARD.resolve(yaml.ScalarNode, node.value, (True, False)) != _STR_TAG:
        return None
    return node.value


def _field(mapping: yaml.MappingNode, name: str) -> yaml.Node | None:
    return next((value for key, value in mapping.value if isinstance(key, yaml.ScalarNode) and key.value == name),
                None)


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
    text = _text(shown, data, "keep only Kubernetes manifests in the directory")
    if isinstance(text, Problem):
        return [text], []
    problems: list[Problem] = []
    if "{{" in text:
        problems += [Problem(shown, f"line {number}", "unrendered template placeholder ('{{'); these files are "
                             "applied as they are", "render the manifests first (helm template, kustomize build)")
                     for number, line in enumerate(text.split("\n"), start=1) if "{{" in line]
    if problems:
        return problems, []
    composed = _compose(text, shown)
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
        api_version, kind = _string(_field(doc, "apiVersion")), _string(_field(doc, "kind"))
        metadata = _field(doc, "metadata")
        name = _string(_field(metadata, "name")) if isinstance(metadata, yaml.MappingNode) else None
        namespace_node = _field(metadata, "namespace") if isinstance(metadata, yaml.MappingNode) else None
        namespace = "" if namespace_node is None or _is_null(namespace_node) else _string(namespace_node)
        wrong = [field for field, value in (("apiVersion", api_version), ("kind", kind), ("metadata.name", name),
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
    """Validate a directory of rendered Kubernetes manifests and return its files (``publish-artifact --manifests``).

    The walk of ``dynamic/`` (:func:`validate_dynamic`): the directory itself is no
    link; no symbolic link at all inside it (one leaving it would carry a file from
    elsewhere, a dangling one nothing) and no special file; names a tar carries
    safely; files of a manifest extension only, each at most :data:`MAX_FILE_BYTES`,
    read once without following links; hidden files and editor back-ups left out
    (said on ``log``). Each file by :func:`check_objects`, and no object twice
    across files.

    Returns:
        ``{relative POSIX path: bytes}``, sorted by path.

    Raises:
        ValidationError: every problem found, each named by path (never with the file's text).
    """
    directory = Path(directory)
    scan = _start(directory, log, _ARTIFACT)
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    owners: dict[ObjectKey, str] = {}
    for rel, shown, data in _readable(directory, scan, problems.append):
        found, objects = check_objects(shown, data)
        problems += found
        for key, where in objects:
            if key in owners:
                problems.append(Problem(shown, where, f"duplicate object {key} (also in {owners[key]}); applying "
                                        "both keeps only the last", "keep one of them"))
            else:
                owners[key] = f"{shown} {where}"
        files[str(rel)] = data
    _finish(directory, scan, problems, _ARTIFACT)
    return files


def _compose(text: str, shown: str) -> tuple[list[yaml.Node | None], list[tuple[str, yaml.Mark]]] | Problem:
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
        documents = [None if _is_null(node) else node for node in yaml.compose_all(text, Loader=_LOADER)]
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
    depth, nodes, duplicates = _walk(documents)
    if not screened and (depth > MAX_DEPTH or nodes > MAX_NODES):
        return Problem(shown, "", limit_problem(text, _LOADER) or f"more than {MAX_NODES} values or "
                       f"{MAX_DEPTH} levels of nesting")
    return documents, duplicates


def _walk(documents: list[yaml.Node | None]) -> tuple[int, int, list[tuple[str, yaml.Mark]]]:
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


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _left_out_reason(name: str, is_dir: bool) -> str | None:
    if name.startswith("."):
        return "hidden directory" if is_dir else "hidden file"
    if not is_dir and _BACKUP.search(name):
        return "editor back-up"
    return None


@dataclass(frozen=True)
class _Words:
    """How messages name the directory walked and what carries its files."""

    directory: str = "dynamic/"
    carrier: str = "the bundle"
    expected: str = "the operator's dynamic manifest templates"


_DYNAMIC = _Words()
_ARTIFACT = _Words("the manifests directory", "the artifact", "Kubernetes manifests")


@dataclass
class _Scan:
    """What a walk of ``dynamic/`` found: files to bundle (sorted), their total size, left-out messages, problems."""

    files: list[PurePosixPath] = field(default_factory=list)
    total_bytes: int = 0
    left_out: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _scan(directory: Path, words: _Words = _DYNAMIC) -> _Scan:
    """Walk ``directory`` without following links (file contents not read yet)."""
    found = _Scan()
    problems = found.problems
    shown_root = str(directory)
    pending = [(Path(directory), PurePosixPath())]
    while pending:  # a stack, not recursion: any depth of directories
        current, relative = pending.pop()
        if len(relative.parts) > MAX_DEPTH:
            problems.append(Problem(str(current), "", f"more than {MAX_DEPTH} directories deep",
                                    f"flatten {words.directory}"))
            continue
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(str(current), "", f"cannot list directory: {exc.strerror}"))
            continue
        for entry in entries:
            rel = relative / entry.name
            shown = f"{shown_root}/{rel}"
            try:
                entry.name.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(Problem(shown, "", "file name is not valid UTF-8", "rename it"))
                continue
            if _UNSAFE_NAME.search(entry.name):
                problems.append(Problem(shown, "", "file name holds a backslash, a control character, "
                                        "one of < > : \" | ? * or ends in a dot or a space, which "
                                        f"{words.carrier} cannot carry safely (common unzip tools refuse or "
                                        "rewrite such names)", "rename it"))
                continue
            if entry.is_symlink():
                target = os.readlink(entry.path)
                resolved = Path(os.path.realpath(entry.path))  # no error on a loop, unlike Path.resolve
                outside = not resolved.is_relative_to(os.path.realpath(directory))
                where = f"{'outside' if outside else 'inside'} {words.directory}"
                if not os.path.lexists(resolved):
                    where += ", dangling"
                problems.append(Problem(shown, "", f"symbolic link (to {target}, {where}); "
                                        f"{words.carrier} carries regular files only",
                                        "replace the link by a copy of the file"))
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            reason = _left_out_reason(entry.name, is_dir)
            if reason:
                found.left_out.append(f"{shown}: left out of {words.carrier} ({reason})")
                continue
            if is_dir:
                pending.append((Path(entry.path), rel))
            elif entry.is_file(follow_symlinks=False):
                if not entry.name.lower().endswith(MANIFEST_SUFFIXES):
                    problems.append(Problem(shown, "", f"not a manifest: expected one of "
                                            f"{', '.join(MANIFEST_SUFFIXES)}",
                                            f"move other files out of {words.directory} or rename the manifest"))
                    continue
                found.files.append(rel)
                found.total_bytes += entry.stat(follow_symlinks=False).st_size
            else:
                problems.append(Problem(shown, "", "not a regular file (device, socket or pipe)", "remove it"))
    found.files.sort(key=str)
    return found


def _read(path: Path, shown: str) -> bytes | Problem:
    """A file's bytes through :func:`repofiles.read_bytes` (a regular file, read once without following a
    link); a :class:`Problem` when refused, unreadable or too large."""
    from ..core import repofiles

    try:
        return repofiles.read_bytes(path.parent, path.name, limit=MAX_FILE_BYTES)
    except repofiles.NotReadable as err:
        if err.reason.startswith("larger than"):
            return Problem(shown, "", f"file is {os.lstat(path).st_size} bytes, more than the {MAX_FILE_BYTES} "
                           f"accepted", "split it into smaller templates")
        if err.missing:  # gone since the scan
            return Problem(shown, "", "cannot be read: no such file (removed while being read?)", "retry")
        hint = "make it readable" if err.reason.startswith("cannot be read") else "remove it"
        return Problem(shown, "", err.reason, hint)


def _check_batch(batch: list[tuple[str, bytes] | Problem]) -> list[Problem]:
    """The problems of a batch of ``(shown path, bytes)``, in order (a worker process's task).

    A :class:`Problem` in the batch (a file that could not be read) is passed on in its place.
    """
    return [problem for item in batch
            for problem in ([item] if isinstance(item, Problem) else check_content(*item))]


class _Checker:
    """Checks file contents in submission order: here, or in worker processes for a large tree."""

    def __init__(self, total_bytes: int):
        self.problems: list[Problem] = []
        self._batch: list[tuple[str, bytes] | Problem] = []
        self._batch_bytes = 0
        self._waiting: deque[Future[list[Problem]]] = deque()
        self._pool = _pool(total_bytes)

    def __enter__(self) -> _Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, shown: str, data: bytes) -> None:
        if self._pool is None:
            self.problems += check_content(shown, data)
            return
        self._batch.append((shown, data))
        self._batch_bytes += len(data)
        if self._batch_bytes >= BATCH_BYTES:
            self._send()

    def report(self, problem: Problem) -> None:
        """A problem found without checking content (an unreadable file), kept in its place."""
        if self._pool is None:
            self.problems.append(problem)
        else:
            self._batch.append(problem)

    def finish(self) -> list[Problem]:
        """Every problem found, in submission order."""
        if self._batch:
            self._send()
        while self._waiting:
            self.problems += self._waiting.popleft().result()
        return self.problems

    def _send(self) -> None:
        assert self._pool is not None
        while len(self._waiting) >= IN_FLIGHT_BATCHES:
            self.problems += self._waiting.popleft().result()
        self._waiting.append(self._pool.submit(_check_batch, self._batch))
        self._batch, self._batch_bytes = [], 0


def _pool(total_bytes: int) -> ProcessPoolExecutor | None:
    """Worker processes for a tree of ``total_bytes``; ``None`` to check in this process.

    Workers are forked when this process runs one thread (the cheapest start), and
    started from a fork server otherwise (forking a multi-threaded process can copy
    a lock another thread holds).
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if total_bytes < PARALLEL_MIN_BYTES or cpus < 2:
        return None
    import multiprocessing  # a small tree (``check``'s dynamic/) starts no workers: no pool machinery imported
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if threading.active_count() == 1 else "forkserver"
    if method not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    try:
        return ProcessPoolExecutor(max_workers=min(cpus, MAX_WORKERS), mp_context=context)
    except (OSError, ImportError):  # no /dev/shm for the pool's semaphores: check here, only slower
        return None


def _readable(
    directory: Path, scan: _Scan, report: Callable[[Problem], None]
) -> Iterator[tuple[PurePosixPath, str, bytes]]:
    """Each scanned file's ``(relative path, shown path, bytes)``, read once; an unreadable one goes to ``report``."""
    for rel in scan.files:
        shown = f"{directory}/{rel}"
        data = _read(directory / rel, shown)
        if isinstance(data, Problem):
            report(data)
        else:
            yield rel, shown, data


def _entries(directory: Path, scan: _Scan, checker: _Checker) -> Iterator[tuple[PurePosixPath, bytes]]:
    """Each readable file's ``(relative path, bytes)``, read once and handed to ``checker``."""
    for rel, shown, data in _readable(directory, scan, checker.report):
        checker.submit(shown, data)
        yield rel, data


def _start(directory: Path, log: Callable[[str], None] | None, words: _Words = _DYNAMIC) -> _Scan:
    """Check the directory itself and scan it; left-out messages go to ``log``."""
    linked = _linked(directory)
    if linked is not None:
        raise ValidationError([Problem(str(linked), "", f"symbolic link (to {os.readlink(linked)}); {words.carrier} "
                                       "takes files from the directory itself only",
                                       "replace the link by the directory itself")])
    if not directory.exists():
        raise ValidationError([Problem(str(directory), "", f"directory not found; expected {words.expected} here",
                                       "create it with at least one manifest")])
    if not directory.is_dir():
        raise ValidationError([Problem(str(directory), "", "not a directory",
                                       f"{words.directory} must be a directory of manifests")])
    scan = _scan(directory, words)
    if log:
        for message in scan.left_out:
            log(message)
    return scan


def _finish(directory: Path, scan: _Scan, content_problems: list[Problem], words: _Words = _DYNAMIC) -> None:
    """Raise :class:`ValidationError` with every problem found, if any."""
    problems = scan.problems + content_problems
    if not scan.files and not any(p.path.startswith(f"{directory}/") for p in problems):
        problems.append(Problem(str(directory), "", "holds no manifest; expected at least one "
                                f"{'/'.join(MANIFEST_SUFFIXES)} file", f"add {words.expected}"))
    if problems:
        raise ValidationError(problems)


def validate_dynamic(directory: Path, *, log: Callable[[str], None] | None = progress.note) -> list[PurePosixPath]:
    """Validate a ``dynamic/`` directory; return the files to bundle.

    Args:
        directory: the ``env/<env>/operator/dynamic`` directory.
        log: receives one message per hidden file or editor back-up left out
            (default: :func:`progress.note`, standard error; ``None`` for silence).

    Returns:
        The relative paths of the manifests, sorted by their forward-slash form.

    Raises:
        ValidationError: every problem found (see the module docstring), each
            named by path.
    """
    directory = Path(directory)
    scan = _start(directory, log)
    with _Checker(scan.total_bytes) as checker:
        for _ in _entries(directory, scan, checker):
            pass
        problems = checker.finish()
    _finish(directory, scan, problems)
    return scan.files


def _linked(directory: Path) -> Path | None:
    """``directory`` itself, or the ``env/<env>`` and ``operator`` above a ``dynamic/``, if one is a symbolic link."""
    directory = Path(directory)
    candidates = [directory]
    if (directory.name == layout.DYNAMIC and len(directory.parents) >= 3
            and directory.parents[2].name == layout.ENV_ROOT):
        candidates += [directory.parent, directory.parent.parent]
    return next((path for path in candidates if path.is_symlink()), None)


def _zip_info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.external_attr = ZIP_FILE_MODE << 16
    info.create_system = ZIP_CREATE_SYSTEM
    info.compress_type = zipfile.ZIP_DEFLATED
    if hasattr(info, "compress_level"):  # Python >= 3.13
        info.compress_level = ZIP_COMPRESSLEVEL
    else:
        info._compresslevel = ZIP_COMPRESSLEVEL  # type: ignore[attr-defined]  # its name before Python 3.13
    info.file_size = size  # lets zipfile choose zip64 up front for very large files
    return info


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks of :data:`CHUNK_BYTES`."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_parents(path: Path) -> list[Path]:
    """The ancestors of ``path`` that do not exist yet, outermost first."""
    return [parent for parent in reversed(path.parents) if not parent.exists()]


def write_bundle(directory: Path, out: Path, *, log: Callable[[str], None] | None = progress.note) -> Bundle:
    """Validate ``directory`` and write its reproducible zip bundle to ``out``.

    The zip is written to a temporary file beside ``out`` while the files are
    checked, and renamed into place only when every check passed, so ``out`` is
    either the complete bundle or untouched (and directories made for it are
    removed again).

    Args:
        directory: the ``env/<env>/operator/dynamic`` directory.
        out: the zip file to write (parent directories are created).
        log: receives the messages about files left out (default: :func:`progress.note`).

    Returns:
        The :class:`Bundle` (path, sha256, size in bytes, entry count).

    Raises:
        ValidationError: the directory is invalid; nothing is written.
        UserError: ``out`` lies inside ``directory`` or cannot be written.
    """
    directory, out = Path(directory), Path(out)
    scan = _start(directory, log)
    refusal: UserError | None = None
    if out.resolve().is_relative_to(directory.resolve()):
        refusal = UserError(f"--out {out}: the bundle cannot be written inside {directory} "
                            "(it would end up in the next bundle); choose a path outside it")
    made = _missing_parents(out)
    handle = None
    if refusal is None and not scan.problems:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False)
        except OSError as exc:
            refusal = UserError(f"--out {out}: cannot write the bundle there: {exc.strerror}")
    tmp = Path(handle.name) if handle else None
    try:
        with _Checker(scan.total_bytes) as checker:
            if handle is None:  # report every problem, write nothing
                for _ in _entries(directory, scan, checker):
                    pass
            else:
                with handle, zipfile.ZipFile(handle, "w") as archive:
                    for rel, data in _entries(directory, scan, checker):
                        archive.writestr(_zip_info(str(rel), len(data)), data)
            problems = checker.finish()
        _finish(directory, scan, problems)
        if refusal:
            raise refusal
        assert tmp is not None
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as exc:
        _discard(tmp, made)
        raise UserError(f"--out {out}: cannot write the bundle: {exc.strerror or exc}") from None
    except BaseException:
        _discard(tmp, made)
        raise
    return Bundle(path=out, sha256=sha256_file(out), size=out.stat().st_size, entries=len(scan.files),
                  left_out=tuple(scan.left_out))


def _discard(tmp: Path | None, made: list[Path]) -> None:
    """Remove the temporary zip and the directories made for it (those still empty)."""
    if tmp is not None:
        tmp.unlink(missing_ok=True)
    for directory in reversed(made):
        try:
            directory.rmdir()
        except OSError:
            break


def dynamic_dir(source: Path, env: str) -> Path:
    """``<source>/env/<env>/operator/dynamic``: where an environment's templates live (``docs/design.md``)."""
    return layout.dynamic_dir(source, env)


def check_env(source: Path, env: str, *, log: Callable[[str], None] | None = progress.note) -> list[Problem]:
    """The problems of ``env``'s ``dynamic/`` directory (empty when valid), for ``check``.

    An environment without an ``operator`` component has no dynamic manifests and
    no problems; one with an operator must have a valid ``dynamic/``.
    """
    directory = dynamic_dir(source, env)
    if not directory.parent.is_dir():
        return []
    try:
        validate_dynamic(directory, log=log)
    except ValidationError as exc:
        return list(exc.problems)
    return []


def bundle_line(bundle: Bundle) -> str:
    """``bundle <path> sha256:<hex> (<bytes> bytes, <n> files)``: what the front ends print."""
    return f"bundle {bundle.path} sha256:{bundle.sha256} ({bundle.size} bytes, {bundle.entries} files)"
