"""Per-environment settings: ``env/<env>/environment.yaml``.

What belongs to an environment rather than to one component: where its charts are
published, the Kubernetes namespace its releases run in, the Flux objects' names,
the Receiver that triggers Flux, the operator admin API and the timeouts. CI and
both front ends read them instead of repeating them per job (a dev bundle cannot
reach prod's admin API through a typo); a command-line flag overrides a value.

Validation follows the component configs (``charts/config.py``): every problem at once,
each with the file, the key, what was expected and what to do; any bytes give
problems, never a traceback.

Keys (all required unless a default is shown):

=====================  ==========================================================
``chart_registry``     ``oci://HOST[:PORT]/PATH``: this environment's charts are
                       ``<chart_registry>/<chart_name>:<chart_version>``
``namespace``          Kubernetes namespace of the generated Flux objects (the
                       HelmReleases, their OCIRepositories, the Receiver)
``flux_name_prefix``   naming rule: component C's OCIRepository and HelmRelease
                       are named ``<prefix>C`` (default ``""``)
``chart_semver``       ``spec.ref.semver`` of the OCIRepositories (default
                       ``>=0.0.0-0``: every version the pipeline publishes)
``receiver_name``      the Receiver's name (its hook path depends on it)
``receiver_url``       ``http(s)://`` base URL where notification-controller's
                       webhook server is reachable (``/hook/...`` is appended)
``admin_url``          the operator admin API base URL
``deploy_timeout``     seconds to wait for a rollout (default 600)
``upload_timeout``     seconds for admin API readiness plus upload (default 300)
``gitlab_agent``       GitLab agent for Kubernetes, ``<project path>:<agent name>``
``artifact_repository`` ``oci://HOST[:PORT]/PATH`` holding the Flux OCI artifacts
                       ``app-<component>`` (optional: ``publish-artifact``'s and
                       ``retire-artifact``'s default ``--repository``)
``chart_registry_immutable_tags``
                       ``true`` when ``chart_registry`` refuses to overwrite a tag
                       (Harbor tag immutability, ECR ``IMMUTABLE``): ``deploy``
                       to it publishes as ``--immutable-tags`` does (default ``false``)
``promote_from``       the environment whose running configuration this one
                       receives by ``promote`` (the promotion order, e.g. prod:
                       ``dev``; with a qa stage, qa: ``dev`` and prod: ``qa``);
                       optional: an environment without it receives none
                       (:func:`promotion_order`)
=====================  ==========================================================

Every URL setting passes :func:`urls.url_problems`: a valid host, a port of
1-65535, no ``user:password@`` and no credential query parameter (such a value is
refused without being repeated in the message). The file is read through
:mod:`repofiles` (a regular file inside the repository).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..charts import config_file, value_rules
from ..core import layout, names, urls
from ..core.errors import Problem, UserError, ValidationError

FILE_NAME = layout.SETTINGS_NAME

_PREFIX = re.compile(r"^([a-z0-9][-a-z0-9]{0,30})?$")
_HTTP = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s?#]*)?$")
_AGENT = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+:[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SEMVER_RANGE = re.compile(r"^[0-9A-Za-z.*xX^~<>=!|, +-]{1,100}$")


@dataclass(frozen=True)
class Settings:
    """The validated settings of one environment (see the module doc for each key)."""

    env: str
    chart_registry: str
    namespace: str
    flux_name_prefix: str
    chart_semver: str
    receiver_name: str
    receiver_url: str
    admin_url: str
    deploy_timeout: float
    upload_timeout: float
    gitlab_agent: str
    artifact_repository: str = ""
    chart_registry_immutable_tags: bool = False
    promote_from: str = ""

    def object_name(self, component: str) -> str:
        """Name of component ``component``'s OCIRepository and HelmRelease: ``<flux_name_prefix><component>``."""
        return f"{self.flux_name_prefix}{component}"


Check = Callable[[Any], Iterator[str]]


def _text(rule: re.Pattern[str] | Callable[[str], bool], expected: str) -> Check:
    """A check of a string against a pattern or a predicate (one of :mod:`names`)."""
    accepts = rule.match if isinstance(rule, re.Pattern) else rule

    def check(value: Any) -> Iterator[str]:
        if not isinstance(value, str) or not accepts(value):
            yield f"expected {expected}, got {value_rules.shown(value)}"
    return check


def _url(schemes: tuple[str, ...], rule: Callable[[str], object] | None, expected: str) -> Check:
    """A URL setting: :func:`urls.url_problems` (host, port 1-65535, no credentials, not echoed when it holds
    one), then ``rule`` (one of :mod:`names`)."""
    def check(value: Any) -> Iterator[str]:
        problems = urls.url_problems(value, schemes)
        if problems:
            yield f"expected {expected}: {'; '.join(problems)}"
        elif rule is not None and not rule(value):
            yield f"expected {expected}, got {value_rules.shown(value)}"
    return check


def _seconds(value: Any) -> Iterator[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 86400:
        yield f"expected a number of seconds between 1 and 86400, got {value_rules.shown(value)}"


def _flag(value: Any) -> Iterator[str]:
    if not isinstance(value, bool):
        yield f"expected true or false, got {value_rules.shown(value)}"


_DNS = "a DNS-1123 label (lowercase letters, digits, '-', at most 63)"
KEYS: dict[str, tuple[Check, Any]] = {
    "chart_registry": (_url(("oci",), names.is_oci_repository_url, "oci://HOST[:PORT]/PATH (lowercase path)"), None),
    "namespace": (_text(names.is_dns_label, _DNS), None),
    "flux_name_prefix": (_text(_PREFIX, "'' or a DNS-1123 prefix of at most 31 characters"), ""),
    "chart_semver": (_text(_SEMVER_RANGE, "a semver range such as '>=0.0.0-0' or '1.x'"), ">=0.0.0-0"),
    "receiver_name": (_text(names.is_dns_label, _DNS), None),
    "receiver_url": (_url(("http", "https"), _HTTP.match, "an http(s)://HOST[:PORT][/PATH] URL without query"), None),
    "admin_url": (_url(("http", "https"), _HTTP.match, "an http(s)://HOST[:PORT][/PATH] URL without query"), None),
    "deploy_timeout": (_seconds, 600),
    "upload_timeout": (_seconds, 300),
    "gitlab_agent": (_text(_AGENT, "<group>/<project>:<agent name>"), None),
    "artifact_repository": (_url(("oci",), names.is_oci_repository_url, "oci://HOST[:PORT]/PATH (lowercase path)"),
                            ""),
    "chart_registry_immutable_tags": (_flag, False),
    "promote_from": (_text(names.is_dns_label, _DNS + " naming another environment"), ""),
}
_HINTS = {
    "chart_registry": "the OCI repository root this environment publishes to",
    "receiver_url": "the URL of notification-controller's webhook receiver (its Ingress)",
    "admin_url": "the operator admin API base URL of this environment",
    "gitlab_agent": "the agent's configuration project path and the agent's name",
    "artifact_repository": "the OCI repository of this environment's Flux OCI artifacts (app-<component> tags)",
    "chart_registry_immutable_tags": "true only when the registry itself refuses to overwrite a tag",
    "promote_from": "the environment promoted into this one, e.g. dev (env/<name>/ must exist)",
}


def settings_path(source: Path, env: str) -> Path:
    """``env/<env>/environment.yaml`` under the repository root."""
    return layout.settings_path(source, env)


def validate(data: Any, shown: str, env: str) -> Settings:
    """Validate a parsed ``environment.yaml``; raises ValidationError listing every problem."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else value_rules.shown(data)
        raise ValidationError([Problem(shown, "", f"expected a mapping of settings, got {got}",
                                       f"keys: {', '.join(KEYS)}")])
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key in data:
        if key not in KEYS:
            problems.append(Problem(shown, str(key), "unknown key" + value_rules.did_you_mean(str(key), KEYS),
                                    f"known keys: {', '.join(KEYS)}"))
    for key, (check, default) in KEYS.items():
        if key not in data:
            if default is None:
                problems.append(Problem(shown, key, "missing", _HINTS.get(key, "")))
            values[key] = default
            continue
        found = list(check(data[key]))
        problems.extend(Problem(shown, key, message, _HINTS.get(key, "")) for message in found)
        values[key] = data[key]
    if problems:
        raise ValidationError(problems)
    values["deploy_timeout"] = float(values["deploy_timeout"])
    values["upload_timeout"] = float(values["upload_timeout"])
    return Settings(env=env, **values)


def load(source: Path, env: str) -> Settings:
    """Read and validate ``env/<env>/environment.yaml``.

    Raises:
        UserError: unknown environment.
        ValidationError: unreadable file, YAML error, unknown, missing or invalid keys (all at once).
    """
    if not (source / layout.env_dir(env)).is_dir():
        known = layout.envs(source)
        raise UserError(layout.unknown("environment", env, known, source))
    path = settings_path(source, env)
    shown = str(path.relative_to(source))
    data, problems = config_file.read_yaml(path, shown)
    if problems:
        if data is None:
            problems = [Problem(p.path, p.key, p.message, p.hint or "create it: see README, Flux deploy")
                        for p in problems]
        raise ValidationError(problems)
    return validate(data, shown, env)


def gitlab_environment(settings: Settings, component: str) -> dict[str, Any]:
    """The ``environment:`` fields of a GitLab CI deploy job for ``component`` in ``settings.env``.

    Returns ``{"name": "<env>/<component>", "kubernetes": {"agent", "namespace",
    "flux_resource_path"}}``: GitLab's Kubernetes dashboard shows the Flux status of
    the HelmRelease at ``flux_resource_path``
    (``helm.toolkit.fluxcd.io/v2/namespaces/<ns>/helmreleases/<name>``, the form
    GitLab documents for ``environment:kubernetes:flux_resource_path``).
    """
    name = settings.object_name(component)
    return {
        "name": f"{settings.env}/{component}",
        "kubernetes": {
            "agent": settings.gitlab_agent,
            "namespace": settings.namespace,
            "flux_resource_path": f"helm.toolkit.fluxcd.io/v2/namespaces/{settings.namespace}/helmreleases/{name}",
        },
    }


def artifact_repository(source: Path, env: str, override: str | None) -> str:
    """The OCI repository of ``env``'s Flux OCI artifacts: ``override`` (``--repository``) when given,
    else ``artifact_repository`` of ``env/<env>/environment.yaml``.

    Raises:
        UserError: neither is given (names the file, the key and the flag).
        ValidationError: the settings file is invalid (only read without ``override``).
    """
    if override:
        return override
    found = load(source, env).artifact_repository
    if not found:
        raise UserError(f"{settings_path(source, env).relative_to(source)}: artifact_repository: not set and no "
                        f"--repository given; add artifact_repository: oci://HOST/PATH or pass --repository")
    return found


def promotion_order(source: Path) -> list[tuple[str, str]]:
    """Every ``(from, to)`` promotion step the repository declares, in order from the first stage.

    Read from ``promote_from`` of each ``env/<to>/environment.yaml``; an
    environment without it receives no promotion. ``dev -> qa -> prod`` gives
    ``[("dev", "qa"), ("qa", "prod")]``.

    Raises:
        ValidationError: a ``promote_from`` naming itself or an unknown environment,
            or a cycle (each problem with its file and key).
    """
    envs = layout.envs(source)
    sources: dict[str, str] = {}
    problems: list[Problem] = []
    for env in envs:
        found = load(source, env).promote_from
        shown = str(settings_path(source, env).relative_to(source))
        if not found:
            continue
        if found == env or found not in envs:
            what = "the environment itself" if found == env else "no such environment"
            others = ", ".join(e for e in envs if e != env)
            problems.append(Problem(shown, "promote_from", f"{found!r}: {what}", f"one of: {others}"))
            continue
        sources[env] = found
    for env, first in sources.items():
        seen, at = {env}, first
        while at in sources:
            if at in seen:
                problems.append(Problem(str(settings_path(source, env).relative_to(source)), "promote_from",
                                        f"the promotion order has a cycle through {env}",
                                        "the first stage (e.g. dev) names no promote_from"))
                break
            seen.add(at)
            at = sources[at]
    if problems:
        raise ValidationError(problems)

    def depth(env: str) -> int:
        return 0 if env not in sources else 1 + depth(sources[env])

    return sorted(((frm, to) for to, frm in sources.items()), key=lambda step: (depth(step[1]), step[1]))
