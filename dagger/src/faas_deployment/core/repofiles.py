"""The one reader of files from the repository: regular files inside it, and nothing else.

A repository is hostile input: a file in it may be a symbolic link to
``/dev/zero`` (endless), to a kubeconfig outside the checkout (its content would be
read and echoed), a FIFO (a read that never ends) or a device. So every file the
pipeline reads from the repository (``environment.yaml``, component configs,
``dynamic/`` templates, hooks, template files) is reached through this module:

- the path, relative to the repository root, holds no ``..`` and is not absolute;
- every component below the root is a real directory (no symbolic link, even one
  pointing back inside: a link is how a path leaves the tree);
- the last component is a regular file, checked on the opened descriptor
  (``open`` with ``O_NOFOLLOW | O_NONBLOCK``, then ``fstat``: a FIFO opens without
  blocking and is refused, a link swapped in after the check is not followed);
- at most ``limit`` bytes are read.

Errors name the path relative to the root (never the content).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from .errors import UserError, printable

#: Largest repository file read by default (bytes): a config or a template is kilobytes; the bound keeps
#: memory finite whatever the file (a device or a FIFO is refused before any read).
MAX_BYTES = 64 * 1024 * 1024


class NotReadable(UserError):
    """A repository file that is refused or cannot be read: ``path`` (relative, ``/``) and ``reason``."""

    def __init__(self, path: str, reason: str, *, missing: bool = False):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.missing = missing


def _relative(root: Path, path: Path | str) -> PurePosixPath:
    path = Path(path)
    if path.is_absolute():
        try:
            path = path.relative_to(root)
        except ValueError:
            try:
                path = path.relative_to(root.resolve())
            except ValueError:
                raise NotReadable(printable(str(path)), f"outside the repository {root}") from None
    relative = PurePosixPath(path.as_posix())
    if ".." in relative.parts:
        raise NotReadable(printable(str(relative)), "the path holds '..'; only files inside the repository are read")
    return relative


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _walk(root: Path, path: Path | str, *, file: bool) -> Path | None:
    """``root / path`` checked part by part with ``lstat``: no link, directories on the way, and a
    regular file (``file``) or a directory at the end; ``None`` when a part does not exist."""
    root = Path(root)
    relative = _relative(root, path)
    current = root
    for index, part in enumerate(relative.parts):
        current = current / part
        shown = printable(PurePosixPath(*relative.parts[: index + 1]).as_posix())
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise NotReadable(shown, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
        if stat.S_ISLNK(mode) and file:
            raise NotReadable(shown, "a symbolic link; only regular files inside the repository are read "
                              "(replace the link with the file itself)")
        if stat.S_ISLNK(mode):
            raise NotReadable(shown, "a symbolic link; only directories inside the repository are read")
        if file and index == len(relative.parts) - 1:
            if not stat.S_ISREG(mode):
                raise NotReadable(shown, f"{_kind(mode)}; only regular files inside the repository are read")
        elif not stat.S_ISDIR(mode):
            raise NotReadable(shown, f"{_kind(mode)} where a directory was expected")
    return current


def locate(root: Path, path: Path | str) -> Path | None:
    """``root / path`` when it is a regular file inside ``root``; ``None`` when it does not exist.

    ``path``: relative to ``root``, or absolute under it.

    Raises:
        UserError: ``..`` in the path, a component that is a symbolic link or not a
            directory, or a last component that is not a regular file (what it is named).
    """
    return _walk(root, path, file=True)


def directory(root: Path, path: Path | str) -> Path | None:
    """``root / path`` when it is a real directory inside ``root`` (no symbolic link on the way); ``None`` if absent.

    Raises:
        UserError: ``..`` in the path, a component that is a symbolic link or not a directory.
    """
    return _walk(root, path, file=False)


def read_bytes(root: Path, path: Path | str, *, limit: int = MAX_BYTES) -> bytes:
    """The bytes of regular file ``path`` inside ``root`` (see :func:`locate`), at most ``limit`` of them.

    Raises:
        UserError: the file is missing, not a regular file inside the repository,
            unreadable, or larger than ``limit`` bytes.
    """
    root = Path(root)
    found = locate(root, path)
    shown = printable(_relative(root, path).as_posix())
    if found is None:
        raise NotReadable(shown, "no such file", missing=True)
    try:
        fd = os.open(found, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotReadable(shown, "a symbolic link; only regular files inside the repository are read") from None
        raise NotReadable(shown, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotReadable(shown, f"{_kind(mode)}; only regular files inside the repository are read")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise NotReadable(shown, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise NotReadable(shown, f"larger than {limit} bytes; is it the right file?")
    return b"".join(chunks)


def read_text(root: Path, path: Path | str, *, limit: int = MAX_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8.

    Raises:
        UserError: as :func:`read_bytes`; the bytes are not UTF-8 (the position named).
    """
    data = read_bytes(root, path, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = printable(_relative(Path(root), path).as_posix())
        raise NotReadable(shown, f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def split(path: Path | str, shown: str) -> tuple[Path, Path]:
    """``(root, relative)`` of ``path`` when ``shown`` (how messages name it) is its tail, e.g.
    ``/repo/env/dev/environment.yaml`` and ``env/dev/environment.yaml`` give ``/repo`` and the tail;
    otherwise the file's own directory and its name (only the file itself is then checked)."""
    parts, tail = PurePosixPath(Path(path).as_posix()).parts, PurePosixPath(shown).parts
    if tail and not PurePosixPath(shown).is_absolute() and ".." not in tail and parts[-len(tail):] == tail:
        head = parts[: len(parts) - len(tail)]
        return (Path(*head) if head else Path(".")), Path(*tail)
    return Path(path).parent, Path(Path(path).name)
