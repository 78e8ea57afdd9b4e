"""Temporary directories: the one a run keeps its files in, and the per-user one caches outlive runs in.

A CLI run points ``tempfile.tempdir`` at its own directory, ``<TMPDIR>/faas-run-*``,
removed at the end (:func:`run_tempdir`). A cache that must outlive the run (Jinja's
compiled templates, :func:`faas_deployment.charts.generate`) cannot follow ``tempfile.tempdir``
then: it lives in the user's temporary directory as it was before the run
(:func:`user_cache_dir`), as it did before runs had their own directory.

Only the standard library is imported here: every CLI run enters :func:`run_tempdir`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: The temporary directory outside the current run (``tempfile.gettempdir()`` before
#: :func:`run_tempdir` replaced it); empty outside a run.
_outside: list[str] = []


@contextlib.contextmanager
def run_tempdir() -> Iterator[Path]:
    """Put every temporary file and directory of this process's run under one directory, removed at the end.

    ``tempfile.TemporaryDirectory`` removes its directory when its block ends, an
    exception included, but an interrupt (Ctrl-C, or SIGTERM as the CLI turns it into
    one) that lands between the directory's creation and its registration, or inside
    its removal, leaves it behind. With ``tempfile.tempdir`` pointing here for the
    run (``<TMPDIR>/faas-run-*``), removing this one directory at the end removes
    those too. Temporary files given an explicit directory (an atomic replace beside
    its target), those of child processes (``TMPDIR``) and :func:`user_cache_dir` are
    not affected.
    """
    import shutil

    previous = tempfile.tempdir
    outside = tempfile.gettempdir()
    parent = tempfile.mkdtemp(prefix="faas-run-")
    tempfile.tempdir = parent
    _outside.append(outside)
    try:
        yield Path(parent)
    finally:
        _outside.pop()
        tempfile.tempdir = previous
        shutil.rmtree(parent, ignore_errors=True)


def user_cache_dir(name: str) -> Path:
    """``<user temp>/<name>-<uid>``: a directory private to this user that outlives the run.

    ``<user temp>`` is the temporary directory outside any run (``TMPDIR``, else
    ``/tmp``: :func:`tempfile.gettempdir` as it was before :func:`run_tempdir`). The
    directory is made ``0700`` and checked to be a real directory owned by this user
    with that mode, as Jinja checks its own default cache directory
    (``FileSystemBytecodeCache._get_default_cache_dir`` in ``jinja2/bccache.py``), so
    another user cannot plant entries in it. ``name`` is a fixed name of this code,
    never input.

    Raises:
        OSError: the directory cannot be made (a read-only file system).
        RuntimeError: it is not a directory, belongs to another user, or its mode cannot be ``0700``.
    """
    base = _outside[-1] if _outside else tempfile.gettempdir()
    if not hasattr(os, "getuid"):
        raise RuntimeError("no user id on this platform: no private cache directory")
    path = Path(base) / f"{name}-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=stat.S_IRWXU)
    found = os.lstat(path)
    if found.st_uid != os.getuid() or not stat.S_ISDIR(found.st_mode):
        raise RuntimeError(f"{path}: not a directory of this user's own; no cache")
    if stat.S_IMODE(found.st_mode) != stat.S_IRWXU:
        os.chmod(path, stat.S_IRWXU)  # ours, but widened (e.g. a umask-free copy): made private again
        if stat.S_IMODE(os.lstat(path).st_mode) != stat.S_IRWXU:
            raise RuntimeError(f"{path}: its mode cannot be made 0700; no cache")
    return path
