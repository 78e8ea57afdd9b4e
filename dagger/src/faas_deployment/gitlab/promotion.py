"""Promotion: carry what is verified running in one environment to the next, by merge request.

``promote --from dev --to prod --component C`` reads what runs in the source
environment (a :class:`SourceState` from a provider), writes the target config
``env/<to>/<C>/cookiecutter-config.yaml`` with

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
(every promoted value already equal) is not a refusal: the line says ``up to date``
and the exit code is 0.

With a GitLab project (:class:`Proposal`) the change is not written into the
working tree. The target branch is read from the remote first (:mod:`gitops`,
fetched within the deadline), and the change is computed on the remote's target
config, not on the local checkout's: a target that moved on (another promotion
merged, prod already at a higher ``chart_version``) is seen and said, and the
change is rebased onto it (or refused, or up to date). The commit
(deterministic) goes on ``promote/<to>/<C>-<version>``, and a merge request is
opened or updated (:mod:`merge_request`); older ``promote/<to>/<C>-*`` merge
requests are closed. The branch is never forced over a commit this code did not
write (:func:`_publish_branch`): a branch that already holds the change (a
reviewer's commits on top included) is kept as it is; one with someone else's
commits and another change is refused, saying which commits.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ..charts import bump
from ..core import layout, repofiles, versions
from ..core.deadline import Deadline
from ..core.errors import UserError

if TYPE_CHECKING:  # python-gitlab and dulwich are imported by the functions that use them (CLI start-up)
    from .merge_request import GitLabProject, MergeRequestResult

#: Keys of ``default_context`` that travel from one stage to the next: what the
#: software is (its image) and how it is reached, not how the stage runs it.
PROMOTED_KEYS = ("image_repository", "image_tag", "container_port", "health_path")
DEFAULT_LABELS = ("promotion",)
DEFAULT_AUTHOR = "faas-deployment <faas-deployment@noreply.invalid>"
#: Default overall deadline of every git and GitLab step of ``promote``/``bump --merge-request``, seconds.
DEFAULT_TIMEOUT = 120.0


class PromotionRefused(UserError):
    """The promotion would be wrong: unhealthy source, nothing to promote, target ahead."""


@dataclass(frozen=True)
class SourceState:
    """What runs in the source environment, as far as a provider can tell.

    ``chart_version`` without build metadata; ``image_tag`` None when the provider
    cannot see it (a HelmRelease does not record values); ``digest`` the chart's
    ``sha256:...`` or None; ``evidence`` one or more lines for the merge request.
    """

    chart_version: str
    image_tag: str | None
    digest: str | None
    healthy: bool
    evidence: str


class SourceStateProvider(Protocol):
    """``provider(env, component) -> SourceState``: what runs in ``env``.

    Implementations: :class:`ConfigState` (the source config, always available),
    :class:`HelmReleaseStatusFile` (a HelmRelease document saved as JSON),
    :class:`ClusterState` (the live HelmRelease, :func:`state_from_helmrelease`).
    """

    def __call__(self, env: str, component: str) -> SourceState: ...


def _context(text: str, shown: str) -> dict[str, Any]:
    data = YAML(typ="safe", pure=True).load(text)
    context = data.get(bump.CONTEXT_KEY) if isinstance(data, dict) else None
    if not isinstance(context, dict):
        raise UserError(f"{shown}: no top-level {bump.CONTEXT_KEY}: mapping")
    return context


@dataclass(frozen=True)
class ConfigState:
    """The source config as the state: healthy by assumption, said so in the evidence."""

    source: Path

    def __call__(self, env: str, component: str) -> SourceState:
        path = layout.config_path(self.source, env, component)
        shown = path.relative_to(self.source).as_posix()
        context = _context(repofiles.read_text(self.source, shown), shown)
        return SourceState(str(context.get(bump.VERSION_KEY)), _str(context.get(bump.TAG_KEY)), None, True,
                           f"source config {shown} (not verified in the cluster)")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def state_from_helmrelease(document: Any, *, shown: str) -> SourceState:
    """The :class:`SourceState` of a ``helm.toolkit.fluxcd.io/v2`` HelmRelease object.

    Reads ``status.history[0]`` (newest first: ``chartVersion``, ``status``,
    ``ociDigest`` or ``digest``), the ``Ready`` condition and
    ``status.observedGeneration`` against ``metadata.generation`` (helm-controller
    ``api/v2/helmrelease_types.go``, ``snapshot_types.go``). Healthy means
    ``history[0].status == "deployed"``, ``Ready=True`` and the generation
    observed; a ``chartVersion`` of ``<version>+<digest12>`` (a ``chartRef`` to an
    OCIRepository) counts as ``<version>``.

    Raises:
        UserError: not a HelmRelease object, or no ``status.history``.
    """
    if not isinstance(document, dict) or document.get("kind") != "HelmRelease":
        raise UserError(f"{shown}: expected a HelmRelease object (kind: HelmRelease), "
                        f"e.g. from kubectl get helmrelease NAME -o json")
    status = found if isinstance(found := document.get("status"), dict) else {}
    history = status.get("history")
    if not isinstance(history, list) or not history or not isinstance(history[0], dict):
        raise UserError(f"{shown}: status.history: empty or missing; the HelmRelease has never been released")
    latest = history[0]
    version = str(latest.get("chartVersion", ""))
    listed = found if isinstance(found := status.get("conditions"), list) else []
    conditions = {str(c.get("type")): c for c in listed if isinstance(c, dict)}
    ready = conditions.get("Ready", {})
    metadata = found if isinstance(found := document.get("metadata"), dict) else {}
    generation, observed = metadata.get("generation"), status.get("observedGeneration")
    observed_ok = generation is None or observed == generation
    healthy = latest.get("status") == "deployed" and ready.get("status") == "True" and observed_ok
    name = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}".strip("/")
    evidence = (
        f"HelmRelease {name}: history[0] chartVersion {version} status {latest.get('status')}"
        f" digest {latest.get('ociDigest') or latest.get('digest') or '(none)'};"
        f" Ready={ready.get('status', 'Unknown')} ({ready.get('reason', '')}: {ready.get('message', '')})"
        + ("" if observed_ok else f"; observedGeneration {observed} != generation {generation}")
    )
    digest = _str(latest.get("ociDigest") or latest.get("digest") or None)
    return SourceState(version.split("+", 1)[0], None, digest, healthy, evidence)


@dataclass(frozen=True)
class HelmReleaseStatusFile:
    """A HelmRelease saved as JSON (``kubectl get helmrelease -o json``), for every component.

    Raises (when called): UserError naming the file when it is unreadable or not JSON.
    """

    path: Path

    def __call__(self, env: str, component: str) -> SourceState:
        shown = str(self.path)
        try:
            document = json.loads(Path(self.path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--source-status {shown}: cannot be read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"--source-status {shown}: not JSON (line {exc.lineno}, column {exc.colno}): "
                            f"{exc.msg}") from None
        return state_from_helmrelease(document, shown=f"--source-status {shown}")


@dataclass(frozen=True)
class ClusterState:
    """The source environment's live HelmRelease, GET from the Kubernetes API.

    ``client``: a Kubernetes API client (:func:`rollout.make_client`), read within
    ``timeout`` seconds (a server that drips or never answers ends it there). The HelmRelease is
    ``<namespace>/<flux_name_prefix><component>`` of ``env/<env>/environment.yaml``
    (:mod:`settings`). Raises (when called): UserError when the settings are invalid
    or the API refuses or cannot be reached; never shows the kubeconfig.
    """

    source: Path
    client: Any
    timeout: float = 60.0  # seconds for the read (``rollout.GET_TIMEOUT``)

    def __call__(self, env: str, component: str) -> SourceState:
        from ..flux import rollout, settings  # the Kubernetes client only when a cluster is read
        env_settings = settings.load(self.source, env)
        name = env_settings.object_name(component)
        document = rollout.get_release(self.client, env_settings.namespace, name, timeout=self.timeout)
        return state_from_helmrelease(document, shown=f"HelmRelease {env_settings.namespace}/{name} (cluster)")


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


class UpToDate(PromotionRefused):
    """Nothing to promote: every promoted value is already the target's (not an error: exit 0)."""


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
    source_ctx, target_ctx = _context(source_text, source_shown), _context(target_text, target_shown)
    label = f"{from_env} -> {to_env} {component}"

    if not state.healthy:
        raise PromotionRefused(f"{label}: refused, {from_env} is not healthy: {state.evidence}")
    configured = str(source_ctx.get(bump.VERSION_KEY))
    if state.chart_version != configured or (state.image_tag is not None and
                                             state.image_tag != _str(source_ctx.get(bump.TAG_KEY))):
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


# --------------------------------------------------------------------------- merge requests


@dataclass(frozen=True)
class Proposal:
    """How a change becomes a merge request: the GitLab project, the branch it targets,
    the git remote to push to, labels, commit author (``Name <email>``, also the
    committer: how this code knows its own commits), the pipeline URL quoted as
    evidence, and the run's overall deadline."""

    gitlab: GitLabProject
    target_branch: str = "main"
    remote: str = "origin"
    labels: tuple[str, ...] = DEFAULT_LABELS
    author: str = DEFAULT_AUTHOR
    pipeline_url: str = ""
    deadline: Deadline | None = None  # every git and GitLab step of the run (None: DEFAULT_TIMEOUT from the first)

    def limit(self) -> Deadline:
        """The run's deadline (one for every step of every component)."""
        if self.deadline is None:
            object.__setattr__(self, "deadline", Deadline(DEFAULT_TIMEOUT))
        return self.deadline  # type: ignore[return-value]


@dataclass
class RemoteBase:
    """The remote's target branch, fetched: the repository, the remote, its refs and the target's tip commit."""

    repo: Any
    remote: Any
    refs: dict[bytes, bytes]
    base: Any

    def text(self, path: str) -> str | None:
        """``path`` as the target branch has it, or None when absent there."""
        from . import gitops

        data = gitops.file_at(self.repo, self.base, path)
        return None if data is None else data.decode("utf-8", "replace")

    def close(self) -> None:
        self.repo.close()


def remote_base(source: Path, proposal: Proposal, branch_prefix: str) -> RemoteBase:
    """Fetch ``proposal.target_branch`` and the branches starting with ``branch_prefix`` from the remote.

    Raises:
        UserError: not a git repository, the remote cannot be reached, answers
            something else than git, or has no such target branch.
        DeadlineExceeded: the remote had not answered by the deadline.
    """
    from . import gitops

    repo = gitops.open_repository(source)
    try:
        remote = gitops.connect(repo, proposal.remote, token=proposal.gitlab.token, deadline=proposal.limit())
        target = f"refs/heads/{proposal.target_branch}".encode()
        prefix = f"refs/heads/{branch_prefix}".encode()
        refs = remote.fetch(repo, lambda name: name == target or name.startswith(prefix))
        if target not in refs:
            raise UserError(f"--target-branch {proposal.target_branch}: no such branch on {remote.url}")
    except BaseException:
        repo.close()
        raise
    return RemoteBase(repo, remote, refs, repo[refs[target]])


def _publish_branch(at: RemoteBase, commit: Any, branch: str, author: str) -> str:
    """Put ``commit`` on the remote's ``branch`` without ever overwriting a commit another wrote.

    - the branch holds ``commit``: nothing sent (``unchanged``);
    - it holds ``commit`` under commits added on top (a reviewer's): nothing sent, they stay (``kept``);
    - absent, or every commit on it since the target's tip is this code's own
      (committer ``author``): pushed, a compare-and-swap on the value read
      (:meth:`gitops.Remote.push`);
    - otherwise: :class:`PromotionRefused` naming the other commits.

    Returns:
        What happened to the branch, for the result line.
    """
    from . import gitops

    ref = f"refs/heads/{branch}".encode()
    old = at.refs.get(ref)
    if old == commit.id:
        return f"branch {branch} unchanged"
    if old is not None and gitops.contains(at.repo, old, commit.id):
        return f"branch {branch} kept as it is (it holds this change, with commits added on it)"
    if old is not None:
        others = gitops.foreign_commits(at.repo, old, at.base.id, author)
        if others:
            listed = "; ".join(f"{c.id.decode()[:12]} {c.message.decode('utf-8', 'replace').splitlines()[0][:60]!r} "
                               f"by {c.committer.decode('utf-8', 'replace')}" for c in others[:5])
            raise PromotionRefused(
                f"{branch} on {at.remote.url} has {len(others)} commit(s) this pipeline did not write ({listed}), "
                f"and this run's change differs from it: they are not overwritten. Merge or close its merge "
                f"request, or rebase it by hand, then run again")
    at.repo.refs[ref] = commit.id
    at.remote.push(at.repo, ref, commit.id, expected=old)
    return f"branch {branch} {'pushed' if old is None else 'replaced (only commits of this pipeline were on it)'}"


def propose(at: RemoteBase, files: dict[str, str], *, branch: str, title: str, description: str,
            proposal: Proposal, supersede_prefix: str, message: str = "") -> tuple[str, MergeRequestResult]:
    """Commit ``files`` (path -> text) on ``branch`` over the remote target's tip, publish it, open or update its MR.

    The commit message is ``title`` and ``message`` (what changed), not the
    description: evidence such as a pipeline URL changes from run to run, the
    commit must not (same base and change, same commit id).

    Returns:
        What happened to the branch (:func:`_publish_branch`) and the merge request.

    Raises:
        PromotionRefused: the branch has commits this code did not write.
        UserError: push refused, GitLab refused (see :mod:`gitops`, :mod:`merge_request`);
            the token never appears in the message.
        DeadlineExceeded: a step had not finished by the deadline.
    """
    from . import gitops
    from .merge_request import MergeRequestSpec, open_or_update

    commit = gitops.commit_files(at.repo, at.base, files, message=f"{title}\n\n{message}\n".replace("\n\n\n", "\n"),
                                 author=proposal.author)
    pushed = _publish_branch(at, commit, branch, proposal.author)
    spec = MergeRequestSpec(branch, proposal.target_branch, title, description, proposal.labels, supersede_prefix)
    return pushed, open_or_update(proposal.gitlab, spec, proposal.limit())


def changelog(source: Path, promotion: Promotion, *, limit: int = 20) -> list[str]:
    """The source config's commits since the target's image, newest first: ``- `sha` subject (image_tag X)``.

    Walks ``git log`` of the source config from ``HEAD`` and stops at the first
    commit whose ``image_tag`` equals the target's current one (what the target
    runs), at ``limit`` entries, or at a shallow clone's boundary. Empty when
    ``source`` is not a git repository.
    """
    from . import gitops

    old_tag = _str(promotion.changes.get(bump.TAG_KEY, (None, None))[0])
    try:
        repo = gitops.open_repository(source)
    except UserError:
        return []
    lines = []
    try:
        for commit, data in gitops.log_of(repo, gitops.head_commit(repo), promotion.source_path, limit=limit):
            try:
                tag = _str(_context(data.decode("utf-8"), promotion.source_path).get(bump.TAG_KEY)) if data else None
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


def promote(source: Path, from_env: str, to_env: str, components: list[str] | None, *,
            state: SourceStateProvider | None = None, template: Path | None = None,
            proposal: Proposal | None = None, write: bool = True, allow_prerelease: bool = False,
            log: Callable[[str], None] | None = None, outcomes: list[dict[str, Any]] | None = None) -> list[str]:
    """Promote ``components`` (None: every component of ``to_env`` that ``from_env`` has).

    Without ``proposal`` the target configs are written in place (``write=False``:
    nothing is written, each line is followed by the unified diff); with one, each
    becomes a merge request (see :func:`propose`), computed on the remote target
    branch's config (:func:`remote_base`). A component with nothing to promote gives
    an ``up to date`` line; any refusal fails the whole run before anything is
    written or pushed.

    Returns:
        A line per component; ``outcomes`` (when given) gets a record per component
        (:func:`_outcome`: ``--output json``).

    Raises:
        PromotionRefused, UserError, ValidationError: see :func:`plan`, :func:`propose`.
    """
    source = Path(source)
    state = state or ConfigState(source)
    outcomes = [] if outcomes is None else outcomes
    if components is None:
        have = set(_components(source, from_env))
        components = [c for c in _components(source, to_env) if c in have]
    lines: list[str] = []
    if proposal is None:
        plans = []
        for component in components:
            try:
                plans.append(plan(source, from_env, to_env, component, state(from_env, component), template,
                                  allow_prerelease=allow_prerelease))
            except UpToDate as exc:
                lines.append(str(exc))
                outcomes.append(_outcome(from_env, to_env, component, "up to date", lines[-1]))
        for p in plans:
            if write:
                bump.write_validated(source / p.path, p.new_text, template=template, shown=p.path)
                lines.append(p.line)
                outcomes.append(_outcome(from_env, to_env, p.component, "promoted", p.line, p))
            else:
                diff = "".join(difflib.unified_diff(p.old_text.splitlines(True), p.new_text.splitlines(True),
                                                    f"a/{p.path}", f"b/{p.path}")).rstrip("\n")
                lines.append(p.line.replace("promoted ", "would promote ", 1) + "\n" + diff)
                outcomes.append(
                    {**_outcome(from_env, to_env, p.component, "would promote", lines[-1], p), "diff": diff}
                )
    else:
        lines = _promote_by_merge_request(source, from_env, to_env, components, state, template, proposal,
                                          allow_prerelease, outcomes)
    if log:
        for line in lines:
            log(line)
    return lines


def _outcome(from_env: str, to_env: str, component: str, outcome: str, line: str,
             p: Promotion | None = None, **more: Any) -> dict[str, Any]:
    """One component's result as data: ``from``, ``to``, ``component``, ``outcome`` (``promoted``,
    ``would promote``, ``up to date``, ``proposed``), the config ``path`` and versions and the changed
    values (when something changed), and ``line``; ``more``: the branch and merge request of a proposal."""
    record: dict[str, Any] = {"from": from_env, "to": to_env, "component": component, "outcome": outcome}
    if p is not None:
        record.update(path=p.path, old_version=p.old_version, new_version=p.new_version,
                      changes={k: {"old": o, "new": n} for k, (o, n) in p.changes.items()})
    return {**record, **more, "line": line}


def _promote_by_merge_request(source: Path, from_env: str, to_env: str, components: list[str],
                              state: SourceStateProvider, template: Path | None, proposal: Proposal,
                              allow_prerelease: bool, outcomes: list[dict[str, Any]]) -> list[str]:
    """Every component planned on the remote target branch's configs first (any refusal: nothing pushed), then
    proposed."""
    at = remote_base(source, proposal, f"promote/{to_env}/")
    try:
        plans, lines = [], []
        for component in components:
            shown = layout.config_path(source, to_env, component).relative_to(source).as_posix()
            remote_text = at.text(shown)
            if remote_text is None:
                raise PromotionRefused(f"{from_env} -> {to_env} {component}: {shown} is not on "
                                       f"{proposal.target_branch} of {at.remote.url}; merge its addition first")
            try:
                p = plan(source, from_env, to_env, component, state(from_env, component), template,
                         target_text=remote_text, allow_prerelease=allow_prerelease)
            except UpToDate as exc:
                lines.append(f"{exc}{_moved_on(source, shown, remote_text, proposal)}")
                outcomes.append(_outcome(from_env, to_env, component, "up to date", lines[-1]))
                continue
            plans.append((p, _moved_on(source, shown, remote_text, proposal)))
        for p, moved in plans:
            title, description = describe(p, changelog(source, p), proposal.pipeline_url)
            pushed, result = propose(at, {p.path: p.new_text}, branch=p.branch, title=title, description=description,
                                     proposal=proposal, supersede_prefix=f"promote/{p.to_env}/{p.component}-",
                                     message=p.line)
            lines.append(f"{p.line}{moved}; {pushed}; {result.line}")
            outcomes.append(_outcome(from_env, to_env, p.component, "proposed", lines[-1], p, branch=p.branch,
                                     merge_request={"iid": result.iid, "web_url": result.web_url,
                                                    "action": result.action, "closed": result.closed}))
        return lines
    finally:
        at.close()


def _moved_on(source: Path, shown: str, remote_text: str, proposal: Proposal) -> str:
    """``""``, or a note that the remote target branch's config is not the working tree's (the target moved on)."""
    try:
        local = repofiles.read_text(source, shown)
    except UserError:
        local = None
    if local == remote_text:
        return ""
    def version(text: str | None) -> str:
        try:
            return str(_context(text or "", shown).get(bump.VERSION_KEY))
        except (UserError, YAMLError):  # a note only: the plan has validated the remote text
            return "?"

    return (f" (the target moved on: {shown} on {proposal.target_branch} has {bump.VERSION_KEY} "
            f"{version(remote_text)}, the working tree {version(local)}; promoted onto {proposal.target_branch})")


def _components(source: Path, env: str) -> list[str]:
    return layout.components(source, env)


def bump_proposal(source: Path, env: str, component: str, *, image_tag: str, part: str = "patch",
                  template: Path | None = None, proposal: Proposal,
                  outcomes: list[dict[str, Any]] | None = None) -> str:
    """``bump`` as a merge request: the bumped config committed on ``bump/<env>/<component>-<version>``.

    The bump is computed on the config as the remote target branch has it
    (:func:`remote_base`), so a re-run after the merge request was merged is ``up
    to date`` and never raises ``chart_version`` again. The working tree is left
    unchanged. Older ``bump/<env>/<component>-*`` merge requests are closed.
    Returns the bump line, the branch's fate and the merge request line; ``outcomes``
    (when given) gets the same as data (the bump's values, ``branch``, ``merge_request``).

    Raises:
        UserError / ValidationError: see :func:`bump.bump_text`, :func:`propose`.
    """
    path = layout.config_path(source, env, component)
    shown = path.relative_to(source).as_posix()
    at = remote_base(source, proposal, f"bump/{env}/{component}-")
    try:
        text = at.text(shown)
        if text is None:
            raise UserError(f"{shown}: not on {proposal.target_branch} of {at.remote.url}; merge its addition first")
        result = bump.bump_text(text, image_tag=image_tag, part=part, shown=shown)
        record = {k: v for k, v in vars(result).items() if k != "text"}
        if result.unchanged:
            line = f"{result.line} (on {proposal.target_branch})"
            if outcomes is not None:
                outcomes.append({**record, "outcome": "up to date", "line": line})
            return line
        bump.write_validated(path, result.text, template=template, shown=shown, replace=False)
        title = (f"Bump {component} in {env}: image {result.old_tag} -> {result.new_tag}, "
                 f"chart {result.old_version} -> {result.new_version}")
        description = "\n".join([
            f"Sets `{bump.TAG_KEY}` and raises `{bump.VERSION_KEY}` in `{shown}` after the image was published.", "",
            "| key | before | after |", "|---|---|---|",
            f"| `{bump.VERSION_KEY}` | `{result.old_version}` | `{result.new_version}` |",
            f"| `{bump.TAG_KEY}` | `{result.old_tag}` | `{result.new_tag}` |", "",
            *([f"Pipeline: {proposal.pipeline_url}", ""] if proposal.pipeline_url else []),
        ])
        pushed, mr = propose(at, {shown: result.text}, branch=f"bump/{env}/{component}-{result.new_version}",
                             title=title, description=description, proposal=proposal,
                             supersede_prefix=f"bump/{env}/{component}-", message=result.line)
    finally:
        at.close()
    line = f"{result.line}; {pushed}; {mr.line}"
    if outcomes is not None:
        outcomes.append({**record, "outcome": "proposed", "branch": f"bump/{env}/{component}-{result.new_version}",
                         "merge_request": {"iid": mr.iid, "web_url": mr.web_url, "action": mr.action,
                                           "closed": mr.closed}, "line": line})
    return line
