"""The operator's ``dynamic/`` templates: validate ``env/<env>/operator/dynamic/``.

The operator reads Kubernetes manifest templates for function deployments from a
bundle uploaded to its admin API (``docs/admin-api.md``; ``docs/design.md``,
"Operator admin API"). This module checks them before they are bundled
(:mod:`.archive`) and uploaded (:mod:`.admin_api`); every problem is reported
together, each named by path:

- the walk (:mod:`.walk`): the directory exists and holds at least one template;
  no symbolic link or special file, names a zip carries safely, a manifest
  extension, at most :data:`~.walk.MAX_FILE_BYTES` each; hidden files and editor
  back-ups left out, each with a message;
- every file is UTF-8 text (no NUL byte) and parses as YAML (JSON is parsed as
  the YAML subset it is) once the template actions are neutralised (below),
  within the nesting and size bounds of :mod:`faas_deployment.core.yaml_limits`,
  without a key repeated in a mapping (:mod:`.yaml_nodes`), and every document
  in it is a mapping with ``apiVersion`` and ``kind``, as Kubernetes objects are.

**Placeholders.** The templates use Go ``text/template`` syntax, the operator's
template engine: ``{{ .FunctionName }}``, ``{{- range $k, $v := .Env }}``.
Validation replaces every action that shares its line with YAML text by the plain
scalar :data:`PLACEHOLDER` and blanks every line that holds only actions (control
lines such as ``{{- if .X }}``/``{{- end }}``), so line numbers in YAML errors
still match the file; both branches of a conditional are therefore checked.
An action must be closed on the line it opens; a stray ``{{`` is reported.

**Speed and memory.** Each file is read once (:func:`entries` hands the same
bytes to the checks and to the zip). A tree of at least
:data:`PARALLEL_MIN_BYTES` is checked by worker processes (one per CPU, at most
:data:`MAX_WORKERS`) while the caller deflates, with at most
:data:`IN_FLIGHT_BATCHES` batches of :data:`BATCH_BYTES` waiting, so memory stays
bounded by a few batches plus the largest file, whatever the size of the tree.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import yaml

from ..core import layout, progress
from ..core.errors import Problem, ValidationError
from . import walk
from .yaml_nodes import compose, decode, is_null

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

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


_ACTION = re.compile(r"\{\{.*?\}\}")


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
    """The problems of one template file's bytes (empty when valid); never raises.

    Args:
        shown: the file's path as messages name it.
        data: its content (at most :data:`~.walk.MAX_FILE_BYTES`).
    """
    problems: list[Problem] = []
    text = decode(shown, data, "keep only Kubernetes manifest templates in dynamic/")
    if isinstance(text, Problem):
        return [text]
    parseable, unbalanced = neutralise_placeholders(text)
    if unbalanced:
        return [Problem(shown, f"line {line}", message, "write placeholders as {{ .Field }}")
                for line, message in unbalanced]
    composed = compose(parseable, shown)
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
        present = {k.value for k, v in doc.value if isinstance(k, yaml.ScalarNode) and not is_null(v)}
        missing = [name for name in ("apiVersion", "kind") if name not in present]
        if missing:
            problems.append(Problem(shown, key, f"missing {' and '.join(missing)}; every Kubernetes object has both",
                                    "add e.g. 'apiVersion: v1' and 'kind: ConfigMap'"))
    return problems


def _check_batch(batch: list[tuple[str, bytes] | Problem]) -> list[Problem]:
    """The problems of a batch of ``(shown path, bytes)``, in order (a worker process's task).

    A :class:`Problem` in the batch (a file that could not be read) is passed on in its place.
    """
    return [problem for item in batch
            for problem in ([item] if isinstance(item, Problem) else check_content(*item))]


class Checker:
    """Checks template contents (:func:`check_content`) in submission order: here, or in worker processes for a
    tree of at least :data:`PARALLEL_MIN_BYTES` (``total_bytes``, from the walk).

    Used as a context manager (leaving it stops the workers): :meth:`submit` each file's bytes,
    :meth:`report` each unreadable file's problem, then :meth:`finish` for every problem in order.
    """

    def __init__(self, total_bytes: int):
        self.problems: list[Problem] = []
        self._batch: list[tuple[str, bytes] | Problem] = []
        self._batch_bytes = 0
        self._waiting: deque[Future[list[Problem]]] = deque()
        self._pool = _pool(total_bytes)

    def __enter__(self) -> Checker:
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


def entries(directory: Path, scan: walk.Scan, checker: Checker) -> Iterator[tuple[PurePosixPath, bytes]]:
    """Each readable file's ``(relative path, bytes)``, read once and handed to ``checker``."""
    for rel, shown, data in walk.readable(directory, scan, checker.report):
        checker.submit(shown, data)
        yield rel, data


def validate_dynamic(directory: Path, *, log: Callable[[str], None] | None = progress.note) -> list[PurePosixPath]:
    """Validate a ``dynamic/`` directory; return the files to bundle.

    Args:
        directory: the ``env/<env>/operator/dynamic`` directory.
        log: receives one message per hidden file or editor back-up left out
            (default: :func:`progress.note`, standard error; ``None`` for silence).

    Returns:
        The relative paths of the manifests, sorted by their forward-slash form.

    Raises:
        ValidationError: every problem found (the walk's and each template's, see
            the module docstring), each named by path.
    """
    directory = Path(directory)
    scan = walk.start(directory, log)
    with Checker(scan.total_bytes) as checker:
        for _ in entries(directory, scan, checker):
            pass
        problems = checker.finish()
    walk.finish(directory, scan, problems)
    return scan.files


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
