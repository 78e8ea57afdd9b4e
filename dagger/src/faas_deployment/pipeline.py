"""The one door: every verb of both front ends (``faas-deploy`` and the Dagger module) goes through here.

A :class:`Workspace` is a source tree (the repository root, holding
``env/<env>/<component>/cookiecutter-config.yaml``) plus the cookiecutter template
to render charts with (the embedded one unless the user gives another). Each verb
is one method returning a :class:`Result` (text lines for people, JSON-able data
for ``--output json``, a path for verbs that write a file or directory, an exit
code). The front ends only translate arguments (flags, Dagger parameters, secrets)
into these calls: every rule and default lives behind this door.

Every verb validates before it writes anything: ``publish`` and ``release``
package every chart they are about to publish first, so a problem in one
component means nothing is pushed for any. An unknown environment or component
gets one message (:func:`faas_deployment.core.layout.unknown`) whichever verb asked.

Start-up: this module imports only the standard library and light project modules
(:mod:`layout`, :mod:`errors`, :mod:`progress`); each verb imports what it needs
when it runs, so ``faas-deploy --help`` loads neither the Helm engine nor an HTTP
client. The core's defaults the front ends show (:data:`DEFAULTS`) are read the
same lazy way, through the module's ``__getattr__``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

from .core import layout
from .core.errors import Problem, UserError, ValidationError
from .core.progress import note, step

if TYPE_CHECKING:
    from .core.deadline import Deadline
    from .core.packaging import ChartPackage
    from .core.secrets import SecretValue
    from .flux.settings import Settings
    from .registry.publishing import LocalRepoTarget, PublishResult, Target

T = TypeVar("T")


class _HasLine(Protocol):
    @property
    def line(self) -> str: ...


#: A verb's result with its output line (:class:`PublishResult`, :class:`artifact_repository.ArtifactResult`).
R = TypeVar("R", bound=_HasLine)

#: The core's defaults that front ends show in their help, by name: ``(module, attribute)``.
#: Read lazily (``pipeline.DEFAULT_PLATFORM`` imports :mod:`images` on first use).
DEFAULTS: dict[str, tuple[str, str]] = {
    "REGISTRY_TIMEOUT": ("core.deadline", "DEFAULT_TIMEOUT"),
    "DEFAULT_PLATFORM": ("images.images", "DEFAULT_PLATFORM"),
    "READY_PATH": ("bundle.admin_api", "DEFAULT_READY_PATH"),
    "UPLOAD_PATH": ("bundle.admin_api", "DEFAULT_UPLOAD_PATH"),
    "UPLOAD_TIMEOUT": ("bundle.admin_api", "DEFAULT_TIMEOUT"),
    "PROMOTION_LABELS": ("gitlab.promotion", "DEFAULT_LABELS"),
    "COMMIT_AUTHOR": ("gitlab.promotion", "DEFAULT_AUTHOR"),
    "BRANCH_ENVIRONMENTS": ("gitlab.child_pipeline", "BRANCH_ENVIRONMENTS"),
    "TEMPLATE_IN_REPOSITORY": ("gitlab.plan", "TEMPLATE_IN_REPOSITORY"),
    "REPOSITORY_SETTINGS": ("charts.repository_settings", "FILE_NAME"),
    "TEMPLATES_DIR": ("charts.repository_settings", "TEMPLATES_DIR"),
    "BUMP_PARTS": ("charts.bump", "PARTS"),
}
#: The tag ``build-image`` gives an image when none is asked for.
BUILD_TAG = "latest"
#: The Dockerfile of a build context, relative to it.
DOCKERFILE = "Dockerfile"
#: The semver part ``bump`` raises unless told.
BUMP_PART = "patch"
#: The default branch (merge requests' target, the plan's base when none is known).
DEFAULT_BRANCH = "main"
#: The git remote merge request branches are pushed to.
REMOTE = "origin"
#: Labels a ``bump`` merge request gets unless others are given.
BUMP_LABELS = ("bump",)
#: Namespace of the Flux objects ``artifact-objects`` writes, and of the Kustomizations ``wait`` watches.
FLUX_NAMESPACE = "flux-system"
#: Namespace charts are rendered in for ``template`` and the Flux artifacts (as ``helm template`` does); the
#: artifacts' Kustomization applies them in the environment's ``namespace`` (``targetNamespace``).
RENDER_NAMESPACE = "default"
#: Secret holding the Receiver token of the artifact objects.
RECEIVER_SECRET = "faas-receiver-token"
#: ``--output`` forms of results.
OUTPUTS = ("text", "table", "json")


def check_output(output: str) -> str:
    """``output`` if it is a form of :data:`OUTPUTS`; else UserError (before the verb runs)."""
    if output not in OUTPUTS:
        raise UserError(f"--output {output!r}: expected one of {', '.join(OUTPUTS)}")
    return output


def __getattr__(name: str) -> Any:
    if name in DEFAULTS:
        module, attribute = DEFAULTS[name]
        return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- results


def jsonable(value: Any) -> Any:
    """``value`` as JSON-able data: dataclasses as objects (with ``line`` when they have one), paths as strings."""
    if is_dataclass(value) and not isinstance(value, type):
        data = {f.name: jsonable(getattr(value, f.name)) for f in fields(value) if not f.name.startswith("_")}
        if hasattr(type(value), "line"):
            data["line"] = cast(Any, value).line
        return data
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class Result:
    """What a verb gives back.

    Attributes:
        lines: the result for people, one line each (standard output).
        data: the same as JSON-able data (``--output json``).
        path: the file or directory the verb wrote, if any (the Dagger front end returns it).
        exit_code: 0, or a rollout's code (``rollout_outcome.EXIT_CODES``: 3 failed, 4 superseded, 5 timeout).
    """

    lines: tuple[str, ...] = ()
    data: Any = None
    path: Path | None = None
    exit_code: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def render(self, output: str = "text") -> str:
        """The result as ``output``: ``text`` (or ``table``) the lines, ``json`` the data."""
        if output == "json":
            import json

            return json.dumps(self.data, indent=2, sort_keys=False)
        return self.text


@overload
def reveal(secret: None) -> None: ...


@overload
def reveal(secret: SecretValue | Callable[[], SecretValue]) -> SecretValue: ...


def reveal(secret: Any) -> SecretValue | None:
    """A secret argument read now: front ends may pass a :class:`SecretValue` or a callable giving one.

    A callable (the CLI's ``env:NAME``/``file:PATH`` reference) is read only when the
    verb needs the value, after the argument rules: a bad command line is reported
    as such, not as a missing variable.
    """
    return secret() if callable(secret) else secret


def _result(lines: Sequence[str] | str, data: Any = None, *, path: Path | None = None, exit_code: int = 0) -> Result:
    lines = tuple(lines.splitlines()) if isinstance(lines, str) else tuple(lines)
    return Result(lines, jsonable(data) if data is not None else {"lines": list(lines)}, path, exit_code)


def _lines(items: Sequence[Any]) -> Result:
    """A result of objects that each have a ``line`` (publish results, artifact results)."""
    return _result([i.line for i in items], list(items))


#: The settings whose default is a GitLab CI predefined variable of the job
#: (https://docs.gitlab.com/ee/ci/variables/predefined_variables.html): setting -> variable.
#: One home for both front ends; the plan's base ref has its own rule (:func:`gitrefs.default_base`).
CI_DEFAULTS: Mapping[str, str] = {
    "gitlab_url": "CI_SERVER_URL",
    "gitlab_project": "CI_PROJECT_ID",
    "default_branch": "CI_DEFAULT_BRANCH",
    "pipeline_url": "CI_PIPELINE_URL",
    "ref": "CI_COMMIT_REF_NAME",
    "merge_request": "CI_MERGE_REQUEST_IID",
    "pipeline_iid": "CI_PIPELINE_IID",
}


@dataclass(frozen=True)
class ImageBuild:
    """A component image as the Dagger engine builds it (:meth:`Workspace.image_build`): the
    :class:`images.BuildOptions`, the OCI labels, the ``image_repository`` (``""``: not asked)."""

    options: Any
    labels: Mapping[str, str]
    repository: str


@dataclass(frozen=True)
class EngineBase:
    """The plan's base as the Dagger engine reads it (:meth:`Workspace.engine_base`).

    Attributes:
        ref: what to look up.
        kind: ``commit`` (``GitRepository.commit``), ``ref`` (``.ref``) or ``branch`` (``.branch``).
        merge_base: take ``GitRef.commonAncestor`` of it and ``HEAD``.
        name: how the plan and the messages name the base.
    """

    ref: str
    kind: str
    merge_base: bool
    name: str


@dataclass(frozen=True)
class MergeRequestOptions:
    """The merge request settings of ``bump`` and ``promote`` as the user gave them (token already read).

    Empty fields take the CI job's defaults (:meth:`Workspace.proposal`, :data:`CI_DEFAULTS`).
    """

    gitlab_url: str
    gitlab_project: str
    token: SecretValue | None
    target_branch: str = ""
    remote: str = REMOTE
    labels: tuple[str, ...] = ()
    author: str = ""
    pipeline_url: str = ""


@dataclass(frozen=True)
class Registry:
    """The registry flags of a verb, as given: ``registry`` (``oci://...`` or empty), credentials, transport;
    ``immutable_tags``: the registry refuses to overwrite a tag (:class:`publishing.OciTarget`).

    ``host``: the registry ``host[:port]`` the access flags (credentials, ``plain_http``, ``ca_file``) were
    given for, when given once for a chain (Dagger's ``with-registry``); they then reach that host only
    (:meth:`for_url`). ``None``: they are the verb's own flags, for whatever registry the verb uses (the CLI).
    """

    registry: str | None = None
    username: str | None = None
    password: SecretValue | Callable[[], SecretValue] | None = None
    plain_http: bool = False
    timeout: float | None = None
    ca_file: str | Path | None = None
    immutable_tags: bool = False
    host: str | None = None

    @staticmethod
    def check_access(host: str, username: str | None, password: object) -> None:
        """The flags of access given once for ``host`` (``with-registry``): a registry ``host[:port]``
        (:func:`credentials.check_registry_address`), user name and password both or neither.

        Raises:
            UserError: naming the flag and what was expected.
        """
        from .registry.credentials import check_pair, check_registry_address

        check_registry_address(host)
        check_pair(username, password)

    def for_url(self, url: str) -> Registry:
        """These flags for the registry of ``url`` (``oci://HOST[:PORT]/PATH``): as given when they were given
        for its host (or for no host in particular: :attr:`host` ``None``); else without credentials, plain
        HTTP or CA file, as :meth:`credentials.RegistryAccess.for_host` does (credentials never leave their
        host). A malformed ``url`` gets no access; the verb then refuses the URL with its own message."""
        from .core.names import OciUrlError, parse_oci_url
        from .registry.credentials import same_host

        if self.host is None:
            return self
        try:
            host = parse_oci_url(url).host
        except OciUrlError:
            host = ""
        if same_host(host, self.host):
            return self
        return replace(self, username=None, password=None, plain_http=False, ca_file=None)

    def credentials(self):
        """The :class:`credentials.RegistryCredentials` of the user name and password (read now), or ``None``.

        Raises:
            UserError: only one of them is given (:func:`credentials.check_pair`).
        """
        from .core.secrets import refuse_inside
        from .registry.credentials import RegistryCredentials, check_pair

        check_pair(self.username, self.password)  # before reading the password: a bad command line says so
        password = reveal(self.password)
        refuse_inside(password, "--password", {"--registry": self.registry, "--username": self.username,
                                               "--ca-file": str(self.ca_file or "")})
        return RegistryCredentials.from_flags(self.username, password)


@dataclass(frozen=True)
class Workspace:
    """A source tree and the template its charts are rendered with.

    Attributes:
        source: repository root (holds ``env/``).
        template: a cookiecutter template directory; ``None`` means the embedded one.
        source_date_epoch: ``SOURCE_DATE_EPOCH`` as a front end was given it (the Dagger
            runtime never sees the job's environment); ``None``: this process's environment.
        git_templates: git templates already fetched, by :attr:`TemplateSetting.identity`
            (the Dagger module fetches them through the engine: its runtime has no git);
            ``None``: fetch with git here.
        environ: the CI job's environment the defaults of :data:`CI_DEFAULTS` come from;
            ``None``: this process's (the CLI in a job). The Dagger module passes ``{}``: its
            runtime never sees the job's environment, so there a default is the explicit
            argument, else none.

    The template charts are rendered with: ``template`` when given (``--template``),
    else the repository's setting (``faas-deployment.yaml``, :mod:`repository_settings`),
    else the embedded one (:attr:`template_dir`).
    """

    source: Path
    template: Path | None = None
    source_date_epoch: str | None = None
    git_templates: Mapping[str, Path] | None = None
    environ: Mapping[str, str] | None = None

    @classmethod
    def open(cls, source: str | Path, template: str | Path | None = None) -> Workspace:
        """The workspace of a checkout given on a command line (``--source``, ``--template``).

        Raises:
            UserError: ``source`` has no ``env/``; ``template`` has no ``cookiecutter.json``.
        """
        root = Path(source).resolve()
        chosen = Path(template).resolve() if template else None
        if not (root / layout.ENV_ROOT).is_dir():
            raise UserError(f"--source {root}: no env/ directory here (run from the repository root or pass --source)")
        if chosen is not None:
            from .core import repofiles

            try:
                found = repofiles.locate(chosen, "cookiecutter.json")
            except repofiles.NotReadable as err:
                raise UserError(f"--template {chosen}: {err}") from None
            if found is None:
                raise UserError(f"--template {chosen}: no cookiecutter.json (expected a cookiecutter template "
                                f"directory)")
        return cls(root, chosen)

    # ----------------------------------------------------------------------- CI job defaults

    @property
    def job_environ(self) -> Mapping[str, str]:
        """:attr:`environ`, else this process's environment."""
        import os

        return os.environ if self.environ is None else self.environ

    def ci_default(self, value: str | None, setting: str) -> str:
        """``value`` when given (non-empty), else the job variable :data:`CI_DEFAULTS` names for
        ``setting``, else ``""``.

        Raises:
            KeyError: ``setting`` is not in :data:`CI_DEFAULTS` (a programming error).
        """
        return value or self.job_environ.get(CI_DEFAULTS[setting], "")

    # ----------------------------------------------------------------------- names and paths

    @functools.cached_property
    def template_dir(self) -> Path:
        """``template``, else the repository's ``template`` setting, else the embedded template.

        Raises:
            ValidationError / UserError: an invalid setting (:func:`repository_settings.template_dir`).
        """
        from .charts import repository_settings
        from .charts.config import EMBEDDED_TEMPLATE

        return self.template or repository_settings.template_dir(self.source, self.fetch_template) or EMBEDDED_TEMPLATE

    def fetch_template(self, setting: Any) -> Path:
        """A git template's directory: from :attr:`git_templates`, else fetched with git
        (:func:`repository_settings.fetch_git`)."""
        from .charts import repository_settings

        if self.git_templates is None:
            return repository_settings.fetch_git(setting)
        if setting.identity not in self.git_templates:
            raise UserError(f"{repository_settings.FILE_NAME}: template {setting.identity} was not fetched")
        return self.git_templates[setting.identity]

    @staticmethod
    def git_template(root: Path) -> Any:
        """The repository's git template setting (``url``, ``commit``, ``directory``, ``identity``), or ``None``.

        For a front end that fetches it itself (the Dagger module, through the engine).
        """
        from .charts import repository_settings

        setting = repository_settings.load(Path(root))
        return setting if setting is not None and setting.url else None

    def config_file(self, env: str, component: str) -> Path:
        """``env/<env>/<component>/cookiecutter-config.yaml``; UserError when unknown."""
        return layout.config_path(self.source, env, component)

    def display(self, env: str, component: str) -> str:
        """The config file's path relative to the source root, as messages name it."""
        return layout.shown(self.source, self.config_file(env, component))

    @functools.cached_property
    def discovered(self) -> list[tuple[str, str]]:
        """Every ``(env, component)`` pair of the source tree, sorted, discovered once per workspace
        (:func:`layout.discover`: names checked); a workspace serves one run.

        Raises:
            ValidationError: a bad or colliding name (:func:`layout.check_names`).
        """
        return layout.discover(self.source)

    def envs(self) -> list[str]:
        """The environments that have at least one component, sorted (:attr:`discovered`)."""
        return layout.envs_of(self.discovered)

    def components(self, env: str) -> list[str]:
        """Components of ``env``, sorted, as discovered on disk (:attr:`discovered`); UserError for an unknown env."""
        return layout.components_of(self.discovered, env, self.source)

    def resolve(self, env: str, component: str | None = None) -> list[str]:
        """The components a verb works on: ``[component]`` checked to exist, else every one of ``env``.

        Raises:
            UserError: unknown environment or component (one message, :func:`layout.unknown`).
        """
        if component:
            self.config_file(env, component)
            return [component]
        return self.components(env)

    def settings(self, env: str):
        """``env/<env>/environment.yaml``, validated (:func:`faas_deployment.flux.settings.load`)."""
        from .flux import settings

        self.components(env)
        return settings.load(self.source, env)

    # ----------------------------------------------------------------------- charts (building blocks)

    def context(self, env: str, component: str, prerelease: str = "") -> dict[str, Any]:
        """The validated, resolved cookiecutter context (raises ValidationError).

        ``prerelease`` (e.g. ``mr.42.3``) publishes ``chart_version`` as the pre-release
        ``<chart_version>-<prerelease>`` (docs/plan.md, "Versions").
        """
        from .charts import config
        from .core import versions

        self.config_file(env, component)
        with step(f"validate {env}/{component}"):
            context = config.load_context(self.source, env, component, self.template_dir)
        if prerelease:
            context["chart_version"] = versions.prerelease_version(self.display(env, component),
                                                                   context["chart_version"], prerelease)
        return context

    def render_chart(self, env: str, component: str, out_dir: Path, prerelease: str = "",
                     context: dict[str, Any] | None = None) -> Path:
        """Validate, render with cookiecutter and lint with Helm; returns the chart directory.

        ``context``: the component's context when the caller has resolved it already (:meth:`context`).
        """
        from .charts import chart

        if context is None:
            context = self.context(env, component, prerelease)
        with step(f"render {env}/{component}"):
            chart_dir = chart.render_chart(context, self.template_dir, out_dir)
        with step(f"lint {env}/{component}"):
            chart.require_lint_clean(chart_dir, shown=f"{env}/{component}")
        return chart_dir

    def package_chart(self, env: str, component: str, out_dir: Path, prerelease: str = "",
                      context: dict[str, Any] | None = None) -> ChartPackage:
        """Validate, render, lint and package reproducibly into ``out_dir`` (``context``: see :meth:`render_chart`)."""
        from .core.packaging import fixed_mtime, package_chart

        mtime = fixed_mtime(self.source_date_epoch)  # a malformed value fails before any work
        with _tempdir(prefix="faas-render-") as scratch:
            chart_dir = self.render_chart(env, component, Path(scratch), prerelease, context)
            with step(f"package {env}/{component}"):
                return package_chart(chart_dir, out_dir, mtime)

    def _package_or_note(
        self,
        env: str,
        component: str,
        out_dir: Path,
        problems: list[Problem],
        prerelease: str = "",
        contexts: dict[str, dict[str, Any]] | None = None,
    ) -> ChartPackage | None:
        """:meth:`package_chart`, or ``None`` with the reasons appended to ``problems``.

        ``contexts``, when given, receives the component's resolved context (resolved once, used again by the caller).
        """
        try:
            context = self.context(env, component, prerelease)
            if contexts is not None:
                contexts[component] = context
            return self.package_chart(env, component, out_dir, prerelease, context)
        except ValidationError as exc:
            problems.extend(exc.problems)
        except UserError as exc:
            problems.append(_problem_of(self.display(env, component), exc))
        return None

    def chart_name_problems(self, env: str, known: dict[str, str]) -> list[Problem]:
        """Two components of ``env`` sharing a ``chart_name`` (they would publish over each other).

        Args:
            known: ``component -> chart_name`` already at hand; the other components'
                names are read from their configs (a config that fails validation is
                skipped here: its own validation reports it).

        Returns:
            One problem per clash, naming both config files.
        """
        from .charts import config

        names = dict(known)
        for component in self.components(env):
            if component not in names:
                try:
                    names[component] = str(
                        config.load_context(self.source, env, component, self.template_dir)["chart_name"]
                    )
                except (UserError, KeyError):
                    continue
        problems: list[Problem] = []
        owner: dict[str, str] = {}
        for component in sorted(names):
            name = names[component]
            if name in owner:
                problems.append(Problem(
                    self.display(env, component), "chart_name",
                    f"{name!r} is also the chart_name of {self.display(env, owner[name])}; "
                    f"two components of one environment would publish over each other",
                    "give each component its own chart_name",
                ))
            else:
                owner[name] = component
        return problems

    def local_target(self, env: str) -> LocalRepoTarget:
        """``env``'s local Helm repository ``dist/charts/<env>/`` (:func:`layout.local_repository`)."""
        from .registry.publishing import LocalRepoTarget

        return LocalRepoTarget(layout.local_repository(self.source, env))

    def target(self, env: str, registry: Registry) -> Target:
        """Where ``env``'s charts go: ``OciTarget`` for ``oci://...`` (within ``timeout`` s); no registry
        (``None``): the environment's local repository.

        Raises:
            UserError: a malformed root (an empty one included) or ``timeout``; only one of user
                name and password; the verb's credentials or ``--ca-file`` without a registry (they would be
                ignored; access given for a host, :attr:`Registry.host`, is for the verbs that reach it).
        """
        from .core.deadline import DEFAULT_TIMEOUT, Deadline
        from .registry.publishing import OciTarget

        limit = Deadline(DEFAULT_TIMEOUT if registry.timeout is None else registry.timeout)
        credentials = registry.credentials()
        if registry.registry is None:
            given_for_verb = registry.host is None and (credentials is not None or registry.ca_file)
            if given_for_verb or registry.immutable_tags:
                raise UserError("--username/--password, --ca-file and --immutable-tags are for a registry: give "
                                "--registry oci://HOST/PATH, or leave them out to publish into the local repository")
            return self.local_target(env)
        if not registry.registry.strip():
            raise UserError("--registry: empty; give oci://HOST[:PORT]/PATH, or leave the flag out to publish into "
                            "the local repository")
        url = registry.registry
        scoped = registry.for_url(url)  # access given for one host (Dagger's with-registry) reaches it only
        if scoped is not registry:
            registry, credentials = scoped, scoped.credentials()
        return OciTarget(url, credentials=credentials, plain_http=registry.plain_http,
                         ca_file=registry.ca_file, deadline=limit, immutable_tags=registry.immutable_tags)

    def publish_charts(self, env: str, target: Target, components: list[str] | None = None,
                       prerelease: str = "", check_images: bool = False) -> list[PublishResult]:
        """Package every component of ``env`` (or those given), then publish them concurrently.

        Around each publish run the component's ``pre-deploy`` and ``post-deploy``
        hooks (:mod:`faas_deployment.charts.hooks`); a failing ``pre-deploy`` stops that
        component before anything of it is pushed. ``prerelease``: see :meth:`context`.
        ``check_images``: first check that each chart's image exists in its registry
        (:func:`image_tags.check_images`; a 404 is a problem, an unreachable registry a warning).

        Returns:
            One result per component, in component order.

        Raises:
            ValidationError: any component failed validation, render, lint or
                packaging (every such problem listed); nothing was published.
            UserError: a publishing rule or the registry refused a chart; other
                components may have been published (each one is independent).
        """
        from .charts import hooks

        names = components or self.components(env)
        with _tempdir(prefix="faas-release-") as scratch:
            problems: list[Problem] = []
            contexts: dict[str, dict[str, Any]] = {}
            packages = {name: self._package_or_note(env, name, Path(scratch) / name, problems, prerelease, contexts)
                        for name in names}
            problems.extend(self.chart_name_problems(env, {n: p.name for n, p in packages.items() if p is not None}))
            if not problems and check_images:
                problems.extend(self.image_problems(env, contexts, target))
            if problems:
                raise ValidationError(problems)

            def publish(name: str) -> PublishResult:
                package = packages[name]
                assert package is not None  # a component without its package left a problem, raised above
                hooks.run_hook(self.source, env, name, "pre-deploy", action="publish", version=package.version,
                               digest=package.digest, deadline=target.deadline)
                with step(f"publish {env}/{name}"):
                    result = target.publish(package, config=self.display(env, name))
                hooks.run_hook(self.source, env, name, "post-deploy", action="publish", version=package.version,
                               digest=package.digest, deadline=target.deadline)
                return result

            return _run_all(publish, names, target.deadline)

    def image_problems(self, env: str, contexts: dict[str, dict[str, Any]], target: Target) -> list[Problem]:
        """The images (``image_repository:image_tag``) of the resolved ``contexts`` (component -> context)
        that their registry says do not exist.

        A config without both keys (a user template may have neither) is skipped; the
        chart registry's credentials are reused only for images on its host.
        """
        from .core.deadline import Deadline
        from .images import image_tags

        references = {}
        for name, context in contexts.items():
            repository, tag = context.get("image_repository"), context.get("image_tag")
            if isinstance(repository, str) and isinstance(tag, str) and repository and tag:
                references[self.display(env, name)] = f"{repository}:{tag}"
        if not references:
            note(f"check images of {env}: no config names image_repository and image_tag, nothing checked")
            return []
        seconds = image_tags.CHECK_TIMEOUT
        limit = Deadline(min(seconds, target.deadline.remaining()) if target.deadline else seconds)
        started = time.monotonic()
        unchecked: list[str] = []
        problems = image_tags.check_images(references, target.access, limit, unchecked)
        found = len(references) - len(problems) - len(unchecked)
        summary = ", ".join(f"{count} {what}" for count, what in ((found, "found"), (len(problems), "missing"),
                                                                   (len(unchecked), "not checked")) if count)
        verdict = "ok" if found == len(references) else "failed" if problems else "incomplete"
        note(f"check images of {env}: {verdict}, {summary} ({time.monotonic() - started:.2f} s)")
        return problems

    # ----------------------------------------------------------------------- chart verbs

    def config(self, env: str, component: str) -> Result:
        """``config``: the validated, resolved context as YAML (``default_context: {...}``); data: the context."""
        from .core import yaml_out

        context = self.context(env, component)
        return _result(yaml_out.dump({"default_context": context}).rstrip("\n"), context)

    def chart(self, env: str, component: str, out_dir: Path) -> Result:
        """``chart``: the rendered, linted chart directory under ``out_dir``."""
        path = self.render_chart(env, component, Path(out_dir))
        return _result([str(path)], {"path": path}, path=path)

    def rendered_objects(self, env: str, component: str) -> Result:
        """``objects``: the chart's Kubernetes objects as ``helm template`` renders them (release ``chart_name``,
        namespace ``default``), one YAML stream; data: ``{file: text}``."""
        files = self._rendered(env, component)[0]
        text = "".join(f"---\n# Source: {name}\n{body.strip()}\n" for name, body in sorted(files.items()))
        return _result(text.rstrip("\n"), files)

    def _rendered(self, env: str, component: str) -> tuple[dict[str, str], str]:
        """The chart's rendered objects ``{path: text}`` and its version."""
        import yaml

        from .charts import chart

        with _tempdir(prefix="faas-template-") as scratch:
            chart_dir = self.render_chart(env, component, Path(scratch))
            meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
            with step(f"template {env}/{component}"):
                rendered = chart.render_objects(chart_dir, str(meta["name"]), RENDER_NAMESPACE)
            return rendered, str(meta["version"])

    def package(self, env: str, component: str, out_dir: Path) -> Result:
        """``package``: the reproducible ``<chart_name>-<chart_version>.tgz`` in ``out_dir``."""
        package = self.package_chart(env, component, Path(out_dir))
        return _result([str(package.path)], {"path": package.path, "name": package.name, "version": package.version,
                                             "digest": package.digest}, path=package.path)

    def publish(self, env: str, component: str, registry: Registry, prerelease: str = "") -> Result:
        """``publish``: one component's chart, ``pushed|unchanged <ref>@<digest>``."""
        self.resolve(env, component)  # unknown env/component: say so before connecting
        return _lines(self.publish_charts(env, self.target(env, registry), [component], prerelease=prerelease))

    def release(self, env: str, registry: Registry, components: list[str] | None = None,
                prerelease: str = "", check_images: bool = True) -> Result:
        """``release``: every component's chart of ``env`` (or those given), a line each.

        ``check_images``: refuse a chart whose image its registry does not have
        (:meth:`image_problems`); off for air-gapped registries.
        """
        names = components or self.components(env)
        return _lines(self.publish_charts(env, self.target(env, registry), names, prerelease=prerelease,
                                          check_images=check_images))

    def local_repository(self, env: str) -> Result:
        """``env``'s charts released into its local repository ``dist/charts/<env>/``; path: that directory."""
        target = self.local_target(env)
        results = self.publish_charts(env, target)
        return _result([r.line for r in results], results, path=target.directory)

    def check(self, env: str | None = None, registry: Registry | None = None, base: str | Path | None = None,
              base_name: str = "") -> Result:
        """``check``: validate, render, lint and package every component (of ``env`` or of all envs).

        Each environment's operator ``dynamic/`` manifests are validated too
        (:func:`faas_deployment.bundle.templates.check_env`). Each package is checked against the
        publishing rules without pushing, against ``registry`` (``oci://...``) or, without
        one, against the environment's local repository (:meth:`local_target`): a chart
        whose content changed without a ``chart_version`` bump, or whose version is
        lower than the highest published, is refused.

        ``base``: also compare with that tree, as ``ct lint --check-version-increment``
        does: a chart whose packaged digest differs from the base's without a higher
        ``chart_version`` is refused (decided as :func:`faas_deployment.gitlab.plan.make_plan`
        decides it; no registry needed). A string is a git ref of the source tree's
        repository (read with git); a path is the base tree already on disk, named
        ``base_name`` in messages (the ref it was read from).

        Returns:
            A line per checked item: ``ok <env>/<component>: <chart> <version>
            (<digest>)``, the publishing decision of each chart, ``ok <env>: dynamic
            manifests``, and with ``base`` ``ok <env>: chart versions increase over <base>``.

        Raises:
            ValidationError: every problem found, across all environments.
        """
        from .bundle import templates
        from .core import versions

        if registry is not None:
            _timeout(registry.timeout)  # refused even when no registry is given, as by every verb
        envs = [env] if env else self.envs()
        if not envs:
            raise UserError(f"{self.source}: no {layout.CONFIG_GLOB} found")
        lines: list[str] = []
        problems: list[Problem] = []
        data: dict[str, Any] = {"charts": [], "publishing": [], "dynamic_manifests": [], "version_increase": None}
        with _tempdir(prefix="faas-check-") as scratch:
            for name in envs:
                rules = self.target(name, registry) if registry is not None and registry.registry is not None \
                    else self.local_target(name)
                packages: dict[str, ChartPackage] = {}
                for component in self.components(name):
                    package = self._package_or_note(name, component, Path(scratch) / name / component, problems)
                    if package is None:
                        continue
                    problem = versions.scheme_problem(package.version, self.display(name, component))
                    if problem:
                        problems.append(Problem(self.display(name, component), "default_context.chart_version",
                                                problem.split(": ", 1)[1]))
                        continue
                    packages[component] = package
                    lines.append(f"ok {name}/{component}: {package.name} {package.version} ({package.digest})")
                    data["charts"].append({"env": name, "component": component, "chart": package.name,
                                           "version": package.version, "digest": package.digest})
                problems.extend(self.chart_name_problems(name, {c: p.name for c, p in packages.items()}))
                for component, decision in self._dry_run(name, packages, rules, problems):
                    lines.append(decision.line)
                    data["publishing"].append({"env": name, "component": component, **jsonable(decision)})
                found = templates.check_env(self.source, name)
                problems.extend(found)
                if not found and layout.dynamic_dir(self.source, name).is_dir():
                    lines.append(f"ok {name}: dynamic manifests")
                    data["dynamic_manifests"].append(name)
        if base is not None:
            increased = self._increment_lines(base, base_name, envs, problems)
            lines.extend(increased)
            data["version_increase"] = {"base": base_name or str(base),
                                        "envs": [line.split(":")[0].removeprefix("ok ") for line in increased]}
        if problems:
            raise ValidationError(problems)
        return _result(lines, data)

    def _increment_lines(self, base: str | Path, base_name: str, envs: list[str], problems: list[Problem]) -> list[str]:
        """``check --base``: refused plan items of ``envs`` become problems; a report line per clean env."""
        from .core import versions  # only ``check --base`` reads git
        from .gitlab import gitrefs
        from .gitlab.plan import make_plan, side

        with _tempdir(prefix="faas-check-base-") as scratch:
            if isinstance(base, str):
                root, name = gitrefs.export_tree(self.source, base, Path(scratch) / "base"), base
            else:
                root, name = Path(base), base_name or str(base)
            with step(f"compare with {name}"):
                result = make_plan(
                    side(root, self.template, self.fetch_template),
                    side(self.source, self.template, self.fetch_template),
                    base_name=name,
                    head_name="working tree",
                )
        failed: set[str] = set()
        for item in result.refused:
            shown = layout.config_file(item.env, item.component).as_posix()
            if item.env not in envs or versions.scheme_problem(item.version, shown):
                continue  # another environment, or a version the check above already refuses
            failed.add(item.env)
            problems.append(Problem(shown, "default_context.chart_version",
                                    f"compared with {name}: {item.reason.removeprefix(shown + ': ')}",
                                    "raise chart_version above the base's, as Flux deploys only a newer version"))
        return [f"ok {env}: chart versions increase over {name}" for env in envs if env not in failed]

    def _dry_run(self, env: str, packages: dict[str, ChartPackage], target: Target,
                 problems: list[Problem]) -> list[tuple[str, PublishResult]]:
        """Check each package against ``target``'s rules, within its deadline; ``(component, decision)``
        per package that passed, problems appended."""
        from .core import deadline

        def dry(component: str) -> PublishResult:
            return target.publish(packages[component], config=self.display(env, component), dry_run=True)

        calls = [functools.partial(dry, c) for c in packages]
        decided: list[tuple[str, PublishResult]] = []
        outcomes = (
            deadline.run_all(calls, target.deadline, f"check {env} against the registry")
            if target.deadline
            else [_outcome(call) for call in calls]
        )
        for component, (result, error) in zip(packages, outcomes, strict=True):
            if isinstance(error, UserError):
                problems.append(Problem(self.display(env, component), "", str(error)))
            elif error is not None:
                raise error  # a bug: keep its traceback
            else:
                decided.append((component, cast("PublishResult", result)))  # no error: the call's result
        return decided

    # ----------------------------------------------------------------------- operator manifests

    def _write_bundle(self, env: str, out: Path | None, quiet: bool):
        from .bundle import archive

        self.components(env)
        target = Path(out) if out else layout.default_bundle(self.source, env)
        return archive.write_bundle(
            layout.dynamic_dir(self.source, env), target, **({"log": None} if quiet else {})
        )

    def bundle(self, env: str, out: Path | None = None, *, quiet: bool = False) -> Result:
        """``manifests``: validate ``env/<env>/operator/dynamic/`` and write its reproducible zip.

        ``out`` defaults to ``dist/manifests/<env>.zip`` (:func:`layout.default_bundle`);
        ``quiet`` leaves out the progress lines about files left out.
        """
        from .bundle.archive import bundle_line

        bundle = self._write_bundle(env, out, quiet)
        return _result([bundle_line(bundle)], bundle, path=bundle.path)

    def upload_manifests(self, env: str, token: SecretValue, *, admin_url: str | None = None,
                         ready_path: str | None = None, upload_path: str | None = None,
                         timeout: float | None = None, out: Path | None = None) -> Result:
        """``upload-manifests``: bundle ``dynamic/`` (kept at ``out``), wait for the admin API, upload once.

        Defaults: ``admin_url`` of ``environment.yaml``; the admin API contract's paths
        and deadline (:mod:`faas_deployment.bundle.admin_api`).
        """
        from .bundle import admin_api
        from .bundle.archive import bundle_line
        from .core.secrets import refuse_inside

        timeout = _timeout(timeout)
        self.components(env)  # an unknown environment is said first, as by every verb
        token = reveal(token)
        refuse_inside(token, "--token", {"--admin-url": admin_url, "--ready-path": ready_path,
                                         "--upload-path": upload_path})
        bundle = self._write_bundle(env, out, False)  # first, and kept: a CI job keeps it even if the upload fails
        note(bundle_line(bundle))
        url = admin_url or self.settings(env).admin_url
        line = admin_api.upload_manifests(
            url, bundle, token, ready_path=ready_path or admin_api.DEFAULT_READY_PATH,
            upload_path=upload_path or admin_api.DEFAULT_UPLOAD_PATH,
            timeout=admin_api.DEFAULT_TIMEOUT if timeout is None else timeout,
        )
        return _result([line], {"bundle": jsonable(bundle), "upload": line}, path=bundle.path)

    # ----------------------------------------------------------------------- images

    @staticmethod
    def image_labels(
        tag: str, *, revision: str = "", source_url: str = "", context: Path | None = None
    ) -> dict[str, str]:
        """The OCI labels of a component image (the one rule: :func:`images.image_labels`)."""
        from .images import images

        return images.image_labels(tag, revision=revision, source_url=source_url, context=context)

    def image_repository(self, env: str, component: str) -> str:
        """The component's ``image_repository``, checked (:func:`images.component_repository`)."""
        from .images import images

        self.config_file(env, component)
        return images.component_repository(self.source, env, component, self.template_dir)

    @classmethod
    def image_recipe(cls, *, tag: str = "", dockerfile: str = DOCKERFILE, build_args: Sequence[str] = (),
                     target: str = "", platform: str = "", revision: str = "", source_url: str = "") -> ImageBuild:
        """What a front end that builds with the engine needs: the build options
        (:meth:`build_options`) and the OCI labels of ``tag`` (:meth:`image_labels`); no repository.

        Raises:
            UserError: bad build options.
        """
        return ImageBuild(cls.build_options(dockerfile, build_args, target, platform),
                          cls.image_labels(tag, revision=revision, source_url=source_url), "")

    def image_build(self, env: str, component: str, *, tag: str, dockerfile: str = DOCKERFILE,
                    build_args: Sequence[str] = (), target: str = "", platform: str = "", revision: str = "",
                    source_url: str = "") -> ImageBuild:
        """:meth:`image_recipe` with the component's checked ``image_repository`` (:meth:`image_repository`,
        asked first: an unknown environment or component is said before bad options).

        Raises:
            UserError: an unknown environment or component, a bad repository, bad build options.
        """
        repository = self.image_repository(env, component)
        recipe = self.image_recipe(tag=tag, dockerfile=dockerfile, build_args=build_args, target=target,
                                   platform=platform, revision=revision, source_url=source_url)
        return replace(recipe, repository=repository)

    @staticmethod
    def build_options(dockerfile: str = DOCKERFILE, build_args: Sequence[str] = (), target: str = "",
                      platform: str = ""):
        """The build options of ``build-image``/``publish-image`` (platform default: what the clusters run)."""
        from .images import images

        return images.BuildOptions(
            dockerfile or DOCKERFILE, tuple(build_args), target, platform or images.DEFAULT_PLATFORM
        )

    def build_image(self, env: str, component: str, context: Path, *, options: Any, tag: str = BUILD_TAG,
                    revision: str = "", source_url: str = "", out: Path | None = None) -> Result:
        """``build-image``: build ``context`` with buildah (optionally written as an OCI archive to ``out``)."""
        from .images import buildah

        self.config_file(env, component)  # unknown env/component: say so before building
        built = buildah.build_image(Path(context), options, tag=tag or BUILD_TAG, revision=revision,
                                   source_url=source_url, out=Path(out) if out else None)
        return _result([str(built)], built, path=built.archive)

    def publish_image(self, env: str, component: str, context: Path, *, tag: str, options: Any,
                      username: str | None = None, password: SecretValue | None = None, plain_http: bool = False,
                      timeout: float | None = None, revision: str = "", source_url: str = "",
                      ca_file: str | Path | None = None) -> Result:
        """``publish-image``: build and push to the component's ``image_repository:tag`` (an existing tag
        is refused, never overwritten); ``pushed ref@digest``."""
        from .core.deadline import DEFAULT_TIMEOUT
        from .images import buildah

        timeout = _timeout(timeout)
        repository = self.image_repository(env, component)
        published = buildah.publish_image(
            Path(context),
            repository=repository,
            tag=tag,
            options=options,
            credentials=Registry(username=username, password=password).credentials(),
            plain_http=plain_http,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            revision=revision,
            source_url=source_url,
            ca_file=ca_file,
        )
        return _result([str(published)], published)

    def bump(self, env: str, component: str, *, image_tag: str, part: str = BUMP_PART,
             merge_request: MergeRequestOptions | None = None, timeout: float | None = None) -> Result:
        """``bump``: set ``image_tag`` and raise ``chart_version`` (in place, or as a merge request).

        The same ``image_tag`` again changes nothing (``up to date``). ``timeout``
        bounds every git and GitLab step of a merge request (default
        :data:`promotion.DEFAULT_TIMEOUT`). The result's data holds the new file ``text``.
        """
        from .charts import bump
        from .gitlab import promotion

        timeout = _timeout(timeout)
        self.config_file(env, component)
        if merge_request is not None:
            outcomes: list[Any] = []
            line = promotion.bump_proposal(self.source, env, component, image_tag=image_tag, part=part,
                                           template=self.template_dir,
                                           proposal=self.proposal(merge_request, BUMP_LABELS, timeout),
                                           outcomes=outcomes)
            return _result(line, outcomes[0])
        result = bump.bump_config(
            self.source, env, component, image_tag=image_tag, part=part, template=self.template_dir
        )
        return _result([result.line], result)

    # ----------------------------------------------------------------------- promotion

    def proposal(self, options: MergeRequestOptions, default_labels: Sequence[str], timeout: float | None = None):
        """The :class:`promotion.Proposal` of a merge request verb; its deadline starts now (``timeout``
        seconds, default :data:`promotion.DEFAULT_TIMEOUT`). Empty GitLab URL, project, target
        branch and pipeline URL: the job's (:meth:`ci_default`), the branch else :data:`DEFAULT_BRANCH`.

        Raises:
            UserError: no token, no GitLab URL or project, a GitLab URL with user info
                (:func:`merge_request.check_url`, the URL not repeated).
        """
        from .core.deadline import Deadline
        from .gitlab import promotion
        from .gitlab.merge_request import GitLabProject, check_url

        if options.token is None:
            raise UserError("--merge-request needs --gitlab-token env:NAME|file:PATH (a token with the api scope)")
        gitlab_url = self.ci_default(options.gitlab_url, "gitlab_url")
        gitlab_project = self.ci_default(options.gitlab_project, "gitlab_project")
        if not gitlab_url or not gitlab_project:
            raise UserError(
                "--merge-request needs --gitlab-url and --gitlab-project (CI: $CI_SERVER_URL, $CI_PROJECT_ID)"
            )
        check_url(gitlab_url)
        deadline = Deadline(promotion.DEFAULT_TIMEOUT if timeout is None else timeout)
        return promotion.Proposal(
            GitLabProject(gitlab_url, gitlab_project, reveal(options.token)),
            target_branch=self.ci_default(options.target_branch, "default_branch") or DEFAULT_BRANCH,
            remote=options.remote or REMOTE,
            labels=tuple(options.labels) or tuple(default_labels),
            author=options.author or promotion.DEFAULT_AUTHOR,
            pipeline_url=self.ci_default(options.pipeline_url, "pipeline_url"),
            deadline=deadline,
        )

    def promotion_steps(self, from_env: str | None = None, to_env: str | None = None) -> list[tuple[str, str]]:
        """The ``(from, to)`` steps a ``promote`` runs, from the flags and the promotion order.

        The order is the repository's (``promote_from`` in each ``environment.yaml``,
        :func:`settings.promotion_order`). Both given: that step, refused when ``to``
        declares another source. Only ``to``: its declared source. Only ``from``:
        every environment it feeds. Neither: every step of the order (what the CI
        job runs, naming no environment).

        Raises:
            UserError: a step the order does not hold, or no step at all (the file and key named).
            ValidationError: an invalid ``promote_from`` (unknown environment, a cycle).
        """
        from .flux import settings

        for env in (from_env, to_env):
            if env:
                self.components(env)  # an unknown environment: the one message of every verb
        order = settings.promotion_order(self.source)
        declared = {to: frm for frm, to in order}
        if from_env and to_env:
            if to_env in declared and declared[to_env] != from_env:
                raise UserError(f"{layout.shown(self.source, layout.settings_path(self.source, to_env))}: "
                                f"promote_from: {to_env} receives promotions from {declared[to_env]}, not "
                                f"{from_env} (the repository's promotion order); promote {declared[to_env]} -> "
                                f"{to_env}, or change promote_from")
            return [(from_env, to_env)]
        if to_env:
            if to_env not in declared:
                raise UserError(f"{layout.shown(self.source, layout.settings_path(self.source, to_env))}: "
                                f"promote_from: not set, so {to_env} receives no promotion; give --from or set "
                                f"promote_from: <environment>")
            return [(declared[to_env], to_env)]
        steps = [step for step in order if not from_env or step[0] == from_env]
        if not steps:
            raise UserError(f"no environment.yaml sets promote_from{f': {from_env}' if from_env else ''}: the "
                            f"promotion order is a repository setting (e.g. promote_from: dev in "
                            f"env/prod/environment.yaml); or give --from and --to")
        return steps

    def promote(
        self,
        from_env: str | None,
        to_env: str | None,
        *,
        component: str | None = None,
        all_components: bool = False,
        source_status: Path | None = None,
        kubeconfig: SecretValue | None = None,
        kube_context: str | None = None,
        merge_request: MergeRequestOptions | None = None,
        write: bool = True,
        allow_prerelease: bool = False,
        timeout: float | None = None,
    ) -> Result:
        """``promote``: carry what runs in ``from_env`` to ``to_env``'s config (see :func:`promotion.promote`);
        either or both may be left to the repository's promotion order (:meth:`promotion_steps`).

        The source state: ``source_status`` (a HelmRelease as JSON), else the live
        HelmRelease read with ``kubeconfig``, else the source config.
        ``allow_prerelease``: promote a pre-release image (refused otherwise).
        ``timeout``: one deadline for every network step (git, GitLab), default
        :data:`promotion.DEFAULT_TIMEOUT`; it bounds the read of the live HelmRelease
        too (default there :attr:`promotion.ClusterState.timeout`).

        Raises:
            UserError: neither or both of ``component`` and ``all_components``; both
                ``source_status`` and ``kubeconfig``; see :func:`promotion.promote`.
        """
        from .gitlab import promotion

        timeout = _timeout(timeout)
        if bool(component) == bool(all_components):
            raise UserError("promote: give --component C or --all (one of them)")
        if source_status is not None and kubeconfig is not None:
            raise UserError("promote: give --source-status FILE or --kubeconfig (the live HelmRelease), not both")
        state: promotion.HelmReleaseStatusFile | promotion.ClusterState | None = (
            promotion.HelmReleaseStatusFile(Path(source_status)) if source_status is not None else None)
        if kubeconfig is not None:
            from .flux import rollout

            client = rollout.make_client(reveal(kubeconfig), kube_context or None)
            state = promotion.ClusterState(self.source, client, **({} if timeout is None else {"timeout": timeout}))
        steps = self.promotion_steps(from_env, to_env)
        proposal = (
            self.proposal(merge_request, promotion.DEFAULT_LABELS, timeout) if merge_request is not None else None
        )
        lines: list[str] = []
        outcomes: list[Any] = []
        for frm, to in steps:
            lines += promotion.promote(self.source, frm, to, [component] if component else None, state=state,
                                       template=self.template_dir, proposal=proposal, write=write,
                                       allow_prerelease=allow_prerelease, outcomes=outcomes)
        return _result(lines, {"promotions": outcomes})

    # ----------------------------------------------------------------------- plan and child pipeline

    def plan(self, *, base: str | None = None, head: str | None = None, output: str = "table",
             environ: Mapping[str, str] | None = None, pipeline: Path | None = None,
             context: Any = None, ref: str = "", default_branch: str = "", merge_request: str = "",
             pipeline_iid: str = "", branch_envs: Sequence[str] = ()) -> Result:
        """``plan``: what the change from ``base`` to ``head`` (default: the working tree) does.

        With ``pipeline``, also writes the GitLab child pipeline there unless a target is
        refused; its context: ``context``, else :meth:`pipeline_context` of ``ref``,
        ``default_branch``, ``merge_request``, ``pipeline_iid``, ``branch_envs``.

        Raises:
            UserError: a target is refused (the plan in the message); bad refs.
        """
        from .gitlab import gitrefs

        result = gitrefs.plan_repository(self.source, base, head, self.template,
                                         self.job_environ if environ is None else environ, self.fetch_template)
        if pipeline is not None and not result.refused:
            from .gitlab import child_pipeline

            context = context or self.pipeline_context(ref, default_branch, merge_request, pipeline_iid, branch_envs)
            child_pipeline.write(result, context, self.source, Path(pipeline))
        if output == "json" and result.refused:  # the plan is still the answer: JSON on stdout, exit 1
            import json

            count = len(result.refused)
            note(f"plan refused {count} target{'s' if count != 1 else ''}: "
                 + "; ".join(f"{i.target}: {i.reason}" for i in result.refused))
            text = result.render("json")
            return Result(tuple(text.splitlines()), json.loads(text), None, 1)
        return self.plan_result(result, output)

    @staticmethod
    def plan_result(plan_: Any, output: str = "table") -> Result:
        """A plan as a result (UserError carrying the plan when a target is refused)."""
        import json

        from .gitlab import plan

        text = plan.outcome(plan_, "json" if output == "json" else "table")
        return _result(text, json.loads(plan_.render("json")))

    def plan_trees(self, base_root: Path, base_name: str):
        """The plan between the tree at ``base_root`` (exported by the caller) and this workspace."""
        from .gitlab import plan

        return plan.make_plan(plan.side(base_root, self.template, self.fetch_template),
                              plan.side(self.source, self.template, self.fetch_template),
                              base_name=base_name, head_name="source")

    def pipeline_context(
        self,
        ref: str = "",
        default_branch: str = "",
        merge_request: str = "",
        pipeline_iid: str = "",
        branch_envs: Sequence[str] = (),
    ):
        """The child pipeline's :class:`child_pipeline.Context`; an empty value is the job's
        (:meth:`ci_default`), the default branch else :data:`DEFAULT_BRANCH`, the branch
        environments else ``dev``."""
        from .gitlab import child_pipeline

        return child_pipeline.Context(
            self.ci_default(ref, "ref"), self.ci_default(default_branch, "default_branch") or DEFAULT_BRANCH,
            self.ci_default(merge_request, "merge_request"), self.ci_default(pipeline_iid, "pipeline_iid"),
            tuple(branch_envs) or tuple(child_pipeline.BRANCH_ENVIRONMENTS))

    def child_pipeline(self, plan_: Any, context: Any, out: Path) -> Result:
        """``pipeline``: the GitLab child pipeline of ``plan_`` written to ``out`` (refused targets: UserError)."""
        from .gitlab import child_pipeline, plan

        plan.outcome(plan_, "table")
        path = child_pipeline.write(plan_, context, self.source, Path(out))
        return _result([str(path)], {"path": path}, path=path)

    @staticmethod
    def engine_base(base: str, default_branch: str = "") -> EngineBase:
        """How a front end whose git is the Dagger engine's reads the plan's base from ``.git``.

        ``base``: a full SHA (looked up as a commit: the engine takes a ref as a commit
        only with 40 hex characters), a ``refs/...`` name, else a branch name; empty or
        all zeros: the merge base of ``HEAD`` and ``refs/remotes/origin/<default_branch>``
        (:func:`gitrefs.dagger_base_ref`, :func:`gitrefs.dagger_base_is_merge_base`).
        """
        from .gitlab import gitrefs

        ref = gitrefs.dagger_base_ref(base, default_branch or DEFAULT_BRANCH)
        kind = "commit" if gitrefs.is_sha(ref) else "ref" if ref.startswith("refs/") else "branch"
        merge_base = gitrefs.dagger_base_is_merge_base(base)
        return EngineBase(ref, kind, merge_base, f"merge base of HEAD and {ref}" if merge_base else ref)

    def plan_against(self, base_root: Path, base_name: str, output: str = "table") -> Result:
        """Dagger ``plan``: the plan between the tree at ``base_root`` (exported by the caller,
        named ``base_name``) and this workspace, as :meth:`plan_result`."""
        return self.plan_result(self.plan_trees(base_root, base_name), output)

    def pipeline_against(self, base_root: Path, base_name: str, out: Path, *, ref: str = "",
                         default_branch: str = "", merge_request: str = "", pipeline_iid: str = "",
                         branch_envs: Sequence[str] = ()) -> Result:
        """Dagger ``pipeline``: the child pipeline of the plan against ``base_root`` written to ``out``
        (context: :meth:`pipeline_context`; a refused target: UserError)."""
        plan_ = self.plan_trees(base_root, base_name)
        context = self.pipeline_context(ref, default_branch, merge_request, pipeline_iid, branch_envs)
        return self.child_pipeline(plan_, context, out)

    # ----------------------------------------------------------------------- Flux (Helm charts)

    def flux(self, env: str, out: Path, *, registry_secret: str = "", plain_http: bool = False) -> Result:
        """``flux``: the environment's Flux objects (OCIRepository, HelmRelease, Receiver) written into ``out``;
        ``registry_secret``: the OCIRepositories' pull Secret; ``plain_http``: their ``insecure: true``.

        Raises:
            UserError: ``registry_secret`` is not a DNS-1123 subdomain (a Secret name).
        """
        from .core import names
        from .flux import deploy, flux

        if registry_secret and not names.is_dns_subdomain(registry_secret):
            raise UserError(f"--registry-secret {registry_secret!r}: expected a Secret name (DNS-1123 subdomain: "
                            "lower-case letters, digits, '-' and '.', at most 253 characters)")
        written = flux.write_objects(self.settings(env), deploy.charts(self, env), Path(out),
                                     registry_secret=registry_secret, insecure=plain_http)
        return _result([str(p) for p in written.files] + [f"removed {p}" for p in written.removed],
                       {"files": written.files, "removed": written.removed}, path=Path(out))

    @staticmethod
    def deploy_registry(env_settings: Settings, registry: Registry, timeout: float | None = None) -> Registry:
        """The registry ``deploy`` publishes to: ``registry.registry`` when given, else the environment's
        ``chart_registry``, with its ``chart_registry_immutable_tags``; within ``timeout`` s (default:
        ``deploy_timeout``)."""
        timeout = _timeout(timeout)
        registry = replace(registry, timeout=env_settings.deploy_timeout if timeout is None else timeout)
        if registry.registry is not None:
            return registry
        return replace(registry, registry=env_settings.chart_registry,
                       immutable_tags=registry.immutable_tags or env_settings.chart_registry_immutable_tags)

    def deploy(self, env: str, *, component: str | None = None, registry: Registry = Registry(),
               receiver_token: SecretValue | None = None, trigger_api: bool = False,
               kubeconfig: SecretValue | None = None, kube_context: str | None = None, timeout: float | None = None,
               receiver_url: str | None = None, upload_token: SecretValue | None = None, admin_url: str | None = None,
               prerelease: str = "", environ: Mapping[str, str] | None = None) -> Result:
        """``deploy``: publish, trigger Flux (Receiver or Kubernetes API), wait for each HelmRelease.

        One deadline (``timeout``, default ``deploy_timeout`` of ``environment.yaml``)
        bounds the whole deploy, the publishing included. The result's exit code is
        the rollouts' (:func:`rollout_outcome.exit_code`).

        Raises:
            UserError: not exactly one trigger; see :func:`deploy.deploy`.
        """
        import os

        from .flux import deploy, rollout

        timeout = _timeout(timeout)
        components = self.resolve(env, component) if component else None
        if (receiver_token is None) == (not trigger_api):
            raise UserError("deploy: give exactly one trigger, --receiver-token (Flux Receiver) or --trigger-api")
        env_settings = self.settings(env)
        target = self.target(env, self.deploy_registry(env_settings, registry, timeout))
        receiver_token, upload_token = reveal(receiver_token), reveal(upload_token)
        from .core.secrets import refuse_inside

        for secret, flag in ((receiver_token, "--receiver-token"), (upload_token, "--upload-manifests")):
            refuse_inside(secret, flag, {"--receiver-url": receiver_url, "--admin-url": admin_url,
                                         "--registry": registry.registry, "--prerelease": prerelease})
        client = rollout.make_client(reveal(kubeconfig), kube_context or None)
        token = rollout.request_token(dict(os.environ if environ is None else environ)) if trigger_api else None
        result = deploy.deploy(self, env, env_settings, target=target, receiver_token=receiver_token, client=client,
                               components=components, timeout=timeout, receiver_url=receiver_url,
                               upload_token=upload_token, admin_url=admin_url, prerelease=prerelease,
                               request_token=token)
        return self._rollout(result.lines, result.outcomes)

    def wait(self, env: str, *, component: str | None = None, kubeconfig: SecretValue | None = None,
             kube_context: str | None = None, timeout: float | None = None, artifact: str | None = None,
             artifact_namespace: str = FLUX_NAMESPACE) -> Result:
        """``wait``: until each HelmRelease runs the version its config describes, or with ``artifact``
        until Kustomization ``app-<component>`` applied that digest."""
        from .flux import deploy, rollout

        timeout = _timeout(timeout)
        if artifact:
            if not component:
                raise UserError("wait --artifact: give --component C (its Kustomization app-<C>)")
            self.resolve(env, component)
            client = rollout.make_client(reveal(kubeconfig), kube_context or None)
            outcome = deploy.wait_artifact(
                client,
                namespace=artifact_namespace or FLUX_NAMESPACE,
                component=component,
                digest=artifact,
                timeout=self.settings(env).deploy_timeout if timeout is None else timeout,
            )
            return self._rollout([outcome.line], [outcome])
        names = self.resolve(env, component)
        env_settings = self.settings(env)
        expected = {n: deploy.expected_for(self, env, n) for n in names}
        client = rollout.make_client(reveal(kubeconfig), kube_context or None)
        outcomes = deploy.wait_all(
            client, env_settings, expected, timeout=env_settings.deploy_timeout if timeout is None else timeout
        )
        return self._rollout([o.line for o in outcomes], outcomes)

    @staticmethod
    def _rollout(lines: list[str], outcomes: list[Any]) -> Result:
        import json

        from .flux import rollout_outcome

        return _result(lines, json.loads(rollout_outcome.report_json(outcomes)),
                       exit_code=rollout_outcome.exit_code(outcomes))

    # ----------------------------------------------------------------------- Flux OCI artifacts

    def artifact_repository(self, env: str, registry: Registry) -> Callable[[], Any]:
        """A factory of :class:`artifact_repository.ArtifactRepository` for the registry flags (the URL checked now).

        ``registry.registry`` empty: ``artifact_repository`` of ``env/<env>/environment.yaml``.
        """
        from .flux import artifact_repository, settings
        from .registry.registry_client import check_root

        registry.credentials()  # only one of user name and password: said before anything else
        self.components(env)
        url = settings.artifact_repository(self.source, env, registry.registry)
        check_root(url)
        registry = registry.for_url(url)
        credentials = registry.credentials()
        return lambda: artifact_repository.ArtifactRepository(url, credentials=credentials,
                                                              plain_http=registry.plain_http, ca_file=registry.ca_file)

    def artifact_files(
        self, env: str, component: str, manifests_dir: Path | None = None
    ) -> tuple[dict[str, bytes], str]:
        """The files of ``component``'s Flux artifact and its ``chart_version``.

        The files are ``manifests_dir``'s manifests, else the chart rendered with its
        values as ``helm template`` would (release ``chart_name``, namespace ``default``;
        the Kustomization sets the target namespace).
        """
        from .flux import artifacts

        artifacts.check_component_name(component)
        if manifests_dir is not None:
            version = str(self.context(env, component)["chart_version"])
            return artifacts.directory_files(manifests_dir), version
        rendered, version = self._rendered(env, component)
        return artifacts.rendered_files(rendered), version

    def publish_artifact(self, env: str, registry: Registry, component: str | None = None, *,
                         manifests_dir: Path | None = None, revision: str = "", source_url: str = "") -> Result:
        """``publish-artifact``: every component's (or one's) Flux artifact; see :meth:`publish_artifacts`."""
        names = self.resolve(env, component)
        repository = self.artifact_repository(env, registry)
        return _lines(self.publish_artifacts(env, repository, names, manifests_dir=manifests_dir, revision=revision,
                                             source_url=source_url))

    def publish_artifacts(
        self,
        env: str,
        repository: Callable[[], Any],
        components: list[str] | None = None,
        *,
        manifests_dir: Path | None = None,
        revision: str = "",
        source_url: str = "",
    ) -> list[Any]:
        """Build every component's Flux artifact (all first: nothing is pushed if one fails), then publish them.

        Args:
            repository: opens the artifact repository (called once per component, in its thread).
            manifests_dir: a plain manifests directory replacing the rendered chart (one component only).
            revision, source_url: the annotations; default from the source tree's git
                (:func:`artifacts.git_revision`).

        Raises:
            ValidationError: a component failed validation or rendering (all listed).
            UserError: a tag rule or the registry refused (see :func:`artifact_repository.publish`).
        """
        from .flux import artifact_repository, artifacts

        names = components or self.components(env)
        if manifests_dir is not None and len(names) != 1:
            raise UserError("--manifests replaces one component's chart: give --component too")
        git_rev, git_url = artifacts.git_revision(self.source) if not (revision and source_url) else ("", "")
        revision, source_url = artifacts.annotations_of(revision or git_rev, source_url or git_url,
                                                        where="the source tree")
        created = artifacts.now_rfc3339()
        problems: list[Problem] = []
        built: dict[str, tuple[Any, str]] = {}
        for name in names:
            try:
                files, version = self.artifact_files(env, name, manifests_dir)
                built[name] = (
                    artifacts.flux_artifact(files, source=source_url, revision=revision, created=created),
                    version,
                )
            except ValidationError as exc:
                problems.extend(exc.problems)
            except UserError as exc:
                problems.append(Problem(self.display(env, name), "", str(exc)))
        if problems:
            raise ValidationError(problems)

        def publish(name: str) -> Any:
            artifact, version = built[name]
            with step(f"publish-artifact {env}/{name}"):
                return artifact_repository.publish(repository(), artifact, component=name, version=version,
                                                   config=self.display(env, name))

        return _run_all(publish, names, None)

    def retire_artifact(self, env: str, component: str, registry: Registry) -> Result:
        """``retire-artifact``: delete ``app-<component>`` so Flux uninstalls the removed component.

        Raises:
            UserError: ``component`` still exists under ``env/<env>/`` (Flux would uninstall
                a running component), before the registry is contacted; or the registry
                never held an artifact of that name (see :func:`artifact_repository.retire`).
        """
        from .flux import artifact_repository, artifacts

        artifacts.check_component_name(component)
        if component in self.components(env):
            raise UserError(f"retire-artifact --component {component}: {self.display(env, component)} still exists, so "
                            f"{component} is still deployed: retiring would make Flux uninstall it; remove "
                            f"{layout.component_dir(env, component).as_posix()}/ from the repository first "
                            "(retire is for removed components)")
        line = artifact_repository.retire(self.artifact_repository(env, registry)(), component)
        outcome, reference = line.split(" ", 1)
        return _result([line], {"outcome": outcome, "reference": reference, "component": component})

    def artifact_objects(self, env: str, repository: str, out: Path, *, name: str = "",
                         namespace: str = FLUX_NAMESPACE, target_namespace: str = "",
                         registry_secret: str = "", receiver_secret: str = RECEIVER_SECRET,
                         plain_http: bool = False) -> Result:
        """``artifact-objects``: the Flux Operator objects watching the artifacts, written into ``out``.

        ``target_namespace`` (the Kustomizations' ``targetNamespace``): default, the environment's
        ``namespace`` (``env/<env>/environment.yaml``), where its HelmReleases install too.

        Raises:
            UserError: ``target_namespace`` or ``namespace`` is not a Kubernetes namespace name (DNS-1123 label).
        """
        from .core import names
        from .flux import flux_operator

        self.components(env)
        for flag, value in (("--namespace", namespace), ("--target-namespace", target_namespace)):
            if value and not names.is_dns_label(value):
                raise UserError(f"{flag} {value!r}: expected a Kubernetes namespace name (lowercase letters, digits "
                                f"and '-', at most {names.DNS_LABEL_MAX} characters)")
        settings = flux_operator.FluxObjectSettings(
            url=repository, name=name or f"faas-{env}", namespace=namespace or FLUX_NAMESPACE,
            target_namespace=target_namespace or self.settings(env).namespace, registry_secret=registry_secret,
            receiver_secret=receiver_secret or RECEIVER_SECRET, insecure=plain_http,
        )
        paths = flux_operator.write_flux_objects(settings, Path(out))
        return _result([str(p) for p in paths], {"files": paths}, path=Path(out))


def _timeout(value: float | None) -> float | None:
    """A verb's ``timeout`` checked by the one rule of every verb (:func:`deadline.valid_seconds`); None: its
    default."""
    from .core.deadline import optional_seconds

    return optional_seconds(value)


def _problem_of(shown: str, exc: UserError) -> Problem:
    """``exc`` as a problem of the file ``shown``, its text not repeating that name."""
    return Problem(shown, "", str(exc).removeprefix(f"{shown}: "))


def _tempdir(prefix: str):
    """A temporary directory (``tempfile`` imported when first needed: start-up stays light)."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix=prefix)


def run_tempdir() -> contextlib.AbstractContextManager[Path]:
    """Put every temporary file and directory of this process's run under one directory, removed at the end
    (``<TMPDIR>/faas-run-*``, :func:`tempdirs.run_tempdir`); caches that outlive runs stay outside it."""
    from .core import tempdirs

    return tempdirs.run_tempdir()


def interrupted() -> None:
    """After Ctrl-C or SIGTERM: give back the publish leases this process holds (:func:`lease.release_all`,
    bounded by :data:`lease.INTERRUPT_SECONDS`); nothing to do when no lease was ever taken."""
    import sys

    lease = sys.modules.get(f"{__package__}.registry.lease")
    if lease is not None:
        lease.release_all()


def _outcome(call: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    try:
        return call(), None
    except Exception as exc:
        return None, exc


def _run_all(fn: Callable[[str], R], names: list[str], limit: Deadline | None) -> list[R]:
    """Run ``fn`` for every name concurrently (within ``limit``); re-raise the first failure after all finish."""
    from concurrent.futures import ThreadPoolExecutor

    from .core import deadline

    calls = [functools.partial(fn, name) for name in names]
    if limit is None:
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = [pool.submit(_outcome, call) for call in calls]
        outcomes = [f.result() for f in futures]
    else:
        outcomes = deadline.run_all(calls, limit, "publishing")
    errors = [error for _, error in outcomes if error is not None]
    if errors:
        results = [result.line for result, error in outcomes if error is None and result is not None]
        message = "\n".join(str(e) for e in errors)
        if results:
            message += "\npublished before the failure:\n" + "\n".join(results)
        if all(isinstance(e, UserError) for e in errors):
            raise UserError(message)
        raise errors[0]  # a bug: keep its traceback
    return [cast(R, result) for result, _ in outcomes]  # no error: every call returned its result
