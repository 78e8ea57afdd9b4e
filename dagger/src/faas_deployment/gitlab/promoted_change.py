"""The promoted config change: what travels, the version rule, the refusals, the edit and its description.

``promote --from dev --to prod --component C`` reads what runs in the source
environment (a :class:`~faas_deployment.gitlab.source_state.SourceState`), and
:func:`plan` computes the target config ``env/<to>/<C>/cookiecutter-config.yaml`` with

- the promoted values, :data:`PROMOTED_KEYS`, copied as written in the source;
- ``chart_version`` raised (:func:`promoted_version`);
- everything else byte for byte (``bump.edit_context``).

Every other key stays as the target has it: it describes the stage itself (its
size, its storage, its secrets, its environment variables). No list of them is kept:
a guard (:func:`_check_only_promoted_changed`) re-reads the edited text and stops
unless exactly the promoted values and ``chart_version`` differ.

Refusals (:class:`PromotionRefused`, exit 1, nothing written or pushed): the
source is not healthy or does not run what its config says; the target is ahead
(its ``chart_version``, or its semver image tag, is greater than the source's); a
pre-release image (``1.4.0-rc.1``, semver's pre-release) unless the user allows it
(``allow_prerelease``, the CLI's ``--allow-prerelease``). Nothing to promote
(every promoted value already equal) is :class:`UpToDate`, not an error: the line
says ``up to date`` and the exit code is 0.

:func:`describe` and :func:`changelog` give the merge request's title and
description. Writing the change, or committing and proposing it, is
:mod:`.promotion`'s and :mod:`.proposal`'s concern.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from ..charts import bump
from ..core import layout, repofiles, versions
from ..core.errors import UserError
from .source_state import SourceState, config_values, optional_str

#: Keys of ``default_context`` that travel from one stage to the next: what the
#: software is (its image) and how it is reached, not how the stage runs it.
PROMOTED_KEYS = ("image_repository", "image_tag", "container_port", "health_path")


class PromotionRefused(UserError):
    """The promotion would be wrong: unhealthy source, nothing to promote, target ahead."""


class UpToDate(PromotionRefused):
    """Nothing to promote: every promoted value is already the target's (not an error: exit 0)."""


@dataclass(frozen=True)
class Promotion:
    """One component's promotion: the target file's old and new text and what changed."""

    component: str
    from_env: str
    to_env: str
    path: str  # the target config, relative to the repository root, /-separated
    source_path: str
    old_text: str
    new_text: str
    old_version: str
    new_version: str
    changes: dict[str, tuple[Any, Any]]  # key -> (target's old value, promoted value)
    state: SourceState

    @property
    def branch(self) -> str:
        return f"promote/{self.to_env}/{self.component}-{self.new_version}"

    @property
    def line(self) -> str:
        values = ", ".join(f"{k} {o} -> {n}" for k, (o, n) in self.changes.items())
        return (f"promoted {self.from_env} -> {self.to_env} {self.component}: {self.path}: "
                f"{bump.VERSION_KEY} {self.old_version} -> {self.new_version}, {values}")


def promoted_version(target: str, source: str, *, shown: str) -> str:
    """The target's new ``chart_version``: the greater of its next patch and the source's version.

    So the target follows the source's version line (a minor raise in dev becomes
    one in prod) and always moves forward (Flux deploys only a greater version).
    Build metadata of ``source`` is dropped.

    Raises:
        UserError: a version is not semver.
    """
    following = versions.Version.parse(bump.next_chart_version(target, "patch", where=f"{shown}: chart_version"))
    parsed = versions.parse(source)
    if parsed is None:
        raise UserError(f"source chart_version {source!r} is not a semantic version")
    return str(max(following, parsed.replace(build=None)))


def plan(source: Path, from_env: str, to_env: str, component: str, state: SourceState,
         template: Path | None = None, *, target_text: str | None = None,
         allow_prerelease: bool = False) -> Promotion:
    """Compute and validate one component's promotion (nothing written).

    ``target_text``: the target config as the remote's target branch has it (None:
    the working tree's). ``allow_prerelease``: promote an ``image_tag`` with a
    semver pre-release (``-rc.1``); refused otherwise.

    Raises:
        UpToDate: nothing to promote.
        PromotionRefused: unhealthy source, the source runs another version than
            its config, the target is ahead, a pre-release image not allowed.
        UserError / ValidationError: unknown env or component, unreadable or
            invalid configs (the promoted target is validated like any config).
    """
    if from_env == to_env:
        raise UserError(f"--from and --to are both {from_env!r}: promote from one environment to another")
    source_file = layout.config_path(source, from_env, component)
    target_file = layout.config_path(source, to_env, component)
    source_shown, target_shown = (p.relative_to(source).as_posix() for p in (source_file, target_file))
    source_text = repofiles.read_text(source, source_shown)
    if target_text is None:
        target_text = repofiles.read_text(source, target_shown)
    source_ctx, target_ctx = config_values(source_text, source_shown), config_values(target_text, target_shown)
    label = f"{from_env} -> {to_env} {component}"

    if not state.healthy:
        raise PromotionRefused(f"{label}: refused, {from_env} is not healthy: {state.evidence}")
    configured = str(source_ctx.get(bump.VERSION_KEY))
    if state.chart_version != configured or (state.image_tag is not None and
                                             state.image_tag != optional_str(source_ctx.get(bump.TAG_KEY))):
        raise PromotionRefused(
            f"{label}: refused, {from_env} runs chart {state.chart_version} but {source_shown} says {configured}: "
            f"wait until its deploy finishes (evidence: {state.evidence})")

    changes = {key: (target_ctx.get(key), source_ctx[key]) for key in PROMOTED_KEYS
               if key in source_ctx and source_ctx[key] != target_ctx.get(key)}
    if not changes:
        raise UpToDate(f"{label}: up to date: {', '.join(k for k in PROMOTED_KEYS if k in source_ctx)} "
                       f"already equal in {target_shown}")
    new_image = versions.parse_image_tag(source_ctx.get(bump.TAG_KEY)) if bump.TAG_KEY in changes else None
    if new_image is not None and new_image.prerelease and not allow_prerelease:
        raise PromotionRefused(f"{label}: refused, {source_shown} image_tag {source_ctx.get(bump.TAG_KEY)} is a "
                               f"pre-release (-{new_image.prerelease}): promote it into {to_env} only on purpose, "
                               f"with --allow-prerelease")
    old_version = str(target_ctx.get(bump.VERSION_KEY))
    source_v, target_v = versions.parse(configured), versions.parse(old_version)
    if source_v is not None and target_v is not None and target_v > source_v:
        raise PromotionRefused(f"{label}: refused, the target is ahead: {target_shown} chart_version {old_version} "
                               f"> {source_shown} {configured}")
    old_tag, new_tag = versions.parse_image_tag(target_ctx.get(bump.TAG_KEY)), versions.parse_image_tag(
        source_ctx.get(bump.TAG_KEY))
    if old_tag is not None and new_tag is not None and old_tag > new_tag:
        raise PromotionRefused(f"{label}: refused, the target is ahead: {target_shown} image_tag "
                               f"{target_ctx.get(bump.TAG_KEY)} > {source_ctx.get(bump.TAG_KEY)}")

    new_version = promoted_version(old_version, configured, shown=target_shown)
    version_raw = bump.scalar_source(target_text, bump.VERSION_KEY, shown=target_shown) or '""'
    values: dict[str, str] = {}
    for key in changes:
        written = bump.scalar_source(source_text, key, shown=source_shown)
        assert written is not None, f"{source_shown}: {key} is promoted, so it is in the source's context"
        values[key] = written
    values[bump.VERSION_KEY] = bump._scalar_text(new_version, version_raw[0] if version_raw[0] in "'\"" else None)
    new_text = bump.edit_context(target_text, values, shown=target_shown)
    _check_only_promoted_changed(target_text, new_text, target_shown,
                                 {**{k: n for k, (_, n) in changes.items()}, bump.VERSION_KEY: new_version})
    bump.write_validated(target_file, new_text, template=template, shown=target_shown, replace=False)
    return Promotion(component, from_env, to_env, target_shown, source_shown, target_text, new_text,
                     old_version, new_version, changes, state)


def _check_only_promoted_changed(old: str, new: str, shown: str, expected_values: dict[str, Any]) -> None:
    """Re-read both texts: the data must differ in exactly the promoted values (a guard on the edit)."""
    loader = YAML(typ="safe", pure=True)
    before, after = loader.load(old), loader.load(new)
    expected = {**before, bump.CONTEXT_KEY: {**before[bump.CONTEXT_KEY], **expected_values}}
    if after != expected:
        raise UserError(f"{shown}: the promoted values do not read back the same in this file "
                        f"(a value's quoting differs between the configs); copy them by hand")


def changelog(source: Path, promotion: Promotion, *, limit: int = 20) -> list[str]:
    """The source config's commits since the target's image, newest first: ``- `sha` subject (image_tag X)``.

    Walks ``git log`` of the source config from ``HEAD`` and stops at the first
    commit whose ``image_tag`` equals the target's current one (what the target
    runs), at ``limit`` entries, or at a shallow clone's boundary. Empty when
    ``source`` is not a git repository.
    """
    from . import gitops

    old_tag = optional_str(promotion.changes.get(bump.TAG_KEY, (None, None))[0])
    try:
        repo = gitops.open_repository(source)
    except UserError:
        return []
    lines = []
    try:
        for commit, data in gitops.log_of(repo, gitops.head_commit(repo), promotion.source_path, limit=limit):
            try:
                values = config_values(data.decode("utf-8"), promotion.source_path) if data else {}
                tag = optional_str(values.get(bump.TAG_KEY))
            except Exception:  # an old, broken revision of the file: show the commit without its tag
                tag = None
            if old_tag is not None and tag == old_tag:
                break
            subject = commit.message.decode("utf-8", "replace").splitlines()[0] if commit.message else ""
            lines.append(f"- `{commit.id.decode()[:12]}` {subject} (image_tag {tag})")
    finally:
        repo.close()
    return lines


def describe(promotion: Promotion, changelog_lines: list[str], pipeline_url: str) -> tuple[str, str]:
    """The merge request's title and Markdown description for ``promotion``."""
    p = promotion
    title = f"Promote {p.component} {p.from_env} -> {p.to_env}: chart {p.old_version} -> {p.new_version}"
    rows = [f"| `{bump.VERSION_KEY}` | `{p.old_version}` | `{p.new_version}` |"]
    rows += [f"| `{k}` | `{o}` | `{n}` |" for k, (o, n) in p.changes.items()]
    evidence = [f"- {p.from_env}: {p.state.evidence}"]
    if p.state.digest:
        evidence.append(f"- chart digest in {p.from_env}: `{p.state.digest}`")
    if pipeline_url:
        evidence.append(f"- pipeline: {pipeline_url}")
    description = "\n".join([
        f"Promotes what runs in **{p.from_env}** to **{p.to_env}** for `{p.component}` "
        f"(`{p.path}`; only the promoted values and `{bump.VERSION_KEY}` change).", "",
        "| key | " + p.to_env + " now | promoted |", "|---|---|---|", *rows, "",
        f"### Image revisions ({p.source_path} since {p.to_env}'s image)", "",
        *(changelog_lines or ["- (no history available)"]), "",
        "### Evidence", "", *evidence, "",
    ])
    return title, description

