"""Repository layout and discovery: every path the pipeline reads or writes, in one place.

Paths are relative to the source tree (the repository root):

=====================================================  ===============================================
``env/<env>/<component>/cookiecutter-config.yaml``     a component's config (:func:`config_path`)
``env/<env>/environment.yaml``                         the environment's settings (:func:`settings_path`)
``env/<env>/operator/dynamic/``                        the operator's dynamic templates (:func:`dynamic_dir`)
``dist/charts/<env>/``                                 the environment's local Helm repository
                                                       (:func:`local_repository`), one per environment so
                                                       that one environment's versions never constrain
                                                       another's
``dist/manifests/<env>.zip``                           the default bundle of ``dynamic/`` (:func:`default_bundle`)
=====================================================  ===============================================

Environments and components are whatever directories hold a config file
(:func:`discover`); nothing here names them. An unknown environment or component
gets one message (:func:`unknown`), whichever verb asked.

Only the standard library is imported here: the CLI reads this module at start-up.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

#: Name of a component's configuration file, and where it is looked for.
CONFIG_NAME = "cookiecutter-config.yaml"
CONFIG_GLOB = f"env/*/*/{CONFIG_NAME}"
#: Name of an environment's settings file.
SETTINGS_NAME = "environment.yaml"
#: The component whose ``dynamic/`` directory holds the operator's templates.
OPERATOR = "operator"
#: Root of the local Helm repositories (one sub-directory per environment).
LOCAL_REPOSITORIES = Path("dist/charts")
#: Where bundles of ``dynamic/`` are written by default.
BUNDLE_DIR = Path("dist/manifests")


def discover(source: Path) -> list[tuple[str, str]]:
    """Every ``(env, component)`` pair with a config file under ``source``, sorted; ``[]`` when none."""
    found = {(p.parent.parent.name, p.parent.name) for p in Path(source).glob(CONFIG_GLOB) if p.is_file()}
    return sorted(found)


def envs(source: Path) -> list[str]:
    """The environments (``dev``, ``prod``, ...) that have at least one component, sorted."""
    return sorted({env for env, _ in discover(source)})


def unknown(what: str, name: str, known: list[str], source: Path) -> str:
    """The one message for an unknown environment or component, listing the known ones."""
    listed = ", ".join(known) if known else f"none (no {CONFIG_GLOB} under {source})"
    return f"unknown {what}: {name!r}; known: {listed}"


def components(source: Path, env: str) -> list[str]:
    """The components configured in ``env``, sorted.

    Raises:
        UserError: ``env`` has no component (:func:`unknown`).
    """
    known = envs(source)
    if env not in known:
        raise UserError(unknown("environment", env, known, source))
    return [c for e, c in discover(source) if e == env]


def config_path(source: Path, env: str, component: str) -> Path:
    """``<source>/env/<env>/<component>/cookiecutter-config.yaml``.

    Raises:
        UserError: the environment or the component has no config file (:func:`unknown`).
    """
    path = Path(source) / "env" / env / component / CONFIG_NAME
    if "/" in env or "/" in component or env in ("", ".", "..") or component in ("", ".", "..") or not path.is_file():
        known = components(source, env)  # discovery only to say what is known
        raise UserError(unknown(f"component in environment {env!r}", component, known, source))
    return path


def shown(source: Path, path: Path) -> str:
    """``path`` relative to ``source``, with ``/``, as messages name files."""
    return Path(path).relative_to(source).as_posix()


def settings_path(source: Path, env: str) -> Path:
    """``<source>/env/<env>/environment.yaml`` (not checked to exist)."""
    return Path(source) / "env" / env / SETTINGS_NAME


def dynamic_dir(source: Path, env: str) -> Path:
    """``<source>/env/<env>/operator/dynamic``: the operator's dynamic templates of ``env``."""
    return Path(source) / "env" / env / OPERATOR / "dynamic"


def local_repository(source: Path, env: str) -> Path:
    """``<source>/dist/charts/<env>``: ``env``'s local Helm repository (packages and ``index.yaml``)."""
    return Path(source) / LOCAL_REPOSITORIES / env


def default_bundle(source: Path, env: str) -> Path:
    """``<source>/dist/manifests/<env>.zip``: where ``manifests``/``upload-manifests`` write without ``--out``."""
    return Path(source) / BUNDLE_DIR / f"{env}.zip"
