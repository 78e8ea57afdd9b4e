""".gitlab-ci.yml, checked offline three ways.

1. GitLab's CI schema (``check-jsonschema --builtin-schema vendor.gitlab-ci``).
2. The rules: the pinned ``gitlab-ci-local`` lists the jobs of a pipeline on a
   throwaway git repository, for a table of scenarios (what changed, which branch,
   which pipeline source); each row states exactly which jobs run.
3. Every ``dagger call`` line resolved against the module's offline introspection
   (functions, flags, required parameters, secrets as ``env:NAME``).

Each checker is also shown to catch a broken file (a misspelled flag, a wrong
``changes`` path, a missing stage).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ci_calls
import gitlab_ci_local
from ci_calls import CallError
from gitlab_ci_local import DEFAULT_BRANCH, Scenario

REPO = ci_calls.REPO
CI_FILE = REPO / ".gitlab-ci.yml"
CI_TEXT = CI_FILE.read_text()
STAGES = ["check", "build", "publish", "upload"]
FEATURE = "feature/change"

CHECK = {"check: [dev]", "check: [prod]"}
DEV_OPERATOR_CHART = {"operator_package_dev", "operator_publish_dev"}
PROD_CONTROLLER_CHART = {"controller_package_prod", "controller_publish_prod"}
DEV_OPERATOR_DYNAMIC = {"operator_manifests_dev", "operator_upload_manifests_dev"}
PROD_OPERATOR_DYNAMIC = {"operator_manifests_prod", "operator_upload_manifests_prod"}
OPERATOR_IMAGE = {"operator_build_image", "operator_publish_image", "operator_bump_dev"}
#: The manual promotion job: every push pipeline of the default branch offers it.
PROMOTE = {"promote"}

README = "README.md"
DEV_OPERATOR_CONFIG = "env/dev/operator/cookiecutter-config.yaml"
PROD_OPERATOR_CONFIG = "env/prod/operator/cookiecutter-config.yaml"
DEV_CONTROLLER_CONFIG = "env/dev/controller/cookiecutter-config.yaml"
PROD_CONTROLLER_CONFIG = "env/prod/controller/cookiecutter-config.yaml"
DEV_DYNAMIC_FILE = "env/dev/operator/dynamic/deployment.yaml"
PROD_DYNAMIC_NESTED = "env/prod/operator/dynamic/extra/networkpolicy.yaml"
IMAGE_VARIABLES = {
    "CI_PIPELINE_SOURCE": "trigger",
    "COMPONENT": "operator",
    "SOURCE_REF": "https://gitlab.example.org/eo4eu-faas/faas-operator.git#v1.4.0",
    "IMAGE_TAG": "1.4.0",
}

# (scenario, jobs that run): the rules table.
TABLE: list[tuple[Scenario, set[str]]] = [
    (Scenario("readme-feature", FEATURE, (README,)), set()),
    (Scenario("readme-main", DEFAULT_BRANCH, (README,)), CHECK | PROMOTE),
    (Scenario("dev-operator-config-feature", FEATURE, (DEV_OPERATOR_CONFIG,)), DEV_OPERATOR_CHART),
    (Scenario("dev-operator-config-main", DEFAULT_BRANCH, (DEV_OPERATOR_CONFIG,)), CHECK | DEV_OPERATOR_CHART | PROMOTE),
    (Scenario("prod-controller-config-feature", FEATURE, (PROD_CONTROLLER_CONFIG,)), set()),
    (Scenario("prod-controller-config-main", DEFAULT_BRANCH, (PROD_CONTROLLER_CONFIG,)), CHECK | PROD_CONTROLLER_CHART | PROMOTE),
    (Scenario("dev-dynamic-file-feature", FEATURE, (DEV_DYNAMIC_FILE,)), DEV_OPERATOR_DYNAMIC),
    (Scenario("dev-dynamic-file-main", DEFAULT_BRANCH, (DEV_DYNAMIC_FILE,)), CHECK | DEV_OPERATOR_DYNAMIC | PROMOTE),
    # A new file in a sub-folder of prod dynamic/ (the ** of the changes pattern).
    (Scenario("prod-dynamic-nested-main", DEFAULT_BRANCH, (PROD_DYNAMIC_NESTED,)), CHECK | PROD_OPERATOR_DYNAMIC | PROMOTE),
    # A merge request pipeline: check runs, dev deploys, prod waits for the default branch.
    (
        Scenario(
            "merge-request", FEATURE, (DEV_OPERATOR_CONFIG, PROD_CONTROLLER_CONFIG),
            {"CI_PIPELINE_SOURCE": "merge_request_event"},
        ),
        CHECK | DEV_OPERATOR_CHART,
    ),
    # A pipeline trigger from the operator's project: its image jobs only, never a chart deploy.
    (Scenario("operator-image-trigger", DEFAULT_BRANCH, (DEV_OPERATOR_CONFIG,), IMAGE_VARIABLES), OPERATOR_IMAGE),
    # Everything changed on the default branch; also validates needs/dependencies of active jobs.
    (
        Scenario(
            "everything-main", DEFAULT_BRANCH,
            (DEV_OPERATOR_CONFIG, PROD_OPERATOR_CONFIG, DEV_CONTROLLER_CONFIG, PROD_CONTROLLER_CONFIG,
             DEV_DYNAMIC_FILE, PROD_DYNAMIC_NESTED),
            validate_dependency_chain=True,
        ),
        CHECK | DEV_OPERATOR_CHART | PROD_CONTROLLER_CHART | DEV_OPERATOR_DYNAMIC | PROD_OPERATOR_DYNAMIC
        | {"controller_package_dev", "controller_publish_dev", "operator_package_prod", "operator_publish_prod"} | PROMOTE,
    ),
]


def mutate(old: str, new: str, text: str = CI_TEXT) -> str:
    """The CI file with its first ``old`` replaced; fails if ``old`` is not there (the mutation must bite)."""
    assert old in text, f"mutation target {old!r} not in .gitlab-ci.yml"
    return text.replace(old, new, 1)


WRONG_CHANGES_PATH = Scenario(
    "mutant-wrong-changes-path", FEATURE, (DEV_DYNAMIC_FILE,),
    ci_text=mutate("env/dev/operator/dynamic/**/*", "env/dev/operator/dynamics/**/*"),
)
MISSING_STAGE = Scenario("mutant-missing-stage", DEFAULT_BRANCH, (README,), ci_text=mutate("  - upload\n", ""))
# A prod publish that needs the dev package job, which a prod-only change leaves out.
NEEDS_INACTIVE_JOB = Scenario(
    "mutant-needs-inactive-job", DEFAULT_BRANCH, (PROD_OPERATOR_CONFIG,), validate_dependency_chain=True,
    ci_text=mutate("  resource_group: prod/operator\n", "  resource_group: prod/operator\n  needs: [operator_package_dev]\n"),
)
MUTANTS = [WRONG_CHANGES_PATH, MISSING_STAGE, NEEDS_INACTIVE_JOB]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, gitlab_ci_local.Outcome]:
    """Every scenario of the table and the mutants, run concurrently."""
    if not gitlab_ci_local.GITLAB_CI_LOCAL.exists():
        pytest.fail("gitlab-ci-local is not installed: run .ci/install-gitlab-ci-local.sh")
    scenarios = [s for s, _ in TABLE] + MUTANTS
    return gitlab_ci_local.run_all(scenarios, tmp_path_factory.mktemp("gitlab-ci-local"))


# --------------------------------------------------------------------------- 1. schema


def check_schema(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(tool), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", str(path)],
        capture_output=True, text=True, timeout=120,
    )


def test_file_validates_against_gitlab_ci_schema():
    proc = check_schema(CI_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_refuses_an_invalid_keyword_value(tmp_path):
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(mutate("  interruptible: true\n  parallel:", "  interruptible: sometimes\n  parallel:"))
    proc = check_schema(broken)
    assert proc.returncode != 0
    assert "interruptible" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- 2. rules


@pytest.mark.parametrize(("scenario", "expected"), TABLE, ids=[s.id for s, _ in TABLE])
def test_rules_table(outcomes, scenario, expected):
    outcome = outcomes[scenario.id]
    assert outcome.returncode == 0, outcome.output
    assert outcome.dependency_chain is None, outcome.dependency_chain
    assert outcome.jobs == expected, (
        f"{scenario.id}: unexpected {sorted(outcome.jobs - expected)}, missing {sorted(expected - outcome.jobs)}"
    )


def test_rules_table_catches_a_wrong_changes_path(outcomes):
    outcome = outcomes[WRONG_CHANGES_PATH.id]
    assert outcome.returncode == 0, outcome.output
    expected = dict((s.id, e) for s, e in TABLE)["dev-dynamic-file-feature"]
    assert outcome.jobs != expected
    assert "operator_upload_manifests_dev" not in outcome.jobs


def test_gitlab_ci_local_refuses_a_missing_stage(outcomes):
    outcome = outcomes[MISSING_STAGE.id]
    assert outcome.returncode != 0
    assert "upload" in outcome.output


def test_dependency_chain_check_catches_a_need_on_an_inactive_job(outcomes):
    outcome = outcomes[NEEDS_INACTIVE_JOB.id]
    assert outcome.dependency_chain is not None
    assert "operator_package_dev" in outcome.dependency_chain


def test_jobs_sit_in_their_stage(outcomes):
    stages = outcomes["everything-main"].stages
    assert stages["check: [dev]"] == "check"
    for job in ("operator_package_prod", "operator_manifests_dev", "operator_build_image"):
        assert stages[job] == "build"
    for job in ("operator_publish_dev", "controller_publish_prod", "operator_publish_image"):
        assert stages[job] == "publish"
    for job in ("operator_upload_manifests_dev", "operator_upload_manifests_prod"):
        assert stages[job] == "upload"


# --------------------------------------------------------------------------- 3. dagger call lines


def test_every_job_runs_exactly_one_dagger_call():
    ci = ci_calls.load()
    jobs = ci_calls.jobs(ci)
    assert len(jobs) >= 19
    for name, job in jobs.items():
        # One dagger call; a package job first makes the directory its file is exported into.
        calls = [line for line in job["script"] if not re.fullmatch(r"mkdir -p dist/charts/[a-z0-9-]+", line)]
        assert len(calls) == 1, f"{name}: script must be one dagger call line"
        assert calls[0].startswith("dagger call "), name


def test_every_dagger_call_line_resolves_against_the_module():
    ci = ci_calls.load()
    calls = ci_calls.dagger_calls(ci)
    assert {c.job for c in calls} == set(ci_calls.jobs(ci))
    by_job = {c.job: c for c in calls}
    # Spot checks that resolution reads the chain as the CLI does.
    upload = by_job["operator_upload_manifests_prod"]
    assert [s.function for s in upload.steps] == ["env", "upload-manifests"]
    assert upload.arg("env", "name") == "prod"
    assert upload.arg("upload-manifests", "token") == "env:OPERATOR_ADMIN_TOKEN_PROD"
    package = by_job["controller_package_dev"]
    assert [(s.on, s.function) for s in package.steps] == [
        ("FaasDeployment", "env"), ("Environment", "component"), ("Component", "package"), ("dagger.File", "export"),
    ]
    assert package.arg("export", "allow-parent-dir-path") is True


BROKEN_CALLS = [
    ("misspelled flag", "--admin-url", "--admin-uri", r"unknown flag '--admin-uri'"),
    ("unknown function", "upload-manifests", "upload-manifest", r"no function 'upload-manifest'"),
    ("required parameter missing", " --token env:OPERATOR_ADMIN_TOKEN_DEV", "", r"required --token"),
    ("secret expanded by the shell", "--password env:CHART_REGISTRY_PASSWORD_DEV",
     '--password "$CHART_REGISTRY_PASSWORD_DEV"', r"secret: pass it as env:NAME"),
    ("unknown core function", "package export --path dist/charts/dev ", "package exprot --path dist/charts/dev ",
     r"dagger.File has no function 'exprot'"),
    ("unknown core flag", "--allow-parent-dir-path", "--allow-parent-dir", r"unknown flag '--allow-parent-dir'"),
    ("flag without its value", '--tag "$IMAGE_TAG"', "--tag", r"--tag needs a value"),
    ("two commands on a line", "--token env:OPERATOR_ADMIN_TOKEN_PROD",
     "--token env:OPERATOR_ADMIN_TOKEN_PROD && echo done", r"no shell operators"),
    ("chain stops at an object", "env --name dev manifests export --path dist/manifests/dev.zip",
     "env --name dev", r"ends at the object Environment"),
    ("call after a value", "--password env:IMAGE_REGISTRY_PASSWORD",
     "--password env:IMAGE_REGISTRY_PASSWORD contents", r"already ended with a str"),
    ("unknown constructor flag", "dagger call check", "dagger call --src=. check", r"unknown flag '--src'"),
]


@pytest.mark.parametrize(("old", "new", "message"), [c[1:] for c in BROKEN_CALLS], ids=[c[0] for c in BROKEN_CALLS])
def test_call_resolution_refuses_a_broken_line(old, new, message):
    with pytest.raises(CallError, match=message):
        ci_calls.dagger_calls(ci_calls.load(text=mutate(old, new)))


# --------------------------------------------------------------------------- structure


def configs() -> list[tuple[str, str]]:
    """``(env, component)`` for every env/<env>/<component>/cookiecutter-config.yaml of the repository."""
    return sorted((p.parent.parent.name, p.parent.name) for p in REPO.glob("env/*/*/cookiecutter-config.yaml"))


def stage_problems(ci: dict) -> list[str]:
    problems = [] if ci.get("stages") == STAGES else [f"stages are {ci.get('stages')}, expected {STAGES}"]
    for name, job in ci_calls.jobs(ci).items():
        if job.get("stage") not in ci.get("stages", []):
            problems.append(f"{name}: stage {job.get('stage')!r} is not declared")
    return problems


def test_stages_in_order_and_declared():
    assert stage_problems(ci_calls.load()) == []
    assert stage_problems(ci_calls.load(text=mutate("  - upload\n", "")))  # the checker bites


def test_dagger_template_pins_the_cli_to_the_module_engine():
    ci = ci_calls.load()
    template = ci[".dagger"]
    engine = json.loads((REPO / "dagger.json").read_text())["engineVersion"]
    assert template["variables"]["DAGGER_VERSION"] == engine.removeprefix("v")
    assert engine.removeprefix("v") == importlib.metadata.version("dagger-io")
    assert any("dl.dagger.io/dagger/install.sh" in line for line in template["before_script"])
    assert re.fullmatch(r"docker:\d+\.\d+\.\d+-cli", template["image"])
    assert re.fullmatch(r"docker:\d+\.\d+\.\d+-dind", template["services"][0]["name"])
    for name, job in ci_calls.jobs(ci).items():
        assert job.get("before_script") == template["before_script"], f"{name} does not extend .dagger"


def test_each_env_and_component_deploys_its_chart_on_its_own_config():
    ci = ci_calls.load()
    jobs = ci_calls.jobs(ci)
    calls = {c.job: c for c in ci_calls.dagger_calls(ci)}
    assert len(configs()) == 4
    for env, component in configs():
        config = f"env/{env}/{component}/cookiecutter-config.yaml"
        for kind in ("package", "publish"):
            name = f"{component}_{kind}_{env}"
            job, call = jobs[name], calls[name]
            assert [rule["changes"] for rule in job["rules"]] == [[config]], name
            assert call.arg("env", "name") == env and call.arg("component", "name") == component, name
            condition = job["rules"][0]["if"]
            assert ("$CI_DEFAULT_BRANCH" in condition) == (env == "prod"), f"{name}: {condition}"
        publish = jobs[f"{component}_publish_{env}"]
        assert publish["environment"]["name"] == f"{env}/{component}"
        assert publish["resource_group"] == f"{env}/{component}"
        assert calls[f"{component}_publish_{env}"].arg("publish", "registry") == f"$CHART_REGISTRY/{env}"


def test_each_env_uploads_its_operator_manifests_on_its_dynamic_folder():
    ci = ci_calls.load()
    jobs = ci_calls.jobs(ci)
    calls = {c.job: c for c in ci_calls.dagger_calls(ci)}
    envs = sorted(p.parent.parent.name for p in REPO.glob("env/*/operator/dynamic"))
    assert envs == ["dev", "prod"]
    for env in envs:
        for name in (f"operator_upload_manifests_{env}", f"operator_manifests_{env}"):
            assert [rule["changes"] for rule in jobs[name]["rules"]] == [[f"env/{env}/operator/dynamic/**/*"]]
            assert calls[name].arg("env", "name") == env
        upload = jobs[f"operator_upload_manifests_{env}"]
        assert upload["stage"] == "upload"
        assert upload["environment"]["name"] == f"{env}/operator"
        assert upload["resource_group"] == f"{env}/operator"


def test_artifacts_keep_what_the_job_exports():
    ci = ci_calls.load()
    jobs = ci_calls.jobs(ci)
    exporting = [c for c in ci_calls.dagger_calls(ci) if c.steps[-1].function == "export"]
    assert {c.job for c in exporting} >= {f"{c}_package_{e}" for e, c in configs()} | {
        "operator_manifests_dev", "operator_manifests_prod"}
    for call in exporting:
        path = call.steps[-1].args["path"]
        kept = jobs[call.job]["artifacts"]["paths"]
        assert any(path.startswith(p) for p in kept), f"{call.job}: exports {path} but keeps {kept}"


def test_deploy_targets_have_one_resource_group_each():
    groups: dict[str, set[str]] = {}
    for name, job in ci_calls.jobs(ci_calls.load()).items():
        if "environment" in job:
            groups.setdefault(job["environment"]["name"], set()).add(job["resource_group"])
    assert set(groups) == {f"{e}/{c}" for e, c in configs()}
    assert all(len(g) == 1 for g in groups.values()), groups
    assert len({next(iter(g)) for g in groups.values()}) == len(groups)


SECRET_NAME = re.compile(r"\$\{?([A-Z0-9_]*(?:PASSWORD|TOKEN|SECRET|KEY)[A-Z0-9_]*)")


def test_secrets_only_as_env_references_and_never_echoed():
    ci = ci_calls.load()
    lines = list(ci_calls.script_lines(ci))
    # The one exception: image jobs hand their own job token to the Dagger CLI's git
    # credentials, into a file only this user can read, never on a command line.
    netrc = ("if [ -n \"$SOURCE_REF\" ]; then umask 077; printf 'machine %s login gitlab-ci-token password %s\\n' "
             "\"$CI_SERVER_HOST\" \"$CI_JOB_TOKEN\" > \"$HOME/.netrc\"; fi")
    assert (".dagger", "before_script", netrc) in lines
    lines = [entry for entry in lines if entry != (".dagger", "before_script", netrc)]
    for job, _, line in lines:
        assert not SECRET_NAME.search(line), f"{job}: a secret variable expanded by the shell: {line}"
        assert not re.search(r"(^|[;&|]\s*)(echo|printf|printenv|env|set\s+-x)\b", line), f"{job}: {line}"
    secret_refs = {
        value.removeprefix("env:")
        for call in ci_calls.dagger_calls(ci) for step in call.steps for value in step.args.values()
        if isinstance(value, str) and value.startswith("env:")
    }
    assert secret_refs >= {"CHART_REGISTRY_PASSWORD_DEV", "CHART_REGISTRY_PASSWORD_PROD", "OPERATOR_ADMIN_TOKEN_DEV",
                           "OPERATOR_ADMIN_TOKEN_PROD", "IMAGE_REGISTRY_PASSWORD", "CHART_REGISTRY_READ_PASSWORD"}
    # Secrets come from CI/CD settings, never from the file's variables.
    defined = set(ci.get("variables", {})) | {
        v for job in ci_calls.jobs(ci).values() for v in (job.get("variables") or {})
    }
    assert not secret_refs & defined
