"""The ``index.yaml`` of a local Helm repository: read strictly, updated one entry at a time.

Helm reads the index as YAML into ``repo.IndexFile`` (``apiVersion``, ``entries``: chart
name to a list of ``repo.ChartVersion``, ``generated``; Helm's ``pkg/repo/index.go``).
This module writes it in one layout, every entry a JSON object on its own line (JSON
is YAML, so Helm and any YAML reader take it as is)::

    apiVersion: v1
    entries:
      "faas-operator":
      - {"apiVersion": "v2", "name": "faas-operator", "version": "1.0.3", ...}
    generated: "2026-01-01T00:00:00.000000000Z"

so that publishing one version reads and rewrites only its chart's lines, however many
packages the repository holds. An index in any other form (written by ``helm repo
index``, edited by hand) is parsed in full (libyaml's loader when available), checked,
and written once in this layout. An index this module wrote is recognised by its file
status (size, modification time, inode) recorded in a stamp the caller keeps beside the
repository under its lock: any other change to the file means a full read again.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.errors import UserError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_HINT = "(expected entries: {CHART: [{version, digest, ...}]}; fix or remove the file, then publish again)"
_HEADER = "apiVersion: v1\n"
_ITEM = "  - "


def now() -> str:
    """The current time as Helm writes ``created`` and ``generated`` (RFC 3339, UTC, nanoseconds)."""
    stamp = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp // 1_000_000_000)) + f".{stamp % 1_000_000_000:09d}Z"


def stamp_of(path: Path) -> list[int] | None:
    """``[size, mtime_ns, inode]`` of ``path``; ``None`` when it does not exist."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return [status.st_size, status.st_mtime_ns, status.st_ino]


_JSON_STRING = r'"(?:[^"\\\n]|\\.)*"'
#: This module's layout, line by line (one regular expression: linear, in C).
_LAYOUT = re.compile(
    rf"apiVersion: v1\n(?:{_JSON_STRING}: [^\n]*\n)*entries:\n"
    rf"(?:  {_JSON_STRING}:\n(?:  - \{{[^\n]*\}}\n)*)*generated: {_JSON_STRING}\n"
)


def _framed(text: str) -> bool:
    """``text`` is in this module's layout (each entry line is then checked as JSON when its chart is read)."""
    return _LAYOUT.fullmatch(text) is not None


def _key(name: str) -> str:
    return f"  {json.dumps(name, ensure_ascii=False)}:\n"


def _line(entry: dict) -> str:
    return _ITEM + json.dumps(entry, ensure_ascii=False, separators=(", ", ": ")) + "\n"


@dataclass
class Index:
    """An index read from ``path``: either its text in this module's layout, or its parsed data."""

    path: Path
    text: str | None = None  # this module's layout, trusted by its stamp
    data: dict = field(default_factory=dict)  # any other form, parsed and checked

    @classmethod
    def load(cls, path: Path, stamp: list[int] | None = None) -> Index:
        """Read ``path`` (``stamp``: the status recorded when this module last wrote it).

        Raises:
            UserError: not UTF-8 YAML, or not ``{entries: {name: [{...}, ...]}}`` (Helm's ``repo.IndexFile``).
        """
        if not path.exists():
            return cls(path)
        raw = path.read_bytes()
        problem = f"{path}: not a Helm repository index"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{problem}: not UTF-8 text {_HINT}") from None
        if stamp is not None and stamp == stamp_of(path) and _framed(text):
            return cls(path, text=text)
        try:
            data = yaml.load(text, Loader=_Loader) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise UserError(f"{problem}: not readable YAML{where} {_HINT}") from None
        entries = data.get("entries", {}) if isinstance(data, dict) else None
        if entries is None and isinstance(data, dict):
            entries = {}
        if not isinstance(entries, dict) or not all(
            isinstance(versions, list) and all(isinstance(e, dict) for e in versions) for versions in entries.values()
        ):
            raise UserError(f"{problem}: entries is not a mapping of chart names to lists of versions {_HINT}")
        return cls(path, data={**data, "entries": entries})

    def versions(self, name: str) -> list[dict]:
        """The entries of chart ``name`` (Helm's ``repo.ChartVersion`` mappings), as listed."""
        if self.text is None:
            return list(self.data.get("entries", {}).get(name) or [])
        start, end = self._block(name)
        try:
            versions = [json.loads(line[len(_ITEM):]) for line in self.text[start:end].splitlines()]
        except ValueError:
            versions = [None]
        if not all(isinstance(v, dict) for v in versions):
            raise UserError(f"{self.path}: not a Helm repository index: an entry of {name} is not a JSON object "
                            f"{_HINT}")
        return versions

    def _block(self, name: str) -> tuple[int, int]:
        """Offsets of chart ``name``'s entry lines in :attr:`text` (an empty span where they would go)."""
        assert self.text is not None
        key = _key(name)
        at = self.text.find("\n" + key)
        if at < 0:
            end = self.text.rfind("\ngenerated: ") + 1
            return end, end
        start = end = at + 1 + len(key)
        while self.text.startswith(_ITEM, end):
            end = self.text.index("\n", end) + 1
        return start, end

    def with_versions(self, name: str, versions: list[dict]) -> bytes:
        """The index text with chart ``name``'s entries replaced by ``versions`` and ``generated`` set to now."""
        block = "".join(_line(entry) for entry in versions)
        generated = f"generated: {json.dumps(now())}\n"
        if self.text is not None:
            start, end = self._block(name)
            if start == end and not self.text[:start].endswith(_key(name)):
                block = _key(name) + block
            text = self.text[:start] + block + self.text[end:]
            return (text[: text.rfind("\ngenerated: ") + 1] + generated).encode("utf-8")
        entries = {**self.data.get("entries", {}), name: versions}
        others = {k: v for k, v in self.data.items() if k not in ("apiVersion", "entries", "generated")}
        lines = [_HEADER, *(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in others.items()),
                 "entries:\n"]
        for chart, items in entries.items():
            lines.append(_key(str(chart)))
            lines.extend(_line(entry) for entry in items)
        lines.append(generated)
        return "".join(lines).encode("utf-8")


def write_stamp(lock: Path, index: Path) -> None:
    """Record ``index``'s status in the lock file ``lock`` (held by the caller)."""
    lock.write_text(json.dumps({"index": stamp_of(index)}))


def read_stamp(lock: Path) -> list[int] | None:
    """The status recorded by :func:`write_stamp`, or ``None``."""
    try:
        stamp = json.loads(lock.read_text() or "{}").get("index")
    except (OSError, ValueError, AttributeError):
        return None
    return stamp if isinstance(stamp, list) else None


__all__ = ["Index", "now", "read_stamp", "stamp_of", "write_stamp"]
