"""Generate a chart from a cookiecutter template: its files rendered once per context, its hooks run.

This follows cookiecutter 2.x's file generation (``cookiecutter/generate.py``,
``find.py``, ``hooks.py``) for a local template directory with a resolved context:

- the project directory is the first entry of the template directory whose name
  holds ``cookiecutter``, ``{{`` and ``}}`` (``find.find_template``);
- every directory and file name is rendered with Jinja; a name that renders empty
  is skipped;
- a file whose path (relative to the project directory, as written in the
  template) matches a pattern of ``_copy_without_render`` (``fnmatch``) is copied
  as it is, like a file that is not UTF-8 text or holds a NUL byte (cookiecutter
  asks ``binaryornot``); every other file is rendered with ``{"cookiecutter":
  context}``, keeping its line endings (the first one found) and its mode;
- hooks ``hooks/pre_gen_project.*`` (before the files are written, in the project
  directory) and ``hooks/post_gen_project.*`` (after) are rendered with Jinja and
  run: ``.py`` with this Python, anything else executed directly. Their output goes
  to standard error (standard output carries results only) and a failing hook is a
  :class:`UserError` naming it (:func:`faas_deployment.charts.hooks.run_script`).

The Jinja environment is cookiecutter's: undefined variables are errors, trailing
newlines kept, and cookiecutter's extensions (``jsonify``, ``slugify``,
``random_ascii_string``, ``now``, ``uuid4``) plus the template's ``_extensions``
when its text uses any of them; a template that uses none gets the plain Jinja
environment, without loading cookiecutter.

Speed: a template is read and compiled once per process (:func:`load`, keyed by
its path and the size and modification time of every file); generating a chart
only renders the compiled templates, so each chart costs a few milliseconds.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from ..core import repofiles, tempdirs
from ..core.errors import UserError
from . import hooks

#: The hooks cookiecutter runs during generation, in order.
HOOK_NAMES = ("pre_gen_project", "post_gen_project")
#: Words whose presence in a template makes it need cookiecutter's Jinja extensions.
_EXTENSION_WORDS = ("jsonify", "slugify", "random_ascii_string", "now", "uuid4")


@dataclass(frozen=True)
class _File:
    """A template file: its unrendered relative name, then either a compiled template or raw bytes."""

    name: jinja2.Template
    shown: str
    template: jinja2.Template | None
    data: bytes
    newline: str | None
    mode: int


@dataclass(frozen=True)
class Template:
    """A cookiecutter template read and compiled once.

    Attributes:
        root: the template directory (holds ``cookiecutter.json``).
        project, project_shown: the name of its project directory, compiled and as written.
        dirs: the project's directories (compiled name, name as written), in walk order.
        files: the project's files, in walk order.
        hook_scripts: ``hook name -> script path`` (:data:`HOOK_NAMES`).
        env: the Jinja environment everything was compiled in.
    """

    root: Path
    project: jinja2.Template
    project_shown: str
    dirs: tuple[tuple[jinja2.Template, str], ...]
    files: tuple[_File, ...]
    hook_scripts: dict[str, Path] = field(default_factory=dict)
    env: jinja2.Environment | None = field(default=None, repr=False, compare=False)

    def generate(self, context: dict[str, Any], out_dir: Path) -> Path:
        """Write the project for ``context`` (the cookiecutter variables) under ``out_dir``; returns its directory.

        Raises:
            UserError: a name or a file does not render (the file named), a name
                renders to a path outside the project, or a hook fails.
        """
        assert self.env is not None
        variables = {"cookiecutter": context}
        name = self._render(self.project, variables, self.project_shown)
        if not name or "/" in name or name in (".", ".."):
            raise UserError(f"{self.root}/{self.project_shown}: the project directory name renders to {name!r}")
        project = Path(out_dir) / name
        project.mkdir(parents=True, exist_ok=True)
        self._hook("pre_gen_project", variables, project)
        for template, shown in self.dirs:
            relative = self._render(template, variables, shown)
            if relative:
                _inside(project, relative, shown, self.root).mkdir(parents=True, exist_ok=True)
        for item in self.files:
            relative = self._render(item.name, variables, item.shown)
            if not relative or relative.endswith("/"):
                continue
            target = _inside(project, relative, item.shown, self.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            if item.template is None:
                target.write_bytes(item.data)
            else:
                text = self._render(item.template, variables, item.shown)
                with open(target, "w", encoding="utf-8", newline=item.newline) as handle:
                    handle.write(text)
            os.chmod(target, item.mode)
        self._hook("post_gen_project", variables, project)
        return project

    def generate_into(self, context: dict[str, Any], out_dir: Path) -> Path:
        """:meth:`generate` into ``out_dir``, replacing a previous project of that name whole; its directory.

        A project that does not exist yet is written in place (removed again if
        generation fails); one that exists is generated beside it in a staging
        directory and then swapped in, so no stale file survives and a failure
        leaves the old one as it was.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = self._render(self.project, {"cookiecutter": context}, self.project_shown)
        if name and "/" not in name and name not in (".", "..") and not (out_dir / name).exists():
            try:
                return self.generate(context, out_dir)
            except BaseException:
                shutil.rmtree(out_dir / name, ignore_errors=True)
                raise
        staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out_dir))
        try:
            generated = self.generate(context, staging)
            target = out_dir / generated.name
            if target.exists():
                shutil.rmtree(target)
            os.replace(generated, target)
            return target
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _render(self, template: jinja2.Template, variables: dict[str, Any], shown: str) -> str:
        try:
            return template.render(**variables)
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as err:
            raise UserError(f"{self.root}/{self.project_shown}/{shown}: cannot be rendered: "
                            f"{type(err).__name__}: {err}") from err

    def _hook(self, name: str, variables: dict[str, Any], cwd: Path) -> None:
        script = self.hook_scripts.get(name)
        if script is None:
            return
        assert self.env is not None
        shown = f"{self.root}/hooks/{script.name}"
        try:
            text = self.env.from_string(repofiles.read_text(self.root, Path("hooks", script.name))).render(**variables)
        except repofiles.NotReadable as err:
            raise UserError(f"{self.root}/{err}") from None
        except (jinja2.TemplateError, OSError, UnicodeDecodeError, TypeError, ValueError) as err:
            raise UserError(f"{shown}: the template hook cannot be rendered: {type(err).__name__}: {err}") from err
        with tempfile.TemporaryDirectory(prefix="faas-hook-") as scratch:
            path = Path(scratch) / script.name
            path.write_text(text, encoding="utf-8")
            path.chmod(0o700)
            # As cookiecutter runs hooks: Python with this interpreter, anything else executed directly.
            command = [sys.executable, str(path)] if script.suffix == ".py" else [str(path)]
            code = hooks.run_script(command, cwd=cwd, shown=shown, env=hooks.environment(hooks.declared(text, shown)))
        if code != 0:
            raise UserError(f"{shown}: the template hook {name} failed with exit status {code}; "
                            "nothing was generated")


def _inside(project: Path, relative: str, shown: str, root: Path) -> Path:
    target = (project / relative)
    if ".." in Path(relative).parts or Path(relative).is_absolute():
        raise UserError(f"{root}/{shown}: renders to {relative!r}, a path outside the project directory")
    return target


def _text(data: bytes) -> str | None:
    """``data`` as UTF-8 text, or ``None`` for a binary file (not UTF-8, or a NUL byte)."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _newline(data: bytes) -> str | None:
    """The first line ending of ``data`` (``\\n``, ``\\r\\n`` or ``\\r``), ``None`` when it has none."""
    match = re.search(rb"\r\n|\n|\r", data)
    return match.group().decode() if match else None


def _environment(root: Path, texts: list[str], extensions: list[str]) -> jinja2.Environment:
    """cookiecutter's StrictEnvironment when the template needs its extensions, else plain strict Jinja."""
    if extensions or any(word in text for text in texts for word in _EXTENSION_WORDS):
        from cookiecutter.environment import StrictEnvironment  # late: it loads arrow and slugify
        from cookiecutter.exceptions import UnknownExtension

        try:
            return StrictEnvironment(context={"cookiecutter": {"_extensions": extensions}}, keep_trailing_newline=True)
        except UnknownExtension as err:
            raise UserError(f"{root}/cookiecutter.json: _extensions: {err}") from err
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Jinja's own on-disk cache of compiled templates (``FileSystemBytecodeCache``), or ``None``.

    Compiling the embedded template costs about 20 ms per process; a cached entry is
    found by the template text's checksum (a changed text compiles again) and Jinja's
    bytecode version, in Jinja's default directory name under the user's temporary
    directory outside the run (``<TMPDIR>/_jinja2-cache-<uid>``, made ``0700`` and
    checked to be the user's own: :func:`tempdirs.user_cache_dir`), so that it outlives
    the CLI's per-run directory, which Jinja's default would follow. The key also holds
    what else changes the compiled code (:func:`_flavour`).
    ``FAAS_DEPLOY_NO_TEMPLATE_CACHE=1`` turns it off; so does a directory that cannot be
    made (a read-only file system) or is not the user's own: then each process compiles,
    as without a cache.
    """
    if os.environ.get("FAAS_DEPLOY_NO_TEMPLATE_CACHE"):
        return None
    from jinja2.bccache import FileSystemBytecodeCache

    try:
        directory = tempdirs.user_cache_dir("_jinja2-cache")  # Jinja's default name, outside the run
        return FileSystemBytecodeCache(str(directory), pattern="__faas_deployment_%s.cache")
    except (OSError, RuntimeError):  # the directory cannot be made, or belongs to another user
        return None


def _flavour(env: jinja2.Environment) -> str:
    """What, besides a text, decides its compiled code: the Jinja version, the environment's
    class, extensions and syntax settings (a cache key part: another set compiles apart)."""
    settings = (jinja2.__version__, type(env).__module__, type(env).__qualname__, sorted(env.extensions),
                env.block_start_string, env.block_end_string, env.variable_start_string, env.variable_end_string,
                env.comment_start_string, env.comment_end_string, env.line_statement_prefix, env.line_comment_prefix,
                env.trim_blocks, env.lstrip_blocks, env.newline_sequence, env.keep_trailing_newline, env.optimized,
                env.autoescape if isinstance(env.autoescape, bool) else repr(env.autoescape))
    return repr(settings) + "|"


def _store(cache: jinja2.BytecodeCache, bucket: jinja2.bccache.Bucket) -> None:
    try:
        cache.set_bucket(bucket)
    except OSError:
        pass  # a full or read-only disk: the next process compiles again


def _project_dir(root: Path) -> str:
    for entry in sorted(os.listdir(root)):
        if "cookiecutter" in entry and "{{" in entry and "}}" in entry and (root / entry).is_dir():
            return entry
    raise UserError(f"{root}: no project directory (a directory named like {{{{cookiecutter.chart_name}}}})")


def _read(root: Path, variables: dict[str, Any]) -> Template:
    """The template at ``root``, every file read through :mod:`repofiles` (regular files inside ``root``).

    Raises:
        UserError: a file or directory of the template is a symbolic link, a FIFO, a device,
            unreadable or too large (named relative to ``root``); see :func:`_project_dir`.
    """
    try:
        return _read_checked(root, variables)
    except repofiles.NotReadable as err:
        raise UserError(f"{root}/{err}") from None


def _read_checked(root: Path, variables: dict[str, Any]) -> Template:
    project = _project_dir(root)
    repofiles.directory(root, project)
    base = root / project
    copy_only = [str(p) for p in variables.get("_copy_without_render", []) or []]
    extensions = [str(e) for e in variables.get("_extensions", []) or []]
    dirs: list[str] = []
    raw: list[tuple[str, bytes, int, bool]] = []
    for current, subdirs, names in os.walk(base):
        subdirs.sort()
        relative_dir = Path(current).relative_to(base)
        for sub in subdirs:
            repofiles.directory(root, Path(project, relative_dir, sub))  # a link to a directory is refused
            dirs.append((relative_dir / sub).as_posix())
        for name in sorted(names):
            path = Path(current) / name
            shown = (relative_dir / name).as_posix()
            data = repofiles.read_bytes(root, Path(project, relative_dir, name))
            copied = any(fnmatch.fnmatch(shown, pattern) for pattern in copy_only)
            raw.append((shown, data, path.stat().st_mode & 0o7777, copied))
    hook_dir = root / "hooks"
    hook_scripts: dict[str, Path] = {}
    if hook_dir.is_dir():
        for entry in sorted(os.listdir(hook_dir)):
            stem = os.path.splitext(entry)[0]
            if stem in HOOK_NAMES and not entry.endswith("~") and stem not in hook_scripts:
                repofiles.locate(root, Path("hooks", entry))  # a regular file, or refused
                hook_scripts[stem] = hook_dir / entry
    texts = [project, *dirs, *(shown for shown, *_ in raw)]
    texts += [t for _, data, _, copied in raw if not copied and (t := _text(data)) is not None]
    texts += [repofiles.read_bytes(root, Path("hooks", p.name)).decode("utf-8", errors="replace")
              for p in hook_scripts.values()]
    env = _environment(root, texts, extensions)
    cache = _bytecode_cache()
    flavour = _flavour(env)

    def compile_(source: str, shown: str, part: str = "name") -> jinja2.Template:
        """``source`` compiled: ``part`` of file ``shown``, its ``name`` or its ``text``."""
        try:
            bucket = cache.get_bucket(env, f"{flavour}{part}|{shown}", None, source) if cache else None
            code = bucket.code if bucket else None
            if code is None:
                code = env.compile(source)
                if cache and bucket:
                    bucket.code = code
                    _store(cache, bucket)
            return env.template_class.from_code(env, code, env.make_globals(None))
        except jinja2.TemplateSyntaxError as err:
            raise UserError(
                f"{root}/{project}/{shown}: Jinja syntax error at line {err.lineno}: {err.message}"
            ) from err

    files = []
    for shown, data, mode, copied in raw:
        text = None if copied else _text(data)
        files.append(_File(compile_(shown, shown), shown, None if text is None else compile_(text, shown, "text"),
                           data if text is None else b"", _newline(data), mode))
    return Template(root, compile_(project, project), project, tuple((compile_(d, d), d) for d in dirs),
                    tuple(files), hook_scripts, env)


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file's path, size and modification time (ns) under ``root``: a changed template reads again."""
    found = []
    for current, subdirs, names in os.walk(root):
        subdirs.sort()
        for name in sorted(names):
            stat = os.stat(os.path.join(current, name))
            found.append((os.path.join(current, name), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


_CACHE: dict[Path, tuple[tuple[tuple[str, int, int], ...], Template]] = {}
_LOCK = threading.Lock()


def load(root: Path, variables: dict[str, Any]) -> Template:
    """The template at ``root`` (``variables``: its ``cookiecutter.json``), read and compiled once per process.

    Raises:
        UserError: no project directory, a file that is not valid Jinja (file and
            line named), or an unknown extension in ``_extensions``.
    """
    root = Path(root).resolve()
    signature = _signature(root)
    with _LOCK:
        cached = _CACHE.get(root)
        if cached is not None and cached[0] == signature:
            return cached[1]
    template = _read(root, variables)
    with _LOCK:
        _CACHE[root] = (signature, template)
    return template
