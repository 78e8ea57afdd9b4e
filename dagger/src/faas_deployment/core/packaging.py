"""Reproducible chart packages: the same chart directory gives a byte-identical ``.tgz``.

Helm's own packager (run in-process through ``helm_python.package``) decides what
goes into the archive (``.helmignore``, Chart.yaml checks, the ``<name>/`` prefix);
its output carries the packaging time, so the archive is then rewritten with:

- entries sorted by path;
- every mtime set to :data:`FIXED_MTIME` (seconds since the epoch, default 0;
  ``SOURCE_DATE_EPOCH`` overrides it, as reproducible-builds.org specifies);
- owner and group 0 with empty names, modes 0644 (files) / 0755 (directories);
- a gzip header without file name or timestamp, at a fixed compression level.

Same bytes in, same digest out, which is what lets the publishing rules tell
"unchanged" from "changed without a version bump".
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .names import sha256_digest

COMPRESS_LEVEL = 9


def source_date_epoch(raw: str | None = None) -> int | None:
    """``SOURCE_DATE_EPOCH`` in seconds since the epoch, or ``None`` when it is not set.

    ``raw``: the value a front end was given explicitly (the Dagger runtime never sees
    the job's environment); ``None``: this process's environment.

    The one reader of the variable (chart packages here, image builds in :mod:`.buildah`).
    Rule: reproducible-builds.org's specification of ``SOURCE_DATE_EPOCH`` (an integer
    number of seconds; a malformed value must fail the build, not be ignored).

    Raises:
        UserError: set, but not a non-negative integer.
    """
    raw = os.environ.get("SOURCE_DATE_EPOCH") if raw is None else raw
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise UserError(
            "SOURCE_DATE_EPOCH: expected a non-negative integer number of seconds since the epoch (at most 12 digits), "
            f"got {raw!r} (set it to e.g. the commit time, git log -1 --format=%ct, or unset it)"
        )
    return int(raw)


def fixed_mtime(raw: str | None = None) -> int:
    """The mtime written into every entry: ``SOURCE_DATE_EPOCH`` if set (``raw``: see :func:`source_date_epoch`),
    else 0 (seconds)."""
    epoch = source_date_epoch(raw)
    return 0 if epoch is None else epoch


@dataclass(frozen=True)
class ChartPackage:
    """A packaged chart on disk.

    Attributes:
        path: ``<out_dir>/<name>-<version>.tgz``.
        name, version: from Chart.yaml.
        digest: ``sha256:<hex>`` of the archive bytes (what a Helm repository index records).
        size: archive size in bytes.
        metadata: Chart.yaml as a mapping, in file order.
    """

    path: Path
    name: str
    version: str
    digest: str
    size: int
    metadata: dict[str, Any] = field(repr=False)


def _normalise(info: tarfile.TarInfo, mtime: int) -> tarfile.TarInfo:
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    info.pax_headers = {}
    return info


def rewrite_reproducibly(source: Path, target: Path, mtime: int | None = None) -> bytes:
    """Copy the tar.gz ``source`` to ``target`` with normalised, sorted entries (see module doc); the bytes written."""
    mtime = fixed_mtime() if mtime is None else mtime
    with tarfile.open(source, "r:gz") as tar_in:
        members = sorted(tar_in.getmembers(), key=lambda m: m.name)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar_out:
            for member in members:
                if not (member.isfile() or member.isdir()):
                    raise UserError(f"{source}: {member.name}: charts may hold only files and directories")
                data = tar_in.extractfile(member) if member.isfile() else None
                tar_out.addfile(_normalise(member, mtime), data)
    written = _gzip(buffer.getvalue(), mtime)
    target.write_bytes(written)
    return written


def _gzip(data: bytes, mtime: int) -> bytes:
    """gzip ``data`` with a header holding no file name and ``mtime`` as its time."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime, compresslevel=COMPRESS_LEVEL) as gz:
        gz.write(data)
    return raw.getvalue()


def reproducible_tar_gz(files: dict[str, bytes], mtime: int | None = None) -> bytes:
    """A ``.tar.gz`` of ``{relative path: content}`` under the rules of the module doc.

    Entries are regular files only (no directory entries), sorted by path, mode
    0644, owner 0, mtime :func:`fixed_mtime`; the same mapping always gives the
    same bytes.

    Raises:
        UserError: a path that is absolute or climbs out (``..``).
    """
    mtime = fixed_mtime() if mtime is None else mtime
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            if name.startswith("/") or ".." in name.split("/") or not name:
                raise UserError(f"{name!r}: an archive entry must be a relative path inside the archive")
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            tar.addfile(_normalise(info, mtime), io.BytesIO(files[name]))
    return _gzip(buffer.getvalue(), mtime)


def package_chart(chart_dir: Path, out_dir: Path, mtime: int | None = None) -> ChartPackage:
    """Package ``chart_dir`` reproducibly into ``out_dir/<name>-<version>.tgz`` (``mtime``: default
    :func:`fixed_mtime`).

    Returns:
        The :class:`ChartPackage`; an existing file of that name is replaced.

    Raises:
        UserError: Helm refuses to package the chart (e.g. invalid Chart.yaml).
    """
    import helm_python  # its Go library is loaded when a verb first needs Helm

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="faas-package-") as scratch:
        try:
            produced = Path(helm_python.package(chart_dir, destination=scratch))
        except helm_python.HelmError as exc:
            raise UserError(f"{chart_dir}: Helm cannot package this chart: {exc}") from None
        target = out_dir / produced.name
        partial = target.with_name(target.name + ".partial")
        data = rewrite_reproducibly(produced, partial, mtime)
        partial.replace(target)
    metadata = chart_metadata(data, target)
    return ChartPackage(
        path=target,
        name=str(metadata["name"]),
        version=str(metadata["version"]),
        digest=sha256_digest(data),
        size=len(data),
        metadata=metadata,
    )


#: libyaml's safe loader when PyYAML has it (Chart.yaml is read once per package).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def chart_metadata(archive: bytes, shown: Path) -> dict[str, Any]:
    """Chart.yaml of a packaged chart's bytes, as a mapping (the ``<name>/Chart.yaml`` entry).

    Raises:
        UserError: no ``<name>/Chart.yaml`` entry (``shown`` names the package).
    """
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                return yaml.load(handle.read(), Loader=_LOADER)  # a safe loader
    raise UserError(f"{shown}: not a chart package (no <name>/Chart.yaml entry)")

