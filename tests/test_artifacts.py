"""Flux OCI artifacts: pushed to a real docker-registry on 127.0.0.1, read back with skopeo (an independent client)."""

from __future__ import annotations

import copy
import gzip
import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from faas_deployment.core import names
from faas_deployment.flux import artifacts
from support.repo_tree import REPO_ROOT, config_file, get_scalar, set_scalar

REVISION_A = "main@sha1:" + "a" * 40
REVISION_B = "main@sha1:" + "b" * 40
SOURCE_URL = "https://git.example.org/eo4eu-faas/faas-deployment.git"
NODE_MODULES = REPO_ROOT / ".ci" / "node" / "node_modules"


def flags(registry) -> list[str]:
    return ["--repository", f"oci://{registry.host}/faas/manifests", "--username", registry.username,
            "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http"]


def skopeo(registry, *args: str) -> str:
    side = "--src-" if args[0] == "copy" else "--"
    done = subprocess.run(
        [
            "skopeo",
            args[0],
            f"{side}tls-verify=false",
            f"{side}creds",
            f"{registry.username}:{registry.password}",
            *args[1:],
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def tags(registry) -> set[str]:
    return set(json.loads(skopeo(registry, "list-tags", f"docker://{registry.host}/faas/manifests"))["Tags"])


def raw_manifest(registry, tag: str) -> dict:
    return json.loads(skopeo(registry, "inspect", "--raw", f"docker://{registry.host}/faas/manifests:{tag}"))


def manifest_digest(registry, tag: str) -> str:
    """The digest the registry reports for ``tag`` (raw HTTP, not our client)."""
    digest = registry.held_digest("faas/manifests", tag)
    assert digest is not None, tag
    return digest


def writes(registry) -> int:
    """Requests that change the registry (blob uploads, manifest PUTs, deletes), from its access log."""
    return len(re.findall(r'"(?:POST|PUT|PATCH|DELETE) /v2/', registry.log_text()))


def publish(run_cli, repo_copy, registry, *extra: str, revision: str = REVISION_A) -> tuple[int, str, str]:
    return run_cli("--source", str(repo_copy), "publish-artifact", "--env", "dev", *flags(registry),
               "--revision", revision, "--source-url", SOURCE_URL, *extra)


def test_flux_format_read_back_with_skopeo(registry, repo_copy, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    code, out, err = publish(run_cli, repo_copy, registry)
    assert code == 0, err
    versions = {c: get_scalar(config_file(repo_copy, "dev", c), "chart_version") for c in ("operator", "controller")}
    assert tags(registry) == {t for c, v in versions.items() for t in (f"app-{c}", f"app-{c}-{v}")}
    for component in versions:
        assert f"pushed {registry.host}/faas/manifests:app-{component}-{versions[component]}; moved" in out
        manifest = raw_manifest(registry, f"app-{component}")
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert manifest["config"]["mediaType"] == "application/vnd.cncf.flux.config.v1+json"
        assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.cncf.flux.content.v1.tar+gzip"]
        annotations = manifest["annotations"]
        assert annotations["org.opencontainers.image.revision"] == REVISION_A
        assert annotations["org.opencontainers.image.source"] == SOURCE_URL
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", annotations["org.opencontainers.image.created"])
        assert manifest_digest(registry, f"app-{component}") == manifest_digest(
            registry, f"app-{component}-{versions[component]}"
        )
    assert registry.password not in out + err

    # The layer, copied out by skopeo into an OCI layout: the rendered chart, reproducibly archived.
    layout = tmp_path / "layout"
    skopeo(registry, "copy", f"docker://{registry.host}/faas/manifests:app-operator", f"oci:{layout}:app-operator")
    layer_digest = raw_manifest(registry, "app-operator")["layers"][0]["digest"]
    blob = (layout / "blobs" / "sha256" / layer_digest.split(":")[1]).read_bytes()
    assert blob[:2] == b"\x1f\x8b" and blob[3] == 0 and blob[4:8] == b"\0\0\0\0"  # gzip: no FNAME flag, mtime 0
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert all((m.uid, m.gid, m.uname, m.gname, m.mtime, m.mode) == (0, 0, "", "", 0, 0o644) for m in members)
        docs = [d for m in members for d in yaml.safe_load_all(tar.extractfile(m).read()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service"} <= kinds
    config = json.loads(
        (
            layout / "blobs" / "sha256" / raw_manifest(registry, "app-operator")["config"]["digest"].split(":")[1]
        ).read_bytes()
    )
    assert config["rootfs"]["diff_ids"] == [names.sha256_digest(gzip.decompress(blob))]


def test_rerun_uploads_nothing_and_a_change_moves_only_its_tag(registry, repo_copy, run_cli, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    assert publish(run_cli, repo_copy, registry)[0] == 0
    before = {t: manifest_digest(registry, t) for t in tags(registry)}
    count = writes(registry)
    assert count >= 8  # two components, each: two blobs uploaded and two manifest PUTs

    # Another commit, same content: nothing is written, although revision and created differ.
    code, out, err = publish(run_cli, repo_copy, registry, revision=REVISION_B)
    assert code == 0, err
    assert out.count("unchanged") == 4 and "pushed" not in out and "moved" not in out
    assert writes(registry) == count
    assert {t: manifest_digest(registry, t) for t in tags(registry)} == before

    # Content changed without a chart_version bump: refused, nothing written.
    operator = config_file(repo_copy, "dev", "operator")
    set_scalar(operator, "health_path", "/livez")
    code, out, err = publish(run_cli, repo_copy, registry, revision=REVISION_B)
    assert code == 1 and "bump chart_version" in err and "Traceback" not in err
    assert writes(registry) == count

    # Bumped: the operator's tags move, the controller's stay.
    old = get_scalar(operator, "chart_version")
    set_scalar(operator, "chart_version", "9.0.0")
    code, out, err = publish(run_cli, repo_copy, registry, revision=REVISION_B)
    assert code == 0, err
    after = {t: manifest_digest(registry, t) for t in tags(registry)}
    assert set(after) == set(before) | {"app-operator-9.0.0"}
    assert after["app-operator"] != before["app-operator"] and after["app-operator"] == after["app-operator-9.0.0"]
    assert after["app-operator-" + old] == before["app-operator-" + old]
    assert {t: d for t, d in after.items() if "controller" in t} == {
        t: d for t, d in before.items() if "controller" in t
    }
    assert raw_manifest(registry, "app-operator")["annotations"]["org.opencontainers.image.revision"] == REVISION_B

    # Rollback to the published version and content: only the moving tag goes back, to the old manifest.
    health = get_scalar(config_file(REPO_ROOT, "dev", "operator"), "health_path")
    set_scalar(operator, "health_path", health)
    set_scalar(operator, "chart_version", old)
    code, out, err = publish(run_cli, repo_copy, registry, "--component", "operator", revision=REVISION_B)
    assert code == 0, err
    assert f"unchanged {registry.host}/faas/manifests:app-operator-{old}; moved" in out
    assert manifest_digest(registry, "app-operator") == before["app-operator"]

    # A new version lower than the highest published: refused, as for charts.
    set_scalar(operator, "chart_version", "0.0.1")
    code, out, err = publish(run_cli, repo_copy, registry, "--component", "operator")
    assert code == 1 and "lower than the highest published" in err


def test_retire_deletes_only_the_moving_tag(registry, repo_copy, monkeypatch, run_cli):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    assert publish(run_cli, repo_copy, registry)[0] == 0
    version = get_scalar(config_file(repo_copy, "dev", "operator"), "chart_version")
    kept = manifest_digest(registry, f"app-operator-{version}")
    shutil.rmtree(repo_copy / "env" / "dev" / "operator")  # only a removed component is retired
    retire = [
        "--source",
        str(repo_copy),
        "retire-artifact",
        "--env",
        "dev",
        "--component",
        "operator",
        *flags(registry),
    ]
    code, out, err = run_cli(*retire)
    assert code == 0, err
    assert out.startswith(f"retired {registry.host}/faas/manifests:app-operator@")
    assert "app-operator" not in tags(registry) and "app-controller" in tags(registry)
    assert manifest_digest(registry, f"app-operator-{version}") == kept
    assert run_cli(*retire)[1].startswith("absent ")


def test_plain_manifests_directory(registry, repo_copy, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (plain / "bad.yaml").write_text("- just\n- a list\n")
    code, out, err = publish(run_cli, repo_copy, registry, "--component", "operator", "--objects", str(plain))
    assert code == 1 and "bad.yaml" in err and "expected a Kubernetes object" in err
    assert writes(registry) == 0
    (plain / "bad.yaml").unlink()
    (plain / ".hidden.yaml").write_text(": not yaml")
    code, out, err = publish(run_cli, repo_copy, registry, "--component", "operator", "--objects", str(plain))
    assert code == 0, err
    assert tags(registry) == {
        "app-operator",
        "app-operator-" + get_scalar(config_file(repo_copy, "dev", "operator"), "chart_version"),
    }
    code, out, err = publish(run_cli, repo_copy, registry, "--objects", str(plain))
    assert code == 1 and "--component" in err


def test_layer_is_reproducible_and_independent_of_revision():
    files = {"b.yaml": b"kind: B\n", "a/x.yaml": b"kind: A\n"}
    one = artifacts.flux_artifact(files, source="", revision=REVISION_A, created="2026-01-01T00:00:00Z")
    two = artifacts.flux_artifact(
        dict(reversed(files.items())), source="", revision=REVISION_B, created="2026-02-01T00:00:00Z"
    )
    assert one.layer == two.layer and one.layer_digest == two.layer_digest
    assert one.digest != two.digest
    with pytest.raises(artifacts.UserError, match="RFC 3339"):
        artifacts.flux_artifact(files, source="", revision="", created="yesterday")
    with pytest.raises(artifacts.UserError, match="relative path"):
        artifacts.flux_artifact({"../x": b""}, source="", revision="", created="2026-01-01T00:00:00Z")


def test_malformed_registry_and_component_names(repo_copy, run_cli):
    code, _, err = run_cli("--source", str(repo_copy), "publish-artifact", "--env", "dev", "--repository", "oci://host-only",
                           "--revision", REVISION_A, "--source-url", SOURCE_URL)
    assert code == 1 and "repository path" in err
    code, _, err = run_cli("--source", str(repo_copy), "retire-artifact", "--env", "dev", "--component", "Bad_Name",
                       "--repository", "oci://h/p")
    assert code == 1 and "lowercase" in err


# --------------------------------------------------------------------------- generated Flux Operator objects

#: JSON fields of the Flux Operator v1 types (controlplaneio-fluxcd/flux-operator api/v1
#: resourcesetinputprovider_types.go ResourceSetInputProviderSpec / ResourceSetInputFilter,
#: resourceset_types.go ResourceSetSpec / InputProviderReference).
PROVIDER_SPEC = {"type", "url", "serviceAccountName", "secretRef", "certSecretRef", "insecure", "defaultValues",
                 "filter", "skip", "schedule", "selectors"}
PROVIDER_TYPES = {"Static", "GitHubBranch", "GitHubTag", "GitHubPullRequest", "GitLabBranch", "GitLabTag",
                  "GitLabMergeRequest", "GitLabEnvironment", "AzureDevOpsBranch", "AzureDevOpsTag",
                  "AzureDevOpsPullRequest", "AWSCodeCommitBranch", "AWSCodeCommitTag", "AWSCodeCommitPullRequest",
                  "GiteaBranch", "GiteaTag", "GiteaPullRequest", "OCIArtifactTag", "ACRArtifactTag", "ECRArtifactTag",
                  "GARArtifactTag", "ExternalService", "ExternalArtifact"}
FILTER = {"includeBranch", "excludeBranch", "includeTag", "excludeTag", "includeEnvironment", "excludeEnvironment",
          "labels", "limit", "semver"}
RESOURCESET_SPEC = {"commonMetadata", "inputStrategy", "inputs", "inputsFrom", "resources", "resourcesTemplate",
                    "steps", "dependsOn", "serviceAccountName", "wait"}
PROVIDER_REF = {"apiVersion", "kind", "name", "selector"}


def objects(repo_copy: Path, run_cli, out: Path, *extra: str) -> dict[str, dict]:
    code, stdout, err = run_cli("--source", str(repo_copy), "artifact-objects", "--env", "dev",
                            "--repository", "oci://registry.example.org/faas/manifests", "--out", str(out), *extra)
    assert code == 0, err
    return {Path(line).name: yaml.safe_load(Path(line).read_text()) for line in stdout.split()}


def test_flux_operator_objects_field_by_field(repo_copy, run_cli, tmp_path):
    found = objects(repo_copy, run_cli, tmp_path / "flux", "--registry-secret", "regcred")
    provider, rset = found["resourcesetinputprovider.yaml"], found["resourceset.yaml"]
    assert provider["apiVersion"] == rset["apiVersion"] == "fluxcd.controlplane.io/v1"
    assert set(provider["spec"]) <= PROVIDER_SPEC and provider["spec"]["type"] in PROVIDER_TYPES
    assert provider["spec"]["type"] == "OCIArtifactTag"
    assert provider["spec"]["url"] == "oci://registry.example.org/faas/manifests"
    assert set(provider["spec"]["filter"]) <= FILTER and provider["spec"]["filter"]["includeTag"] == "^app-.*"
    assert provider["spec"]["secretRef"] == {"name": "regcred"}
    assert set(rset["spec"]) <= RESOURCESET_SPEC
    assert all(set(ref) <= PROVIDER_REF for ref in rset["spec"]["inputsFrom"])
    assert rset["spec"]["inputsFrom"][0]["name"] == provider["metadata"]["name"] == "faas-dev"
    source_obj, kustomization = rset["spec"]["resources"]
    # the OCIRepository follows the moving tag, so a Receiver call picks up a moved tag at once
    assert source_obj["spec"]["ref"] == {"tag": "<< inputs.tag >>"}
    labels = {"faas-deploy/artifact-set": "faas-dev"}
    assert rset["spec"]["commonMetadata"] == {"labels": labels}
    # notification-controller's ReceiverResource: kind in its CRD's enum; name "*" requires matchLabels
    receiver = found["receiver.yaml"]
    assert receiver["spec"]["resources"] == [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                                              "name": "*", "matchLabels": labels}]
    assert receiver["spec"]["type"] == "generic-hmac" and receiver["metadata"]["name"] == "faas-dev"
    assert (
        kustomization["spec"]["wait"] is True
        and kustomization["spec"]["sourceRef"]["name"] == source_obj["metadata"]["name"]
    )


def test_a_set_name_that_cannot_be_a_label_value_is_refused(repo_copy, run_cli, tmp_path):
    """The name is also the value of the label the Receiver matches: a DNS-1123 label or a clear error."""
    out = tmp_path / "flux"
    code, stdout, err = run_cli("--source", str(repo_copy), "artifact-objects", "--env", "dev", "--repository",
                                "oci://registry.example.org/faas/manifests", "--out", str(out), "--name", "Faas_Dev")
    assert code == 1 and "name 'Faas_Dev'" in err and "lowercase letters" in err and "Traceback" not in err
    assert not out.exists()


def test_tag_filter_selects_only_the_moving_tags():
    include, exclude = re.compile(artifacts.INCLUDE_TAG), re.compile(artifacts.EXCLUDE_TAG)
    selected = [t for t in ["app-operator", "app-operator-1.0.3", "app-controller-0.4.1_build.7", "app-x-y",
                            "app-a-2.0.0-rc.1", "1.0.0", "app-controller"]
                if include.search(t) and not exclude.search(t)]
    assert selected == ["app-operator", "app-x-y", "app-controller"]


VALIDATE_JS = """
import { readFileSync } from "node:fs";
import { OCIRepository } from "@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1";
import { Kustomization } from "@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1";
import { Receiver } from "@kubernetes-models/flux-cd/notification.toolkit.fluxcd.io/v1";
const kinds = { OCIRepository, Kustomization, Receiver };
const results = JSON.parse(readFileSync(0, "utf8")).map((obj) => {
  try { new kinds[obj.kind](obj).validate(); return "ok"; } catch (e) { return String(e.message || e); }
});
console.log(JSON.stringify(results));
"""


def flux_cd_validate(objs: list[dict]) -> list[str]:
    if not (NODE_MODULES / "@kubernetes-models" / "flux-cd").is_dir():
        pytest.fail("@kubernetes-models/flux-cd is required: run bash .ci/setup")
    script = NODE_MODULES.parent / "validate-flux-objects.mjs"
    script.write_text(VALIDATE_JS)
    try:
        done = subprocess.run(["node", str(script)], input=json.dumps(objs), capture_output=True, text=True, check=True)
    finally:
        script.unlink()
    return json.loads(done.stdout)


def test_flux_objects_against_the_flux_crd_schemas(repo_copy, run_cli, tmp_path):
    found = objects(repo_copy, run_cli, tmp_path / "flux", "--plain-http")
    # The ResourceSet's resources as the Flux Operator renders them for one input.
    text = json.dumps(found["resourceset.yaml"]["spec"]["resources"])
    text = text.replace("<< inputs.digest >>", "sha256:" + "0" * 64).replace("<< inputs.tag >>", "app-operator")
    rendered = json.loads(text)
    assert "<<" not in text
    # The Receiver as written: its resource kind is one of the schema's (notification-controller's enum).
    receiver = copy.deepcopy(found["receiver.yaml"])
    assert flux_cd_validate([*rendered, receiver]) == ["ok", "ok", "ok"]
    # The check bites: a mutated object is refused.
    broken = copy.deepcopy(rendered[1])
    broken["spec"]["wait"] = "yes"
    del receiver["spec"]["type"]
    assert [r != "ok" for r in flux_cd_validate([broken, receiver])] == [True, True]


def test_revision_from_git(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", "-b", "feature-x"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "https://user:secret@git.example.org/faas.git"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert artifacts.git_revision(repo) == (f"feature-x@sha1:{sha}", "https://git.example.org/faas.git")
    assert artifacts.git_revision(tmp_path / "nowhere") == ("", "")


def test_wrong_credentials_fail_cleanly_without_the_password(registry, repo_copy, run_cli, monkeypatch):
    wrong = "wrong-" + registry.password[::-1]
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", wrong)
    code, out, err = publish(run_cli, repo_copy, registry)
    assert code == 1 and "credentials" in err and "Traceback" not in err
    assert wrong not in out + err and registry.password not in out + err
    assert writes(registry) == 0


# --------------------------------------------------------------------------- the registry from environment.yaml


def _set_artifact_repository(repo_copy: Path, value: str | None) -> None:
    path = repo_copy / "env" / "dev" / "environment.yaml"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("artifact_repository:")]
    if value is not None:
        lines.append(f"artifact_repository: {value}")
    path.write_text("\n".join(lines) + "\n")


def _without_registry_flag(registry) -> list[str]:
    return flags(registry)[2:]


def test_the_registry_defaults_to_the_environment_settings(registry, repo_copy, run_cli, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    _set_artifact_repository(repo_copy, f"oci://{registry.host}/faas/manifests")
    code, out, err = run_cli("--source", str(repo_copy), "publish-artifact", "--env", "dev", "--component", "operator",
                         *_without_registry_flag(registry), "--revision", REVISION_A, "--source-url", SOURCE_URL)
    assert code == 0, err
    assert f"pushed {registry.host}/faas/manifests:app-operator-" in out
    assert "app-operator" in tags(registry)


def test_the_registry_flag_overrides_the_settings(registry, repo_copy, run_cli, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    _set_artifact_repository(repo_copy, "oci://127.0.0.1:9/nowhere/manifests")
    code, out, err = run_cli("--source", str(repo_copy), "publish-artifact", "--env", "dev", "--component", "operator",
                         *flags(registry), "--revision", REVISION_A, "--source-url", SOURCE_URL)
    assert code == 0, err
    assert f"{registry.host}/faas/manifests:app-operator" in out and "nowhere" not in out + err


def test_no_registry_anywhere_is_a_clear_error_and_nothing_is_pushed(registry, repo_copy, run_cli, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    _set_artifact_repository(repo_copy, None)
    count = writes(registry)
    for verb in (["publish-artifact", "--env", "dev", "--revision", REVISION_A, "--source-url", SOURCE_URL],
                 ["retire-artifact", "--env", "dev", "--component", "gone"]):
        code, out, err = run_cli("--source", str(repo_copy), *verb, *_without_registry_flag(registry))
        assert code == 1 and "Traceback" not in err
        assert "env/dev/environment.yaml: artifact_repository: not set and no --repository given" in err
    assert writes(registry) == count


def test_an_invalid_artifact_repository_names_file_key_and_hint(repo_copy, run_cli):
    _set_artifact_repository(repo_copy, "https://registry.example.org/Manifests")
    code, out, err = run_cli("--source", str(repo_copy), "publish-artifact", "--env", "dev",
                             "--revision", REVISION_A, "--source-url", SOURCE_URL)
    assert code == 1 and "env/dev/environment.yaml" in err and "artifact_repository" in err
    assert "oci://HOST[:PORT]/PATH" in err and "Flux OCI artifacts" in err
