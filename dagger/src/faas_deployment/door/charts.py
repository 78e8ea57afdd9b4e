"""Chart verbs: ``config``, ``chart``, ``objects``, ``package``, ``publish``, ``release``, ``local-repository``.

Every verb validates before it writes anything: ``publish`` and ``release`` package
every chart they are about to publish first (:func:`publish_charts`), so a problem in
one component means nothing is pushed for any. The publishing rules (pushed,
unchanged, refused) are :mod:`faas_deployment.core.versions`'; the targets (an OCI
registry, the local Helm repository) are :mod:`faas_deployment.registry.publishing`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import layout
from ..core.errors import Problem, UserError, ValidationError
from ..core.progress import note, step
from .defaults import RENDER_NAMESPACE
from .results import Result, lines_result, make_result
from .running import problem_of, run_all, tempdir
from .workspace import Registry, Workspace

if TYPE_CHECKING:
    from ..core.packaging import ChartPackage
    from ..registry.publishing import LocalRepoTarget, PublishResult, Target


def render_chart(ws: Workspace, env: str, component: str, out_dir: Path, prerelease: str = "",
                 values: dict[str, Any] | None = None) -> Path:
    """Validate, render with cookiecutter and lint with Helm (:func:`charts.build.render`); the chart directory.

    ``values``: the component's values when the caller has resolved them already (:meth:`Workspace.values`).
    """
    from ..charts import build

    if values is None:
        values = ws.values(env, component, prerelease)
    return build.render(values, ws.template_dir, out_dir, f"{env}/{component}")


def package_chart(ws: Workspace, env: str, component: str, out_dir: Path, prerelease: str = "",
                  values: dict[str, Any] | None = None) -> ChartPackage:
    """Validate, render, lint and package reproducibly into ``out_dir`` (:func:`charts.build.package`;
    ``values``: see :func:`render_chart`)."""
    from ..charts import build

    if values is None:
        values = ws.values(env, component, prerelease)
    return build.package(values, ws.template_dir, out_dir, f"{env}/{component}", ws.source_date_epoch)


def package_or_note(
    ws: Workspace,
    env: str,
    component: str,
    out_dir: Path,
    problems: list[Problem],
    prerelease: str = "",
    values_of: dict[str, dict[str, Any]] | None = None,
) -> ChartPackage | None:
    """:func:`package_chart`, or ``None`` with the reasons appended to ``problems``.

    ``values_of``, when given, receives the component's resolved values (resolved once, used again by the caller).
    """
    try:
        values = ws.values(env, component, prerelease)
        if values_of is not None:
            values_of[component] = values
        return package_chart(ws, env, component, out_dir, prerelease, values)
    except ValidationError as exc:
        problems.extend(exc.problems)
    except UserError as exc:
        problems.append(problem_of(ws.display(env, component), exc))
    return None


def chart_name_problems(ws: Workspace, env: str, known: dict[str, str]) -> list[Problem]:
    """Two components of ``env`` sharing a ``chart_name`` (they would publish over each other).

    Args:
        known: ``component -> chart_name`` already at hand; the other components'
            names are read from their configs (a config that fails validation is
            skipped here: its own validation reports it).

    Returns:
        One problem per clash, naming both config files.
    """
    from ..charts import config

    names = dict(known)
    for component in ws.components(env):
        if component not in names:
            try:
                names[component] = str(
                    config.load_context(ws.source, env, component, ws.template_dir)["chart_name"]
                )
            except (UserError, KeyError):
                continue
    problems: list[Problem] = []
    owner: dict[str, str] = {}
    for component in sorted(names):
        name = names[component]
        if name in owner:
            problems.append(Problem(
                ws.display(env, component), "chart_name",
                f"{name!r} is also the chart_name of {ws.display(env, owner[name])}; "
                f"two components of one environment would publish over each other",
                "give each component its own chart_name",
            ))
        else:
            owner[name] = component
    return problems


def local_target(ws: Workspace, env: str) -> LocalRepoTarget:
    """``env``'s local Helm repository ``dist/charts/<env>/`` (:func:`layout.local_repository`)."""
    from ..registry.publishing import LocalRepoTarget

    return LocalRepoTarget(layout.local_repository(ws.source, env))


def target(ws: Workspace, env: str, registry: Registry) -> Target:
    """Where ``env``'s charts go: ``OciTarget`` for ``oci://...`` (within ``timeout`` s); no registry
    (``None``): the environment's local repository.

    Raises:
        UserError: a malformed root (an empty one included) or ``timeout``; only one of user
            name and password; the verb's credentials or ``--ca-file`` without a registry (they would be
            ignored; access given for a host, :attr:`Registry.host`, is for the verbs that reach it).
    """
    from ..core.deadline import DEFAULT_TIMEOUT, Deadline
    from ..registry.publishing import OciTarget

    limit = Deadline(DEFAULT_TIMEOUT if registry.timeout is None else registry.timeout)
    credentials = registry.credentials()
    if registry.registry is None:
        given_for_verb = registry.host is None and (credentials is not None or registry.ca_file)
        if given_for_verb or registry.immutable_tags:
            raise UserError("--username/--password, --ca-file and --immutable-tags are for a registry: give "
                            "--registry oci://HOST/PATH, or leave them out to publish into the local repository")
        return local_target(ws, env)
    if not registry.registry.strip():
        raise UserError("--registry: empty; give oci://HOST[:PORT]/PATH, or leave the flag out to publish into "
                        "the local repository")
    url = registry.registry
    scoped = registry.for_url(url)  # access given for one host (Dagger's with-registry) reaches it only
    if scoped is not registry:
        registry, credentials = scoped, scoped.credentials()
    return OciTarget(url, credentials=credentials, plain_http=registry.plain_http,
                     ca_file=registry.ca_file, deadline=limit, immutable_tags=registry.immutable_tags)


def publish_charts(ws: Workspace, env: str, target: Target, components: list[str] | None = None,
                   prerelease: str = "", check_images: bool = False) -> list[PublishResult]:
    """Package every component of ``env`` (or those given), then publish them concurrently.

    Around each publish run the component's ``pre-deploy`` and ``post-deploy``
    hooks (:mod:`faas_deployment.charts.hooks`); a failing ``pre-deploy`` stops that
    component before anything of it is pushed. ``prerelease``: see :meth:`Workspace.values`.
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
    from ..charts import hooks

    names = components or ws.components(env)
    with tempdir(prefix="faas-release-") as scratch:
        problems: list[Problem] = []
        values_of: dict[str, dict[str, Any]] = {}
        packages = {name: package_or_note(ws, env, name, Path(scratch) / name, problems, prerelease, values_of)
                    for name in names}
        problems.extend(chart_name_problems(ws, env, {n: p.name for n, p in packages.items() if p is not None}))
        if not problems and check_images:
            problems.extend(image_problems(ws, env, values_of, target))
        if problems:
            raise ValidationError(problems)

        def publish(name: str) -> PublishResult:
            package = packages[name]
            assert package is not None  # a component without its package left a problem, raised above
            hooks.run_hook(ws.source, env, name, "pre-deploy", action="publish", version=package.version,
                           digest=package.digest, deadline=target.deadline)
            with step(f"publish {env}/{name}"):
                result = target.publish(package, config=ws.display(env, name))
            hooks.run_hook(ws.source, env, name, "post-deploy", action="publish", version=package.version,
                           digest=package.digest, deadline=target.deadline)
            return result

        return run_all(publish, names, target.deadline)


def image_problems(ws: Workspace, env: str, values_of: dict[str, dict[str, Any]], target: Target) -> list[Problem]:
    """The images (``image_repository:image_tag``) of the resolved ``values_of`` (component -> values)
    that their registry says do not exist.

    A config without both keys (a user template may have neither) is skipped; the
    chart registry's credentials are reused only for images on its host.
    """
    from ..core.deadline import Deadline
    from ..images import image_tags

    references = {}
    for name, values in values_of.items():
        repository, tag = values.get("image_repository"), values.get("image_tag")
        if isinstance(repository, str) and isinstance(tag, str) and repository and tag:
            references[ws.display(env, name)] = f"{repository}:{tag}"
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


def config(ws: Workspace, env: str, component: str) -> Result:
    """``config``: the validated, resolved values as YAML (``default_context: {...}``); data: the values."""
    from ..core import yaml_out

    values = ws.values(env, component)
    return make_result(yaml_out.dump({"default_context": values}).rstrip("\n"), values)


def chart(ws: Workspace, env: str, component: str, out_dir: Path) -> Result:
    """``chart``: the rendered, linted chart directory under ``out_dir``."""
    path = render_chart(ws, env, component, Path(out_dir))
    return make_result([str(path)], {"path": path}, path=path)


def rendered_objects(ws: Workspace, env: str, component: str) -> Result:
    """``objects``: the chart's Kubernetes objects as ``helm template`` renders them (release ``chart_name``,
    namespace ``default``), one YAML stream; data: ``{file: text}``."""
    files = rendered(ws, env, component)[0]
    text = "".join(f"---\n# Source: {name}\n{body.strip()}\n" for name, body in sorted(files.items()))
    return make_result(text.rstrip("\n"), files)


def rendered(ws: Workspace, env: str, component: str) -> tuple[dict[str, str], str]:
    """The chart's rendered objects ``{path: text}`` and its version."""
    import yaml

    from ..charts import chart

    with tempdir(prefix="faas-template-") as scratch:
        chart_dir = render_chart(ws, env, component, Path(scratch))
        meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        with step(f"template {env}/{component}"):
            rendered = chart.render_objects(chart_dir, str(meta["name"]), RENDER_NAMESPACE)
        return rendered, str(meta["version"])


def package(ws: Workspace, env: str, component: str, out_dir: Path) -> Result:
    """``package``: the reproducible ``<chart_name>-<chart_version>.tgz`` in ``out_dir``."""
    package = package_chart(ws, env, component, Path(out_dir))
    return make_result([str(package.path)], {"path": package.path, "name": package.name, "version": package.version,
                                         "digest": package.digest}, path=package.path)


def publish(ws: Workspace, env: str, component: str, registry: Registry, prerelease: str = "") -> Result:
    """``publish``: one component's chart, ``pushed|unchanged <ref>@<digest>``."""
    ws.resolve(env, component)  # unknown env/component: say so before connecting
    return lines_result(publish_charts(ws, env, target(ws, env, registry), [component], prerelease=prerelease))


def release(ws: Workspace, env: str, registry: Registry, components: list[str] | None = None,
            prerelease: str = "", check_images: bool = True) -> Result:
    """``release``: every component's chart of ``env`` (or those given), a line each.

    ``check_images``: refuse a chart whose image its registry does not have
    (:func:`image_problems`); off for air-gapped registries.
    """
    names = components or ws.components(env)
    return lines_result(publish_charts(ws, env, target(ws, env, registry), names, prerelease=prerelease,
                                      check_images=check_images))


def local_repository(ws: Workspace, env: str) -> Result:
    """``env``'s charts released into its local repository ``dist/charts/<env>/``; path: that directory."""
    target = local_target(ws, env)
    results = publish_charts(ws, env, target)
    return make_result([r.line for r in results], results, path=target.directory)

