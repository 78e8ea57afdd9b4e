"""Component hooks run with least privilege: the CLI as a subprocess against the real registry.

A hook is code from the repository. It gets an allowlisted environment plus what
it declares (``# faas-deploy-env: NAME ...``), it is reached only through real
directories inside the repository, its output is redacted like any other text from
elsewhere, and it dies (with its process group) at the verb's deadline.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faas_deployment.charts import hooks
from faas_deployment.core.secrets import SecretValue
from faas_deployment.gitlab import plan
from support.plan_repo import PlanRepo
from support.repo_tree import copy_repo

SECRETS = {"REGISTRY_PASSWORD": "pw-registry-0123456789", "GITLAB_TOKEN": "glpat-abcdefghijklmnop",
           "FLUX_RECEIVER_TOKEN": "receiver-token-9876543210", "CI_JOB_TOKEN": "job-token-5555555555",
           "CI_REPOSITORY_URL": "https://gitlab-ci-token:job-token-5555555555@gitlab.example/x.git",
           "OPERATOR_ADMIN_TOKEN": "admin-token-4444444444"}


def _hook(source: Path, name: str, body: str, component: str = "operator") -> Path:
    folder = source / "env" / "dev" / component / "hooks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _cli(
    source: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "faas_deployment.cli", "--source", str(source), *args],
                          check=False, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout)
    return proc, time.monotonic() - started


def _publish(registry, source: Path, *extra: str, env: dict[str, str] | None = None):
    return _cli(source, "publish", "--env", "dev", "--component", "operator", "--registry",
                f"oci://{registry.host}/charts", "--username", registry.username, "--password", "env:REGISTRY_PASSWORD",
                "--plain-http", *extra, env={**SECRETS, "REGISTRY_PASSWORD": registry.password, **(env or {})})


def test_hook_gets_the_allowlist_and_what_it_declares_never_an_undeclared_secret(registry, tmp_path):
    source = copy_repo(tmp_path / "src")
    seen, declared_seen = tmp_path / "seen.env", tmp_path / "declared.env"
    _hook(source, "pre-deploy", f"#!/bin/sh\nenv > {seen}\n")
    _hook(source, "post-deploy", f"#!/bin/sh\n# faas-deploy-env: DEPLOY_NOTE GITLAB_TOKEN\nenv > {declared_seen}\n")
    proc, _ = _publish(registry, source, env={"DEPLOY_NOTE": "hello", "CI_COMMIT_SHA": "a" * 40})
    assert proc.returncode == 0, proc.stderr
    first = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert not set(first) & set(SECRETS) and "DEPLOY_NOTE" not in first
    assert not any(value in seen.read_text() for value in (*SECRETS.values(), registry.password))
    assert first["CI_COMMIT_SHA"] == "a" * 40 and "PATH" in first and first["FAAS_ENVIRONMENT"] == "dev"
    assert set(first) <= set(hooks.ALLOWED) | {"FAAS_ACTION", "FAAS_ENVIRONMENT", "FAAS_COMPONENT",
                                               "FAAS_CHART_VERSION", "FAAS_CHART_DIGEST", "PWD", "SHLVL", "_", "OLDPWD"}
    second = dict(line.split("=", 1) for line in declared_seen.read_text().splitlines() if "=" in line)
    assert second["DEPLOY_NOTE"] == "hello" and second["GITLAB_TOKEN"] == SECRETS["GITLAB_TOKEN"]
    assert "REGISTRY_PASSWORD" not in second and "CI_JOB_TOKEN" not in second


@pytest.mark.parametrize("shape", ["file-link-out", "file-link-inside", "hooks-dir-link", "dotdot", "fifo"])
def test_a_hook_reached_through_a_link_or_not_a_regular_file_is_refused(registry, tmp_path, shape):
    source = copy_repo(tmp_path / "src")
    folder = source / "env/dev/operator/hooks"
    folder.mkdir(parents=True)
    if shape == "file-link-out":
        (folder / "pre-deploy").symlink_to("/usr/bin/env")
    elif shape == "file-link-inside":
        _hook(source, "real", "#!/bin/sh\nenv\n")
        (folder / "pre-deploy").symlink_to("real")
    elif shape == "hooks-dir-link":
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "pre-deploy").write_text("#!/bin/sh\nenv\n")
        (outside / "pre-deploy").chmod(0o755)
        folder.rmdir()
        folder.symlink_to(outside)
    elif shape == "dotdot":
        with pytest.raises(plan.UserError, match=r"'\.\.'"):
            hooks.run_hook(source, "..", "dev/operator", "pre-deploy", action="publish", version="1", digest="d")
        return
    else:
        os.mkfifo(folder / "pre-deploy")
    proc, seconds = _publish(registry, source)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "env/dev/operator/hooks" in proc.stderr and ("symbolic link" in proc.stderr or "FIFO" in proc.stderr)
    assert not any(value in proc.stdout + proc.stderr for value in (*SECRETS.values(), registry.password))
    assert "pushed" not in proc.stdout and seconds < 30


def test_hook_output_is_redacted_like_everything_else(registry, tmp_path):
    source = copy_repo(tmp_path / "src")
    _hook(source, "pre-deploy", "#!/bin/sh\n# faas-deploy-env: REGISTRY_PASSWORD\n"
                                "echo \"password is $REGISTRY_PASSWORD\"; echo \"again $REGISTRY_PASSWORD\" >&2\n")
    proc, _ = _publish(registry, source)
    assert proc.returncode == 0, proc.stderr
    assert registry.password not in proc.stderr + proc.stdout
    assert "password is ***" in proc.stderr and "again ***" in proc.stderr


def test_hook_is_killed_with_its_children_at_the_verbs_deadline(registry, tmp_path):
    source = copy_repo(tmp_path / "src")
    pids, late = tmp_path / "pids", tmp_path / "late"
    _hook(source, "pre-deploy", f"#!/bin/sh\n(sleep 30; touch {late}) &\necho $! > {pids}\nsleep 12\n")
    proc, seconds = _publish(registry, source, "--timeout", "3")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert seconds < 3 + 2, seconds
    assert "deadline of 3 s" in proc.stderr and "pushed" not in proc.stdout
    child = int(pids.read_text())
    for _ in range(20):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"


def test_plan_lists_no_retire_hook_and_refuses_a_linked_hook(tmp_path):
    repo = PlanRepo(tmp_path / "repo")
    hook = repo.path("env/dev/controller/hooks/pre-retire")
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/bin/sh\necho retiring\n")
    hook.chmod(0o755)
    base = repo.commit("a retire hook")
    (repo.path("env/dev/controller/cookiecutter-config.yaml")).unlink()
    repo.commit("retire dev/controller")
    from faas_deployment.gitlab import gitrefs

    result = gitrefs.plan_repository(repo.work, base, "HEAD", None, {})
    [retired] = [i for i in result.items if i.action == "retire"]
    assert retired.target == "dev/controller" and retired.hooks == ()
    link = repo.path("env/dev/operator/hooks/pre-deploy")
    link.parent.mkdir(parents=True)
    link.symlink_to("/usr/bin/env")
    with pytest.raises(plan.UserError, match=r"env/dev/operator/hooks/pre-deploy: a symbolic link"):
        plan.hooks_of(repo.work, "dev", "operator", plan.DEPLOY_HOOKS)


_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(environ=st.dictionaries(_names, st.text(min_size=4, max_size=20).filter(lambda v: "\0" not in v), max_size=12),
       declared=st.lists(_names, max_size=4), secret=st.text(min_size=6, max_size=20))
def test_environment_never_passes_an_undeclared_secret(environ, declared, secret):
    SecretValue(secret, "env:FUZZ")
    environ = {**environ, "PATH": "/bin", "CI_COMMIT_SHA": secret, "LEAKY": secret}
    result = hooks.environment(declared, {"FAAS_ACTION": "publish"}, environ)
    for name, value in result.items():
        assert name in hooks.ALLOWED or name in declared or name == "FAAS_ACTION"
        if value == secret:
            assert name in declared
    assert set(result) >= {n for n in declared if n in environ}


def test_declaration_names_are_checked():
    assert hooks.declared("#!/bin/sh\n# faas-deploy-env: A B_1\n  #faas-deploy-env: C A\n", "h") == ("A", "B_1", "C")
    with pytest.raises(plan.UserError, match=r"h: faas-deploy-env: '1X' is not a variable name"):
        hooks.declared("# faas-deploy-env: 1X\n", "h")
