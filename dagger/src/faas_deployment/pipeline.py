"""The pipeline's verbs over one repository checkout; both front ends call only this.

A :class:`Workspace` is a source tree (the repository root, holding
``env/<env>/<component>/cookiecutter-config.yaml``) plus the cookiecutter template
to render charts with (the embedded one unless the user gives another). Every
verb validates before it writes anything: ``publish`` and ``release`` package every
chart they are about to publish first, so a problem in one component means nothing
is pushed for any.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import semver
import yaml

from . import artifacts, chart, config, deadline, hooks, image_tags, manifests
from .deadline import DEFAULT_TIMEOUT, Deadline
from .errors import Problem, UserError, ValidationError
from .packaging import ChartPackage, package_chart
from .plan import make_plan, scheme_problem, side
from .progress import step
from .credentials import RegistryCredentials
from .registry import LocalRepoTarget, OciTarget, PublishResult, Target

#: Where ``publish``/``release`` write without ``--registry`` (relative to the source tree).
LOCAL_REPOSITORY = Path("dist/charts")

T = TypeVar("T")


@dataclass(frozen=True)
class Workspace:
    """A source tree and the template its charts are rendered with.

    Attributes:
        source: repository root (holds ``env/``).
        template: a cookiecutter template directory; ``None`` means the embedded one.
    """

    source: Path
    template: Path | None = None

    @property
    def template_dir(self) -> Path:
        return self.template or config.EMBEDDED_TEMPLATE

    def _label(self, env: str, component: str) -> str:
        return f"{env}/{component}"

    def config_file(self, env: str, component: str) -> Path:
        """``env/<env>/<component>/cookiecutter-config.yaml``; UserError when unknown."""
        return config.config_path(self.source, env, component)

    def display(self, env: str, component: str) -> str:
        """The config file's path relative to the source root, as messages name it."""
        return str(self.config_file(env, component).relative_to(self.source))

    def components(self, env: str) -> list[str]:
        """Components of ``env``, sorted, as discovered on disk."""
        found = [c for e, c in config.discover(self.source) if e == env]
        if not found:
            known = ", ".join(config.envs(self.source)) or "none"
            raise UserError(f"{self.source / 'env'}: no environment {env!r} with components (known: {known})")
        return found

    def context(self, env: str, component: str, prerelease: str = "") -> dict[str, Any]:
        """The validated, resolved cookiecutter context (raises ValidationError).

        ``prerelease`` (e.g. ``mr.42.3``) publishes ``chart_version`` as the pre-release
        ``<chart_version>-<prerelease>`` (docs/plan.md, "Versions").
        """
        with step(f"validate {self._label(env, component)}"):
            context = config.load_context(self.source, env, component, self.template)
        if prerelease:
            context["chart_version"] = prerelease_version(self.display(env, component), context["chart_version"],
                                                          prerelease)
        return context

    def config_yaml(self, env: str, component: str) -> str:
        """The resolved context as a YAML document (``default_context: {...}``)."""
        return yaml.safe_dump({"default_context": self.context(env, component)}, sort_keys=False)

    def render(self, env: str, component: str, out_dir: Path, prerelease: str = "") -> Path:
        """Validate, render with cookiecutter and lint with Helm; returns the chart directory."""
        context = self.context(env, component, prerelease)
        with step(f"render {self._label(env, component)}"):
            chart_dir = chart.render_chart(context, self.template_dir, out_dir)
        with step(f"lint {self._label(env, component)}"):
            chart.require_lint_clean(chart_dir, shown=self._label(env, component))
        return chart_dir

    def package(self, env: str, component: str, out_dir: Path, prerelease: str = "") -> ChartPackage:
        """Validate, render, lint and package reproducibly into ``out_dir``."""
        with tempfile.TemporaryDirectory(prefix="faas-render-") as scratch:
            chart_dir = self.render(env, component, Path(scratch), prerelease)
            with step(f"package {self._label(env, component)}"):
                return package_chart(chart_dir, out_dir)

    def _package_or_note(self, env: str, component: str, out_dir: Path, problems: list[Problem],
                         prerelease: str = "") -> ChartPackage | None:
        """:meth:`package`, or ``None`` with the reasons appended to ``problems``."""
        try:
            return self.package(env, component, out_dir, prerelease)
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
        names = dict(known)
        for component in self.components(env):
            if component not in names:
                try:
                    names[component] = str(config.load_context(self.source, env, component, self.template)["chart_name"])
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

    def local_target(self) -> LocalRepoTarget:
        return LocalRepoTarget(self.source / LOCAL_REPOSITORY)

    def release(self, env: str, target: Target, components: list[str] | None = None,
                prerelease: str = "", check_images: bool = False) -> list[PublishResult]:
        """Package every component of ``env`` (or those given), then publish them concurrently.

        Around each publish run the component's ``pre-deploy`` and ``post-deploy``
        hooks (:mod:`faas_deployment.hooks`); a failing ``pre-deploy`` stops that
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
        names = components or self.components(env)
        with tempfile.TemporaryDirectory(prefix="faas-release-") as scratch:
            problems: list[Problem] = []
            packages = {name: self._package_or_note(env, name, Path(scratch) / name, problems, prerelease)
                        for name in names}
            problems.extend(self.chart_name_problems(env, {n: p.name for n, p in packages.items() if p is not None}))
            if not problems and check_images:
                problems.extend(self.image_problems(env, names, target))
            if problems:
                raise ValidationError(problems)

            def publish(name: str) -> PublishResult:
                package = packages[name]
                facts = {"action": "publish", "version": package.version, "digest": package.digest}
                hooks.run_hook(self.source, env, name, "pre-deploy", **facts)
                with step(f"publish {self._label(env, name)}"):
                    result = target.publish(package, config=self.display(env, name))
                hooks.run_hook(self.source, env, name, "post-deploy", **facts)
                return result

            return _run_all(publish, names, target.deadline)

    def image_problems(self, env: str, components: list[str], target: Target) -> list[Problem]:
        """The images of ``components`` (``image_repository:image_tag``) that their registry says do not exist.

        A config without both keys (a user template may have neither) is skipped; the
        chart registry's credentials are reused only for images on its host.
        """
        references = {}
        for name in components:
            context = config.load_context(self.source, env, name, self.template)
            repository, tag = context.get("image_repository"), context.get("image_tag")
            if isinstance(repository, str) and isinstance(tag, str) and repository and tag:
                references[self.display(env, name)] = f"{repository}:{tag}"
        seconds = image_tags.CHECK_TIMEOUT
        limit = Deadline(min(seconds, target.deadline.remaining()) if target.deadline else seconds)
        with step(f"check images of {env}"):
            return image_tags.check_images(references, target.access, limit)

    def check(
        self,
        env: str | None = None,
        target: Target | None = None,
        base: str | Path | None = None,
        base_name: str = "",
    ) -> str:
        """Validate, render, lint and package every component (of ``env`` or of all envs).

        Each environment's operator ``dynamic/`` manifests are validated too
        (:func:`manifests.check_env`). Each package is checked against the
        publishing rules without pushing, against ``target`` (a registry) or, without
        one, against the local repository (:meth:`local_target`): a chart whose
        content changed without a ``chart_version`` bump, or whose version is lower
        than the highest published, is refused.

        ``base``: also compare with that tree, as ``ct lint --check-version-increment``
        does: a chart whose packaged digest differs from the base's without a higher
        ``chart_version`` is refused (decided as :func:`faas_deployment.plan.make_plan`
        decides it; no registry needed). A string is a git ref of the source tree's
        repository (read with git); a path is the base tree already on disk, named
        ``base_name`` in messages (the ref it was read from).

        Returns:
            A report, a line per checked item: ``ok <env>/<component>: <chart> <version>
            (<digest>)``, the publishing decision of each chart, ``ok <env>: dynamic
            manifests``, and with ``base`` ``ok <env>: chart versions increase over <base>``.

        Raises:
            ValidationError: every problem found, across all environments.
        """
        envs = [env] if env else config.envs(self.source)
        if not envs:
            raise UserError(f"{self.source}: no env/<env>/<component>/cookiecutter-config.yaml found")
        rules = target if target is not None else self.local_target()
        lines: list[str] = []
        problems: list[Problem] = []
        with tempfile.TemporaryDirectory(prefix="faas-check-") as scratch:
            for name in envs:
                packages: dict[str, ChartPackage] = {}
                for component in self.components(name):
                    package = self._package_or_note(name, component, Path(scratch) / name / component, problems)
                    if package is None:
                        continue
                    problem = scheme_problem(package.version, self.display(name, component))
                    if problem:
                        problems.append(Problem(self.display(name, component), "default_context.chart_version",
                                                problem.split(": ", 1)[1]))
                        continue
                    packages[component] = package
                    lines.append(f"ok {name}/{component}: {package.name} {package.version} ({package.digest})")
                problems.extend(self.chart_name_problems(name, {c: p.name for c, p in packages.items()}))
                lines.extend(self._dry_run(name, packages, rules, problems))
                found = manifests.check_env(self.source, name)
                problems.extend(found)
                if not found:
                    lines.append(f"ok {name}: dynamic manifests")
        if base is not None:
            lines.extend(self._increment_lines(base, base_name, envs, problems))
        if problems:
            raise ValidationError(problems)
        return "\n".join(lines)

    def _increment_lines(self, base: str | Path, base_name: str, envs: list[str], problems: list[Problem]) -> list[str]:
        """``check --base``: refused plan items of ``envs`` become problems; a report line per clean env."""
        from . import gitrefs  # late: only ``check --base`` reads git

        with tempfile.TemporaryDirectory(prefix="faas-check-base-") as scratch:
            if isinstance(base, str):
                root, name = gitrefs.export_tree(self.source, base, Path(scratch) / "base"), base
            else:
                root, name = Path(base), base_name or str(base)
            with step(f"compare with {name}"):
                result = make_plan(side(root, self.template), side(self.source, self.template),
                                   base_name=name, head_name="working tree")
        failed: set[str] = set()
        for item in result.refused:
            shown = f"env/{item.env}/{item.component}/{config.CONFIG_NAME}"
            if item.env not in envs or scheme_problem(item.version, shown):
                continue  # another environment, or a version the check above already refuses
            failed.add(item.env)
            problems.append(Problem(shown, "default_context.chart_version",
                                    f"compared with {name}: {item.reason.removeprefix(shown + ': ')}",
                                    "raise chart_version above the base's, as Flux deploys only a newer version"))
        return [f"ok {env}: chart versions increase over {name}" for env in envs if env not in failed]

    def artifact_files(self, env: str, component: str, manifests_dir: Path | None = None) -> tuple[dict[str, bytes], str]:
        """The files of ``component``'s Flux artifact and its ``chart_version``.

        The files are ``manifests_dir``'s manifests, else the chart rendered with its
        values as ``helm template`` would (release ``chart_name``, namespace ``default``;
        the Kustomization sets the target namespace).
        """
        artifacts.check_component_name(component)
        if manifests_dir is not None:
            version = str(self.context(env, component)["chart_version"])
            return artifacts.directory_files(manifests_dir), version
        with tempfile.TemporaryDirectory(prefix="faas-artifact-") as scratch:
            chart_dir = self.render(env, component, Path(scratch))
            meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
            with step(f"template {self._label(env, component)}"):
                rendered = chart.render_manifests(chart_dir, str(meta["name"]), "default")
            return artifacts.rendered_files(rendered), str(meta["version"])

    def publish_artifacts(
        self,
        env: str,
        repository: Callable[[], artifacts.ArtifactRepository],
        components: list[str] | None = None,
        *,
        manifests_dir: Path | None = None,
        revision: str = "",
        source_url: str = "",
    ) -> list[artifacts.ArtifactResult]:
        """Build every component's Flux artifact (all first: nothing is pushed if one fails), then publish them.

        Args:
            repository: opens the artifact repository (called once per component, in its thread).
            manifests_dir: a plain manifests directory replacing the rendered chart (one component only).
            revision, source_url: the annotations; default from the source tree's git
                (:func:`artifacts.git_revision`).

        Raises:
            ValidationError: a component failed validation or rendering (all listed).
            UserError: a tag rule or the registry refused (see :func:`artifacts.publish`).
        """
        names = components or self.components(env)
        if manifests_dir is not None and len(names) != 1:
            raise UserError("--manifests replaces one component's chart: give --component too")
        git_rev, git_url = artifacts.git_revision(self.source)
        revision, source_url = revision or git_rev, source_url or git_url
        created = artifacts.now_rfc3339()
        problems: list[Problem] = []
        built: dict[str, tuple[artifacts.FluxArtifact, str]] = {}
        for name in names:
            try:
                files, version = self.artifact_files(env, name, manifests_dir)
                built[name] = artifacts.flux_artifact(files, source=source_url, revision=revision, created=created), version
            except ValidationError as exc:
                problems.extend(exc.problems)
            except UserError as exc:
                problems.append(Problem(self.display(env, name), "", str(exc)))
        if problems:
            raise ValidationError(problems)

        def publish(name: str) -> artifacts.ArtifactResult:
            artifact, version = built[name]
            with step(f"publish-artifact {self._label(env, name)}"):
                return artifacts.publish(repository(), artifact, component=name, version=version,
                                         config=self.display(env, name))

        return _run_all(publish, names, None)


    def _dry_run(self, env: str, packages: dict[str, ChartPackage], target: Target, problems: list[Problem]) -> list[str]:
        """Check each package against ``target``'s rules, within its deadline; report lines, problems appended."""
        def dry(component: str) -> PublishResult:
            return target.publish(packages[component], config=self.display(env, component), dry_run=True)

        calls = [functools.partial(dry, c) for c in packages]
        lines: list[str] = []
        outcomes = deadline.run_all(calls, target.deadline, f"check {env} against the registry") if target.deadline else [
            _outcome(call) for call in calls
        ]
        for component, (result, error) in zip(packages, outcomes):
            if isinstance(error, UserError):
                problems.append(Problem(self.display(env, component), "", str(error)))
            elif error is not None:
                raise error  # a bug: keep its traceback
            else:
                lines.append(result.line)
        return lines


def _problem_of(shown: str, exc: UserError) -> Problem:
    """``exc`` as a problem of the file ``shown``, its text not repeating that name."""
    text = str(exc)
    return Problem(shown, "", text.removeprefix(f"{shown}: "))


def _outcome(call: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    try:
        return call(), None
    except Exception as exc:
        return None, exc


def prerelease_version(shown: str, version: str, prerelease: str) -> str:
    """``<version>-<prerelease>``, checked by semver rules (semver.org, item 9).

    Raises:
        UserError: ``version`` already has a pre-release part (the scheme forbids it in a
            config, see :func:`faas_deployment.plan.scheme_problem`) or ``prerelease`` is
            not dot-separated ``[0-9A-Za-z-]`` identifiers.
    """
    problem = scheme_problem(version, shown)
    if problem:
        raise UserError(problem)
    combined = f"{version.split('+')[0]}-{prerelease}"
    try:
        semver.Version.parse(combined)
    except ValueError:
        raise UserError(f"--prerelease {prerelease!r}: expected dot-separated identifiers of [0-9A-Za-z-], "
                        "e.g. mr.42.3") from None
    return combined


def _run_all(fn: Callable[[str], T], names: list[str], limit: Deadline | None) -> list[T]:
    """Run ``fn`` for every name concurrently (within ``limit``); re-raise the first failure after all finish."""
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
    return [result for result, _ in outcomes]


def make_target(
    workspace: Workspace,
    registry: str | None,
    credentials: RegistryCredentials | None,
    plain_http: bool,
    timeout: float = DEFAULT_TIMEOUT,
    ca_file: str | Path | None = None,
) -> Target:
    """``OciTarget`` for ``--registry oci://...`` (all its work within ``timeout`` seconds); ``None``: the local repository.

    Raises:
        UserError: a malformed root (an empty one included) or ``timeout``; credentials or
            ``--ca-file`` without a registry (they would be ignored).
    """
    limit = Deadline(timeout)
    if registry is None:
        if credentials is not None or ca_file:
            raise UserError("--username/--password and --ca-file are for a registry: give --registry oci://HOST/PATH, "
                            "or leave them out to publish into the local repository")
        return workspace.local_target()
    if not registry.strip():
        raise UserError("--registry: empty; give oci://HOST[:PORT]/PATH, or leave the flag out to publish into "
                        "the local repository")
    return OciTarget(registry, credentials=credentials, plain_http=plain_http, ca_file=ca_file, deadline=limit)
