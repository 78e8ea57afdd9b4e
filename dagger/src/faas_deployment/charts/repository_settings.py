"""Repository-wide settings: ``faas-deployment.yaml`` at the repository root.

One key today:

``template``
    The cookiecutter template every chart of the repository is rendered with,
    either

    - a directory of the repository under ``templates/`` (``templates/faas-chart``):
      the Dagger module's default source uploads ``env/``, this file and
      ``templates/`` only, so an in-repository template lives there; or
    - a git URL pinned to a full commit SHA, in the form Dagger takes git
      directories (``https://HOST[:PORT]/PATH#<40 hex>[:<directory>]``): a branch, a
      tag or a short SHA could change under the same name, so they are refused.

    Absent: the template embedded in the package.

Who reads it: the CLI (:meth:`door.Workspace.open`), the Dagger module (its
default ``source`` uploads the file and ``templates/``; a git template is fetched
by the engine), ``plan`` (each side of the comparison reads its own tree's setting,
so changing the template plans every chart), hence the parent ``.gitlab-ci.yml``
and every generated job, with no flag to forget. ``--template`` (CLI and Dagger)
overrides it.

Validation is strict and names the file and the key: the file is a regular file
inside the repository (:mod:`repofiles`); a path holds no ``..``, is not absolute,
stays under ``templates/``, and neither it nor anything in the template directory
is a symbolic link or a special file; a URL is ``http(s)`` with a valid host, no
credentials (never echoed), no query; the SHA is 40 lowercase hex characters.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ..core import names, repofiles
from ..core.errors import Problem, UserError, ValidationError, printable

FILE_NAME = "faas-deployment.yaml"
#: Where an in-repository template lives (what the Dagger module's default source uploads).
TEMPLATES_DIR = "templates"
KEYS = ("template",)
#: Longest settings file read (bytes).
MAX_BYTES = 64 * 1024
#: Seconds a git fetch of a template may take (CLI).
FETCH_TIMEOUT = 120.0

_SHA = re.compile(r"[0-9a-f]{40}")
_URL = re.compile(r"(?P<scheme>https?)://(?P<authority>[^/?#\s]*)(?P<path>/[^?#\s]*)(?:#(?P<ref>[^\s]*))?")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class TemplateSetting:
    """A validated ``template`` value: ``path`` (relative, under ``templates/``) or a pinned git ``url``.

    Attributes:
        path: the directory inside the repository (``""`` for a git template).
        url: the git repository URL, without the ``#`` part (``""`` for a path).
        commit: the 40-hex commit SHA of a git template.
        directory: the template's directory inside the git tree (``""``: its root).
    """

    path: str = ""
    url: str = ""
    commit: str = ""
    directory: str = ""

    @property
    def identity(self) -> str:
        """What names this template across trees: the path, or ``URL#SHA[:DIR]``."""
        if self.path:
            return self.path
        return f"{self.url}#{self.commit}" + (f":{self.directory}" if self.directory else "")


def _problem(message: str, hint: str = "") -> ValidationError:
    return ValidationError([Problem(FILE_NAME, "template", message, hint)])


def _safe_relative(value: str) -> PurePosixPath | None:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or any(p in ("..", ".") for p in path.parts) or value.endswith("/"):
        return None
    if not all(_SEGMENT.fullmatch(p) for p in path.parts) or path.as_posix() != value:
        return None
    return path


def parse_template(value: Any) -> TemplateSetting:
    """The ``template`` value as a :class:`TemplateSetting`.

    Raises:
        ValidationError: not a string; a path outside ``templates/`` or with ``..``;
            a URL with credentials (not echoed), a query, a bad host, or not pinned
            to a full commit SHA.
    """
    if not isinstance(value, str):
        raise _problem(f"expected a string (a path under {TEMPLATES_DIR}/ or a pinned git URL), "
                       f"got {type(value).__name__}")
    if "://" in value or value.startswith("git@"):
        return _parse_url(value)
    path = _safe_relative(value)
    if path is None or len(path.parts) < 2 or path.parts[0] != TEMPLATES_DIR:
        raise _problem(f"{printable(value)!r} is not a directory under {TEMPLATES_DIR}/ of the repository "
                       "(relative, no '..', no '.', letters, digits, '.', '_' and '-')",
                       f"put the template under {TEMPLATES_DIR}/, or pin a git URL: https://HOST/PATH#<commit SHA>")
    return TemplateSetting(path=value)


def _parse_url(value: str) -> TemplateSetting:
    match = _URL.fullmatch(value)
    if match is None:
        raise _problem("expected https://HOST[:PORT]/PATH#<40-hex commit SHA>[:<directory>] (no query, no spaces)",
                       "ssh and scp-like URLs are not supported: use the https URL")
    authority = match["authority"]
    if "@" in authority:
        raise _problem("the URL carries credentials; they are never written in a repository file",
                       "remove them: git reads credentials from its credential helper or ~/.netrc")
    if not names.is_registry_host(authority):
        raise _problem(f"{printable(value)!r}: {printable(authority)!r} is not a valid host[:port]")
    port = authority.rpartition(":")[2] if ":" in authority and not authority.endswith("]") else ""
    if port and not 1 <= int(port) <= 65535:
        raise _problem(f"{printable(value)!r}: port {port} is outside 1-65535")
    ref, _, directory = (match["ref"] or "").partition(":")
    if not _SHA.fullmatch(ref):
        shown = f"{ref!r}" if ref else "no ref"
        raise _problem(f"{printable(value)!r}: {printable(shown)} is not a full 40-character commit SHA; "
                       "a branch, tag or short SHA can change under the same name",
                       "pin the commit: <url>#<40 hex characters>[:<directory>]")
    if directory and _safe_relative(directory) is None:
        raise _problem(f"{printable(value)!r}: directory {printable(directory)!r} must be a relative path "
                       "without '..'")
    return TemplateSetting(url=f"{match['scheme']}://{authority}{match['path']}", commit=ref, directory=directory)


def load(root: Path) -> TemplateSetting | None:
    """The ``template`` setting of the repository at ``root``; ``None`` without the file or the key.

    Raises:
        UserError / ValidationError: the file is not a regular file inside the repository,
            is not YAML, is not a mapping, has an unknown key, or ``template`` is invalid
            (:func:`parse_template`).
    """
    root = Path(root)
    if repofiles.locate(root, FILE_NAME) is None:
        return None
    text = repofiles.read_text(root, FILE_NAME, limit=MAX_BYTES)
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationError([Problem(FILE_NAME, "", f"YAML syntax error{where}", "fix the YAML syntax")]) from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValidationError([Problem(FILE_NAME, "", f"expected a mapping of settings, got {type(data).__name__}")])
    unknown = [str(k) for k in data if k not in KEYS]
    if unknown:
        raise ValidationError([Problem(FILE_NAME, printable(k), "unknown key", f"known keys: {', '.join(KEYS)}")
                               for k in unknown])
    return parse_template(data["template"]) if "template" in data else None


def check_tree(directory: Path, shown: str) -> Path:
    """``directory`` when it is a cookiecutter template holding only real directories and regular files.

    Raises:
        ValidationError: a symbolic link or a special file in it (named), or no ``cookiecutter.json``.
    """
    for current, dirs, files in os.walk(directory, followlinks=False):
        for name in sorted(dirs + files):
            mode = os.lstat(Path(current) / name).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                inside = (Path(current) / name).relative_to(directory).as_posix()
                what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise _problem(f"{shown}: {printable(inside)} is {what}; a template holds only directories and "
                               "regular files", "replace it with the file itself")
    if repofiles.locate(directory, "cookiecutter.json") is None:
        raise _problem(f"{shown}: no cookiecutter.json (expected a cookiecutter template directory)")
    return directory


def template_dir(root: Path, fetch: Callable[[TemplateSetting], Path] | None = None) -> Path | None:
    """The template directory the repository at ``root`` names, checked (:func:`check_tree`); ``None``: no setting.

    ``fetch(setting)`` gives a git template's directory (default :func:`fetch_git`:
    git on this machine; the Dagger module passes what the engine fetched).

    Raises:
        ValidationError / UserError: see :func:`load`; the path is missing, a symbolic
            link on the way or inside, not a template; the fetch fails.
    """
    setting = load(root)
    if setting is None:
        return None
    if setting.path:
        found = repofiles.directory(root, setting.path)
        if found is None:
            raise _problem(f"{setting.path}: no such directory in the repository")
        return check_tree(found, setting.path)
    return check_tree((fetch or fetch_git)(setting), setting.identity)


_FETCHED: dict[str, Path] = {}


def fetch_git(setting: TemplateSetting, timeout: float = FETCH_TIMEOUT) -> Path:
    """Fetch a git template's commit with git into a temporary directory (cached per process); its directory.

    Credentials come from git's own configuration (credential helper, ``~/.netrc``);
    prompting is off. The commit checked out is verified to be ``setting.commit``.

    Raises:
        UserError: git is missing, the fetch fails or outlives ``timeout`` seconds, or
            the commit's tree has no ``setting.directory``.
    """
    cached = _FETCHED.get(setting.identity)
    if cached is not None and cached.is_dir():
        return cached
    checkout = Path(tempfile.mkdtemp(prefix="faas-template-git-"))
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}

    def git(*args: str) -> str:
        try:
            proc = subprocess.run(["git", "-c", "protocol.allow=never", "-c", "protocol.http.allow=always",
                                   "-c", "protocol.https.allow=always", "-C", str(checkout), *args],
                                  capture_output=True, text=True, env=env, timeout=timeout, check=False)
        except FileNotFoundError:
            raise UserError(f"{FILE_NAME}: template: git is not installed (needed to fetch {setting.url})") from None
        except subprocess.TimeoutExpired:
            raise UserError(f"{FILE_NAME}: template: fetching {setting.url} took more than {timeout:g} s") from None
        if proc.returncode != 0:
            detail = printable(
                proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
            )
            raise UserError(f"{FILE_NAME}: template: git {args[0]} of {setting.url} failed: {detail}")
        return proc.stdout.strip()

    git("init", "-q")
    git("fetch", "-q", "--depth", "1", setting.url, setting.commit)
    git("checkout", "-q", "--detach", "FETCH_HEAD")
    if git("rev-parse", "HEAD") != setting.commit:
        raise UserError(f"{FILE_NAME}: template: {setting.url} did not give commit {setting.commit}")
    found = repofiles.directory(checkout, setting.directory) if setting.directory else checkout
    if found is None:
        raise _problem(f"{setting.identity}: no directory {setting.directory!r} at that commit")
    _FETCHED[setting.identity] = found
    return found
