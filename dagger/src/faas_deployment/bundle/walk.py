"""The walk of a directory of manifests: which files a bundle or an OCI artifact carries.

Shared by the ``dynamic/`` templates (:mod:`.templates`, :mod:`.archive`) and the
rendered objects of ``publish-artifact --objects DIR`` (:mod:`.objects`); the
directory is walked without following links, every problem collected, each
named by path:

- the directory exists, is a directory, and neither it nor (for
  ``env/<env>/operator/dynamic``) the ``env/<env>`` and ``operator`` above it is a
  symbolic link; it holds at least one manifest;
- symbolic links and special files inside it are rejected (a link may point
  outside the directory; the carrier takes regular files only), as are names a
  zip or tar could not carry safely (backslashes, control characters, what
  Windows forbids, undecodable bytes) and trees more than
  :data:`~faas_deployment.core.yaml_limits.MAX_DEPTH` directories deep;
- every file has a manifest extension (:data:`MANIFEST_SUFFIXES`) and is at most
  :data:`MAX_FILE_BYTES`, read once through :func:`faas_deployment.core.repofiles.read_bytes`
  (a regular file, no link followed even if one was swapped in after the walk);
- hidden files and directories (``.name``) and editor back-ups (``name~``,
  ``#name#``, ``*.swp``, ``*.swo``, ``*.swx``, ``*.bak``, ``*.orig``) are left out,
  each with a message.

The files' contents are checked by the callers (:func:`.templates.check_content`,
:func:`.objects.check_objects`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..core import layout
from ..core.errors import Problem, ValidationError
from ..core.yaml_limits import MAX_DEPTH

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
"""Extensions a manifest template may have."""

MAX_FILE_BYTES = 8 * 1024 * 1024
"""Largest manifest file accepted, in bytes (Kubernetes stores an object in at most ~1.5 MiB)."""


_BACKUP = re.compile(r"(~$)|(^#.*#$)|(\.(swp|swo|swx|bak|orig)$)", re.IGNORECASE)
#: Characters a zip entry name cannot carry safely: a backslash, a control character, and what Windows
#: forbids in a file name (``< > : " | ? *``; Info-ZIP's ``unzip`` and Windows' extractor refuse or
#: rewrite them), or a name ending in a dot or a space (Windows drops them).
_UNSAFE_NAME = re.compile(r'[\\\x00-\x1f\x7f<>:"|?*]|[. ]$')


def _left_out_reason(name: str, is_dir: bool) -> str | None:
    if name.startswith("."):
        return "hidden directory" if is_dir else "hidden file"
    if not is_dir and _BACKUP.search(name):
        return "editor back-up"
    return None


@dataclass(frozen=True)
class Words:
    """How messages name the directory walked (``directory``), what carries its files (``carrier``) and what
    the directory should hold (``expected``)."""

    directory: str = "dynamic/"
    carrier: str = "the bundle"
    expected: str = "the operator's dynamic manifest templates"


DYNAMIC_WORDS = Words()
"""The words for ``dynamic/`` and its bundle."""

ARTIFACT_WORDS = Words("the manifests directory", "the artifact", "Kubernetes manifests")
"""The words for ``publish-artifact --objects DIR`` and its OCI artifact."""


@dataclass
class Scan:
    """What a walk found.

    Attributes:
        files: the manifests to carry, relative to the directory, sorted by their forward-slash form.
        total_bytes: their total size, in bytes (as listed; read later).
        left_out: one message per hidden file or editor back-up left out.
        problems: what the walk refused, each named by path.
    """

    files: list[PurePosixPath] = field(default_factory=list)
    total_bytes: int = 0
    left_out: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def scan_tree(directory: Path, words: Words = DYNAMIC_WORDS) -> Scan:
    """Walk ``directory`` without following links (file contents not read yet); never raises.

    ``words`` names the directory and the carrier in messages (:data:`DYNAMIC_WORDS` or :data:`ARTIFACT_WORDS`).
    """
    found = Scan()
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


def read_file(path: Path, shown: str) -> bytes | Problem:
    """A file's bytes through :func:`repofiles.read_bytes` (a regular file, at most :data:`MAX_FILE_BYTES`, read
    once without following a link); a :class:`Problem` named ``shown`` when refused, unreadable or too large."""
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


def readable(
    directory: Path, scan: Scan, report: Callable[[Problem], None]
) -> Iterator[tuple[PurePosixPath, str, bytes]]:
    """Each scanned file's ``(relative path, shown path, bytes)``, read once; an unreadable one goes to ``report``."""
    for rel in scan.files:
        shown = f"{directory}/{rel}"
        data = read_file(directory / rel, shown)
        if isinstance(data, Problem):
            report(data)
        else:
            yield rel, shown, data


def start(directory: Path, log: Callable[[str], None] | None, words: Words = DYNAMIC_WORDS) -> Scan:
    """Check the directory itself and scan it (:func:`scan_tree`); left-out messages go to ``log``.

    Raises:
        ValidationError: the directory, or the ``env/<env>`` or ``operator`` above a ``dynamic/``, is a symbolic
            link; the directory does not exist or is not a directory.
    """
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
    found = scan_tree(directory, words)
    if log:
        for message in found.left_out:
            log(message)
    return found


def finish(directory: Path, scan: Scan, content_problems: list[Problem], words: Words = DYNAMIC_WORDS) -> None:
    """Raise :class:`ValidationError` with every problem found, if any: the walk's, then ``content_problems``,
    then "holds no manifest" when no file was found and none was named by a problem."""
    problems = scan.problems + content_problems
    if not scan.files and not any(p.path.startswith(f"{directory}/") for p in problems):
        problems.append(Problem(str(directory), "", "holds no manifest; expected at least one "
                                f"{'/'.join(MANIFEST_SUFFIXES)} file", f"add {words.expected}"))
    if problems:
        raise ValidationError(problems)


def _linked(directory: Path) -> Path | None:
    """``directory`` itself, or the ``env/<env>`` and ``operator`` above a ``dynamic/``, if one is a symbolic link."""
    directory = Path(directory)
    candidates = [directory]
    if (directory.name == layout.DYNAMIC and len(directory.parents) >= 3
            and directory.parents[2].name == layout.ENV_ROOT):
        candidates += [directory.parent, directory.parent.parent]
    return next((path for path in candidates if path.is_symlink()), None)

