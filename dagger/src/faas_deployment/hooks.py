"""Component hooks: executable files ``env/<env>/<component>/hooks/<name>`` run around a deploy.

Names (:data:`faas_deployment.plan.DEPLOY_HOOKS`, ``RETIRE_HOOKS``): ``pre-deploy``
runs before a chart is published (a failure stops that target: nothing is
published for it), ``post-deploy`` after, ``pre-retire`` before a component is
retired. A hook runs with the repository root as working directory and these
variables added to the environment:

- ``FAAS_ACTION``: ``install``, ``upgrade``, ``publish`` or ``retire``;
- ``FAAS_ENVIRONMENT``, ``FAAS_COMPONENT``;
- ``FAAS_CHART_VERSION``, ``FAAS_CHART_DIGEST`` (``sha256:<hex>`` of the package).

Its standard output and error both go to our standard error (standard output is
for results). A missing hook is not an error; a hook file that is not executable
is refused rather than skipped silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import progress
from .errors import UserError
from .plan import HOOKS_DIR

#: Longest a hook may run, in seconds.
TIMEOUT = 600.0


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a file (e.g. captured in memory)
        return None


def run_script(command: list[str], *, cwd: Path, shown: str, env: dict[str, str], timeout: float = TIMEOUT) -> int:
    """Run a hook script with its standard output and error on our standard error; its exit status.

    The one place hooks run (component hooks here, template hooks in
    :mod:`faas_deployment.generate`): standard input is empty, standard output is
    reserved for results. When standard error has no file descriptor (an in-memory
    stream), the output is collected and written there as progress lines.

    Raises:
        UserError: the script cannot be started, or runs longer than ``timeout`` seconds.
    """
    fd = _stderr_fd()
    sys.stderr.flush()
    try:
        proc = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, timeout=timeout,
                              stdout=fd if fd is not None else subprocess.PIPE, stderr=subprocess.STDOUT)
    except subprocess.TimeoutExpired:
        raise UserError(f"{shown}: hook ran longer than {timeout:g} s and was stopped") from None
    except OSError as exc:
        raise UserError(f"{shown}: cannot run the hook: {exc}") from None
    if fd is None:
        for line in proc.stdout.decode("utf-8", errors="replace").splitlines():
            progress.note(f"{shown}: {line}")
    return proc.returncode


def hook_path(source: Path, env: str, component: str, name: str) -> Path:
    return Path(source) / "env" / env / component / HOOKS_DIR / name


def run_hook(source: Path, env: str, component: str, name: str, *, action: str, version: str, digest: str,
             timeout: float = TIMEOUT) -> bool:
    """Run hook ``name`` of the target if it exists; ``True`` when it ran.

    Raises:
        UserError: the file is not executable, fails (exit status given) or
            exceeds ``timeout`` seconds.
    """
    path = hook_path(source, env, component, name)
    if not path.is_file():
        return False
    shown = path.relative_to(source).as_posix()
    if not os.access(path, os.X_OK):
        raise UserError(f"{shown}: not executable (chmod +x it, or remove it)")
    environ = {**os.environ, "FAAS_ACTION": action, "FAAS_ENVIRONMENT": env, "FAAS_COMPONENT": component,
               "FAAS_CHART_VERSION": version, "FAAS_CHART_DIGEST": digest}
    code = run_script([str(path.resolve())], cwd=Path(source), shown=shown, env=environ, timeout=timeout)
    if code != 0:
        raise UserError(f"{shown}: hook failed with exit status {code}; nothing was published for "
                        f"{env}/{component}" if name.startswith("pre-") else
                        f"{shown}: hook failed with exit status {code}")
    return True
