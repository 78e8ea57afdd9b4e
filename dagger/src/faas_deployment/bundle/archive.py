"""The bundle: the reproducible zip of the operator's ``dynamic/`` templates, written once they are valid.

:func:`write_bundle` validates the templates (:mod:`.templates`) and writes a zip
whose bytes depend only on the files' relative paths and contents: entries sorted
by their forward-slash path relative to ``dynamic/`` (files only, no directory
entries), timestamp 1980-01-01 00:00:00 (:data:`ZIP_DATE_TIME`), Unix permissions
``-rw-r--r--`` (:data:`ZIP_FILE_MODE`), creator system Unix, deflate level 6
(:data:`ZIP_COMPRESSLEVEL`), no extra fields and no comment. The same files give a
byte-identical zip with the same zlib (Python's bundled build); its sha256 names
the bundle, and the admin API (:mod:`.admin_api`) is sent that sha256.

Each file is read once: the same bytes are checked and deflated into the zip,
which is written to a temporary file while validation runs and kept only if
every check passes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core import progress
from ..core.errors import UserError
from . import walk
from .templates import Checker, entries

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
    scan = walk.start(directory, log)
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
        with Checker(scan.total_bytes) as checker:
            if handle is None:  # report every problem, write nothing
                for _ in entries(directory, scan, checker):
                    pass
            else:
                with handle, zipfile.ZipFile(handle, "w") as archive:
                    for rel, data in entries(directory, scan, checker):
                        archive.writestr(_zip_info(str(rel), len(data)), data)
            problems = checker.finish()
        walk.finish(directory, scan, problems)
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


def bundle_line(bundle: Bundle) -> str:
    """``bundle <path> sha256:<hex> (<bytes> bytes, <n> files)``: what the front ends print."""
    return f"bundle {bundle.path} sha256:{bundle.sha256} ({bundle.size} bytes, {bundle.entries} files)"
