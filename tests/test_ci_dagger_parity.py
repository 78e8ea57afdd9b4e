"""The CLI and the Dagger path give the same answers in CI.

The Dagger function runs in a runtime container that never sees the job's
environment, and reads git through the engine rather than a git binary. These tests
run the lines CI runs through the engine harness (``support.dagger_engine``, which
hides the caller's environment from a function as the runtime does) and the CLI on
the same checkout, and compare what each produces.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from faas_deployment import door
from faas_deployment.gitlab import child_pipeline, gitrefs
from faas_deployment.gitlab.child_pipeline import Context
from faas_deployment.gitlab.plan import Item
from support.dagger_engine import Engine
from support.plan_repo import PlanRepo

DEV_OPERATOR = "env/dev/operator/cookiecutter-config.yaml"
EPOCH = "1700000000"
ZEROS = "0" * 40


def _cli(source: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CI_") and k != "SOURCE_DATE_EPOCH"}
    return subprocess.run([sys.executable, "-m", "faas_deployment.cli", "--source", str(source), *argv],
                          capture_output=True, text=True, env={**environ, **(env or {})}, timeout=300, check=False)


def _mtimes(package: bytes) -> set[int]:
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
        return {member.mtime for member in tar.getmembers()}


def test_a_generated_deploy_job_packages_the_clis_bytes(tmp_path):
    """The deploy job's own prefix (module, environment, component), asked for the package, in a job with
    SOURCE_DATE_EPOCH."""
    repo = PlanRepo(tmp_path / "repo")
    line = child_pipeline.command(Item("dev", "operator", "upgrade", "bumped"), Context("main", "main"),
                                  "oci://registry.example.org/eo4eu-faas/charts/dev")
    prefix = line.split(" deploy ", 1)[0]
    job = {"SOURCE_DATE_EPOCH": EPOCH, "CHART_REGISTRY_USER_DEV": "ci", "CHART_REGISTRY_PASSWORD_DEV": "pw-dev-0123"}
    with Engine(repo.work, env=job) as engine:
        engine.call(f"{prefix} package export --path dagger-out/chart.tgz")
    from_dagger = (repo.work / "dagger-out" / "chart.tgz").read_bytes()
    cli = _cli(repo.work, "package", "--env", "dev", "--component", "operator", "--out", str(tmp_path / "cli"),
               env={"SOURCE_DATE_EPOCH": EPOCH})
    assert cli.returncode == 0, cli.stderr
    [from_cli] = [p.read_bytes() for p in (tmp_path / "cli").glob("*.tgz")]
    assert _mtimes(from_cli) == {int(EPOCH)}
    assert from_dagger == from_cli


def test_without_the_epoch_the_runtime_would_package_other_bytes(tmp_path):
    """The harness hides the job's SOURCE_DATE_EPOCH from a function, as the runtime container does."""
    repo = PlanRepo(tmp_path / "repo")
    with Engine(repo.work, env={"SOURCE_DATE_EPOCH": EPOCH}) as engine:
        engine.call("dagger call env --name dev component --name operator package export --path out/chart.tgz")
    assert _mtimes((repo.work / "out" / "chart.tgz").read_bytes()) == {0}


def _forked_after_main_moved(tmp_path: Path) -> PlanRepo:
    """A feature branch bumping dev/operator to 1.0.4, forked before main bumped it to 1.0.5 (pushed)."""
    repo = PlanRepo(tmp_path / "repo")
    repo.git("checkout", "-q", "-b", "feature")
    repo.edit(DEV_OPERATOR, "replica_count: 1", "replica_count: 2")
    repo.edit(DEV_OPERATOR, 'chart_version: "1.0.3"', 'chart_version: "1.0.4"')
    repo.commit("feature: dev operator 1.0.4")
    repo.git("checkout", "-q", "main")
    repo.edit(DEV_OPERATOR, "replica_count: 1", "replica_count: 3")
    repo.edit(DEV_OPERATOR, 'chart_version: "1.0.3"', 'chart_version: "1.0.5"')
    repo.commit("main: dev operator 1.0.5")
    repo.git("push", "-q", "origin", "main")
    repo.git("checkout", "-q", "feature")
    return repo


def _dev_operator(plan: dict) -> tuple[str, str, str]:
    [item] = [i for i in plan["items"] if (i["env"], i["component"]) == ("dev", "operator") and i["action"] != "upload"]
    return item["action"], item["base_version"], item["version"]


def test_a_branchs_first_push_compares_with_the_merge_base_in_both_paths(tmp_path):
    repo = _forked_after_main_moved(tmp_path)
    merge_base = repo.git("merge-base", "origin/main", "HEAD")
    assert gitrefs.dagger_base_is_merge_base(ZEROS) and not gitrefs.dagger_base_is_merge_base(merge_base)
    cli = _cli(repo.work, "--output", "json", "plan",
               env={"CI_COMMIT_BEFORE_SHA": ZEROS, "CI_DEFAULT_BRANCH": "main", "HOME": str(tmp_path)})
    assert cli.returncode == 0, cli.stderr
    assert _dev_operator(json.loads(cli.stdout)) == ("upgrade", "1.0.3", "1.0.4")
    with Engine(repo.work) as engine:  # the parent plan job's base on a first push: all zeros
        out = engine.call(f"dagger call plan --base {ZEROS} --default-branch main --format json")
    dagger_plan = json.loads(out)
    assert _dev_operator(dagger_plan) == ("upgrade", "1.0.3", "1.0.4")
    assert [(i["env"], i["component"], i["action"]) for i in dagger_plan["items"]] == [
        (i["env"], i["component"], i["action"]) for i in json.loads(cli.stdout)["items"]]


def test_a_dagger_api_trigger_traces_the_jobs_pipeline_and_job_ids(registry, tmp_path):
    """``--trigger-api`` writes ``faas-deploy/<CI_PIPELINE_ID>/<CI_JOB_ID>/...`` from the module as from the CLI."""
    from faas_deployment.door import Workspace
    from faas_deployment.flux import rollout
    from support.flux_doubles import HR, OCI, KubeApi, play, scenario
    from support.repo_tree import REPO_ROOT, copy_repo

    source = copy_repo(tmp_path / "repo")
    shutil.copy(REPO_ROOT / "dagger.json", source / "dagger.json")
    env_file = source / "env" / "dev" / "environment.yaml"
    env_file.write_text(env_file.read_text().replace("oci://registry.example.org/eo4eu-faas/charts/dev",
                                                     f"oci://{registry.host}/charts/dev"))
    exp = door.deploy.expected_for(Workspace(source), "dev", "operator")
    tokens: list[str] = []

    def on_patch(plural: str, name: str, body: dict) -> None:
        tokens.append(body["metadata"]["annotations"][rollout.REQUESTED_AT])
        if plural == "helmreleases":
            play(api, [("source", {})] + [("hr", {**status, "lastHandledReconcileAt": tokens[-1]}) for _, status in
                                          scenario("success", chart=exp.chart, ns="faas-dev", name=name,
                                                   old=f"0.0.1+{'a' * 12}", new=exp.revision)],
                 exp, "faas-dev", name, gap=0.1)

    with KubeApi("kube-token-" + "8" * 16, on_patch=on_patch) as api:
        for kind in (HR, OCI):
            api.put(
                kind, "faas-dev", "faas-operator", {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}}
            )
        (source / "kc").write_text(api.kubeconfig())
        job = {"CI_PIPELINE_ID": "4711", "CI_JOB_ID": "42", "REG_PW": registry.password}
        with Engine(source, env=job) as engine:
            out = engine.call(f"dagger call with-registry --address {registry.host} --username {registry.username} "
                              "--password env:REG_PW --plain-http "
                              "env --name dev component --name operator deploy --kubeconfig file:kc "
                              '--trigger-api --pipeline-id "$CI_PIPELINE_ID" --job-id "$CI_JOB_ID" --timeout 20')
    assert f"deployed {exp.chart}@{exp.version}" in out
    assert tokens and all(token.startswith("faas-deploy/4711/42/") for token in tokens), tokens
