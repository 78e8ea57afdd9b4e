"""Repository layout and discovery: every path the pipeline reads or writes, in one place.

Paths are relative to the source tree (the repository root):

=====================================================  ===============================================
``env/<env>/<component>/cookiecutter-config.yaml``     a component's config (:func:`config_path`)
``env/<env>/environment.yaml``                         the environment's settings (:func:`settings_path`)
``env/<env>/operator/dynamic/``                        the operator's dynamic templates (:func:`dynamic_dir`)
``env/<env>/<component>/dynamic/``                     a component's manifests folder (:func:`dynamic_of`)
``env/<env>/<component>/hooks/<name>``                 a component's hook script (:func:`hook_file`)
``dist/charts/<env>/``                                 the environment's local Helm repository
                                                       (:func:`local_repository`), one per environment so
                                                       that one environment's versions never constrain
                                                       another's
``dist/manifests/<env>.zip``                           the default bundle of ``dynamic/`` (:func:`default_bundle`)
=====================================================  ===============================================

Environments and components are whatever directories hold a config file
(:func:`discover`); nothing here names them. An unknown environment or component
gets one message (:func:`unknown`), whichever verb asked.

Their names are directory names, hence hostile until checked: they end up in
generated CI jobs, CI/CD variable names (``KUBECONFIG_<ENV>``), GitLab environments
and Kubernetes objects. Discovery accepts only DNS-1123 labels
(:func:`names.is_dns_label`) and refuses names that collide once case and ``-``/``_``
are folded (:func:`names.folded`: ``prod``/``Prod`` would share ``KUBECONFIG_PROD``
and slip past path rules such as CODEOWNERS ``/env/prod/``), each problem naming
the directory (:func:`check_names`). Every verb discovers first, so every verb
refuses a bad name.

Only the standard library and :mod:`names` are imported here: the CLI reads this
module at start-up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from . import names
from .errors import Problem, UserError, ValidationError

#: The folder holding every environment (``env/<env>/<component>/``).
ENV_ROOT = "env"
#: Name of a component's configuration file, and where it is looked for.
CONFIG_NAME = "cookiecutter-config.yaml"
CONFIG_GLOB = f"{ENV_ROOT}/*/*/{CONFIG_NAME}"
#: Name of an environment's settings file (a change there plans every chart of that environment).
SETTINGS_NAME = "environment.yaml"
#: The component whose ``dynamic/`` directory holds the operator's templates.
OPERATOR = "operator"
#: A component's operator manifests folder (``env/<env>/<component>/dynamic/``).
DYNAMIC = "dynamic"
#: A component's hook scripts folder (``env/<env>/<component>/hooks/<name>``).
HOOKS_DIR = "hooks"
#: Root of the local Helm repositories (one sub-directory per environment).
LOCAL_REPOSITORIES = Path("dist/charts")
#: Where bundles of ``dynamic/`` are written by default.
BUNDLE_DIR = Path("dist/manifests")


def discover(source: Path) -> list[tuple[str, str]]:
    """Every ``(env, component)`` pair with a config file under ``source``, sorted; ``[]`` when none.

    Raises:
        ValidationError: a name is not a DNS-1123 label, or two names collide (:func:`check_names`).
    """
    # anything but a real directory counts: a link, a FIFO or a device is then refused by name where the
    # config is read (:func:`config_path`, :mod:`repofiles`), never silently skipped
    found = {(p.parent.parent.name, p.parent.name) for p in Path(source).glob(CONFIG_GLOB)
             if p.is_symlink() or not p.is_dir()}
    check_names(found)
    return sorted(found)


_NAME_HINT = "rename the directory: lowercase letters, digits and '-', starting and ending with a letter or digit"


def check_names(pairs: Iterable[tuple[str, str]]) -> None:
    """Refuse environment and component names that are not DNS-1123 labels or that collide.

    A name must be a DNS-1123 label (Kubernetes "Object Names and IDs": at most 63 of
    ``[a-z0-9-]``, alphanumeric at both ends), so it is inert in a shell line, a YAML
    value, a CI/CD variable suffix and a GitLab environment name. Two environments (or
    two components of one environment) whose :func:`names.folded` forms are equal are
    refused even when one of them is valid.

    Raises:
        ValidationError: every bad name, by directory (``env/<env>/`` or ``env/<env>/<component>/``).
    """
    problems: list[Problem] = []
    pairs = sorted(set(pairs))
    envs = sorted({env for env, _ in pairs})
    for env in envs:
        if not names.is_dns_label(env):
            problems.append(Problem(f"env/{env}/", "", f"environment name {env!r} is not a DNS-1123 label", _NAME_HINT))
    for env, component in pairs:
        if names.is_dns_label(env) and not names.is_dns_label(component):
            problems.append(Problem(f"env/{env}/{component}/", "",
                                    f"component name {component!r} is not a DNS-1123 label", _NAME_HINT))
    problems.extend(_collisions("environment", envs, lambda name: f"env/{name}/"))
    by_env: dict[str, list[str]] = defaultdict(list)
    for env, component in pairs:
        by_env[env].append(component)
    for env, components_ in sorted(by_env.items()):
        problems.extend(_collisions("component", components_, lambda name, env=env: f"env/{env}/{name}/"))
    if problems:
        raise ValidationError(problems)


def _collisions(what: str, found: list[str], directory) -> list[Problem]:
    groups: dict[str, list[str]] = defaultdict(list)
    for name in found:
        groups[names.folded(name)].append(name)
    return [Problem(directory(same[0]), "", f"{what} names {', '.join(map(repr, same))} are the same name once case "
                    "and '-'/'_' are folded: they would share CI/CD variables and path rules",
                    "keep one directory")
            for same in (sorted(group) for group in groups.values()) if len(same) > 1]


def envs(source: Path) -> list[str]:
    """The environments (``dev``, ``prod``, ...) that have at least one component, sorted (one walk)."""
    return envs_of(discover(source))


def envs_of(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The environments of discovered ``(env, component)`` pairs (:func:`discover`), sorted."""
    return sorted({env for env, _ in pairs})


def unknown(what: str, name: str, known: list[str], source: Path) -> str:
    """The one message for an unknown environment or component, listing the known ones."""
    listed = ", ".join(known) if known else f"none (no {CONFIG_GLOB} under {source})"
    return f"unknown {what}: {name!r}; known: {listed}"


def components(source: Path, env: str) -> list[str]:
    """The components configured in ``env``, sorted (one walk).

    Raises:
        UserError: ``env`` has no component (:func:`unknown`).
    """
    return components_of(discover(source), env, source)


def components_of(pairs: Iterable[tuple[str, str]], env: str, source: Path) -> list[str]:
    """The components of ``env`` among discovered ``(env, component)`` pairs (:func:`discover`), sorted.

    A run discovers once and asks this of each environment, so that a verb over N
    environments walks ``env/`` once, not N times.

    Raises:
        UserError: ``env`` has no component (:func:`unknown`).
    """
    pairs = list(pairs)
    known = envs_of(pairs)
    if env not in known:
        raise UserError(unknown("environment", env, known, source))
    return sorted(c for e, c in pairs if e == env)


def env_dir(env: str) -> Path:
    """``env/<env>``, relative to the source tree."""
    return Path(ENV_ROOT, env)


def component_dir(env: str, component: str) -> Path:
    """``env/<env>/<component>``, relative to the source tree."""
    return Path(ENV_ROOT, env, component)


def config_file(env: str, component: str) -> Path:
    """``env/<env>/<component>/cookiecutter-config.yaml``, relative to the source tree."""
    return component_dir(env, component) / CONFIG_NAME


def settings_file(env: str) -> Path:
    """``env/<env>/environment.yaml``, relative to the source tree."""
    return env_dir(env) / SETTINGS_NAME


def dynamic_of(env: str, component: str) -> Path:
    """``env/<env>/<component>/dynamic``, relative to the source tree."""
    return component_dir(env, component) / DYNAMIC


def hook_file(env: str, component: str, name: str) -> Path:
    """``env/<env>/<component>/hooks/<name>``, relative to the source tree."""
    return component_dir(env, component) / HOOKS_DIR / name


def config_path(source: Path, env: str, component: str) -> Path:
    """``<source>/env/<env>/<component>/cookiecutter-config.yaml``.

    Raises:
        ValidationError: ``env`` or ``component`` is not a valid name (:func:`check_names`).
        UserError: the environment or the component has no config file (:func:`unknown`); the
            config is not a regular file inside the repository (:func:`repofiles.locate`).
    """
    from . import repofiles

    path = Path(source) / config_file(env, component)
    bad = "/" in env or "/" in component or env in ("", ".", "..") or component in ("", ".", "..")
    if bad or repofiles.locate(Path(source), config_file(env, component)) is None:
        known = components(source, env)  # discovery only to say what is known
        raise UserError(unknown(f"component in environment {env!r}", component, known, source))
    check_names([(env, component)])  # a directory that exists under a bad name
    return path


def shown(source: Path, path: Path) -> str:
    """``path`` relative to ``source``, with ``/``, as messages name files."""
    return Path(path).relative_to(source).as_posix()


def settings_path(source: Path, env: str) -> Path:
    """``<source>/env/<env>/environment.yaml`` (not checked to exist)."""
    return Path(source) / settings_file(env)


def dynamic_dir(source: Path, env: str) -> Path:
    """``<source>/env/<env>/operator/dynamic``: the operator's dynamic templates of ``env``."""
    return Path(source) / dynamic_of(env, OPERATOR)


def local_repository(source: Path, env: str) -> Path:
    """``<source>/dist/charts/<env>``: ``env``'s local Helm repository (packages and ``index.yaml``)."""
    return Path(source) / LOCAL_REPOSITORIES / env


def default_bundle(source: Path, env: str) -> Path:
    """``<source>/dist/manifests/<env>.zip``: where ``bundle``/``upload-bundle`` write without ``--out``."""
    return Path(source) / BUNDLE_DIR / f"{env}.zip"
