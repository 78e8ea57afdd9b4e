"""The plan: what a change does to every environment x component, read from two source trees.

``plan`` compares a *base* tree (the repository at the diff base) with a *head* tree
(the change) file by file and says, for every ``env/<env>/<component>/`` found on
either side, what the pipeline must do and why:

- ``install``: a new ``cookiecutter-config.yaml`` (a new component, or a whole new
  environment directory): first publish and deploy;
- ``upgrade``: the chart's inputs changed (its config, ``env/<env>/environment.yaml``
  or the chart template) and ``chart_version`` went up;
- ``refused``: the packaged chart changed but ``chart_version`` did not (or went
  down), or the version breaks the versioning scheme (:func:`versions.scheme_problem`); the
  reason names the file to fix;
- ``retire``: the config was deleted: the component's Flux objects leave the
  generated set; published charts stay in the registry;
- ``upload``: the component's ``dynamic/`` folder changed (operator manifests);
- ``unchanged``: nothing the component depends on changed, or only bytes that do
  not reach the packaged chart (a comment).

"Changed chart content" is decided as the publishing rules decide it: both sides are
rendered and packaged reproducibly (:mod:`faas_deployment.core.packaging`) and the digests
compared; only targets whose inputs changed with an equal version are rendered, so a
plan over many untouched environments reads files and renders nothing.

The trees are plain directories: git is not needed here (``gitrefs`` turns git refs
into trees for the CLI; the Dagger module gets them from the engine). ``plan`` never
contacts a registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..charts import config
from ..core import layout, versions
from ..core.errors import UserError

Action = Literal["install", "upgrade", "refused", "retire", "upload", "unchanged"]
ACTIONS: tuple[Action, ...] = ("install", "upgrade", "refused", "retire", "upload", "unchanged")

#: Hook scripts a component may carry (:func:`layout.hook_file`), run when executable.
DEPLOY_HOOKS = ("pre-deploy", "post-deploy")
#: Where the embedded chart template lives in the repository (a change there plans every chart).
TEMPLATE_IN_REPOSITORY = Path("dagger/src/faas_deployment/charts/template")


@dataclass(frozen=True)
class Item:
    """One planned action for one target.

    Attributes:
        env, component: the target (``env/<env>/<component>/``).
        action: one of :data:`ACTIONS`.
        reason: why, naming the file(s) concerned.
        version: ``chart_version`` at head (``""`` when retired or unreadable).
        base_version: ``chart_version`` at base (``""`` when new or unreadable).
        hooks: the hook scripts that run for this action (``pre-deploy``, ...).
    """

    env: str
    component: str
    action: Action
    reason: str
    version: str = ""
    base_version: str = ""
    hooks: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        return f"{self.env}/{self.component}"


@dataclass(frozen=True)
class Plan:
    """Every target's items, sorted by environment, component, then action order."""

    items: tuple[Item, ...] = field(default_factory=tuple)
    base: str = ""
    head: str = ""

    @property
    def refused(self) -> list[Item]:
        return [i for i in self.items if i.action == "refused"]

    @property
    def actions(self) -> list[Item]:
        """Items the pipeline acts on (install, upgrade, retire, upload)."""
        return [i for i in self.items if i.action not in ("refused", "unchanged")]

    def to_json(self) -> str:
        """``{"base", "head", "items": [{env, component, action, reason, version, base_version, hooks}]}``."""
        return json.dumps(
            {"base": self.base, "head": self.head, "items": [asdict(i) | {"hooks": list(i.hooks)} for i in self.items]},
            indent=2,
        )

    def table(self) -> str:
        """A fixed-width table: target, action, version (``base -> head``), hooks, reason."""
        rows = [("TARGET", "ACTION", "VERSION", "HOOKS", "REASON")]
        for i in self.items:
            version = f"{i.base_version} -> {i.version}" if i.base_version and i.version != i.base_version else (
                i.version or i.base_version)
            rows.append((i.target, i.action, version, ",".join(i.hooks) or "-", i.reason))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows
        ).rstrip()

    def render(self, output: str) -> str:
        """``table`` or ``json``; UserError for another format."""
        if output == "json":
            return self.to_json()
        if output == "table":
            return self.table()
        raise UserError(f"--output {output!r}: expected table or json")


# --------------------------------------------------------------------------- trees


def _digest_file(path: Path) -> str | None:
    """sha256 of a regular file (:func:`repofiles.read_bytes`); ``None`` when absent.

    Raises:
        UserError: the file is a symbolic link, a FIFO, a device or unreadable.
    """
    from ..core import repofiles

    try:
        return hashlib.sha256(repofiles.read_bytes(path.parent, path.name)).hexdigest()
    except repofiles.NotReadable as err:
        if err.missing:
            return None
        raise UserError(f"{path}: {err.reason}") from None


def tree_digest(directory: Path) -> str | None:
    """sha256 over every entry's relative path and content under ``directory`` (``None`` if absent).

    A file gives its bytes, a symbolic link its target (never followed), anything else
    (a FIFO, a device) its kind, never read.

    Raises:
        UserError: a directory or file that cannot be read (named): skipping it would
            plan as if its content had changed, or had not.
    """
    if not directory.is_dir():
        return None
    entries: list[tuple[str, bytes]] = []

    def refuse(exc: OSError) -> None:
        raise UserError(f"{exc.filename}: cannot list directory: {exc.strerror}; make it readable") from None

    for current, dirs, names in os.walk(directory, onerror=refuse):
        dirs.sort()
        for name in [*names, *(d for d in dirs if os.path.islink(os.path.join(current, d)))]:
            path = Path(current, name)
            relative = path.relative_to(directory).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                entries.append((relative, b"link:" + os.readlink(path).encode()))
            elif stat.S_ISREG(mode):
                try:
                    entries.append((relative, path.read_bytes()))
                except OSError as exc:
                    raise UserError(f"{path}: cannot be read: {exc.strerror}; make it readable") from None
            else:
                entries.append((relative, f"kind:{stat.S_IFMT(mode)}".encode()))
    digest = hashlib.sha256()
    for relative, content in sorted(entries):
        digest.update(relative.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


def hooks_of(source: Path, env: str, component: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The executable hook scripts among ``names`` in ``env/<env>/<component>/hooks/``.

    Raises:
        UserError: a hook path that is not a regular file inside the repository (:func:`repofiles.locate`).
    """
    from ..core import repofiles

    found = {n: repofiles.locate(Path(source), layout.hook_file(env, component, n)) for n in names}
    return tuple(n for n, path in found.items() if path is not None and os.access(path, os.X_OK))


def _version(source: Path, env: str, component: str) -> str:
    """``chart_version`` as written in the config (``""`` if unreadable: validation reports it)."""
    from ..core import repofiles

    try:
        text = repofiles.read_text(Path(source), layout.config_file(env, component))
        data = yaml.load(text, Loader=_LOADER)  # a safe loader
        value = data["default_context"]["chart_version"]
    except (UserError, yaml.YAMLError, TypeError, KeyError, RecursionError):
        return ""
    return value if isinstance(value, str) else ""


#: libyaml's safe loader when PyYAML was built with it (10x faster on many configs), else PyYAML's own.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Side:
    """One tree of the comparison: its root and the chart template to render it with."""

    root: Path
    template: Path

    def config(self, env: str, component: str) -> Path:
        return self.root / layout.config_file(env, component)


def side(root: Path, template: Path | None, fetch: Callable[[Any], Path] | None = None) -> Side:
    """The tree ``root``; its template: ``template`` if given (``--template``), else the one the tree's
    ``faas-deployment.yaml`` names (:func:`repository_settings.template_dir`, ``fetch`` for a git one), else the
    tree's embedded one if it has it, else the package's.

    Each tree reads its own setting, so a change of template between base and head plans every chart.

    Raises:
        ValidationError / UserError: the tree's setting is invalid.
    """
    from ..charts import repository_settings

    if template is not None:
        return Side(Path(root), Path(template))
    configured = repository_settings.template_dir(Path(root), fetch)
    if configured is not None:
        return Side(Path(root), configured)
    in_tree = Path(root) / TEMPLATE_IN_REPOSITORY
    return Side(Path(root), in_tree if (in_tree / "cookiecutter.json").is_file() else config.EMBEDDED_TEMPLATE)


def _package_digest(s: Side, env: str, component: str, scratch: Path) -> str:
    from ..charts import build

    return build.package_config(s.root, env, component, s.template, scratch).digest


def outcome(plan: Plan, output: str) -> str:
    """``plan`` rendered as ``output``; UserError carrying that text when anything is refused."""
    text = plan.render(output)
    if plan.refused:
        count = len(plan.refused)
        raise UserError(f"{text}\nplan refused {count} target{'s' if count != 1 else ''}: "
                        + "; ".join(f"{i.target}: {i.reason}" for i in plan.refused))
    return text


def make_plan(base: Side | None, head: Side, *, base_name: str = "", head_name: str = "") -> Plan:
    """Compare ``base`` (``None``: no previous tree, everything is new) with ``head``; see module doc.

    Raises:
        UserError: ``head`` holds no ``env/<env>/<component>/cookiecutter-config.yaml``.
    """
    head_pairs = set(layout.discover(head.root))
    if not head_pairs:
        raise UserError(f"{head.root}: no {layout.CONFIG_GLOB} found: nothing to plan")
    base_pairs = set(layout.discover(base.root)) if base is not None else set()
    template_changed = base is not None and tree_digest(base.template) != tree_digest(head.template)
    items: list[Item] = []
    with tempfile.TemporaryDirectory(prefix="faas-plan-") as scratch:
        for env, component in sorted(head_pairs | base_pairs):
            items.extend(_target_items(base, head, env, component, base_pairs, template_changed, Path(scratch)))
    order = {a: n for n, a in enumerate(ACTIONS)}
    items.sort(key=lambda i: (i.env, i.component, order[i.action]))
    return Plan(tuple(items), base_name, head_name)


def _target_items(
    base: Side | None, head: Side, env: str, component: str,
    base_pairs: set[tuple[str, str]], template_changed: bool, scratch: Path,
) -> Iterator[Item]:
    shown = layout.config_file(env, component).as_posix()
    in_base, in_head = (env, component) in base_pairs, head.config(env, component).is_file()
    version = _version(head.root, env, component) if in_head else ""
    same_config = in_base and in_head and base is not None and _digest_file(base.config(env, component)) == (
        _digest_file(head.config(env, component)))
    old = version if same_config else _version(base.root, env, component) if (in_base and base is not None) else ""
    if not in_head:
        assert base is not None
        yield Item(env, component, "retire", f"{shown} deleted: its Flux objects are removed; published charts stay",
                   "", old)
        return
    hooks = hooks_of(head.root, env, component, DEPLOY_HOOKS)
    problem = versions.scheme_problem(version, shown)
    dynamic = layout.dynamic_of(env, component)
    dynamic_changed = base is None or tree_digest(base.root / dynamic) != tree_digest(head.root / dynamic)
    if (head.root / dynamic).is_dir() and dynamic_changed:
        yield Item(env, component, "upload", f"{dynamic.as_posix()}/ changed", version, old)
    if not in_base:
        assert not (base is not None and (env, component) in base_pairs)
        new_env = base is None or not any(e == env for e, _ in base_pairs)
        why = f"new environment env/{env}/" if new_env else f"new config {shown}"
        if problem:
            yield Item(env, component, "refused", problem, version, "", hooks)
        else:
            yield Item(env, component, "install", why, version, "", hooks)
        return
    assert base is not None
    changed = [] if same_config else [shown]
    settings = layout.settings_file(env).as_posix()
    if _digest_file(base.root / settings) != _digest_file(head.root / settings):
        changed.append(settings)
    if template_changed:
        changed.append("the chart template")
    if not changed:
        if not dynamic_changed or not (head.root / dynamic).is_dir():
            yield Item(env, component, "unchanged", "nothing it depends on changed", version, old)
        return
    inputs = ", ".join(changed)
    if problem:
        yield Item(env, component, "refused", problem, version, old, hooks)
        return
    new, previous = versions.parse(version), versions.parse(old)
    if previous is not None and new is not None and new > previous:
        yield Item(env, component, "upgrade", f"{inputs} changed, chart_version {old} -> {version}", version, old,
                   hooks)
        return
    if previous is not None and new is not None and new < previous:
        yield Item(env, component, "refused", f"{shown}: chart_version {version} is lower than {old} at base; "
                   "Flux deploys only a newer version", version, old, hooks)
        return
    try:
        before = _package_digest(base, env, component, scratch / "base" / env / component)
    except UserError:
        before = None  # the base did not package: any valid head content is a change
    try:
        after = _package_digest(head, env, component, scratch / "head" / env / component)
    except UserError as exc:
        yield Item(env, component, "refused", f"{inputs} changed and the chart does not build: {exc}", version, old,
                   hooks)
        return
    if before == after:
        yield Item(env, component, "unchanged", f"{inputs} changed, the packaged chart did not ({after})", version,
                   old)
    else:
        yield Item(env, component, "refused", f"{inputs} changed the packaged chart without a chart_version bump: "
                   f"bump chart_version in {shown}", version, old, hooks)
