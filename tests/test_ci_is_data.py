"""Generated CI is data, never code: hostile directory names against the child pipeline.

Environment and component names are directory names. For each hostile name (a
table of shell metacharacters, variable references, blanks and look-alikes, then
hypothesis), a repository holding it is planned with ``faas-deploy plan --pipeline``
as the parent's plan job does. The outcome is either a refusal naming the directory
(exit 1, no traceback, no child file) or a child pipeline whose every script line,
run by ``sh`` with ``dagger`` replaced by a recorder of its argv (a script first on
``PATH``), calls exactly the intended argv, leaks no secret value into an argv, and
touches nothing in the job's working directory.

:func:`classify` names the class of a failure (``traceback``, ``code-exec``,
``wrong-accept``, ``secret-leak``), so the figures of a run can be counted.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import traceback
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from faas_deployment.cli import main
from faas_deployment.core import layout
from faas_deployment.core.errors import UserError, ValidationError
from faas_deployment.core.names import parse_oci_url
from faas_deployment.flux import settings as flux_settings
from faas_deployment.gitlab import child_pipeline
from faas_deployment.gitlab.child_pipeline import Context
from faas_deployment.gitlab.plan import Item, Plan

REPO = Path(__file__).resolve().parent.parent
SECRETS = {"CHART_REGISTRY_PASSWORD": "pw-secret-7f3a", "FLUX_RECEIVER_TOKEN": "rcv-secret-91bc",
           "OPERATOR_ADMIN_TOKEN": "adm-secret-55de"}
RECORDER = '#!/bin/sh\nprintf \'%s\\0\' "$@" > "$RECORD_DIR/call-$$-$(date +%s%N)"\n'

#: Hostile names, each tried as an environment and as a component.
HOSTILE = [
    "x$(touch PWNED)", "x`touch PWNED`", "x${CHART_REGISTRY_PASSWORD_DEV}", "x$CHART_REGISTRY_PASSWORD_DEV",
    "a b", "x${IFS}y", "dev ", " dev", "x;touch PWNED", "x&&touch PWNED", "x|tee PWNED", "x>PWNED", "x'y", 'x"y',
    "x\\y", "x\ny", "x\ty", "-rf", "--name", "x*", "x?", "é", "x²", "Dev", "eu_west", "x.y", "-x", "x-", "a" * 64,
    "$(touch PWNED)", "${HOME}", "~", "x#y", "x!y", "x%y", "x{a,b}", "x[1]", "x=y", "..x",
]


def _repo(root: Path, position: str, name: str) -> Path:
    """The project's env/ and .gitlab-ci.yml, plus ``name`` as a new environment or a new dev component."""
    src = root / "src"
    shutil.copytree(REPO / "env", src / "env")
    shutil.copy(REPO / ".gitlab-ci.yml", src / ".gitlab-ci.yml")
    if position == "env":
        shutil.copytree(src / "env" / "dev", src / "env" / name)
    else:
        shutil.copytree(src / "env" / "dev" / "controller", src / "env" / "dev" / name)
    return src


def _variables(root: Path, envs: list[str]) -> dict[str, str]:
    """The child jobs' CI/CD variables for every environment (secrets with recognisable values)."""
    out: dict[str, str] = {}
    for env in envs:
        suffix = child_pipeline.variable_suffix(env)
        kubeconfig = root / f"kubeconfig-{suffix}"
        kubeconfig.write_text("kube")
        out.update({f"KUBECONFIG_{suffix}": str(kubeconfig), f"CHART_REGISTRY_USER_{suffix}": "ci",
                    f"OPERATOR_ADMIN_URL_{suffix}": f"https://admin.{suffix.lower()}.example.org"})
        out.update({f"{k}_{suffix}": f"{v}-{suffix}" for k, v in SECRETS.items()})
    return out


def _intended(root: Path, pairs: list[tuple[str, str]], source: Path) -> list[list[str]]:
    """The argv each planned action must call (sorted), from the discovered targets."""
    calls = []
    for env, component in pairs:
        s = child_pipeline.variable_suffix(env)
        calls.append(
            [
                "call",
                "--source-date-epoch",
                "",
                "with-registry",
                "--address",
                parse_oci_url(flux_settings.load(source, env).chart_registry).host,
                "--username",
                "ci",
                "--password",
                f"env:CHART_REGISTRY_PASSWORD_{s}",
                "env",
                "--name",
                env,
                "component",
                "--name",
                component,
                "deploy",
                "--kubeconfig",
                f"file:{root / f'kubeconfig-{s}'}",
                "--receiver-token",
                f"env:FLUX_RECEIVER_TOKEN_{s}",
            ]
        )
        if (source / "env" / env / component / "dynamic").is_dir():
            calls.append(["call", "env", "--name", env, "upload-bundle", "--admin-url",
                          f"https://admin.{s.lower()}.example.org", "--admin-token", f"env:OPERATOR_ADMIN_TOKEN_{s}"])
    return sorted(calls)


def _pairs(source: Path) -> list[tuple[str, str]]:
    return sorted({(p.parent.parent.name, p.parent.name) for p in source.glob("env/*/*/cookiecutter-config.yaml")})


def classify(root: Path, position: str, name: str) -> str:
    """``refused`` / ``ok``, or the failure class: ``traceback``, ``code-exec``, ``wrong-accept``, ``secret-leak``."""
    source = _repo(root, position, name)
    child = root / "child.yml"
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--source", str(source), "plan", "--child-pipeline", str(child), "--ref", "main",
                         "--default-branch", "main", "--merge-request", "", "--pipeline-iid", "7"])
    except BaseException:  # a traceback is what is counted
        traceback.print_exc()
        return "traceback"
    if "Traceback" in err.getvalue():
        return "traceback"
    if code != 0:
        return "refused" if "env/" in err.getvalue() and not child.exists() else "traceback"
    pairs = _pairs(source)
    recorder, records, cwd = root / "bin", root / "records", root / "job"
    for path in (recorder, records, cwd):
        path.mkdir()
    (recorder / "dagger").write_text(RECORDER)
    (recorder / "dagger").chmod(0o755)
    variables = _variables(root, sorted({e for e, _ in pairs}))
    environ = {"PATH": f"{recorder}:/usr/bin:/bin", "RECORD_DIR": str(records), "HOME": str(root), **variables}
    for job_name, job in (yaml.safe_load(child.read_text()) or {}).items():
        if not isinstance(job, dict) or job_name.startswith(".") or "script" not in job:
            continue
        for line in job["script"]:
            subprocess.run(["sh", "-c", line], check=False, cwd=cwd, env=environ, capture_output=True, timeout=30)
    recorded = sorted(p.read_bytes().split(b"\0")[:-1] for p in records.iterdir())
    argvs = sorted([a.decode(errors="replace") for a in argv] for argv in recorded)
    if any((p / "PWNED").exists() for p in (cwd, root, source, Path.cwd())) or any(cwd.iterdir()):
        return "code-exec"
    secrets = [v for k, v in variables.items() if k.split("_")[0] in ("CHART", "FLUX", "OPERATOR") and "secret" in v]
    if any(secret in arg for argv in argvs for arg in argv for secret in secrets):
        return "secret-leak"
    return "ok" if argvs == _intended(root, pairs, source) else "wrong-accept"


@pytest.mark.parametrize("position", ["env", "component"])
@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n)[1:-1][:24] for n in HOSTILE])
def test_hostile_names_are_refused_or_inert(tmp_path, position, name):
    assert classify(tmp_path, position, name) == "refused"


@pytest.mark.parametrize("position", ["env", "component"])
def test_valid_names_call_exactly_the_intended_argv(tmp_path, position):
    assert classify(tmp_path, position, "eu-west-2") == "ok"


NAME_CHARS = st.sampled_from(list("abz09-_ AZ$(){}`;|&<>*?'\"\\\n\t.~#!%=,[]é²") + ["${IFS}", "$(touch PWNED)"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.lists(NAME_CHARS, min_size=1, max_size=12).map("".join).filter(
    lambda n: n not in (".", "..") and "/" not in n and len(n.encode()) < 200),
       position=st.sampled_from(["env", "component"]))
def test_any_name_is_refused_or_inert(tmp_path_factory, name, position):
    assume(name not in (("dev", "prod") if position == "env" else ("operator", "controller")))
    root = tmp_path_factory.mktemp("hostile")
    outcome = classify(root, position, name)
    assert outcome in ("refused", "ok"), (name, outcome)
    if outcome == "ok":  # accepted only as a DNS-1123 label
        assert layout.names.is_dns_label(name)


# --------------------------------------------------------------------------- discovery and the generator


@pytest.mark.parametrize(("first", "second"), [("prod", "Prod"), ("eu-west", "eu_west"), ("dev", "DEV")])
def test_names_that_collide_once_folded_are_refused(tmp_path, run_cli, first, second):
    source = tmp_path / "src"
    shutil.copytree(REPO / "env" / "dev", source / "env" / first)
    shutil.copytree(REPO / "env" / "dev", source / "env" / second)
    for argv in (["check"], ["plan"], ["config", "--env", second, "--component", "operator"],
                 ["flux", "--env", first, "--out", str(tmp_path / "flux")]):
        code, _, err = run_cli("--source", str(source), *argv)
        assert code == 1 and "Traceback" not in err, argv
        assert f"env/{second}/" in err, (argv, err)
    with pytest.raises(ValidationError, match="same name once case and '-'/'_' are folded"):
        layout.check_names([(first, "operator"), (second, "operator")])


def test_every_verb_refuses_a_bad_name_naming_the_directory(tmp_path, run_cli):
    source = _repo(tmp_path, "env", "x$(touch PWNED)")
    for argv in (
        ["check"],
        ["plan"],
        ["config", "--env", "x$(touch PWNED)", "--component", "operator"],
        ["release", "--env", "x$(touch PWNED)"],
        ["bundle", "--env", "x$(touch PWNED)", "--out", str(tmp_path / "b.zip")],
    ):
        code, _, err = run_cli("--source", str(source), *argv)
        assert code == 1 and "Traceback" not in err and "env/x$(touch PWNED)/" in err, (argv, err)
        assert "not a DNS-1123 label" in err
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("env", ["x$(touch PWNED)", "Dev", "a b", "x_y"])
def test_the_generator_refuses_a_bad_name_even_past_discovery(env):
    plan = Plan((Item(env, "operator", "install", "new"),), "", "")
    with pytest.raises(ValidationError, match="not a DNS-1123 label"):
        child_pipeline.generate(plan, Context("main", "main"), {}, lambda e: 1 / 0)


@pytest.mark.parametrize("iid", ["4²", "٤٢", "42 ", "4;2", "-1", "1e3"])
def test_merge_request_iids_are_ascii_digits(iid):
    with pytest.raises(UserError, match="expected two numbers"):
        Context("feature", "main", merge_request=iid, pipeline_iid="3").prerelease()
    with pytest.raises(UserError, match="expected two numbers"):
        Context("feature", "main", merge_request="42", pipeline_iid=iid).prerelease()


def test_a_job_name_over_gitlabs_limit_is_refused():
    with pytest.raises(UserError, match="at most 255"):
        child_pipeline.check_gitlab_names("a" * 256, {})
    with pytest.raises(UserError, match="GitLab's rule"):
        child_pipeline.check_gitlab_names("x", {"environment": {"name": "dev/op;x"}})


def test_every_literal_of_a_command_is_shell_quoted():
    item = Item("dev", "operator", "install", "new")
    line = child_pipeline.command(item, Context("feature", "main", merge_request="42", pipeline_iid="3"),
                                  "oci://registry.example.org:5000/eo4eu-faas/charts/dev")
    assert line.endswith("--prerelease mr.42.3")
    assert " with-registry --address registry.example.org:5000 --username " in line
    with pytest.raises(UserError, match="chart_registry ''"):
        child_pipeline.command(item, Context("main", "main"))
    retire = child_pipeline.command(Item("eu-west", "operator", "retire", "gone"), Context("main", "main"))
    assert retire == "dagger call env --name eu-west flux export --path flux/eu-west"
