"""An engine-faithful stand-in for the Dagger engine, for running ``dagger call`` offline.

No machine here can run a Dagger engine. This harness runs the module the way the
engine does, through dagger-io's **own** code paths, and replaces only the far
side of the wire: every GraphQL query the SDK would send goes through
``dagger.client._core.Context.execute``, which :class:`Engine` replaces by an
interpreter of the query's selections that obeys the engine's rules. Each rule
below is cited from Dagger's source (v0.21, branch ``backport-0.21``; the files
named are unchanged from v0.21.8), so it can be re-checked against a newer engine.

Registration (:meth:`Engine.register`): the SDK's ``Module._typedefs()`` builds
the module's type definitions (``dag.module().with_object(...)``) and asks for the
module's ``id``; the harness records what was registered and refuses what the
engine refuses:

- an object type named like a core type (``core/module.go``: ``namespaceObject``
  runs only when ``mod.Deps.ModTypeFor`` does not know the name, and the core
  types are known, so installing fails with ``type "Env" is already defined by
  module "daggercore"``; the engine's ``core/integration/module_go_test.go`` tests
  it). The core type names are those of the pinned SDK's ``dagger.client.gen``;
- a main object that is not the CamelCase of the module name in ``dagger.json``
  (``sdk/python/runtime/main.go`` sets ``DAGGER_MAIN_OBJECT``; the SDK's
  ``_typedefs`` raises when that class is missing);
- a field or function named ``id`` (``core/module.go``, ``validateObjectTypeDef``:
  ``cannot define field with reserved name`` / ``cannot define function with
  reserved name``; every object's ``id`` is the engine's own);
- an argument with more than one default, e.g. ``DefaultPath`` together with a
  default value (``core/schema/module.go``, ``functionWithArg``: ``cannot set more
  than one default value``);
- ``DefaultPath`` on an argument that is not a ``Directory``, ``File``,
  ``GitRepository`` or ``GitRef`` (same function: ``can only set default path for
  Object`` / ``cannot set default path for <type>``);
- ``Ignore`` on an argument that is not a ``Directory`` (same function: ``can only
  set ignore for Object type`` / ``can only set ignore for Directory type``);
- an argument (of a function or a constructor) named like a persistent flag of
  ``dagger call`` (:data:`CALL_PERSISTENT_FLAGS`): the CLI adds each argument as a
  flag of the function's command, where the persistent flags already are, and
  fails with ``flag already exists: output`` (``cmd/dagger/flags.go``,
  ``modFunctionArg.AddFlag``). The engine itself installs such a module; the CLI
  refuses to call it, so the harness refuses it at registration.

Invocation (:meth:`Engine.call`): a ``dagger call`` line is parsed as the Dagger
CLI does (``cmd/dagger/functions.go``: kebab-case functions and flags, core
functions such as ``export`` on the returned File or Directory) and each step is
run through ``Module.get_result(parent_name, parent_state, name, inputs)``, the
state of one object passed to the next as JSON, exactly as the engine chains
them (:func:`_object_state`: every field, private ones too; a Secret held in a
field travels as its ID, as in the engine, so ``with-registry --password`` given
once reaches the functions after it). Arguments are converted as the engine converts them:

- a Directory argument omitted on the command line gets its ``DefaultPath``,
  relative to the module's context directory (the repository root), filtered by
  its ``Ignore`` patterns only, never by ``.gitignore`` (``core/modfunc.go``
  loads the context directory with the argument's ignore patterns), with the
  dockerignore semantics of ``github.com/moby/patternmatcher`` (:func:`ignored`);
  a directory given as a host path is filtered the same way;
- a git URL for a Directory argument is not fetched (no network): it is recorded,
  and a ``#ref`` of hex characters shorter than 40 is refused as the engine
  would fail it (``core/schema/git.go`` takes a ref as a commit only with 40
  hex characters; a short SHA is looked up as a branch or tag name);
- a Secret argument takes the CLI's ``env:NAME`` / ``file:PATH`` forms
  (``cmd/dagger/flags.go``, ``secretValue``), read on the caller's side.

Inside a function:

- each call runs in a fresh working directory, the runtime's ``/scratch``
  (``core/sdk/consts.go`` ``RuntimeWorkdirPath``), and without the caller's environment
  (:data:`JOB_ONLY`, ``CI_*``, ``GITLAB_*`` and every variable given to the ``Engine``
  are hidden from ``os.environ`` for the call);
- ``dag.current_module().workdir(path)`` / ``workdir_file(path)`` accept only
  paths local to that directory (``core/schema/module.go``,
  ``currentModuleWorkdir``: ``if !filepath.IsLocal(args.Path) { ... "escapes
  workdir" }``), and the path must exist;
- ``Directory.export`` copies the tree; ``Secret.plaintext()`` returns the value;
- container chains (``docker_build``, ``with_label``, ``with_registry_auth``,
  ``publish``) are recorded, never run: awaiting ``publish`` or ``sync`` raises
  :class:`NotExecuted` carrying the recorded chain.

On the caller's side, ``File.export --path P [--allow-parent-dir-path]`` follows
``engine/client/filesync.go`` (``FilesyncTarget.DiffCopy``): the path is cleaned
(a trailing ``/`` is dropped); when it does not exist the file is written **at**
that path; an existing file is overwritten; an existing directory is an error
unless ``--allow-parent-dir-path``, then the file keeps its own name inside it.
``Directory.export --path P`` creates ``P`` and merges the tree into it.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import dagger.client.gen as gen
from dagger.client import _core
from dagger.client.base import Input, Scalar, Type
from dagger.mod.cli import get_entry_point

import dagger

REPO = Path(__file__).resolve().parents[2]

#: Every type name the core API defines in the pinned SDK (objects, scalars, enums, inputs).
CORE_TYPE_NAMES = frozenset(
    name
    for name, value in vars(gen).items()
    if isinstance(value, type)
    and issubclass(value, (Type, Scalar, enum.Enum, Input))
    and value.__module__.startswith("dagger")
)


#: The persistent flags every ``dagger call`` function command already has, by long name (Dagger
#: v0.21, branch ``backport-0.21``): the root command's (``cmd/dagger/main.go``, ``installGlobalFlags``
#: and ``help``), the ``call`` command's (``cmd/dagger/module.go``, ``moduleAddFlags``) and the function
#: command's own (``cmd/dagger/functions.go``, ``--output/-o`` and ``--json/-j``). Flag names are kebab-case
#: (``cliName``), so ``dot_output`` and ``dotOutput`` collide with ``--dot-output`` too.
CALL_PERSISTENT_FLAGS = frozenset({
    # cmd/dagger/main.go: rootCmd.PersistentFlags()
    "help", "workdir", "verbose", "quiet", "silent", "debug", "progress", "lock", "interactive",
    "interactive-command", "web", "no-exit", "auto-apply", "x-release", "dot-output", "dot-focus-field",
    "dot-show-internal", "cloud", "scale-out",
    # cmd/dagger/module.go: moduleAddFlags(callModCmd, callModCmd.PersistentFlags(), true)
    "mod", "no-mod", "allow-llm", "eager-runtime",
    # cmd/dagger/functions.go: FuncCommand persistent flags
    "output", "json",
})
#: Variables of the caller's job that the runtime container never has: the Python runtime is a container
#: built from the SDK's base image with only the variables the SDK sets (``sdk/python/runtime/main.go``:
#: ``DAGGER_*``, ``PYTHONUNBUFFERED``, ``PIP_*``, ``UV_*``), so a function sees none of the caller's. The harness
#: hides these (and the ``Engine``'s ``env``) from ``os.environ`` while a function runs.
JOB_ONLY = frozenset({"SOURCE_DATE_EPOCH", "KUBECONFIG"})
#: ``core/schema/module.go`` ``functionWithArg``: the types a ``DefaultPath`` may load.
DEFAULT_PATH_TYPES = frozenset({"Directory", "File", "GitRepository", "GitRef"})

#: Every object an :class:`Engine` hands out by ID, process-wide (see ``Engine.__init__``).
_KEPT: dict[str, Any] = {}
_IDS = itertools.count(1)


class EngineRefusal(Exception):
    """What the engine answers with an error (registration or a call)."""


class NotExecuted(Exception):
    """A step the harness cannot run without an engine (a container build or push).

    Attributes:
        steps: the recorded chain, ``[(field, args), ...]``, first step first.
    """

    def __init__(self, what: str, steps: list[tuple[str, dict[str, Any]]]):
        super().__init__(f"not executed offline: {what}")
        self.what = what
        self.steps = steps


# --------------------------------------------------------------------------- ignore patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """moby/patternmatcher's translation: ``**`` any path, ``*`` and ``?`` within a segment."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" also matches zero directories
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
        i += 1
    return re.compile(out + "$")


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` (relative, ``/``-separated) is left out by dockerignore ``patterns``.

    The last matching pattern wins; ``!`` patterns take paths back; a pattern that
    matches a parent directory matches everything under it
    (``patternmatcher.MatchesOrParentMatches``).
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw[1:] if negated else raw
        pattern = os.path.normpath(pattern.strip("/")) if pattern.strip("/") else pattern
        regex = _pattern_regex(pattern)
        if any(regex.match(p) for p in prefixes):
            excluded = not negated
    return excluded


def filtered_copy(src: Path, dst: Path, patterns: list[str]) -> None:
    """Copy the tree ``src`` to ``dst`` without what ``patterns`` leave out (symbolic links kept)."""
    dst.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(src):
        rel_root = Path(root).relative_to(src)
        for name in sorted(dirs + files):
            rel = (rel_root / name).as_posix()
            if ignored(rel, patterns):
                continue
            source, target = Path(root) / name, dst / rel
            if source.is_symlink():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.readlink(source), target)
            elif source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


# --------------------------------------------------------------------------- engine objects


@dataclass
class DirectoryObj:
    path: Path  # a snapshot owned by the engine


@dataclass
class FileObj:
    path: Path  # a snapshot owned by the engine
    name: str


@dataclass
class SecretObj:
    value: str
    name: str


@dataclass
class GitSourceObj:
    url: str  # recorded, never fetched


@dataclass
class GitRepositoryObj:
    """``Directory.asGit()``: the local repository whose ``.git`` is in ``path``."""

    path: Path


@dataclass
class GitRefObj:
    repository: Path
    ref: str  # a commit SHA or a full ref name


@dataclass
class ContainerObj:
    steps: list[tuple[str, dict[str, Any]]]


@dataclass
class CurrentModuleObj:
    pass


@dataclass
class Builder:
    """A registration builder (module, type definition or function definition): its calls in order."""

    kind: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def first(self, name: str) -> dict[str, Any] | None:
        return next((args for n, args in self.calls if n == name), None)

    def all(self, name: str) -> list[dict[str, Any]]:
        return [args for n, args in self.calls if n == name]


# --------------------------------------------------------------------------- registration records


@dataclass(frozen=True)
class TypeRef:
    kind: str  # STRING_KIND, OBJECT_KIND, LIST_KIND, ...
    name: str | None  # object/scalar/enum name
    optional: bool
    element: TypeRef | None = None


@dataclass(frozen=True)
class ArgDef:
    name: str  # API name (camelCase)
    type: TypeRef
    doc: str | None
    default: Any  # decoded JSON default, or None
    has_default: bool
    default_path: str | None
    ignore: list[str] | None


@dataclass(frozen=True)
class FunctionDef:
    name: str  # API name (camelCase); "" for a constructor
    returns: TypeRef
    doc: str | None
    cache_policy: str | None  # "Never", "PerSession", "Default" or None (the default policy)
    args: dict[str, ArgDef]


@dataclass(frozen=True)
class ObjectDef:
    name: str
    doc: str | None
    constructor: FunctionDef | None
    functions: dict[str, FunctionDef]
    fields: tuple[str, ...] = ()


def _camel(kebab: str) -> str:
    head, *rest = kebab.replace("_", "-").split("-")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main_object_name(dagger_json: Path = REPO / "dagger.json") -> str:
    """The CamelCase of the module name, as the engine names the main object."""
    name = json.loads(dagger_json.read_text())["name"]
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[-_]", name))


# --------------------------------------------------------------------------- the engine


class Engine:
    """The stand-in engine: an interpreter of the SDK's query selections.

    Use as a context manager (it patches ``Context.execute`` for its duration)::

        with Engine(repo) as engine:
            engine.register()                       # ObjectDefs, engine rules applied
            out = engine.call("dagger call env --name dev manifests export --path x.zip")

    Args:
        context_dir: the module's context directory (where ``dagger.json`` lives);
            ``DefaultPath`` arguments are loaded from it.
        cwd: the caller's working directory (``export --path`` and host paths are
            relative to it); defaults to ``context_dir``.
        env: the caller's environment, for ``env:NAME`` secrets and ``$VAR``.
    """

    def __init__(self, context_dir: Path = REPO, *, cwd: Path | None = None, env: Mapping[str, str] | None = None):
        self.context_dir = Path(context_dir)
        self.cwd = Path(cwd or context_dir)
        self.env = dict(env or {})
        # IDs are unique across engines and the objects behind them outlive the engine:
        # dagger-io caches type definitions (``to_typedef`` is ``functools.cache``d) and
        # ``Context.resolve_ids`` writes a resolved ID into the cached object's query,
        # so a second registration in the same process reuses IDs the first one minted.
        self._store: dict[str, Any] = _KEPT
        self._ids = _IDS
        self._root = Path(tempfile.mkdtemp(prefix="dagger-engine-"))
        self._patch: Any = None
        self.objects: dict[str, ObjectDef] = {}
        self.executed: list[str] = []  # function calls run, "Object.function"

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Engine:
        self._patch = _core.Context.execute
        engine = self

        async def execute(ctx: _core.Context, return_type: Any = None) -> Any:
            await ctx.resolve_ids()  # the SDK's own step: object arguments become IDs
            value = await anyio.to_thread.run_sync(engine._evaluate, list(ctx.selections))
            return ctx.converter.structure(value, return_type) if return_type else None

        _core.Context.execute = execute
        return self

    def __exit__(self, *exc: object) -> None:
        _core.Context.execute = self._patch
        shutil.rmtree(self._root, ignore_errors=True)

    def _new_dir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self._root))

    def _keep(self, obj: Any) -> str:
        key = f"harness-{type(obj).__name__}-{next(self._ids)}"
        self._store[key] = obj
        return key

    # ---------------------------------------------------------------- query interpreter

    def _evaluate(self, selections: list[_core.Field]) -> Any:
        value: Any = None
        for sel in selections:
            value = self._select(value, sel)
        return value

    def _select(self, obj: Any, sel: _core.Field) -> Any:
        name, args = sel.name, dict(sel.args)
        if sel.type_name == "Query":
            if name == "node":
                found = self._store.get(args["id"])
                if found is None:
                    raise EngineRefusal(f"unknown object ID {args['id']!r}")
                return found
            if name == "directory":
                return DirectoryObj(self._new_dir("dir-"))
            if name == "file":
                path = self._new_dir("file-") / args["name"]
                path.write_text(args["contents"])
                return FileObj(path, args["name"])
            if name == "currentModule":
                return CurrentModuleObj()
            if name in ("module", "typeDef"):
                return Builder(name)
            if name == "function":
                return Builder("function", [("function", args)])
            if name == "container":
                return ContainerObj([("container", args)])
            if name == "git":
                return self._git_remote(args["url"])
            raise EngineRefusal(f"harness: Query.{name} is not emulated")
        if name == "id":
            return self._keep(obj)
        if isinstance(obj, Builder):
            obj.calls.append((name, args))
            return obj
        if isinstance(obj, CurrentModuleObj):
            return self._workdir(name, args)
        if isinstance(obj, DirectoryObj):
            if name == "export":
                target = Path(args["path"])
                target = target if target.is_absolute() else Path.cwd() / target
                if args.get("wipe"):
                    shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(obj.path, target, symlinks=True, dirs_exist_ok=True)
                return str(target)
            if name == "file":
                path = obj.path / args["path"]
                if not path.is_file():
                    raise EngineRefusal(f"{args['path']}: no such file")
                return FileObj(path, path.name)
            if name == "entries":
                return sorted(os.listdir(obj.path / args.get("path", ".")))
            if name == "directory":
                # core/schema/directory.go: a sub-directory of the snapshot; the path stays inside it.
                if not _is_local(args["path"]) or not (obj.path / args["path"]).is_dir():
                    raise EngineRefusal(f"{args['path']}: no such directory")
                snapshot = self._new_dir("subdir-")
                shutil.copytree(obj.path / args["path"], snapshot, symlinks=True, dirs_exist_ok=True)
                return DirectoryObj(snapshot)
            if name == "dockerBuild":
                return ContainerObj([("dockerBuild", args)])
            if name == "asGit":
                if not (obj.path / ".git").exists():
                    raise EngineRefusal("asGit: the directory holds no .git")
                return GitRepositoryObj(obj.path)
        if isinstance(obj, GitRepositoryObj):
            # core/schema/git.go: commit(id) takes a full SHA; ref(name) a full ref name; branch(name) refs/heads/.
            if name == "commit":
                if not re.fullmatch(r"[0-9a-f]{40}", args["id"]):
                    raise EngineRefusal(f"commit {args['id']!r}: not a full commit SHA")
                return GitRefObj(obj.path, args["id"])
            if name == "ref":
                return GitRefObj(obj.path, args["name"])
            if name == "branch":
                return GitRefObj(obj.path, f"refs/heads/{args['name']}")
            if name == "head":
                return GitRefObj(obj.path, "HEAD")
        if isinstance(obj, GitRefObj) and name == "commonAncestor":
            # core/schema/git.go: the merge base of the two refs (git merge-base), a commit.
            other = self._store.get(args["other"])
            if not isinstance(other, GitRefObj):
                raise EngineRefusal(f"commonAncestor: {args['other']!r} is not a GitRef")
            found = subprocess.run(["git", "-C", str(obj.repository), "merge-base", obj.ref, other.ref], check=False,
                                   capture_output=True, text=True)
            if found.returncode != 0:
                raise EngineRefusal(
                    f"commonAncestor {obj.ref} {other.ref}: {found.stderr.strip() or 'no common ancestor'}"
                )
            return GitRefObj(obj.repository, found.stdout.strip())
        if isinstance(obj, GitRefObj) and name == "tree":
            tree = self._new_dir("git-tree-")
            archive = subprocess.run(
                ["git", "-C", str(obj.repository), "archive", "--format=tar", f"{obj.ref}^{{commit}}"],
                capture_output=True,
            )
            if archive.returncode != 0:
                raise EngineRefusal(f"git ref {obj.ref!r}: {archive.stderr.decode(errors='replace').strip()}")
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
            return DirectoryObj(tree)
        if isinstance(obj, GitSourceObj) and name == "dockerBuild":
            return ContainerObj([("git", {"url": obj.url}), ("dockerBuild", args)])
        if isinstance(obj, FileObj):
            if name == "contents":
                return obj.path.read_text()
            if name == "name":
                return obj.name
            if name == "size":
                return obj.path.stat().st_size
        if isinstance(obj, SecretObj) and name == "plaintext":
            return obj.value
        if isinstance(obj, ContainerObj):
            if name in ("publish", "sync", "export", "stdout"):
                raise NotExecuted(f"Container.{name}", [*obj.steps, (name, args)])
            return ContainerObj([*obj.steps, (name, args)])
        raise EngineRefusal(f"harness: {sel.type_name}.{name} is not emulated on {type(obj).__name__}")

    def _git_remote(self, url: str) -> GitRepositoryObj:
        """``dag.git(url)``: the engine clones the remote (``core/schema/git.go``); here only a loopback one.

        The caller's git credentials are what the Dagger CLI forwards; the harness
        clones with the caller's environment and refuses any host but 127.0.0.1 (no network).
        """
        if not re.match(r"^https?://127\.0\.0\.1(:\d+)?/", url):
            raise EngineRefusal(f"harness: git {url}: only loopback remotes are fetched offline")
        clone = self._new_dir("git-remote-") / "repo.git"
        out = subprocess.run(["git", "clone", "-q", "--bare", url, str(clone)], capture_output=True, text=True,
                             env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, timeout=60, check=False)
        if out.returncode != 0:
            raise EngineRefusal(f"git {url}: {out.stderr.strip()}")
        return GitRepositoryObj(clone)

    def _workdir(self, name: str, args: dict[str, Any]) -> Any:
        """``currentModule.workdir`` / ``workdirFile`` (``core/schema/module.go``)."""
        raw = args["path"]
        if not _is_local(raw):
            raise EngineRefusal(f"workdir path {raw!r} escapes workdir")
        path = Path.cwd() / raw
        if name == "workdir":
            if not path.is_dir():
                raise EngineRefusal(f"workdir {raw!r}: no such directory")
            snapshot = self._new_dir("workdir-")
            shutil.copytree(path, snapshot, symlinks=True, dirs_exist_ok=True)
            return DirectoryObj(snapshot)
        if name == "workdirFile":
            if not path.is_file():
                raise EngineRefusal(f"workdir file {raw!r}: no such file")
            snapshot = self._new_dir("workdir-") / path.name
            shutil.copy2(path, snapshot)
            return FileObj(snapshot, path.name)
        raise EngineRefusal(f"harness: CurrentModule.{name} is not emulated")

    # ---------------------------------------------------------------- registration

    @staticmethod
    def module():
        """dagger-io's Module for the project, loaded through the ``dagger.mod`` entry point."""
        return get_entry_point().load().__dagger_module__

    def register(self) -> dict[str, ObjectDef]:
        """Run the SDK's registration and apply the engine's registration rules.

        Returns:
            ``{object name: ObjectDef}`` as the engine would install them.

        Raises:
            EngineRefusal: with the engine's message, when it would refuse the module.
        """
        module = self.module()
        main = main_object_name(self.context_dir / "dagger.json")
        # The runtime sets DAGGER_MAIN_OBJECT before the SDK is imported, and the SDK marks
        # the class of that name as the main object when it is decorated; the test
        # process imported the SDK long before, so do what that import would have done.
        module._main_name = main
        module._main = module._objects.get(main)
        module_id = anyio.run(module._typedefs)
        builder = self._store[module_id]
        objects: dict[str, ObjectDef] = {}
        for call in builder.all("withObject"):
            obj = self._object_def(self._store[call["object"]])
            if obj.name in CORE_TYPE_NAMES:
                raise EngineRefusal(f'type "{obj.name}" is already defined by module "daggercore"')
            if obj.name in objects:
                raise EngineRefusal(f'type "{obj.name}" is already defined by module "{main}"')
            check_object(obj)
            objects[obj.name] = obj
        if main not in objects:
            raise EngineRefusal(f"main object {main!r} not registered")
        self.objects = objects
        return objects

    def _type_ref(self, builder: Builder) -> TypeRef:
        kind, name, optional, element = None, None, False, None
        for call, args in builder.calls:
            if call == "withKind":
                kind = args["kind"]
            elif call == "withOptional":
                optional = bool(args["optional"])
            elif call in ("withObject", "withInterface", "withScalar", "withEnum"):
                kind = {"withObject": "OBJECT_KIND", "withInterface": "INTERFACE_KIND",
                        "withScalar": "SCALAR_KIND", "withEnum": "ENUM_KIND"}[call]
                name = args["name"]
            elif call == "withListOf":
                kind, element = "LIST_KIND", self._type_ref(self._store[args["elementType"]])
        return TypeRef(kind or "?", name, optional, element)

    def _function_def(self, builder: Builder) -> FunctionDef:
        head = builder.first("function") or {}
        args: dict[str, ArgDef] = {}
        doc, policy = None, None
        for call, a in builder.calls:
            if call == "withDescription":
                doc = a["description"]
            elif call == "withCachePolicy":
                policy = a["policy"]
            elif call == "withArg":
                default = a.get("defaultValue")
                args[a["name"]] = ArgDef(
                    a["name"], self._type_ref(self._store[a["typeDef"]]), a.get("description"),
                    json.loads(default) if default is not None else None, default is not None,
                    a.get("defaultPath"), a.get("ignore"),
                )
        return FunctionDef(head.get("name", ""), self._type_ref(self._store[head["returnType"]]), doc, policy, args)

    def _object_def(self, builder: Builder) -> ObjectDef:
        head = builder.first("withObject") or {}
        constructor = builder.first("withConstructor")
        functions = {}
        for call in builder.all("withFunction"):
            fn = self._function_def(self._store[call["function"]])
            functions[fn.name] = fn
        return ObjectDef(
            head["name"], head.get("description"),
            self._function_def(self._store[constructor["function"]]) if constructor else None, functions,
            tuple(call["name"] for call in builder.all("withField")),
        )

    # ---------------------------------------------------------------- invocation

    def call(self, line: str) -> str:
        """Run one ``dagger call ...`` line; returns what the CLI prints.

        Raises:
            EngineRefusal: the engine or the CLI would refuse the line, or a function
                failed (the function's error message).
            NotExecuted: the line reaches a container step that needs an engine.
        """
        if not self.objects:
            self.register()
        tokens = shlex.split(_expand(line, self.env))
        if tokens[:2] != ["dagger", "call"]:
            raise EngineRefusal(f"not a dagger call line: {line}")
        main = main_object_name(self.context_dir / "dagger.json")
        obj = self.objects[main]
        flags, i = _take_flags(tokens, 2, obj.constructor.args if obj.constructor else {}, f"{main} constructor")
        state = self._invoke(main, {}, obj.constructor, flags)
        while i < len(tokens):
            token = tokens[i]
            fn = next((f for name, f in obj.functions.items() if _kebab(name) == token), None)
            if fn is None:
                raise EngineRefusal(f"unknown command {token!r} for {obj.name}")
            flags, i = _take_flags(tokens, i + 1, fn.args, f"{obj.name}.{token}")
            result = self._invoke(obj.name, state, fn, flags)
            ret = fn.returns
            if ret.kind == "OBJECT_KIND" and ret.name in self.objects:
                obj, state = self.objects[ret.name], _object_state(result)
                continue
            return self._core_tail(ret, result, tokens[i:])
        raise EngineRefusal(f"{obj.name}: a function is required after {line!r}")

    def _invoke(
        self, object_name: str, state: Any, fn: FunctionDef | None, flags: dict[str, str | list[str] | bool]
    ) -> Any:
        """One function call as the engine makes it: inputs as JSON, a fresh working directory."""
        inputs: dict[str, Any] = {}
        for arg in (fn.args.values() if fn else ()):
            if arg.name in flags:
                inputs[arg.name] = self._input(arg, flags[arg.name])
            elif arg.default_path is not None:
                inputs[arg.name] = self._keep(self._default_dir(arg))
            elif not arg.type.optional and not arg.has_default:
                raise EngineRefusal(f"required flag(s) \"{_kebab(arg.name)}\" not set")
        module = self.module()
        name = fn.name if fn else ""
        scratch = self._new_dir("scratch-")
        previous = Path.cwd()
        os.chdir(scratch)
        hidden = {k: os.environ.pop(k) for k in list(os.environ) if k in self.env or k in JOB_ONLY
                  or k.startswith(("CI_", "GITLAB_"))}
        try:
            result = anyio.run(module.get_result, object_name, state or {}, name, inputs)
        except dagger.DaggerError as exc:  # FunctionError and the SDK's other module errors
            if isinstance(exc.__cause__, NotExecuted):  # the SDK wraps what a function raises
                raise exc.__cause__ from None
            raise EngineRefusal(str(exc)) from None
        finally:
            os.chdir(previous)
            os.environ.update(hidden)
        self.executed.append(f"{object_name}.{name or 'constructor'}")
        return result

    def _default_dir(self, arg: ArgDef) -> DirectoryObj:
        source = self.context_dir / arg.default_path.lstrip("/")
        snapshot = self._new_dir("context-")
        filtered_copy(source, snapshot, arg.ignore or [])
        return DirectoryObj(snapshot)

    def _input(self, arg: ArgDef, raw: str | list[str] | bool) -> Any:
        kind, name = arg.type.kind, arg.type.name
        if kind == "BOOLEAN_KIND":
            return raw if isinstance(raw, bool) else raw == "true"
        if isinstance(raw, bool):
            raise EngineRefusal(f"flag needs an argument: --{_kebab(arg.name)}")
        if kind == "LIST_KIND":
            values = raw if isinstance(raw, list) else [raw]
            return [v for value in values for v in value.split(",")]
        if isinstance(raw, list):
            raw = raw[-1]
        if kind == "STRING_KIND":
            return raw
        if kind == "INTEGER_KIND":
            return int(raw)
        if kind == "FLOAT_KIND":
            return float(raw)
        if name == "Secret":
            return self._keep(self._secret(raw, arg))
        if name == "Directory":
            return self._keep(self._host_directory(raw, arg))
        raise EngineRefusal(f"harness: a {name or kind} argument from the command line is not emulated")

    def _secret(self, raw: str, arg: ArgDef) -> SecretObj:
        scheme, _, rest = raw.partition(":")
        if scheme == "env":
            if rest not in self.env:
                raise EngineRefusal(f"secret env var not found: {rest!r}")
            return SecretObj(self.env[rest], rest)
        if scheme == "file":
            return SecretObj((self.cwd / rest).read_text(), rest)
        raise EngineRefusal(f"--{_kebab(arg.name)}: unsupported secret arg source: {scheme!r}")

    def _host_directory(self, raw: str, arg: ArgDef) -> DirectoryObj | GitSourceObj:
        if re.match(r"^(https?|ssh|git)://|^git@", raw):
            _, _, ref = raw.partition("#")
            ref = ref.split(":", 1)[0]
            if re.fullmatch(r"[0-9a-f]{7,39}", ref):
                raise EngineRefusal(
                    f"{raw}: {ref!r} is not a full commit SHA; the engine looks it up as a branch or tag "
                    "name (give all 40 hex characters, or a tag)"
                )
            return GitSourceObj(raw)
        path = self.cwd / raw
        if not path.is_dir():
            raise EngineRefusal(f"{raw}: no such directory")
        snapshot = self._new_dir("host-")
        filtered_copy(path, snapshot, arg.ignore or [])
        return DirectoryObj(snapshot)

    def _core_tail(self, ret: TypeRef, result: Any, rest: list[str]) -> str:
        """What the CLI does with a core-typed result and the tokens after it."""
        if ret.kind in ("STRING_KIND", "INTEGER_KIND", "FLOAT_KIND", "BOOLEAN_KIND", "VOID_KIND"):
            if rest:
                raise EngineRefusal(f"{ret.kind} result takes no further command: {rest}")
            return "" if result is None else str(result)
        obj = self._store.get(result) if isinstance(result, str) else None
        if obj is None:
            raise EngineRefusal(f"function returned {result!r}, not an object ID")
        if isinstance(obj, ContainerObj):
            raise NotExecuted(f"Container {' '.join(rest) or '(printed)'}", obj.steps)
        if not rest:
            return f"{type(obj).__name__}"
        verb, flags, i = rest[0], {}, 1
        if verb == "export":
            core_args = {"path": _arg("path"), "allowParentDirPath": _arg("allowParentDirPath", "BOOLEAN_KIND"),
                         "wipe": _arg("wipe", "BOOLEAN_KIND")}
            flags, i = _take_flags(rest, 1, core_args, f"{type(obj).__name__}.export")
            if i != len(rest):
                raise EngineRefusal(f"unexpected arguments after export: {rest[i:]}")
            if "path" not in flags:
                raise EngineRefusal('required flag(s) "path" not set')
            if isinstance(obj, FileObj):
                return str(export_file(obj, self.cwd, str(flags["path"]), flags.get("allowParentDirPath") is True))
            target = (self.cwd / os.path.normpath(str(flags["path"]))).resolve()
            if target.is_file():
                raise EngineRefusal(f"destination {str(target)!r} is a file")
            shutil.copytree(obj.path, target, symlinks=True, dirs_exist_ok=True)
            return str(target)
        if verb == "contents" and isinstance(obj, FileObj) and len(rest) == 1:
            return obj.path.read_text()
        if verb == "entries" and isinstance(obj, DirectoryObj) and len(rest) == 1:
            return "\n".join(sorted(os.listdir(obj.path)))
        raise EngineRefusal(f"harness: {type(obj).__name__} {' '.join(rest)} is not emulated")


def _object_state(result: Any) -> dict[str, Any]:
    """What the engine keeps of a returned module object and hands the next function as its parent: the
    object's JSON, every field (private ones included) as the SDK wrote it, a core object (a Secret, a
    File, a Directory) as its ID string (``core/object.go``: ``ModuleObjectType.ConvertFromSDKResult``
    keeps the ``map[string]any`` the SDK returned as JSON; ``moduleObjectFieldsToSDKInput`` passes a
    private field back as it was, an object field as its encoded ID). Nothing else survives: a Python
    value that is no JSON fails here as the SDK's return would.
    """
    if not isinstance(result, dict):
        raise EngineRefusal(f"a module object's state must be a JSON object, got {type(result).__name__}")
    return json.loads(json.dumps(result))


def _reserved(name: str) -> bool:
    """``gqlFieldName(name) == "id"`` (``core/module.go``): the lower-camel API name is ``id``."""
    return _camel(name).lower() == "id"


def check_object(obj: ObjectDef) -> None:
    """The engine's and the CLI's registration rules for one object (module doc); EngineRefusal on the first broken.

    Raises:
        EngineRefusal: with the engine's (or the CLI's) message.
    """
    for field_name in obj.fields:
        if _reserved(field_name):
            raise EngineRefusal(f'cannot define field with reserved name "{field_name}" on object "{obj.name}"')
    for fn in [*obj.functions.values(), *([obj.constructor] if obj.constructor else [])]:
        if fn.name and _reserved(fn.name):
            raise EngineRefusal(f'cannot define function with reserved name "{fn.name}" on object "{obj.name}"')
        for arg in fn.args.values():
            check_arg(arg)


def check_arg(arg: ArgDef) -> None:
    """``functionWithArg`` (``core/schema/module.go``) and ``modFunctionArg.AddFlag`` (``cmd/dagger/flags.go``)."""
    if arg.has_default and arg.default_path:
        raise EngineRefusal("cannot set more than one default value")
    kind, name = arg.type.kind, arg.type.name
    if arg.default_path:
        if kind != "OBJECT_KIND":
            raise EngineRefusal(f"can only set default path for Object, not {kind}")
        if name not in DEFAULT_PATH_TYPES:
            raise EngineRefusal(f"cannot set default path for {name}")
    if arg.ignore:
        if kind != "OBJECT_KIND":
            raise EngineRefusal(f"can only set ignore for Object type, not {kind}")
        if name != "Directory":
            raise EngineRefusal(f"can only set ignore for Directory type, not {name}")
    if _kebab(arg.name) in CALL_PERSISTENT_FLAGS:
        raise EngineRefusal(f"flag already exists: {_kebab(arg.name)}")


def export_file(obj: FileObj, cwd: Path, raw: str, allow_parent_dir_path: bool) -> Path:
    """``File.export`` on the caller's side (``engine/client/filesync.go``, ``FilesyncTarget.DiffCopy``)."""
    target = Path(os.path.normpath(cwd / raw))  # filepath.Clean: "dist/charts/dev/" -> ".../dist/charts/dev"
    if target.is_dir():
        if not allow_parent_dir_path:
            raise EngineRefusal(f"destination {str(target)!r} is a directory; must be a file path unless "
                                "allowParentDirPath is set")
        target = target / obj.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(obj.path, target)
    return target


# --------------------------------------------------------------------------- command-line parsing


def _arg(name: str, kind: str = "STRING_KIND") -> ArgDef:
    return ArgDef(name, TypeRef(kind, None, True), None, None, False, None, None)


def _kebab(name: str) -> str:
    """The CLI's spelling of a registered name: ``plain_http`` / ``plainHttp`` -> ``plain-http``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", _camel(name)).lower()


def _is_local(path: str) -> bool:
    """Go's ``filepath.IsLocal``: relative, not empty, never reaching above its root."""
    if not path or path.startswith("/"):
        return False
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


def _take_flags(tokens: list[str], i: int, args: Mapping[str, ArgDef], where: str) -> tuple[dict[str, Any], int]:
    """Consume ``--flag value`` / ``--flag=value`` / boolean ``--flag`` pairs for one function."""
    by_flag = {_kebab(name): arg for name, arg in args.items()}
    flags: dict[str, Any] = {}
    while i < len(tokens) and tokens[i].startswith("--"):
        key, eq, value = tokens[i][2:].partition("=")
        arg = by_flag.get(key)
        if arg is None:
            raise EngineRefusal(f"unknown flag: --{key} ({where})")
        if arg.type.kind == "BOOLEAN_KIND" and not eq:
            flags[arg.name] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(tokens):
                raise EngineRefusal(f"flag needs an argument: --{key} ({where})")
            value, i = tokens[i + 1], i + 1
        if arg.type.kind == "LIST_KIND":
            flags.setdefault(arg.name, []).append(value)
        else:
            flags[arg.name] = value
        i += 1
    return flags, i


def _expand(line: str, env: Mapping[str, str]) -> str:
    """``$VAR`` / ``${VAR}`` / ``${VAR:-$OTHER}`` as the job's shell expands them (quoted values stay one word).

    ``${VAR:-word}``: ``word`` (itself expanded) when ``VAR`` is unset or empty (POSIX
    shell, "Parameter Expansion").
    """

    def value(name: str) -> str:
        if name not in env:
            raise EngineRefusal(f"variable ${name} is not set for this line")
        return env[name]

    def sub(match: re.Match[str]) -> str:
        if match.group(1):
            return env.get(match.group(1)) or _expand(match.group(2), env)
        return value(match.group(3) or match.group(4))

    return re.sub(r"\$\{(\w+):-([^}]*)\}|\$\{(\w+)\}|\$(\w+)", sub, line)


@contextlib.contextmanager
def running(context_dir: Path = REPO, **kwargs: Any) -> Iterator[Engine]:
    """``with running(repo, cwd=..., env=...) as engine``: an :class:`Engine`, registered."""
    with Engine(context_dir, **kwargs) as engine:
        engine.register()
        yield engine
