"""Flux OCI artifact verbs: ``publish-artifact``, ``retire-artifact`` and ``artifact-objects``
(the Flux Operator objects that apply them); the format is :mod:`faas_deployment.flux.artifacts`'.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core import layout
from ..core.errors import Problem, UserError, ValidationError
from ..core.progress import step
from . import charts
from .defaults import FLUX_NAMESPACE, RECEIVER_SECRET
from .results import Result, lines_result, make_result
from .running import run_all
from .workspace import Registry, Workspace


def artifact_repository(ws: Workspace, env: str, registry: Registry) -> Callable[[], Any]:
    """A factory of :class:`artifact_repository.ArtifactRepository` for the registry flags (the URL checked now).

    ``registry.registry`` empty: ``artifact_repository`` of ``env/<env>/environment.yaml``.
    """
    from ..flux import settings
    from ..flux.artifact_repository import ArtifactRepository
    from ..registry.registry_client import check_root

    registry.credentials()  # only one of user name and password: said before anything else
    ws.components(env)
    url = settings.artifact_repository(ws.source, env, registry.registry)
    check_root(url)
    registry = registry.for_url(url)
    credentials = registry.credentials()
    return lambda: ArtifactRepository(url, credentials=credentials, plain_http=registry.plain_http,
                                      ca_file=registry.ca_file)


def artifact_files(ws: Workspace, env: str, component: str, objects_dir: Path | None = None
) -> tuple[dict[str, bytes], str]:
    """The files of ``component``'s Flux artifact and its ``chart_version``.

    The files are the objects of ``objects_dir``, else the chart rendered with its
    values as ``helm template`` would (release ``chart_name``, namespace ``default``;
    the Kustomization sets the target namespace).
    """
    from ..flux import artifacts

    artifacts.check_component_name(component)
    if objects_dir is not None:
        version = str(ws.values(env, component)["chart_version"])
        return artifacts.directory_files(objects_dir), version
    rendered, version = charts.rendered(ws, env, component)
    return artifacts.rendered_files(rendered), version


def publish_artifact(ws: Workspace, env: str, registry: Registry, component: str | None = None, *,
                     objects_dir: Path | None = None, revision: str = "", source_url: str = "") -> Result:
    """``publish-artifact``: every component's (or one's) Flux artifact; see :func:`publish_artifacts`."""
    names = ws.resolve(env, component)
    repository = artifact_repository(ws, env, registry)
    return lines_result(publish_artifacts(ws, env, repository, names, objects_dir=objects_dir, revision=revision,
                                         source_url=source_url))


def publish_artifacts(ws: Workspace, env: str,
    repository: Callable[[], Any],
    components: list[str] | None = None,
    *,
    objects_dir: Path | None = None,
    revision: str = "",
    source_url: str = "",
) -> list[Any]:
    """Build every component's Flux artifact (all first: nothing is pushed if one fails), then publish them.

    Args:
        repository: opens the artifact repository (called once per component, in its thread).
        objects_dir: a directory of Kubernetes objects replacing the rendered chart (one component only).
        revision, source_url: the annotations; default from the source tree's git
            (:func:`artifacts.git_revision`).

    Raises:
        ValidationError: a component failed validation or rendering (all listed).
        UserError: a tag rule or the registry refused (see :func:`artifact_repository.publish`).
    """
    from ..flux import artifacts
    from ..flux.artifact_repository import publish as push

    names = components or ws.components(env)
    if objects_dir is not None and len(names) != 1:
        raise UserError("--objects replaces one component's chart: give --component too")
    git_rev, git_url = artifacts.git_revision(ws.source) if not (revision and source_url) else ("", "")
    revision, source_url = artifacts.annotations_of(revision or git_rev, source_url or git_url,
                                                    where="the source tree")
    created = artifacts.now_rfc3339()
    problems: list[Problem] = []
    built: dict[str, tuple[Any, str]] = {}
    for name in names:
        try:
            files, version = artifact_files(ws, env, name, objects_dir)
            built[name] = (
                artifacts.flux_artifact(files, source=source_url, revision=revision, created=created),
                version,
            )
        except ValidationError as exc:
            problems.extend(exc.problems)
        except UserError as exc:
            problems.append(Problem(ws.display(env, name), "", str(exc)))
    if problems:
        raise ValidationError(problems)

    def publish(name: str) -> Any:
        artifact, version = built[name]
        with step(f"publish-artifact {env}/{name}"):
            return push(repository(), artifact, component=name, version=version, config=ws.display(env, name))

    return run_all(publish, names, None)


def retire_artifact(ws: Workspace, env: str, component: str, registry: Registry) -> Result:
    """``retire-artifact``: delete ``app-<component>`` so Flux uninstalls the removed component.

    Raises:
        UserError: ``component`` still exists under ``env/<env>/`` (Flux would uninstall
            a running component), before the registry is contacted; or the registry
            never held an artifact of that name (see :func:`artifact_repository.retire`).
    """
    from ..flux import artifacts
    from ..flux.artifact_repository import retire

    artifacts.check_component_name(component)
    if component in ws.components(env):
        raise UserError(f"retire-artifact --component {component}: {ws.display(env, component)} still exists, so "
                        f"{component} is still deployed: retiring would make Flux uninstall it; remove "
                        f"{layout.component_dir(env, component).as_posix()}/ from the repository first "
                        "(retire is for removed components)")
    line = retire(artifact_repository(ws, env, registry)(), component)
    outcome, reference = line.split(" ", 1)
    return make_result([line], {"outcome": outcome, "reference": reference, "component": component})


def artifact_objects(ws: Workspace, env: str, repository: str, out: Path, *, name: str = "",
                     namespace: str = FLUX_NAMESPACE, target_namespace: str = "",
                     registry_secret: str = "", receiver_secret: str = RECEIVER_SECRET,
                     plain_http: bool = False) -> Result:
    """``artifact-objects``: the Flux Operator objects watching the artifacts, written into ``out``.

    ``target_namespace`` (the Kustomizations' ``targetNamespace``): default, the environment's
    ``namespace`` (``env/<env>/environment.yaml``), where its HelmReleases install too.

    Raises:
        UserError: ``target_namespace`` or ``namespace`` is not a Kubernetes namespace name (DNS-1123 label).
    """
    from ..core import names
    from ..flux import flux_operator

    ws.components(env)
    for flag, value in (("--namespace", namespace), ("--target-namespace", target_namespace)):
        if value and not names.is_dns_label(value):
            raise UserError(f"{flag} {value!r}: expected a Kubernetes namespace name (lowercase letters, digits "
                            f"and '-', at most {names.DNS_LABEL_MAX} characters)")
    settings = flux_operator.FluxObjectSettings(
        url=repository, name=name or f"faas-{env}", namespace=namespace or FLUX_NAMESPACE,
        target_namespace=target_namespace or ws.settings(env).namespace, registry_secret=registry_secret,
        receiver_secret=receiver_secret or RECEIVER_SECRET, insecure=plain_http,
    )
    paths = flux_operator.write_flux_objects(settings, Path(out))
    return make_result([str(p) for p in paths], {"files": paths}, path=Path(out))

