"""The door's workspace: a source tree, the template its charts are rendered with, and what it names.

A :class:`Workspace` is what every verb of :mod:`faas_deployment.door` takes first: the
repository root (holding ``env/<env>/<component>/cookiecutter-config.yaml``), the
cookiecutter template (``--template``, else the repository's ``faas-deployment.yaml``,
else the embedded one), the environments and components discovered once, each
environment's settings, and the CI job's defaults (:data:`CI_DEFAULTS`). It holds no
verb: the verbs are functions of the modules beside it (``charts``, ``check``,
``bundle``, ``images``, ``promotion``, ``plan``, ``deploy``, ``artifacts``).

Start-up: this module imports only light project modules (:mod:`layout`,
:mod:`errors`); the rest is imported when a method needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import layout
from ..core.errors import UserError
from .results import reveal

if TYPE_CHECKING:
    from ..core.secrets import SecretValue


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
        from ..registry.credentials import check_pair, check_registry_address

        check_registry_address(host)
        check_pair(username, password)

    def for_url(self, url: str) -> Registry:
        """These flags for the registry of ``url`` (``oci://HOST[:PORT]/PATH``): as given when they were given
        for its host (or for no host in particular: :attr:`host` ``None``); else without credentials, plain
        HTTP or CA file, as :meth:`credentials.RegistryAccess.for_host` does (credentials never leave their
        host). A malformed ``url`` gets no access; the verb then refuses the URL with its own message."""
        from ..core.names import OciUrlError, parse_oci_url
        from ..registry.credentials import same_host

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
        from ..core.secrets import refuse_inside
        from ..registry.credentials import RegistryCredentials, check_pair

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
            from ..core import repofiles

            try:
                found = repofiles.locate(chosen, "cookiecutter.json")
            except repofiles.NotReadable as err:
                raise UserError(f"--template {chosen}: {err}") from None
            if found is None:
                raise UserError(f"--template {chosen}: no cookiecutter.json (expected a cookiecutter template "
                                f"directory)")
        return cls(root, chosen)

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

    @functools.cached_property
    def template_dir(self) -> Path:
        """``template``, else the repository's ``template`` setting, else the embedded template.

        Raises:
            ValidationError / UserError: an invalid setting (:func:`repository_settings.template_dir`).
        """
        from ..charts import repository_settings
        from ..charts.config import EMBEDDED_TEMPLATE

        return self.template or repository_settings.template_dir(self.source, self.fetch_template) or EMBEDDED_TEMPLATE

    def fetch_template(self, setting: Any) -> Path:
        """A git template's directory: from :attr:`git_templates`, else fetched with git
        (:func:`repository_settings.fetch_git`)."""
        from ..charts import repository_settings

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
        from ..charts import repository_settings

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
        from ..flux import settings

        self.components(env)
        return settings.load(self.source, env)

    def values(self, env: str, component: str, prerelease: str = "") -> dict[str, Any]:
        """The component's validated, resolved values (:func:`charts.build.values` with :attr:`template_dir`).

        Raises:
            UserError: unknown environment or component.
            ValidationError: every problem of the config.
        """
        from ..charts import build

        return build.values(self.source, env, component, self.template_dir, prerelease)
