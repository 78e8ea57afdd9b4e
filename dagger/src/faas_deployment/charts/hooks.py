"""Component hooks: executable files ``env/<env>/<component>/hooks/<name>`` run around a publish.

Names (:data:`faas_deployment.gitlab.plan.DEPLOY_HOOKS`): ``pre-deploy`` runs before a
chart is published (a failure stops that target: nothing is published for it),
``post-deploy`` after. No hook runs at a retire: a retired component's directory,
its hooks included, is gone from the tree being deployed.

**Least privilege.** A hook runs with the repository root as working directory and
an environment made of:

- the variables of :data:`ALLOWED` (locale, ``PATH``, ``HOME``, ``TMPDIR`` and the
  GitLab CI variables that hold no credential: never ``CI_JOB_TOKEN``,
  ``CI_REPOSITORY_URL`` (it embeds the job token), ``CI_REGISTRY_PASSWORD`` or a
  ``CI_JOB_JWT``);
- the variables the hook file names in a declaration line (:data:`DECLARATION`),
  e.g. ``# faas-deploy-env: SLACK_WEBHOOK_URL DEPLOY_NOTE``: the only way a
  secret reaches a hook is the user naming it there;
- ``FAAS_ACTION`` (``publish``), ``FAAS_ENVIRONMENT``, ``FAAS_COMPONENT``,
  ``FAAS_CHART_VERSION``, ``FAAS_CHART_DIGEST`` (``sha256:<hex>`` of the package).

An allowed variable whose value is a secret the run holds (:func:`secrets.known`)
is withheld unless declared.

**The file.** The hook and every directory leading to it are real entries inside
the repository (:func:`repofiles.locate`: no symbolic link, no ``..``); a hook file
that is not executable is refused rather than skipped silently; a missing hook is
not an error.

**Output and time.** Standard output and error both go, line by line, through
:func:`secrets.redact_known` to our standard error (standard output is for
results). A hook counts against the verb's deadline: it runs in its own process
group, killed (``SIGKILL`` to the group) when the deadline or :data:`TIMEOUT`
passes, and when this process exits.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..core import layout, progress, repofiles
from ..core.errors import UserError
from ..core.secrets import known, redact_known

#: Longest a hook may run, in seconds (less when the verb's deadline is nearer).
TIMEOUT = 600.0

#: Variables passed to every hook when set: no credential among them.
ALLOWED = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR",
    "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "LC_TIME",
    # GitLab predefined variables that identify the run and hold no credential
    "CI", "GITLAB_CI", "CI_SERVER_URL", "CI_SERVER_HOST", "CI_PROJECT_ID", "CI_PROJECT_PATH",
    "CI_PROJECT_URL", "CI_PIPELINE_ID", "CI_PIPELINE_IID", "CI_PIPELINE_URL", "CI_PIPELINE_SOURCE",
    "CI_JOB_ID", "CI_JOB_NAME", "CI_JOB_URL", "CI_COMMIT_SHA", "CI_COMMIT_SHORT_SHA", "CI_COMMIT_REF_NAME",
    "CI_COMMIT_REF_SLUG", "CI_COMMIT_BRANCH", "CI_COMMIT_TAG", "CI_DEFAULT_BRANCH", "CI_ENVIRONMENT_NAME",
    "CI_ENVIRONMENT_SLUG", "CI_MERGE_REQUEST_IID", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
)

#: A declaration line in a hook file: ``# faas-deploy-env: NAME [NAME ...]`` (any line of the file).
DECLARATION = re.compile(r"^[ \t]*#[ \t]*faas-deploy-env:(?P<names>.*)$", re.MULTILINE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Longest line of hook output shown at once (characters); a longer one is cut into pieces.
_LINE_CHARS = 64 * 1024

_running: set[subprocess.Popen[bytes]] = set()
_lock = threading.Lock()


def declared(text: str, shown: str) -> tuple[str, ...]:
    """The variable names declared in hook ``text`` (:data:`DECLARATION` lines), in order.

    Raises:
        UserError: a declared name is not a POSIX variable name (``[A-Za-z_][A-Za-z0-9_]*``).
    """
    names: list[str] = []
    for match in DECLARATION.finditer(text):
        for name in match.group("names").split():
            if not _NAME.fullmatch(name):
                raise UserError(f"{shown}: faas-deploy-env: {name!r} is not a variable name "
                                f"(letters, digits and _, not starting with a digit)")
            if name not in names:
                names.append(name)
    return tuple(names)


def environment(declared_names: Iterable[str], facts: Mapping[str, str] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A hook's environment: :data:`ALLOWED` (minus values that are known secrets), the declared names, ``facts``."""
    environ = os.environ if environ is None else environ
    secrets = set(known())
    declared_set = set(declared_names)
    result = {k: environ[k] for k in ALLOWED if k in environ and (k in declared_set or environ[k] not in secrets)}
    result.update({k: environ[k] for k in declared_set if k in environ})
    result.update(facts or {})
    return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _kill_all() -> None:
    with _lock:
        running = list(_running)
    for proc in running:
        _kill(proc)


def _relay(stream: Any, shown: str, secrets: tuple[Any, ...]) -> None:
    """Copy the hook's output to our standard error, a line at a time, secrets redacted."""
    fd = _stderr_fd()
    pending = b""

    def emit(raw: bytes) -> None:
        line = redact_known(raw.decode("utf-8", errors="replace"), *secrets)
        if fd is None:
            progress.note(f"{shown}: {line}")
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            emit(line)
        if len(pending) > _LINE_CHARS:
            emit(pending)
            pending = b""
    if pending:
        emit(pending)


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a file (e.g. captured in memory)
        return None


def run_script(command: list[str], *, cwd: Path, shown: str, env: dict[str, str], timeout: float = TIMEOUT,
               secrets: tuple[Any, ...] = ()) -> int:
    """Run a hook script; its exit status. Its output goes to our standard error, secrets redacted.

    The one place hooks run (component hooks here, template hooks in
    :mod:`faas_deployment.charts.generate`): standard input is empty, standard output is
    reserved for results. The script gets its own process group (a new session),
    killed as a whole at ``timeout`` seconds and at our exit.

    Raises:
        UserError: the script cannot be started, or runs longer than ``timeout`` seconds.
    """
    sys.stderr.flush()
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        raise UserError(f"{shown}: cannot run the hook: {exc.strerror or type(exc).__name__}") from None
    with _lock:
        _running.add(proc)
    relay = threading.Thread(target=_relay, args=(proc.stdout, shown, secrets), daemon=True, name=f"hook {shown}")
    relay.start()
    try:
        proc.wait(timeout=max(0.0, timeout))
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.wait()
        relay.join(1.0)
        raise UserError(f"{shown}: hook still running after {timeout:.1f} s (its limit: the time left of the "
                        f"verb's deadline, at most {TIMEOUT:g} s); it and its child processes were stopped") from None
    finally:
        _kill(proc)  # whatever it left running in its group goes with it
        with _lock:
            _running.discard(proc)
    relay.join(1.0)
    return proc.returncode


def hook_path(source: Path, env: str, component: str, name: str) -> Path:
    return Path(source) / layout.hook_file(env, component, name)


def run_hook(source: Path, env: str, component: str, name: str, *, action: str, version: str, digest: str,
             timeout: float = TIMEOUT, deadline: Any = None, secrets: tuple[Any, ...] = ()) -> bool:
    """Run hook ``name`` of the target if it exists; ``True`` when it ran.

    ``deadline``: the verb's :class:`faas_deployment.core.deadline.Deadline` (``None``:
    ``timeout`` seconds only); ``secrets``: redacted from the output beside every
    known secret.

    Raises:
        UserError: the path leaves the repository or is not a regular file (a
            symbolic link on the way, a FIFO, ...); the file is not executable, fails
            (exit status given) or exceeds the time left; a bad declaration line.
    """
    source = Path(source)
    relative = hook_path(Path("."), env, component, name)
    path = repofiles.locate(source, relative)
    if path is None:
        return False
    shown = relative.as_posix()
    if not os.access(path, os.X_OK):
        raise UserError(f"{shown}: not executable (chmod +x it, or remove it)")
    text = repofiles.read_bytes(source, relative).decode("utf-8", errors="replace")
    facts = {"FAAS_ACTION": action, "FAAS_ENVIRONMENT": env, "FAAS_COMPONENT": component,
             "FAAS_CHART_VERSION": version, "FAAS_CHART_DIGEST": digest}
    environ = environment(declared(text, shown), facts)
    if deadline is not None:
        deadline.check(shown)
        timeout = min(timeout, deadline.remaining())
    code = run_script([str(path.absolute())], cwd=source, shown=shown, env=environ, timeout=timeout,
                      secrets=secrets)
    if code != 0:
        raise UserError(f"{shown}: hook failed with exit status {code}; nothing was published for "
                        f"{env}/{component}" if name.startswith("pre-") else
                        f"{shown}: hook failed with exit status {code}")
    return True
