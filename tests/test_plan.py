"""``plan`` and the generated child pipeline on real git repositories with a real bare ``origin``.

Each scenario of the table branches (or not) from ``main``, changes files and
commits as a developer would; the plan is read with the pipeline's own base rule
(GitLab's predefined variables), and the child pipeline generated for the
scenario's pipeline is checked job by job, against GitLab's schema and by resolving
every ``dagger call`` line against the module. Mutants (a wrong path in the diff, a
missing environment) show that the table bites.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from faas_deployment import door
from faas_deployment.core import layout
from faas_deployment.flux import settings
from faas_deployment.gitlab import child_pipeline, gitrefs, plan
from faas_deployment.gitlab.child_pipeline import Context
from support import ci_calls
from support.gitlab_ci_schema import check_schema
from support.plan_repo import DEFAULT_BRANCH, PlanRepo

FEATURE = "feature/change"
ZEROS = "0" * 40
DEV_OPERATOR = "env/dev/operator/cookiecutter-config.yaml"
PROD_OPERATOR = "env/prod/operator/cookiecutter-config.yaml"
PROD_CONTROLLER = "env/prod/controller/cookiecutter-config.yaml"
TARGETS = {"dev/operator", "dev/controller", "prod/operator", "prod/controller"}
MAIN = Context(ref=DEFAULT_BRANCH, default_branch=DEFAULT_BRANCH)
MERGE_REQUEST = Context(ref=FEATURE, default_branch=DEFAULT_BRANCH, merge_request="7", pipeline_iid="31")
BRANCH = Context(ref=FEATURE, default_branch=DEFAULT_BRANCH)


def bump(repo: PlanRepo, relative: str, old: str, new: str) -> None:
    repo.edit(relative, f'chart_version: "{old}"', f'chart_version: "{new}"')


def new_environment(repo: PlanRepo, name: str) -> None:
    shutil.copytree(repo.path("env/prod"), repo.path(f"env/{name}"))


@dataclass(frozen=True)
class Case:
    """A change, the pipeline it runs in, and what must come out.

    ``change`` edits the work tree (already on ``branch``) and returns the base
    variables GitLab would set; ``actions`` gives every target that is not
    ``unchanged``; ``jobs`` the child pipeline's job names.
    """

    id: str
    change: Callable[[PlanRepo], dict[str, str]]
    actions: dict[str, str]
    jobs: set[str]
    context: Context = MAIN
    branch: str = DEFAULT_BRANCH
    refused: bool = False


def _readme(repo: PlanRepo) -> dict[str, str]:
    repo.append("README.md", "A line of documentation.")
    return {}


def _bumped(repo: PlanRepo) -> dict[str, str]:
    repo.edit(DEV_OPERATOR, "replica_count: 1", "replica_count: 2")
    bump(repo, DEV_OPERATOR, "1.0.3", "1.0.4")
    return {}


def _no_bump(repo: PlanRepo) -> dict[str, str]:
    repo.edit(PROD_OPERATOR, "replica_count: 1", "replica_count: 2")
    return {}


def _comment_only(repo: PlanRepo) -> dict[str, str]:
    repo.append(PROD_OPERATOR, "# a comment reaches no chart")
    return {}


def _new_component(repo: PlanRepo) -> dict[str, str]:
    shutil.copytree(repo.path("env/dev/controller"), repo.path("env/dev/gateway"))
    repo.edit("env/dev/gateway/cookiecutter-config.yaml", 'chart_name: "faas-controller"', 'chart_name: "faas-gateway"')
    return {}


def _deleted_component(repo: PlanRepo) -> dict[str, str]:
    shutil.rmtree(repo.path("env/prod/controller"))
    return {}


def _new_environment(repo: PlanRepo) -> dict[str, str]:
    new_environment(repo, "staging")
    return {}


def _dynamic_only(repo: PlanRepo) -> dict[str, str]:
    repo.append("env/dev/operator/dynamic/configmap.yaml", "# tuned")
    return {}


TEMPLATE_DEPLOYMENT = f"{plan.TEMPLATE_IN_REPOSITORY}/{{{{cookiecutter.chart_name}}}}/templates/deployment.yaml"


def _template_change(repo: PlanRepo) -> dict[str, str]:
    repo.edit(TEMPLATE_DEPLOYMENT, "kind: Deployment", "kind: Deployment\n# revised by the platform team")
    repo.edit(TEMPLATE_DEPLOYMENT, "  template:\n", "  revisionHistoryLimit: 5\n  template:\n")
    return {}


def _template_change_bumped(repo: PlanRepo) -> dict[str, str]:
    _template_change(repo)
    for relative, old, new in ((DEV_OPERATOR, "1.0.3", "1.1.0"), (PROD_OPERATOR, "1.0.2", "1.1.0"),
                               ("env/dev/controller/cookiecutter-config.yaml", "0.4.1", "0.5.0"),
                               (PROD_CONTROLLER, "0.4.0", "0.5.0")):
        bump(repo, relative, old, new)
    return {}


def _first_push(repo: PlanRepo) -> dict[str, str]:
    """Two commits on a new branch; GitLab's before SHA is all zeros: the whole branch is planned."""
    _bumped(repo)
    repo.commit("bump dev operator")
    repo.append("README.md", "Notes.")
    return {"CI_COMMIT_BEFORE_SHA": ZEROS, "CI_DEFAULT_BRANCH": DEFAULT_BRANCH}


def _merge_request(repo: PlanRepo) -> dict[str, str]:
    base = repo.git("rev-parse", "origin/main")
    _bumped(repo)
    repo.commit("bump dev operator")
    repo.edit(PROD_CONTROLLER, "replica_count: 3", "replica_count: 4")
    bump(repo, PROD_CONTROLLER, "0.4.0", "0.4.1")
    return {"CI_MERGE_REQUEST_DIFF_BASE_SHA": base, "CI_COMMIT_BEFORE_SHA": ZEROS}


def _prerelease_in_config(repo: PlanRepo) -> dict[str, str]:
    bump(repo, DEV_OPERATOR, "1.0.3", "1.0.4-mr.1.1")
    return {}


def _hooks(repo: PlanRepo) -> dict[str, str]:
    _bumped(repo)
    for name in ("pre-deploy", "post-deploy"):
        hook = repo.path(f"env/dev/operator/hooks/{name}")
        hook.parent.mkdir(parents=True, exist_ok=True)
        hook.write_text("#!/bin/sh\necho hook\n")
        hook.chmod(0o755)
    return {}


CASES = [
    Case("readme-only", _readme, {}, {child_pipeline.NOOP_JOB}),
    Case("one-config-bumped", _bumped, {"dev/operator": "upgrade"}, {"operator_deploy_dev"}),
    Case("changed-without-bump", _no_bump, {"prod/operator": "refused"}, set(), refused=True),
    Case("comment-only", _comment_only, {}, {child_pipeline.NOOP_JOB}),
    Case("new-component", _new_component, {"dev/gateway": "install"}, {"gateway_deploy_dev"}),
    Case("deleted-component", _deleted_component, {"prod/controller": "retire"}, {"controller_retire_prod"}),
    Case("new-environment", _new_environment, {"staging/operator": "install", "staging/controller": "install",
                                               "staging/operator#upload": "upload"},
         {"operator_deploy_staging", "controller_deploy_staging", "operator_upload_bundle_staging"}),
    Case("dynamic-only", _dynamic_only, {"dev/operator#upload": "upload"}, {"operator_upload_bundle_dev"}),
    Case("template-change", _template_change, {t: "refused" for t in TARGETS}, set(), refused=True),
    Case("template-change-bumped", _template_change_bumped, {t: "upgrade" for t in TARGETS},
         {f"{t.split('/')[1]}_deploy_{t.split('/')[0]}" for t in TARGETS}),
    Case("first-push-of-a-branch", _first_push, {"dev/operator": "upgrade"}, set(), context=BRANCH, branch=FEATURE),
    Case("merge-request", _merge_request, {"dev/operator": "upgrade", "prod/controller": "upgrade"},
         {"operator_deploy_dev"}, context=MERGE_REQUEST, branch=FEATURE),
    Case("pre-release-in-config", _prerelease_in_config, {"dev/operator": "refused"}, set(), refused=True),
    Case("hooks", _hooks, {"dev/operator": "upgrade"}, {"operator_deploy_dev"}),
]


@dataclass
class Result:
    repo: PlanRepo
    plan: plan.Plan
    environ: dict[str, str] = field(default_factory=dict)


def generate(result: Result, context: Context, template: dict | None = None) -> dict:
    """The child pipeline of ``result`` with the repository's settings and ``.dagger`` template."""
    if template is None:
        template = child_pipeline.dagger_template(result.repo.work)
    return child_pipeline.generate(result.plan, context, template,
                                   lambda env: settings.load(result.repo.work, env))


def run_case(case: Case, root: Path) -> Result:
    repo = PlanRepo(root)
    if case.branch != DEFAULT_BRANCH:
        repo.git("checkout", "-q", "-b", case.branch)
    environ = case.change(repo)
    repo.commit(f"scenario {case.id}")
    return Result(repo, gitrefs.plan_repository(repo.work, None, None, None, environ), environ)


def actions_of(result: plan.Plan) -> dict[str, str]:
    """``{target: action}`` for every item not ``unchanged`` (an upload as ``target#upload``)."""
    found: dict[str, str] = {}
    for item in result.items:
        if item.action == "unchanged":
            continue
        found[f"{item.target}#upload" if item.action == "upload" else item.target] = item.action
    return found


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Result]:
    root = tmp_path_factory.mktemp("plan")
    return {case.id: run_case(case, root / case.id) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scenario_plan_and_child_jobs(results, case, tmp_path):
    result = results[case.id]
    assert actions_of(result.plan) == case.actions, result.plan.table()
    listed = {i.target for i in result.plan.items}
    assert listed >= TARGETS - {"prod/controller"}  # every env x component is listed, unchanged included
    assert bool(result.plan.refused) == case.refused
    if case.refused:
        with pytest.raises(plan.UserError, match="refused"):
            plan.outcome(result.plan, "table")
        return
    generated = generate(result, case.context)
    jobs = ci_calls.jobs(generated)
    if not case.jobs and not case.refused:
        assert set(jobs) == {child_pipeline.NOOP_JOB}
    else:
        assert set(jobs) == case.jobs, result.plan.table()
    for name, job in jobs.items():
        if name == child_pipeline.NOOP_JOB:
            continue
        component, action, env = name.split("_", 1)[0], name.split("_", 1)[1].rsplit("_", 1)[0], name.rsplit("_", 1)[1]
        target = f"{env}/{component}"
        assert action in ("deploy", "upload_bundle", "retire")
        assert job["resource_group"] == target
        if action == "retire":
            assert job["environment"] == {"name": target, "action": "stop"}
            continue
        env, component = target.split("/")
        ns = settings.load(result.repo.work, env).namespace
        assert job["environment"] == {"name": target, "kubernetes": {
            "agent": f"eo4eu-faas/faas-deployment:{'dev' if env == 'dev' else 'prod'}", "namespace": ns,
            "flux_resource_path": f"helm.toolkit.fluxcd.io/v2/namespaces/{ns}/helmreleases/faas-{component}"}}


def test_refused_change_names_the_file_to_fix(results):
    [item] = results["changed-without-bump"].plan.refused
    assert item.reason.endswith(f"bump chart_version in {PROD_OPERATOR}")
    [item] = results["pre-release-in-config"].plan.refused
    assert "pre-release" in item.reason and DEV_OPERATOR in item.reason


def test_reasons_name_what_changed(results):
    by_target = {i.target: i for i in results["new-environment"].plan.items if i.action == "install"}
    assert by_target["staging/operator"].reason == "new environment env/staging/"
    [item] = [i for i in results["new-component"].plan.items if i.action == "install"]
    assert item.reason == "new config env/dev/gateway/cookiecutter-config.yaml"
    retire = [i for i in results["deleted-component"].plan.items if i.action == "retire"][0]
    assert "published charts stay" in retire.reason and retire.base_version == "0.4.0"
    template = [i for i in results["template-change-bumped"].plan.items if i.target == "dev/operator"][0]
    assert "the chart template changed" in template.reason and (template.base_version, template.version) == (
        "1.0.3", "1.1.0")
    comment = [i for i in results["comment-only"].plan.items if i.target == "prod/operator"][0]
    assert comment.action == "unchanged" and "the packaged chart did not" in comment.reason


def test_hooks_are_listed(results):
    item = [i for i in results["hooks"].plan.items if i.target == "dev/operator"][0]
    assert item.hooks == ("pre-deploy", "post-deploy")


def test_merge_request_deploys_dev_as_a_pre_release_and_never_prod(results):
    result = results["merge-request"]
    generated = generate(result, MERGE_REQUEST)
    [call] = ci_calls.dagger_calls(generated)
    assert call.arg("deploy", "prerelease") == "mr.7.31"
    assert call.arg("env", "name") == "dev"
    on_main = generate(result, MAIN)
    calls = {c.job: c for c in ci_calls.dagger_calls(on_main)}
    assert set(calls) == {"operator_deploy_dev", "controller_deploy_prod"}
    assert calls["controller_deploy_prod"].arg("deploy", "prerelease") is None
    assert calls["controller_deploy_prod"].arg("with-registry", "password") == "env:CHART_REGISTRY_PASSWORD_PROD"
    assert calls["controller_deploy_prod"].arg("with-registry", "address") == "registry.example.org"


def test_generated_pipelines_pass_the_schema_and_resolve_against_the_module(results, tmp_path):
    for case in CASES:
        result = results[case.id]
        if case.refused:
            continue
        for context in (MAIN, MERGE_REQUEST, BRANCH):
            out = child_pipeline.write(result.plan, context, result.repo.work, tmp_path / case.id / "child.yml")
            proc = check_schema(out)
            assert proc.returncode == 0, f"{case.id}: {proc.stdout}{proc.stderr}"
            loaded = ci_calls.load(out)
            calls = ci_calls.dagger_calls(loaded)
            assert {c.job for c in calls} == set(ci_calls.jobs(loaded)) - {child_pipeline.NOOP_JOB}
            assert loaded[".dagger"] == ci_calls.load(result.repo.work / ".gitlab-ci.yml")[".dagger"]


def test_schema_check_bites_on_a_generated_file(results, tmp_path):
    result = results["one-config-bumped"]
    out = child_pipeline.write(result.plan, MAIN, result.repo.work, tmp_path / "child.yml")
    out.write_text(out.read_text().replace("resource_group: dev/operator", "resource_group: [dev]"))
    assert check_schema(out).returncode != 0


def test_staging_needs_no_ci_edit(results):
    """A new environment in a test repository: its jobs appear, the CI file is untouched."""
    result = results["new-environment"]
    assert result.repo.git("diff", "--name-only", "origin/main", "HEAD", "--", ".gitlab-ci.yml") == ""
    generated = generate(result, MAIN)
    calls = {c.job: c for c in ci_calls.dagger_calls(generated)}
    install = calls["operator_deploy_staging"]
    assert install.arg("env", "name") == "staging"
    assert install.arg("deploy", "registry") is None  # chart_registry of env/staging/environment.yaml
    assert install.arg("with-registry", "password") == "env:CHART_REGISTRY_PASSWORD_STAGING"
    assert install.arg("deploy", "receiver-token") == "env:FLUX_RECEIVER_TOKEN_STAGING"
    assert install.arg("deploy", "kubeconfig") == "file:$KUBECONFIG_STAGING"
    assert (
        calls["operator_upload_bundle_staging"].arg("upload-bundle", "admin-token")
        == "env:OPERATOR_ADMIN_TOKEN_STAGING"
    )
    # staging is not a branch environment: a merge request pipeline leaves it alone.
    assert set(ci_calls.jobs(generate(result, MERGE_REQUEST, template={}))) == {child_pipeline.NOOP_JOB}


def test_deploy_jobs_use_deploy_and_upload_needs_the_operator_deploy(results):
    generated = generate(results["new-environment"], MAIN)
    calls = {c.job: c for c in ci_calls.dagger_calls(generated)}
    install = calls["controller_deploy_staging"]
    assert install.arg("component", "name") == "controller" and install.arg("deploy", "kubeconfig")
    assert generated["operator_upload_bundle_staging"]["needs"] == ["operator_deploy_staging"]
    assert "needs" not in generate(results["dynamic-only"], MAIN)["operator_upload_bundle_dev"]  # no operator deploy


def test_retire_job_regenerates_the_flux_objects_without_the_component(results):
    generated = generate(results["deleted-component"], MAIN)
    job = generated["controller_retire_prod"]
    [call] = ci_calls.dagger_calls({"controller_retire_prod": job})
    assert call.arg("env", "name") == "prod" and call.arg("export", "path") == "flux/prod"
    assert job["artifacts"]["paths"] == ["flux/prod"] and job["stage"] == "retire"
    assert job["environment"] == {"name": "prod/controller", "action": "stop"}


def test_retired_environment_gets_no_job(results):
    """Every component of a deleted environment is retired; no settings are left to regenerate from."""
    result = results["deleted-component"]
    items = tuple(plan.Item(i.env, i.component, "retire", "config deleted") for i in result.plan.items
                  if i.env == "prod")
    gone = plan.Plan(items=items)
    assert set(ci_calls.jobs(child_pipeline.generate(gone, MAIN, {}, lambda env: 1 / 0))) == {child_pipeline.NOOP_JOB}


# --------------------------------------------------------------------------- mutants


def test_mutant_wrong_path_in_the_diff_fails_the_table(results, monkeypatch, tmp_path):
    monkeypatch.setattr(layout, "DYNAMIC", "dynamics")
    case = next(c for c in CASES if c.id == "dynamic-only")
    mutant = run_case(case, tmp_path / "mutant")
    assert actions_of(mutant.plan) != case.actions


def test_mutant_missing_environment_fails_the_table(monkeypatch, tmp_path):
    real = layout.discover
    monkeypatch.setattr(layout, "discover", lambda source: [p for p in real(source) if p[0] != "staging"])
    case = next(c for c in CASES if c.id == "new-environment")
    mutant = run_case(case, tmp_path / "mutant")
    assert actions_of(mutant.plan) != case.actions


# --------------------------------------------------------------------------- base rule and the CLI


def test_base_rule_follows_gitlab_variables(tmp_path):
    repo = PlanRepo(tmp_path)
    first = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", FEATURE)
    second = repo.commit("one")
    repo.commit("two")
    assert gitrefs.default_base(repo.work, {}) == second  # previous commit
    assert gitrefs.default_base(repo.work, {"CI_COMMIT_BEFORE_SHA": second}) == second
    assert gitrefs.default_base(repo.work, {"CI_MERGE_REQUEST_DIFF_BASE_SHA": first,
                                            "CI_COMMIT_BEFORE_SHA": second}) == first
    assert gitrefs.default_base(repo.work, {"CI_COMMIT_BEFORE_SHA": ZEROS, "CI_DEFAULT_BRANCH": "main"}) == first
    with pytest.raises(plan.UserError, match="shallow clone"):
        gitrefs.default_base(repo.work, {"CI_COMMIT_BEFORE_SHA": "ab" * 20})
    with pytest.raises(plan.UserError, match="default branch 'trunk'"):
        gitrefs.default_base(repo.work, {"CI_COMMIT_BEFORE_SHA": ZEROS, "CI_DEFAULT_BRANCH": "trunk"})
    assert gitrefs.dagger_base_ref(ZEROS, "main") == "refs/remotes/origin/main"
    assert gitrefs.dagger_base_ref("", "trunk") == "refs/remotes/origin/trunk"
    assert gitrefs.dagger_base_ref(first, "main") == first


def run_cli(repo: PlanRepo, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in repo.env.items() if not k.startswith("CI_")}
    return subprocess.run([sys.executable, "-m", "faas_deployment.cli", "--source", str(repo.work), "plan", *args],
                          capture_output=True, text=True, env=environ, timeout=300)


def test_cli_plan_json_table_pipeline_and_refusal(tmp_path):
    repo = PlanRepo(tmp_path / "repo")
    base = repo.git("rev-parse", "HEAD")
    _bumped(repo)
    head = repo.commit("bump")
    as_json = run_cli(repo, "--output", "json", "--base", base, "--head", head)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert (document["base"], document["head"]) == (base, head)
    assert {(i["env"], i["component"], i["action"]) for i in document["items"]} == {
        ("dev", "operator", "upgrade"), ("dev", "controller", "unchanged"),
        ("prod", "operator", "unchanged"), ("prod", "controller", "unchanged")}
    pipeline = tmp_path / "child.yml"
    table = run_cli(repo, "--child-pipeline", str(pipeline), "--ref", "main", "--default-branch", "main")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["TARGET", "ACTION", "VERSION", "HOOKS", "REASON"]
    assert "dev/operator     upgrade    1.0.3 -> 1.0.4" in table.stdout
    assert set(yaml.safe_load(pipeline.read_text())) == {"stages", ".dagger", "operator_deploy_dev"}
    _no_bump(repo)
    repo.commit("no bump")
    pipeline.unlink()
    refused = run_cli(repo, "--child-pipeline", str(pipeline))
    assert refused.returncode == 1
    assert "plan refused 1 target: prod/operator" in refused.stderr and "Traceback" not in refused.stderr
    assert not pipeline.exists()  # nothing to trigger when a target is refused
    unknown = run_cli(repo, "--base", "no-such-ref")
    assert unknown.returncode == 1 and "no such commit" in unknown.stderr


# --------------------------------------------------------------------------- hooks around publish


def test_failing_pre_deploy_hook_publishes_nothing_and_post_hook_sees_the_digest(tmp_path, capfd):
    from faas_deployment.door import Workspace

    repo = PlanRepo(tmp_path / "repo")
    hooks = repo.path("env/dev/operator/hooks")
    hooks.mkdir()
    record = tmp_path / "post.env"
    (hooks / "pre-deploy").write_text("#!/bin/sh\necho checking $FAAS_ENVIRONMENT/$FAAS_COMPONENT\nexit 3\n")
    (hooks / "post-deploy").write_text(f"#!/bin/sh\nenv | grep ^FAAS_ | sort > {record}\n")
    for hook in hooks.iterdir():
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    ws = Workspace(repo.work)
    with pytest.raises(
        plan.UserError, match=r"hooks/pre-deploy: hook failed with exit status 3; nothing was published"
    ):
        door.charts.publish_charts(ws, "dev", door.charts.local_target(ws, "dev"), ["operator"])
    assert not (repo.work / "dist/charts").exists()
    captured = capfd.readouterr()
    assert "checking dev/operator" in captured.err and "checking" not in captured.out
    (hooks / "pre-deploy").write_text("#!/bin/sh\nexit 0\n")
    [result] = door.charts.publish_charts(ws, "dev", door.charts.local_target(ws, "dev"), ["operator"],
                                          prerelease="mr.7.31")
    assert result.outcome == "pushed" and "1.0.3-mr.7.31" in result.reference
    facts = dict(line.split("=", 1) for line in record.read_text().splitlines())
    assert facts == {"FAAS_ACTION": "publish", "FAAS_ENVIRONMENT": "dev", "FAAS_COMPONENT": "operator",
                     "FAAS_CHART_VERSION": "1.0.3-mr.7.31", "FAAS_CHART_DIGEST": result.digest}
    (hooks / "pre-deploy").chmod(0o644)
    with pytest.raises(plan.UserError, match="not executable"):
        door.charts.publish_charts(ws, "dev", door.charts.local_target(ws, "dev"), ["operator"])


def test_prerelease_flag_is_checked():
    from faas_deployment.core.versions import prerelease_version

    assert prerelease_version("c.yaml", "1.4.0", "mr.42.3") == "1.4.0-mr.42.3"
    with pytest.raises(plan.UserError, match="--prerelease"):
        prerelease_version("c.yaml", "1.4.0", "mr..3")
    with pytest.raises(plan.UserError, match="pre-release"):
        prerelease_version("c.yaml", "1.4.0-rc.1", "mr.42.3")
    with pytest.raises(plan.UserError, match="two numbers"):
        Context("f", "main", merge_request="7").prerelease()
