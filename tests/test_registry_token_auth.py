"""Publishing charts to a registry that delegates auth to a token service (``Bearer`` challenges).

The registry (fixture ``token_registry``, from ``support/token_service.py``) is the real Debian ``docker-registry``
(distribution 2.8) configured with ``auth.token``; the token service is a real HTTP server on 127.0.0.1 speaking the
Docker
token protocol (https://distribution.github.io/distribution/spec/auth/token/ and
``jwt.md`` beside it): ``GET realm?service=S&scope=repository:NAME:pull,push`` with HTTP
Basic credentials, answered with a JWT the registry verifies through the ``x5c``
certificate chain against its ``rootcertbundle``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import helm_python
import httpx
import pytest

from faas_deployment.cli import main
from support.registry_process import Registry
from support.repo_tree import config_file, get_scalar


def release(capsys: pytest.CaptureFixture[str], repo_copy: Path, registry: Registry) -> tuple[int, str, str]:
    code = main([
        "--source", str(repo_copy), "release", "--env", "dev",
        "--registry", f"oci://{registry.host}/charts",
        "--username", registry.username,
        "--password", "env:TEST_REGISTRY_PASSWORD",
        "--plain-http",
    ])
    out, err = capsys.readouterr()
    return code, out, err


def test_registry_answers_with_a_bearer_challenge(token_registry):
    registry, service = token_registry
    answer = httpx.get(f"{registry.url}/v2/", timeout=5)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith(f'Bearer realm="{service.realm}"')
    # And the registry accepts this service's tokens.
    token = service.token("registry:catalog:*")
    assert httpx.get(f"{registry.url}/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200


def test_release_through_a_token_service(token_registry, repo_copy, capsys, monkeypatch):
    registry, service = token_registry
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    charts = {
        c: (
            get_scalar(config_file(repo_copy, "dev", c), "chart_name"),
            get_scalar(config_file(repo_copy, "dev", c), "chart_version"),
        )
        for c in ("operator", "controller")
    }

    code, out, err = release(capsys, repo_copy, registry)
    assert code == 0, err
    lines = out.splitlines()
    assert sorted(line.split("@")[0] for line in lines) == sorted(
        f"pushed {registry.host}/charts/{name}:{version}" for name, version in charts.values()
    )
    assert registry.password not in out + err

    # The token flow was really used: tokens were asked for, with the user's credentials, and
    # push access was asked for (and so granted) on each chart repository.
    # One token per scope the registry's challenges named (pull to list and resolve,
    # pull,push to upload, delete to drop the publish lease), none asked twice, each with the user's credentials.
    granted = [r for r in service.requests if r.status == 200]
    assert all(r.username == "ci" for r in granted)
    def normalised(scope: str) -> str:  # the registry names a challenge's actions in no fixed order
        resource, _, actions = scope.rpartition(":")
        return f"{resource}:{','.join(sorted(actions.split(',')))}"

    scopes = sorted(normalised(s) for r in granted for s in r.scopes)
    assert scopes == sorted(
        f"repository:charts/{name}:{actions}"
        for name, _ in charts.values()
        for actions in ("pull", "pull,push", "delete")
    ), service.requests
    # The registry served the requests to the token's subject.
    assert "auth.user.name=ci" in registry.log_text()

    # An independent client sees exactly the pushed tags: plain HTTP with a token of its own.
    for name, version in charts.values():
        token = service.token(f"repository:charts/{name}:pull")
        answer = httpx.get(
            f"{registry.url}/v2/charts/{name}/tags/list", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert answer.status_code == 200 and answer.json()["tags"] == [version]
        digest = next(line.split("@")[1] for line in lines if f"/charts/{name}:" in line)
        manifest = httpx.head(
            f"{registry.url}/v2/charts/{name}/manifests/{version}",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.oci.image.manifest.v1+json"},
            timeout=5,
        )
        assert manifest.headers["Docker-Content-Digest"] == digest

    # Helm, with its own token client, pulls what was pushed.
    helm = helm_python.RegistryClient(plain_http=True, credentials_file=str(repo_copy / "helm-credentials.json"))
    helm.login(registry.host, registry.username, registry.password, plain_http=True)
    for name, version in charts.values():
        assert helm.tags(f"oci://{registry.host}/charts/{name}") == [version]

    # Again: nothing to push, and no blob upload started.
    uploads = registry.blob_uploads()
    code, out, err = release(capsys, repo_copy, registry)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["unchanged", "unchanged"]
    assert registry.blob_uploads() == uploads

    # The password never travelled in a URL.
    assert service.requests and all(registry.password not in r.target for r in service.requests)


def run_installed_cli(
    repo_copy: Path, registry: Registry, username: str, password: str
) -> subprocess.CompletedProcess[str]:
    """The installed ``faas-deploy`` as a user runs it: its real stdout and stderr."""
    env = {**os.environ, "TEST_REGISTRY_PASSWORD": password}
    return subprocess.run(
        [
            sys.executable, "-m", "faas_deployment.cli", "--source", str(repo_copy), "release", "--env", "dev",
            "--registry", f"oci://{registry.host}/charts", "--username", username,
            "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http",
        ],
        env=env, capture_output=True, text=True, timeout=60,
    )


def error_lines(stderr: str) -> list[str]:
    """stderr less the progress lines: what the user is told went wrong."""
    return [line for line in stderr.splitlines() if line and not line.startswith("[faas-deploy]")]


def test_wrong_password_is_refused_by_the_token_service(token_registry, repo_copy):
    registry, service = token_registry
    wrong = "wrong-" + registry.password[::-1]
    result = run_installed_cli(repo_copy, registry, registry.username, wrong)
    assert result.returncode == 1 and result.stdout == ""
    errors = error_lines(result.stderr)
    # One line per chart, each naming the registry, what was being done and what to check;
    # nothing else (no traceback, no library log line).
    assert len(errors) == 2, result.stderr
    for line in errors:
        assert registry.host in line and "token service refused the credentials" in line
        assert "check --username and --password" in line
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr and registry.password not in result.stderr
    refused = [r for r in service.requests if r.status == 401]
    assert refused and all(r.username == "ci" for r in refused)
    assert not [r for r in service.requests if r.status == 200]
    assert all(wrong not in r.target for r in service.requests)
    assert registry.blob_uploads() == 0


def test_pull_only_credentials_cannot_push(token_registry, repo_copy, capsys, monkeypatch):
    registry, service = token_registry
    service.readers["reader"] = reader_password = "ro-" + os.urandom(9).hex()
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", reader_password)
    code = main([
        "--source", str(repo_copy), "release", "--env", "dev",
        "--registry", f"oci://{registry.host}/charts",
        "--username", "reader",
        "--password", "env:TEST_REGISTRY_PASSWORD",
        "--plain-http",
    ])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    errors = error_lines(err)
    assert len(errors) == 2, err
    for line in errors:
        assert registry.host in line and "push not allowed with these credentials" in line, line
    assert "Traceback" not in err and reader_password not in err
    # The reader did get tokens (listing tags is allowed), and asked for push as the upload needed.
    granted = [r for r in service.requests if r.status == 200]
    assert granted and all(r.username == "reader" for r in granted)
    # (The registry names a challenge's actions in no fixed order: compare them as a set.)
    assert any({"pull", "push"} <= set(s.rpartition(":")[2].split(",")) for r in granted for s in r.scopes)
    # Nothing was tagged.
    token = service.token("repository:charts/faas-operator:pull")
    listing = httpx.get(
        f"{registry.url}/v2/charts/faas-operator/tags/list", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert listing.status_code == 404


def test_release_checks_images_through_the_token_service(token_registry, repo_copy, capsys, monkeypatch):
    """The release's image check answers the registry's Bearer challenge with a pull-scoped token."""
    from support.image_push import push_image_manifest
    from support.repo_tree import set_scalar

    registry, service = token_registry
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    tags = {}
    for component in ("operator", "controller"):
        set_scalar(config_file(repo_copy, "dev", component), "image_repository", f"{registry.host}/faas/{component}")
        tags[component] = get_scalar(config_file(repo_copy, "dev", component), "image_tag")
    token = service.token("repository:faas/controller:pull,push")
    digest = push_image_manifest(registry, "faas/controller", tags["controller"], token=token)

    code, out, err = release(capsys, repo_copy, registry)
    assert code == 1 and out == ""
    assert f"the image {registry.host}/faas/operator:{tags['operator']} does not exist" in err
    assert f"image {registry.host}/faas/controller:{tags['controller']}: present ({digest})" in err
    asked = {scope for r in service.requests if r.status == 200 and r.username == "ci" for scope in r.scopes}
    assert {"repository:faas/operator:pull", "repository:faas/controller:pull"} <= asked
    assert registry.password not in out + err
