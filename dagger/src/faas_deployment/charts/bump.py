"""Bump a component's config after a new image: set ``image_tag``, raise ``chart_version``.

Flux's helm-controller deploys a component when a new *chart version* appears, so
a new image reaches the cluster only through a chart version that references it.
:func:`bump_config` writes both values into
``env/<env>/<component>/cookiecutter-config.yaml``; the next ``release`` then
publishes exactly one new chart version for that component.

The file is edited in place, not re-serialised: ruamel.yaml's composer gives the
exact start and end offsets of the two scalar values and only those characters
are replaced. Comments, key order, indentation, flow collections and the quoting
of every other value stay byte for byte; the two values keep their own quoting
(a plain value that would no longer read back as a string, e.g. the tag
``0123456``, is double-quoted). The result is re-read and must differ from the
original in those two values only, and must pass :func:`config.validate_config`,
before it replaces the file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode

from ..core import layout, versions
from ..core.errors import UserError, ValidationError
from ..core.names import check_image_tag
from . import config, config_file

#: Parts of a semantic version :func:`next_chart_version` raises.
PARTS = versions.PARTS

CONTEXT_KEY = "default_context"
VERSION_KEY = "chart_version"
TAG_KEY = "image_tag"
#: Where a missing ``image_tag`` is inserted: after the first of these keys present.
_INSERT_AFTER = ("image_repository", VERSION_KEY)


@dataclass(frozen=True)
class BumpResult:
    """The edited config: new ``text``, and the two values before and after.

    ``old_tag`` is ``None`` when the file had no ``image_tag`` (it was added).
    """

    path: str
    text: str
    old_version: str
    new_version: str
    old_tag: str | None
    new_tag: str

    @property
    def unchanged(self) -> bool:
        """The file already had this ``image_tag``: nothing was raised (a re-run of the same bump)."""
        return self.old_tag == self.new_tag and self.old_version == self.new_version

    @property
    def line(self) -> str:
        """One line for the user: ``bumped <file>: chart_version A -> B, image_tag X -> Y``,
        or ``up to date <file>: image_tag X already set, chart_version A``."""
        if self.unchanged:
            return f"up to date {self.path}: {TAG_KEY} {self.new_tag} already set, {VERSION_KEY} {self.old_version}"
        return (
            f"bumped {self.path}: {VERSION_KEY} {self.old_version} -> {self.new_version}, "
            f"{TAG_KEY} {self.old_tag if self.old_tag is not None else '(unset)'} -> {self.new_tag}"
        )


def next_chart_version(version: str, part: str = "patch", *, where: str = f"{CONTEXT_KEY}.{VERSION_KEY}") -> str:
    """The next semantic version after ``version`` for ``part``.

    Uses ``semver.Version.next_version`` (semver.org precedence): ``major``
    resets minor and patch, ``minor`` resets patch, build metadata is dropped; a
    pre-release becomes its release when that is the next version of that part
    (``1.0.3-rc.1`` patch -> ``1.0.3``, ``1.2.0-rc.1`` minor -> ``1.2.0``).
    The result is always greater than ``version``.

    Raises:
        UserError: ``part`` is not patch/minor/major, or ``version`` is not semver.
    """
    if part not in PARTS:
        raise UserError(f"--part: expected one of {', '.join(PARTS)}, got {part!r}")
    if not versions.is_valid(version):
        raise UserError(
            f"{where}: {version!r} is not a semantic version MAJOR.MINOR.PATCH[-pre][+build] (semver.org); "
            f"fix it by hand (e.g. \"1.0.3\"), then bump"
        )
    return versions.next_version(version, part)


def _scalar_text(value: str, style: str | None) -> str:
    """``value`` written as a YAML scalar in ``style`` (None plain, ``'`` or ``\"``).

    Tags and versions hold only ``[A-Za-z0-9_.+-]``: nothing to escape. A plain
    value that PyYAML (what config_file.py reads with) or ruamel.yaml would read as
    something other than this string is double-quoted instead.
    """
    if style == "'":
        return f"'{value}'"
    if style == '"':
        return f'"{value}"'
    plain_ok = yaml.safe_load(f"k: {value}") == {"k": value} and YAML(typ="safe", pure=True).load(f"k: {value}") == {
        "k": value
    }
    return value if plain_ok else f'"{value}"'


def _compose(text: str, shown: str) -> MappingNode:
    try:
        root = YAML(typ="rt").compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{shown}: invalid YAML{where}: {exc.problem}; fix the file, then bump") from None
    if not isinstance(root, MappingNode):
        raise UserError(f"{shown}: expected a mapping with a top-level {CONTEXT_KEY}: key")
    for key, value in root.value:
        if isinstance(key, ScalarNode) and key.value == CONTEXT_KEY:
            if not isinstance(value, MappingNode):
                raise UserError(f"{shown}: {CONTEXT_KEY}: expected a mapping of template variables")
            return value
    raise UserError(f"{shown}: no top-level {CONTEXT_KEY}: mapping (a cookiecutter user config keeps its values there)")


def _entry(context: MappingNode, key: str) -> tuple[ScalarNode, Any] | None:
    for k, v in context.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _single_line_scalar(node: Any, shown: str, key: str) -> ScalarNode:
    if (
        not isinstance(node, ScalarNode)
        or node.style not in (None, "'", '"')
        or node.start_mark.line != node.end_mark.line
    ):
        raise UserError(
            f"{shown}: {CONTEXT_KEY}.{key}: expected a one-line scalar value (e.g. {key}: \"1.0.3\"); "
            f"write it on one line, then bump"
        )
    return node


def bump_text(text: str, *, image_tag: str, part: str = "patch", shown: str = layout.CONFIG_NAME) -> BumpResult:
    """Set ``default_context.image_tag`` and raise ``default_context.chart_version`` in ``text``.

    A missing ``image_tag`` is added on the line after ``image_repository`` (or
    ``chart_version``), indented like it. ``shown`` names the file in errors.
    Does not validate against the template: :func:`bump_file` does.

    The same ``image_tag`` again changes nothing (:attr:`BumpResult.unchanged`):
    a re-run never raises ``chart_version`` a second time.

    Returns:
        The new text and the old and new values.

    Raises:
        UserError: invalid tag or part, invalid YAML, no ``default_context``
            mapping, ``chart_version`` missing, not one line or not semver.
    """
    check_image_tag(image_tag, where="--image-tag")
    if part not in PARTS:
        raise UserError(f"--part: expected one of {', '.join(PARTS)}, got {part!r}")
    context = _compose(text, shown)
    found_version = _entry(context, VERSION_KEY)
    if found_version is None:
        raise UserError(
            f'{shown}: {CONTEXT_KEY}.{VERSION_KEY}: missing; add the chart\'s semantic version, e.g. "1.0.0"'
        )
    version_node = _single_line_scalar(found_version[1], shown, VERSION_KEY)
    old_version = version_node.value
    new_version = next_chart_version(old_version, part, where=f"{shown}: {CONTEXT_KEY}.{VERSION_KEY}")

    old_tag = _old_value(context, TAG_KEY, shown)
    if old_tag == image_tag:  # a re-run of the same bump: Flux already has (or will get) this version
        return BumpResult(shown, text, old_version, old_version, old_tag, image_tag)
    new_text = edit_context(
        text, {VERSION_KEY: _scalar_text(new_version, version_node.style),
               TAG_KEY: _scalar_text(image_tag, _style(context, TAG_KEY, '"'))}, shown=shown)
    _check_only_two_values_changed(text, new_text, shown, new_version, image_tag)
    return BumpResult(shown, new_text, old_version, new_version, old_tag, image_tag)


def _style(context: MappingNode, key: str, default: str | None) -> str | None:
    found = _entry(context, key)
    return found[1].style if found is not None and isinstance(found[1], ScalarNode) else default


def _old_value(context: MappingNode, key: str, shown: str) -> str | None:
    found = _entry(context, key)
    return None if found is None else _single_line_scalar(found[1], shown, key).value


def edit_context(text: str, values: dict[str, str], *, shown: str = layout.CONFIG_NAME) -> str:
    """``text`` with ``default_context.<key>`` set to each YAML scalar text of ``values``.

    ``values`` maps a key to its new value *as written in YAML* (``'"1.0.4"'``,
    ``8080``, ``'/healthz'``): only the characters of the old one-line scalar are
    replaced (comments, order, indentation and every other value stay byte for
    byte). A key the mapping lacks is added on the line after ``image_repository``
    (or ``chart_version``), indented like it. The shared editing step of
    :func:`bump_text` and the promotion (``promotion.py``).

    Raises:
        UserError: invalid YAML, no ``default_context`` mapping, a value to replace
            that is not a one-line scalar, a key to add to a flow-style mapping or
            with no ``image_repository``/``chart_version`` to add it after.
    """
    context = _compose(text, shown)
    # (start, end, replacement) edits, applied from the end so offsets stay valid.
    edits: list[tuple[int, int, str]] = []
    for key, scalar in values.items():
        found = _entry(context, key)
        if found is not None:
            node = _single_line_scalar(found[1], shown, key)
            edits.append((node.start_mark.index, node.end_mark.index, scalar))
            continue
        if context.flow_style:
            raise UserError(
                f"{shown}: {CONTEXT_KEY}: no {key} key, and the mapping is in flow style; add {key} by hand"
            )
        anchors = [e for e in map(lambda k: _entry(context, k), _INSERT_AFTER) if e is not None]
        if not anchors:
            raise UserError(f"{shown}: {CONTEXT_KEY}: no {key} key and no {' or '.join(_INSERT_AFTER)} to add it after")
        anchor_key, anchor_value = anchors[0]
        line_end = text.find("\n", anchor_value.end_mark.index)
        position = len(text) if line_end < 0 else line_end + 1
        newline = "" if line_end >= 0 else "\n"
        edits.append((position, position, f"{newline}{' ' * anchor_key.start_mark.column}{key}: {scalar}\n"))
    new_text = text
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        new_text = new_text[:start] + replacement + new_text[end:]
    return new_text


def _check_only_two_values_changed(old: str, new: str, shown: str, version: str, tag: str) -> None:
    """Re-read both texts: the data must differ in exactly the two values (a guard on the edit)."""
    loader = YAML(typ="safe", pure=True)
    before, after = loader.load(old), loader.load(new)
    expected = dict(before)
    expected[CONTEXT_KEY] = {**before[CONTEXT_KEY], VERSION_KEY: version, TAG_KEY: tag}
    if after != expected:  # pragma: no cover - a bug in the edit, not a user error
        raise AssertionError(f"{shown}: the edit changed more than {VERSION_KEY} and {TAG_KEY}")


def bump_file(
    path: Path, *, image_tag: str, part: str = "patch", template: Path | None = None, shown: str | None = None
) -> BumpResult:
    """Bump the config file at ``path`` in place (see :func:`bump_text`).

    The new text is written to a temporary file beside ``path``, validated with
    :func:`config.validate_config` against ``template`` (None: the embedded
    one), and only then moved over ``path`` (atomic rename; file mode kept).

    Raises:
        UserError: see :func:`bump_text`; the file cannot be read or written.
        ValidationError: the bumped config does not validate (the file is left unchanged).
    """
    path = Path(path)
    shown = shown or str(path)
    from ..core import repofiles

    try:
        text = repofiles.read_text(*repofiles.split(path, shown))
    except repofiles.NotReadable as exc:
        raise UserError(f"{shown}: {exc.reason}") from None
    problems = config_file.read_problems(path, shown)
    if problems:  # the same refusal check gives, before ruamel.yaml reads it
        raise ValidationError(problems)
    result = bump_text(text, image_tag=image_tag, part=part, shown=shown)
    if not result.unchanged:
        write_validated(path, result.text, template=template, shown=shown)
    return result


def write_validated(path: Path, text: str, *, template: Path | None = None, shown: str | None = None,
                    replace: bool = True) -> None:
    """Validate ``text`` as the config at ``path``, then (``replace``) write it over ``path``.

    ``text`` goes to a temporary file beside ``path``, is validated with
    :func:`config.validate_config` against ``template`` (None: the embedded one)
    and only then moved over ``path`` (atomic rename; file mode kept). With
    ``replace=False`` nothing is written: validation only.

    Raises:
        ValidationError: ``text`` does not validate (``path`` is left unchanged).
    """
    path = Path(path)
    fd, temp_name = tempfile.mkstemp(prefix=".bump-", suffix=".yaml", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(temp, path.stat().st_mode & 0o7777)
        config.validate_config(temp, template, shown=shown or str(path))
        if replace:
            os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def bump_config(
    source: Path, env: str, component: str, *, image_tag: str, part: str = "patch", template: Path | None = None
) -> BumpResult:
    """Bump ``env/<env>/<component>/cookiecutter-config.yaml`` under ``source`` in place.

    Raises:
        UserError: unknown env or component (known ones listed), see :func:`bump_file`.
        ValidationError: the bumped config does not validate (file unchanged).
    """
    path = layout.config_path(Path(source), env, component)
    return bump_file(path, image_tag=image_tag, part=part, template=template,
                     shown=path.relative_to(source).as_posix())


def scalar_source(text: str, key: str, *, shown: str = layout.CONFIG_NAME) -> str | None:
    """``default_context.<key>``'s one-line scalar exactly as written in ``text`` (quotes included).

    None when the key is absent. What :func:`edit_context` takes, so a value can be
    carried from one config to another unchanged.

    Raises:
        UserError: see :func:`edit_context`; the value is not a one-line scalar.
    """
    found = _entry(_compose(text, shown), key)
    if found is None:
        return None
    node = _single_line_scalar(found[1], shown, key)
    return text[node.start_mark.index:node.end_mark.index]
