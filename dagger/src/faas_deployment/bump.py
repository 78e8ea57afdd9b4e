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

import semver
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode

from . import config
from .errors import UserError
from .images import check_image_tag

#: Parts of a semantic version :func:`next_chart_version` raises.
PARTS = ("patch", "minor", "major")

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
    def line(self) -> str:
        """One line for the user: ``bumped <file>: chart_version A -> B, image_tag X -> Y``."""
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
    if not isinstance(version, str) or not semver.Version.is_valid(version):
        raise UserError(
            f"{where}: {version!r} is not a semantic version MAJOR.MINOR.PATCH[-pre][+build] (semver.org); "
            f"fix it by hand (e.g. \"1.0.3\"), then bump"
        )
    return str(semver.Version.parse(version).next_version(part))


def _scalar_text(value: str, style: str | None) -> str:
    """``value`` written as a YAML scalar in ``style`` (None plain, ``'`` or ``\"``).

    Tags and versions hold only ``[A-Za-z0-9_.+-]``: nothing to escape. A plain
    value that PyYAML (what config.py reads with) or ruamel.yaml would read as
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
    if not isinstance(node, ScalarNode) or node.style not in (None, "'", '"') or node.start_mark.line != node.end_mark.line:
        raise UserError(
            f"{shown}: {CONTEXT_KEY}.{key}: expected a one-line scalar value (e.g. {key}: \"1.0.3\"); "
            f"write it on one line, then bump"
        )
    return node


def bump_text(text: str, *, image_tag: str, part: str = "patch", shown: str = config.CONFIG_NAME) -> BumpResult:
    """Set ``default_context.image_tag`` and raise ``default_context.chart_version`` in ``text``.

    A missing ``image_tag`` is added on the line after ``image_repository`` (or
    ``chart_version``), indented like it. ``shown`` names the file in errors.
    Does not validate against the template: :func:`bump_file` does.

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
        raise UserError(f"{shown}: {CONTEXT_KEY}.{VERSION_KEY}: missing; add the chart's semantic version, e.g. \"1.0.0\"")
    version_node = _single_line_scalar(found_version[1], shown, VERSION_KEY)
    old_version = version_node.value
    new_version = next_chart_version(old_version, part, where=f"{shown}: {CONTEXT_KEY}.{VERSION_KEY}")

    # (start, end, replacement) edits, applied from the end so offsets stay valid.
    edits = [(version_node.start_mark.index, version_node.end_mark.index, _scalar_text(new_version, version_node.style))]
    found_tag = _entry(context, TAG_KEY)
    old_tag: str | None = None
    if found_tag is not None:
        tag_node = _single_line_scalar(found_tag[1], shown, TAG_KEY)
        old_tag = tag_node.value
        edits.append((tag_node.start_mark.index, tag_node.end_mark.index, _scalar_text(image_tag, tag_node.style)))
    else:
        if context.flow_style:
            raise UserError(f"{shown}: {CONTEXT_KEY}: no {TAG_KEY} key, and the mapping is in flow style; add {TAG_KEY} by hand")
        anchor_key, anchor_value = next(e for e in map(lambda k: _entry(context, k), _INSERT_AFTER) if e is not None)
        line_end = text.find("\n", anchor_value.end_mark.index)
        position = len(text) if line_end < 0 else line_end + 1
        newline = "" if line_end >= 0 else "\n"
        entry = f"{newline}{' ' * anchor_key.start_mark.column}{TAG_KEY}: {_scalar_text(image_tag, chr(34))}\n"
        edits.append((position, position, entry))
    new_text = text
    for start, end, replacement in sorted(edits, reverse=True):
        new_text = new_text[:start] + replacement + new_text[end:]

    _check_only_two_values_changed(text, new_text, shown, new_version, image_tag)
    return BumpResult(shown, new_text, old_version, new_version, old_tag, image_tag)


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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{shown}: cannot be read: {exc}") from None
    result = bump_text(text, image_tag=image_tag, part=part, shown=shown)
    fd, temp_name = tempfile.mkstemp(prefix=".bump-", suffix=".yaml", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(result.text)
        os.chmod(temp, path.stat().st_mode & 0o7777)
        config.validate_config(temp, template, shown=shown)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return result


def bump_config(
    source: Path, env: str, component: str, *, image_tag: str, part: str = "patch", template: Path | None = None
) -> BumpResult:
    """Bump ``env/<env>/<component>/cookiecutter-config.yaml`` under ``source`` in place.

    Raises:
        UserError: unknown env or component (known ones listed), see :func:`bump_file`.
        ValidationError: the bumped config does not validate (file unchanged).
    """
    path = config.config_path(Path(source), env, component)
    return bump_file(path, image_tag=image_tag, part=part, template=template,
                     shown=path.relative_to(source).as_posix())
