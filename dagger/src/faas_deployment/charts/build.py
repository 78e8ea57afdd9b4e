"""One chart built from its config: values validated, chart rendered and linted, packaged reproducibly.

The steps every verb that needs a chart runs, in this order, each reported as a
progress step (``validate``, ``render``, ``lint``, ``package`` of ``<env>/<component>``):
:func:`values` (:func:`config.load_context`), :func:`render` (cookiecutter, then
Helm's lint in strict mode) and :func:`package` (:func:`packaging.package_chart`:
sorted entries, fixed times, so the same config gives the same digest).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import layout
from ..core.progress import step

if TYPE_CHECKING:
    from ..core.packaging import ChartPackage


def values(source: Path, env: str, component: str, template: Path, prerelease: str = "") -> dict[str, Any]:
    """The validated, resolved values of ``env/<env>/<component>/cookiecutter-config.yaml``.

    ``prerelease`` (e.g. ``mr.42.3``) publishes ``chart_version`` as the pre-release
    ``<chart_version>-<prerelease>`` (:func:`versions.prerelease_version`).

    Raises:
        UserError: unknown environment or component (:func:`layout.config_path`).
        ValidationError: every problem of the config, each with its key.
    """
    from ..core import versions
    from . import config

    path = layout.config_path(source, env, component)
    with step(f"validate {env}/{component}"):
        context = config.load_context(source, env, component, template)
    if prerelease:
        context["chart_version"] = versions.prerelease_version(layout.shown(source, path),
                                                               context["chart_version"], prerelease)
    return context


def render(context: dict[str, Any], template: Path, out_dir: Path, shown: str) -> Path:
    """Render the chart of ``context`` with ``template`` under ``out_dir`` and lint it; its directory.

    ``shown``: ``<env>/<component>`` as the progress lines and messages name it.

    Raises:
        UserError: the template failed, or Helm's lint found a problem.
    """
    from . import chart

    with step(f"render {shown}"):
        chart_dir = chart.render_chart(context, template, out_dir)
    with step(f"lint {shown}"):
        chart.require_lint_clean(chart_dir, shown=shown)
    return chart_dir


def package(context: dict[str, Any], template: Path, out_dir: Path, shown: str,
            source_date_epoch: str | None = None) -> ChartPackage:
    """:func:`render`, then package reproducibly into ``out_dir``.

    ``source_date_epoch``: ``SOURCE_DATE_EPOCH`` as given (``None``: this process's
    environment, :func:`packaging.fixed_mtime`).

    Raises:
        UserError: a malformed ``SOURCE_DATE_EPOCH`` (before any work); see :func:`render`.
    """
    from ..core.packaging import fixed_mtime, package_chart

    mtime = fixed_mtime(source_date_epoch)  # a malformed value fails before any work
    with tempfile.TemporaryDirectory(prefix="faas-render-") as scratch:
        chart_dir = render(context, template, Path(scratch), shown)
        with step(f"package {shown}"):
            return package_chart(chart_dir, out_dir, mtime)


def package_config(source: Path, env: str, component: str, template: Path, out_dir: Path) -> ChartPackage:
    """The package of ``env/<env>/<component>/`` in the tree ``source`` (values, render, package)."""
    return package(values(source, env, component, template), template, out_dir, f"{env}/{component}")
