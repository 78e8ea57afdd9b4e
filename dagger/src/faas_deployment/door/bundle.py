"""Bundle verbs: ``bundle`` (the reproducible zip of the operator's ``dynamic/`` templates) and
``upload-bundle`` (wait for the admin API's readiness, then upload it once)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core import layout
from ..core.progress import note
from .results import Result, jsonable, make_result, reveal
from .running import check_timeout
from .workspace import Workspace

if TYPE_CHECKING:
    from ..core.secrets import SecretValue


def write_bundle(ws: Workspace, env: str, out: Path | None, quiet: bool):
    from ..bundle import archive

    ws.components(env)
    target = Path(out) if out else layout.default_bundle(ws.source, env)
    return archive.write_bundle(
        layout.dynamic_dir(ws.source, env), target, **({"log": None} if quiet else {})
    )


def bundle(ws: Workspace, env: str, out: Path | None = None, *, quiet: bool = False) -> Result:
    """``bundle``: validate the ``dynamic/`` templates of ``env/<env>/operator/`` and write their reproducible zip.

    ``out`` defaults to ``dist/manifests/<env>.zip`` (:func:`layout.default_bundle`);
    ``quiet`` leaves out the progress lines about files left out.
    """
    from ..bundle.archive import bundle_line

    bundle = write_bundle(ws, env, out, quiet)
    return make_result([bundle_line(bundle)], bundle, path=bundle.path)


def upload_bundle(ws: Workspace, env: str, token: SecretValue, *, admin_url: str | None = None,
                  ready_path: str | None = None, upload_path: str | None = None,
                  timeout: float | None = None, out: Path | None = None) -> Result:
    """``upload-bundle``: bundle the ``dynamic/`` templates (kept at ``out``), wait for the admin API, upload once.

    ``token``: the admin API token (``--admin-token``).

    Defaults: ``admin_url`` of ``environment.yaml``; the admin API contract's paths
    and deadline (:mod:`faas_deployment.bundle.admin_api`).
    """
    from ..bundle import admin_api
    from ..bundle.archive import bundle_line
    from ..core.secrets import refuse_inside

    timeout = check_timeout(timeout)
    ws.components(env)  # an unknown environment is said first, as by every verb
    token = reveal(token)
    refuse_inside(token, "--admin-token", {"--admin-url": admin_url, "--ready-path": ready_path,
                                           "--upload-path": upload_path})
    bundle = write_bundle(ws, env, out, False)  # first, and kept: a CI job keeps it even if the upload fails
    note(bundle_line(bundle))
    url = admin_url or ws.settings(env).admin_url
    line = admin_api.upload_when_ready(
        url, bundle, token, ready_path=ready_path or admin_api.DEFAULT_READY_PATH,
        upload_path=upload_path or admin_api.DEFAULT_UPLOAD_PATH,
        timeout=admin_api.DEFAULT_TIMEOUT if timeout is None else timeout,
    )
    return make_result([line], {"bundle": jsonable(bundle), "upload": line}, path=bundle.path)

