""".gitlab-ci.yml, checked offline three ways.

1. GitLab's CI schema (``check-jsonschema --builtin-schema vendor.gitlab-ci``).
2. The rules: the pinned ``gitlab-ci-local`` lists the jobs of a pipeline on a
   throwaway git repository, for a table of scenarios (what changed, which branch,
   which pipeline source); each row states exactly which jobs run. The parent only
   decides whether to plan; what deploys is in the generated child pipeline
   (tests/test_plan.py).
3. Every ``dagger call`` line resolved against the module's offline introspection
   (functions, flags, required parameters, secrets as ``env:NAME``).

Each checker is also shown to catch a broken file (a misspelled flag, a wrong
rule, a missing stage, a hard-coded environment).
"""

from __future__ import annotations

import importlib.metadata
import json
import re

import pytest
import yaml

from support import ci_calls, gitlab_ci_local
from support.ci_calls import CallError
from support.gitlab_ci_local import DEFAULT_BRANCH, Scenario
from support.gitlab_ci_schema import check_schema

REPO = ci_calls.REPO
CI_FILE = REPO / ".gitlab-ci.yml"
CI_TEXT = CI_FILE.read_text()
STAGES = ["check", "plan", "deploy", "build", "publish", "upload"]
FEATURE = "feature/change"

CHANGE_JOBS = {"check", "plan", "deploy"}
IMAGE_JOBS = {"build_image", "publish_image", "bump"}
#: The manual promotion job: every push pipeline of the default branch offers it.
PROMOTE = {"promote"}

README = "README.md"
DEV_OPERATOR_CONFIG = "env/dev/operator/cookiecutter-config.yaml"
PROD_CONTROLLER_CONFIG = "env/prod/controller/cookiecutter-config.yaml"
STAGING_CONFIG = "env/staging/operator/cookiecutter-config.yaml"
IMAGE_VARIABLES = {
    "CI_PIPELINE_SOURCE": "trigger",
    "COMPONENT": "operator",
    "ENVIRONMENT": "dev",
    "SOURCE_REF": "https://gitlab.example.org/eo4eu-faas/faas-operator.git#v1.4.0",
    "IMAGE_TAG": "1.4.0",
}

# (scenario, jobs that run): the parent's rules. What deploys is the plan's business
# (tests/test_plan.py); the parent only decides whether to plan at all.
TABLE: list[tuple[Scenario, set[str]]] = [
    (Scenario("readme-feature", FEATURE, (README,)), CHANGE_JOBS),
    (Scenario("readme-main", DEFAULT_BRANCH, (README,)), CHANGE_JOBS | PROMOTE),
    (Scenario("dev-operator-config-feature", FEATURE, (DEV_OPERATOR_CONFIG,)), CHANGE_JOBS),
    (Scenario("prod-controller-config-main", DEFAULT_BRANCH, (PROD_CONTROLLER_CONFIG,)), CHANGE_JOBS | PROMOTE),
    # A new environment: the same jobs, no CI edit.
    (Scenario("new-staging-environment-main", DEFAULT_BRANCH, (STAGING_CONFIG,)), CHANGE_JOBS | PROMOTE),
    (
        Scenario("merge-request", FEATURE, (DEV_OPERATOR_CONFIG, PROD_CONTROLLER_CONFIG),
                 {"CI_PIPELINE_SOURCE": "merge_request_event"}),
        CHANGE_JOBS,
    ),
    # A pipeline trigger from a component's project: its image jobs only, never a plan.
    (Scenario("operator-image-trigger", DEFAULT_BRANCH, (DEV_OPERATOR_CONFIG,), IMAGE_VARIABLES), IMAGE_JOBS),
    # A trigger without the image variables: nothing.
    (Scenario("bare-trigger", DEFAULT_BRANCH, (), {"CI_PIPELINE_SOURCE": "trigger"}), set()),
    (Scenario("web-without-variables", DEFAULT_BRANCH, (), {"CI_PIPELINE_SOURCE": "web"}), set()),
    (
        Scenario("everything-main", DEFAULT_BRANCH, (DEV_OPERATOR_CONFIG, PROD_CONTROLLER_CONFIG),
                 validate_dependency_chain=True),
        CHANGE_JOBS | PROMOTE,
    ),
]


def mutate(old: str, new: str, text: str = CI_TEXT) -> str:
    """The CI file with its first ``old`` replaced; fails if ``old`` is not there (the mutation must bite)."""
    assert old in text, f"mutation target {old!r} not in .gitlab-ci.yml"
    return text.replace(old, new, 1)


WRONG_RULE = Scenario(
    "mutant-wrong-rule", FEATURE, (README,),
    ci_text=mutate('$CI_PIPELINE_SOURCE == "push" || ', '$CI_PIPELINE_SOURCE == "pushed" || '),
)
MISSING_STAGE = Scenario("mutant-missing-stage", DEFAULT_BRANCH, (README,), ci_text=mutate("  - upload\n", ""))
# The trigger needs a job that the image pipelines leave out.
NEEDS_INACTIVE_JOB = Scenario(
    "mutant-needs-inactive-job", DEFAULT_BRANCH, (README,), validate_dependency_chain=True,
    ci_text=mutate("  needs:\n    - plan\n", "  needs:\n    - plan\n    - build_image\n"),
)
MUTANTS = [WRONG_RULE, MISSING_STAGE, NEEDS_INACTIVE_JOB]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, gitlab_ci_local.Outcome]:
    """Every scenario of the table and the mutants, run concurrently."""
    if not gitlab_ci_local.GITLAB_CI_LOCAL.exists():
        pytest.fail("gitlab-ci-local is not installed: run .ci/install-gitlab-ci-local.sh")
    scenarios = [s for s, _ in TABLE] + MUTANTS
    return gitlab_ci_local.run_all(scenarios, tmp_path_factory.mktemp("gitlab-ci-local"))


# --------------------------------------------------------------------------- 1. schema


def test_file_validates_against_gitlab_ci_schema():
    proc = check_schema(CI_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_refuses_an_invalid_keyword_value(tmp_path):
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(mutate("  interruptible: true\n  rules: *rules_change\n  variables:",
                             "  interruptible: sometimes\n  rules: *rules_change\n  variables:"))
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


def test_rules_table_catches_a_wrong_rule(outcomes):
    outcome = outcomes[WRONG_RULE.id]
    assert outcome.returncode == 0, outcome.output
    assert outcome.jobs == set()


def test_gitlab_ci_local_refuses_a_missing_stage(outcomes):
    outcome = outcomes[MISSING_STAGE.id]
    assert outcome.returncode != 0
    assert "stage:upload not found for bump" in outcome.output, outcome.output


def test_dependency_chain_check_catches_a_need_on_an_inactive_job(outcomes):
    outcome = outcomes[NEEDS_INACTIVE_JOB.id]
    assert outcome.dependency_chain is not None
    assert "build_image" in outcome.dependency_chain


def test_jobs_sit_in_their_stage(outcomes):
    stages = outcomes["everything-main"].stages
    assert (stages["check"], stages["plan"], stages["deploy"]) == ("check", "plan", "deploy")
    assert (stages["build_image"], stages["publish_image"], stages["bump"]) == ("build", "publish", "upload")


# --------------------------------------------------------------------------- 3. dagger call lines


def test_every_job_runs_exactly_one_dagger_call_or_triggers_the_child():
    ci = ci_calls.load()
    jobs = ci_calls.jobs(ci)
    assert set(jobs) == CHANGE_JOBS | IMAGE_JOBS | PROMOTE
    for name, job in jobs.items():
        if "trigger" in job:
            assert job["trigger"]["include"] == [{"artifact": "child-pipeline.yml", "job": "plan"}], name
            assert job["trigger"]["strategy"] == "depend"
            continue
        assert len(job["script"]) == 1, f"{name}: script must be one dagger call line"
        assert job["script"][0].startswith("dagger call "), name


def test_every_dagger_call_line_resolves_against_the_module():
    ci = ci_calls.load()
    calls = ci_calls.dagger_calls(ci)
    assert {c.job for c in calls} == set(ci_calls.jobs(ci)) - {"deploy"}
    by_job = {c.job: c for c in calls}
    pipeline = by_job["plan"]
    assert [s.function for s in pipeline.steps] == ["child-pipeline", "export"]
    assert pipeline.arg("child-pipeline", "base") == "${CI_MERGE_REQUEST_DIFF_BASE_SHA:-$CI_COMMIT_BEFORE_SHA}"
    assert pipeline.arg("export", "path") == "child-pipeline.yml"
    assert ci["plan"]["artifacts"]["paths"] == ["child-pipeline.yml"]
    assert ci["plan"]["variables"]["GIT_DEPTH"] == "0"
    bump = by_job["bump"]
    assert [(s.on, s.function) for s in bump.steps] == [
        ("FaasDeployment", "env"), ("Environment", "component"), ("Component", "bump-merge-request"),
    ]


BROKEN_CALLS = [
    ("misspelled flag", "--default-branch", "--default-brnch", r"unknown flag '--default-brnch'"),
    ("unknown function", "call child-pipeline", "call child-pipelines", r"no function 'child-pipelines'"),
    ("required parameter missing", ' --tag "$IMAGE_TAG"', "", r"required --tag"),
    ("secret expanded by the shell", "--password env:IMAGE_REGISTRY_PASSWORD",
     '--password "$IMAGE_REGISTRY_PASSWORD"', r"secret: pass it as env:NAME"),
    ("unknown core function", "export --path child-pipeline.yml", "exprot --path child-pipeline.yml",
     r"dagger.File has no function 'exprot'"),
    ("flag without its value", '--tag "$IMAGE_TAG"', "--tag", r"--tag needs a value"),
    ("two commands on a line", "--pipeline-iid \"$CI_PIPELINE_IID\"",
     "--pipeline-iid \"$CI_PIPELINE_IID\" && echo done", r"no shell operators"),
    ("chain stops at an object", 'component --name "$COMPONENT" build-image --context "$SOURCE_REF" sync',
     'component --name "$COMPONENT"', r"ends at the object Component"),
    ("call after a value", '--tag "$IMAGE_TAG"', '--tag "$IMAGE_TAG" contents', r"already ended with a str"),
    ("unknown constructor flag", "dagger call --source-date-epoch", "dagger call --src=. --source-date-epoch",
     r"unknown flag '--src'"),
]


@pytest.mark.parametrize(("old", "new", "message"), [c[1:] for c in BROKEN_CALLS], ids=[c[0] for c in BROKEN_CALLS])
def test_call_resolution_refuses_a_broken_line(old, new, message):
    with pytest.raises(CallError, match=message):
        ci_calls.dagger_calls(ci_calls.load(text=mutate(old, new)))


# --------------------------------------------------------------------------- structure


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
        if "trigger" not in job:
            assert job.get("before_script") == template["before_script"], f"{name} does not extend .dagger"


def test_the_parent_names_no_environment_or_component():
    envs_and_components = {p.parent.parent.name for p in REPO.glob("env/*/*/cookiecutter-config.yaml")} | {
        p.parent.name for p in REPO.glob("env/*/*/cookiecutter-config.yaml")}
    assert envs_and_components >= {"dev", "prod", "operator", "controller"}
    ci = ci_calls.load()
    for name in envs_and_components:
        assert not re.search(rf"\b{name}\b", yaml.safe_dump(ci_calls.jobs(ci))), name
        assert not any(re.search(rf"\b{name}\b", key) for key in ci), name
    # The checker bites: a hard-coded environment is found.
    mutant = ci_calls.load(text=mutate('--name "$ENVIRONMENT" component --name "$COMPONENT" build-image',
                                       '--name dev component --name "$COMPONENT" build-image'))
    assert re.search(r"\bdev\b", yaml.safe_dump(ci_calls.jobs(mutant)))


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
    assert secret_refs == {"IMAGE_REGISTRY_PASSWORD", "GITLAB_TOKEN"}
    defined = set(ci.get("variables", {})) | {
        v for job in ci_calls.jobs(ci).values() for v in (job.get("variables") or {})
    }
    assert not secret_refs & defined
