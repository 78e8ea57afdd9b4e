"""Operator dynamic manifests: validate ``env/<env>/operator/dynamic/`` and bundle it.

The operator reads Kubernetes manifest templates for function deployments from a
zip uploaded to its admin API (seed 000, DESIGN.md "Operator admin API contract").
This module owns the two steps before the upload:

**Validation** (:func:`validate_dynamic`), every problem reported together, each
named by path:

- the directory exists and holds at least one manifest;
- every file is UTF-8 text (no NUL byte), at most :data:`MAX_FILE_BYTES`, with a
  manifest extension (:data:`MANIFEST_SUFFIXES`);
- every file parses as YAML (JSON is parsed as the YAML subset it is) once the
  template actions are neutralised (below), and every document in it is a mapping
  with ``apiVersion`` and ``kind``, as Kubernetes objects are;
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
zlib (Python's bundled build); its sha256 names the bundle. File contents are
streamed in chunks of :data:`CHUNK_BYTES`, so memory stays bounded by the largest
single file (read once for validation) whatever the size of the tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from .errors import Problem, UserError, ValidationError
from .yaml_limits import MAX_DEPTH, limit_problem

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
"""Extensions a manifest template may have."""

MAX_FILE_BYTES = 8 * 1024 * 1024
"""Largest manifest file accepted, in bytes (Kubernetes stores an object in at most ~1.5 MiB)."""

CHUNK_BYTES = 1024 * 1024
"""Read and write chunk size while bundling, in bytes."""

ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
"""Timestamp of every zip entry: the earliest a zip can record."""

ZIP_FILE_MODE = 0o100644
"""Unix mode of every zip entry: a regular file, ``-rw-r--r--``."""

ZIP_CREATE_SYSTEM = 3
"""Zip "version made by" host system: 3 = Unix, so the mode above is honoured."""

ZIP_COMPRESSLEVEL = 6
"""zlib deflate level (zlib's and ``zip``'s default)."""

DEFAULT_BUNDLE_DIR = Path("dist/manifests")
"""Where the CLI keeps a bundle without ``--out`` (relative to the source tree)."""

PLACEHOLDER = "PLACEHOLDER"
"""Plain YAML scalar put in place of a template action during validation."""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it: ~40x faster
_ACTION = re.compile(r"\{\{.*?\}\}")
_BACKUP = re.compile(r"(~$)|(^#.*#$)|(\.(swp|swo|swx|bak|orig)$)", re.IGNORECASE)
_UNSAFE_NAME = re.compile(r"[\\\x00-\x1f\x7f]")


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


def _stderr(message: str) -> None:
    print(f"[faas-deploy] {message}", file=sys.stderr, flush=True)


def neutralise_placeholders(text: str) -> tuple[str, list[tuple[int, str]]]:
    """Make a Go-template manifest parseable as YAML, keeping line numbers.

    Returns the text to parse and the unbalanced delimiters found, as
    ``(line number, message)`` pairs (line numbers from 1).
    """
    lines = text.split("\n")
    out: list[str] = []
    unbalanced: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if _ACTION.search(line) and not _ACTION.sub("", line).strip():
            out.append("")  # a control line: {{- if ... }}, {{- end }}, {{/* comment */}}
            continue
        replaced = _ACTION.sub(PLACEHOLDER, line)
        if "{{" in replaced:  # a stray "}}" is ordinary JSON or flow YAML; a stray "{{" is not
            unbalanced.append((number, "template action not closed on its line ('{{' without '}}')"))
        out.append(replaced)
    return "\n".join(out), unbalanced


def _check_text(path: Path, shown: str, problems: list[Problem]) -> None:
    """Check one manifest file's content; append its problems."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(Problem(shown, "", f"file is {size} bytes, more than the {MAX_FILE_BYTES} accepted",
                                    "split it into smaller templates"))
            return
        data = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(shown, "", f"cannot be read: {exc.strerror or exc}", "make it readable"))
        return
    if b"\x00" in data:
        problems.append(Problem(shown, "", "binary file (it holds NUL bytes); expected UTF-8 text",
                                "keep only Kubernetes manifest templates in dynamic/"))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.append(Problem(shown, f"line {line}", f"not UTF-8 text (byte offset {exc.start}: {exc.reason})",
                                "re-save the file as UTF-8"))
        return
    text = text.removeprefix("\ufeff")
    parseable, unbalanced = neutralise_placeholders(text)
    for line, message in unbalanced:
        problems.append(Problem(shown, f"line {line}", message, "write placeholders as {{ .Field }}"))
    if unbalanced:
        return
    too_big = limit_problem(parseable, _LOADER)
    if too_big:
        problems.append(Problem(shown, "", too_big))
        return
    try:
        # compose (parse to nodes) without constructing Python objects: the checks below
        # need only the top-level keys, and construction is most of PyYAML's time
        documents = [None if _is_null(node) else node for node in yaml.compose_all(parseable, Loader=_LOADER)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        problems.append(Problem(shown, where, f"invalid YAML: {what}",
                                "fix the syntax; template actions must sit inside a value or alone on a line"))
        return
    except yaml.YAMLError as exc:
        problems.append(Problem(shown, "", f"invalid YAML: {exc}", "fix the syntax"))
        return
    for key, mark in _duplicate_keys(documents):
        problems.append(Problem(shown, f"line {mark.line + 1}, column {mark.column + 1}", f"duplicate key {key!r}",
                                "keep one: YAML readers silently use the last one"))
    objects = [doc for doc in documents if doc is not None]
    if not objects:
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


def _duplicate_keys(documents: list[yaml.Node | None]) -> list[tuple[str, yaml.Mark]]:
    """``(key, mark)`` of every scalar key repeated in a mapping, walking the nodes without recursion."""
    found: list[tuple[str, yaml.Mark]] = []
    pending = [doc for doc in documents if doc is not None]
    seen_nodes: set[int] = set()
    while pending:
        node = pending.pop()
        if id(node) in seen_nodes:  # an alias: the same node again
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in keys:
                        found.append((key.value, key.start_mark))
                    keys.add(key.value)
                pending += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value
    return sorted(found, key=lambda item: (item[1].line, item[1].column))


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _left_out_reason(name: str, is_dir: bool) -> str | None:
    if name.startswith("."):
        return "hidden directory" if is_dir else "hidden file"
    if not is_dir and _BACKUP.search(name):
        return "editor back-up"
    return None


def scan_dynamic(directory: Path) -> tuple[list[PurePosixPath], list[str], list[Problem]]:
    """Walk ``directory`` without following links.

    Returns ``(files, left_out, problems)``: the relative paths of the files to
    bundle (sorted by their forward-slash form), one message per entry left out,
    and the problems found (content not checked yet).
    """
    files: list[PurePosixPath] = []
    left_out: list[str] = []
    problems: list[Problem] = []
    shown_root = str(directory)

    pending = [(Path(directory), PurePosixPath())]
    while pending:  # a stack, not recursion: any depth of directories
        current, relative = pending.pop()
        if len(relative.parts) > MAX_DEPTH:
            problems.append(Problem(str(current), "", f"more than {MAX_DEPTH} directories deep",
                                    "flatten dynamic/"))
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
                problems.append(Problem(shown, "", "file name holds a backslash or a control character, "
                                        "which a zip cannot carry safely", "rename it"))
                continue
            if entry.is_symlink():
                target = os.readlink(entry.path)
                resolved = Path(os.path.realpath(entry.path))  # no error on a loop, unlike Path.resolve
                outside = not resolved.is_relative_to(os.path.realpath(directory))
                where = "outside dynamic/" if outside else "inside dynamic/"
                problems.append(Problem(shown, "", f"symbolic link (to {target}, {where}); "
                                        "the bundle carries regular files only",
                                        "replace the link by a copy of the file"))
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            reason = _left_out_reason(entry.name, is_dir)
            if reason:
                left_out.append(f"{shown}: left out of the bundle ({reason})")
                continue
            if is_dir:
                pending.append((Path(entry.path), rel))
            elif entry.is_file(follow_symlinks=False):
                if not entry.name.lower().endswith(MANIFEST_SUFFIXES):
                    problems.append(Problem(shown, "", f"not a manifest: expected one of "
                                            f"{', '.join(MANIFEST_SUFFIXES)}",
                                            "move other files out of dynamic/ or rename the manifest"))
                    continue
                files.append(rel)
            else:
                problems.append(Problem(shown, "", "not a regular file (device, socket or pipe)", "remove it"))

    files.sort(key=str)
    return files, left_out, problems


def validate_dynamic(directory: Path, *, log: Callable[[str], None] | None = _stderr) -> list[PurePosixPath]:
    """Validate a ``dynamic/`` directory; return the files to bundle.

    Args:
        directory: the ``env/<env>/operator/dynamic`` directory.
        log: receives one message per hidden file or editor back-up left out
            (default: standard error; ``None`` for silence).

    Returns:
        The relative paths of the manifests, sorted by their forward-slash form.

    Raises:
        ValidationError: every problem found (see the module docstring), each
            named by path.
    """
    return _validated(directory, log)[0]


def _validated(directory: Path, log: Callable[[str], None] | None) -> tuple[list[PurePosixPath], list[str]]:
    """``(files, left_out)`` of a valid directory, the left-out messages logged; ValidationError otherwise."""
    files, left_out, problems = _validate(directory)
    if log:
        for message in left_out:
            log(message)
    if problems:
        raise ValidationError(problems)
    return files, left_out


def _validate(directory: Path) -> tuple[list[PurePosixPath], list[str], list[Problem]]:
    linked = _linked(directory)
    if linked is not None:
        return [], [], [Problem(str(linked), "", f"symbolic link (to {os.readlink(linked)}); the bundle takes "
                                "files from the repository only", "replace the link by the directory itself")]
    if not directory.exists():
        return [], [], [Problem(str(directory), "", "directory not found; expected the operator's dynamic "
                                "manifest templates here", "create it with at least one manifest")]
    if not directory.is_dir():
        return [], [], [Problem(str(directory), "", "not a directory", "dynamic/ must be a directory of manifests")]
    files, left_out, problems = scan_dynamic(directory)
    for rel in files:
        _check_text(directory / rel, f"{directory}/{rel}", problems)
    if not files and not any(p.path.startswith(f"{directory}/") for p in problems):
        problems.append(Problem(str(directory), "", "holds no manifest; expected at least one "
                                f"{'/'.join(MANIFEST_SUFFIXES)} file", "add the operator's manifest templates"))
    return files, left_out, problems


def _linked(directory: Path) -> Path | None:
    """``directory`` itself, or the ``env/<env>`` and ``operator`` above a ``dynamic/``, if one is a symbolic link."""
    directory = Path(directory)
    candidates = [directory]
    if directory.name == "dynamic" and len(directory.parents) >= 3 and directory.parents[2].name == "env":
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
        info._compresslevel = ZIP_COMPRESSLEVEL
    info.file_size = size  # lets zipfile choose zip64 up front for very large files
    return info


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle(directory: Path, out: Path, *, log: Callable[[str], None] | None = _stderr) -> Bundle:
    """Validate ``directory`` and write its reproducible zip bundle to ``out``.

    The zip is written to a temporary file beside ``out`` and renamed into place,
    so ``out`` is either the complete bundle or untouched.

    Args:
        directory: the ``env/<env>/operator/dynamic`` directory.
        out: the zip file to write (parent directories are created).
        log: receives the messages about files left out (default: standard error).

    Returns:
        The :class:`Bundle` (path, sha256, size in bytes, entry count).

    Raises:
        ValidationError: the directory is invalid; nothing is written.
        UserError: ``out`` lies inside ``directory`` or cannot be written.
    """
    files, left_out = _validated(directory, log)
    out = Path(out)
    if out.resolve().is_relative_to(directory.resolve()):
        raise UserError(f"--out {out}: the bundle cannot be written inside {directory} "
                        "(it would end up in the next bundle); choose a path outside it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write the bundle there: {exc.strerror}") from None
    tmp = Path(handle.name)
    try:
        with handle, zipfile.ZipFile(handle, "w") as archive:
            for rel in files:
                source = directory / rel
                with source.open("rb") as reader:
                    info = _zip_info(str(rel), os.fstat(reader.fileno()).st_size)
                    with archive.open(info, "w") as writer:
                        while chunk := reader.read(CHUNK_BYTES):
                            writer.write(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"--out {out}: cannot write the bundle: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Bundle(path=out, sha256=sha256_file(out), size=out.stat().st_size, entries=len(files),
                  left_out=tuple(left_out))


def dynamic_dir(source: Path, env: str) -> Path:
    """``<source>/env/<env>/operator/dynamic``: where an environment's templates live (seed 000)."""
    return Path(source) / "env" / env / "operator" / "dynamic"


def check_env(source: Path, env: str, *, log: Callable[[str], None] | None = _stderr) -> list[Problem]:
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
