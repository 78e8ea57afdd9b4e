"""Image tags against the real registry: immutable once published, checked before a release."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from faas_deployment.cli import main
from faas_deployment.core import versions
from faas_deployment.core.deadline import Deadline
from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import SecretValue
from faas_deployment.images import image_tags, images_dagger
from faas_deployment.registry.credentials import RegistryAccess, RegistryCredentials
from support.image_push import OCI_MANIFEST, push_image_manifest
from support.registry_process import start_registry, stop_registry


def access(registry) -> RegistryAccess:
    return RegistryAccess(
        registry.host, RegistryCredentials(registry.username, SecretValue(registry.password, "env:X")), plain_http=True
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ the rule, as a table


@pytest.mark.parametrize(
    ("published", "expected"),
    [(None, "push"), ("sha256:" + "a" * 64, "unchanged"), ("sha256:" + "b" * 64, "refused")],
)
def test_decide_table(published, expected):
    mine = "sha256:" + "a" * 64
    if expected == "refused":
        with pytest.raises(UserError) as caught:
            versions.decide_image("r.example.org/x:1", mine, published)
        assert str(caught.value).startswith(
            f"r.example.org/x:1 is already published with other content ({published}, now {mine}); "
            "an image tag never changes once published")
    else:
        assert versions.decide_image("r.example.org/x:1", mine, published) == expected


def test_credentials_stay_with_their_host():
    mine = RegistryAccess(
        "registry.example.org", RegistryCredentials("ci", SecretValue("s3cret", "env:X")), plain_http=True
    )
    assert mine.for_host("REGISTRY.example.org") is mine
    assert mine.for_host("other.example.org") == RegistryAccess("other.example.org")  # anonymous, TLS
    assert mine.for_host("registry.example.org:5000") == RegistryAccess("registry.example.org:5000")


# ------------------------------------------------------------------ reading tags from the real registry


def test_published_digest_of_docker_and_oci_images(registry):
    docker = push_image_manifest(registry, "faas/controller", "1.0.0")
    oci = push_image_manifest(registry, "faas/controller", "1.0.1", media_type=OCI_MANIFEST)
    top = push_image_manifest(registry, "controller", "2")  # a repository right under the host
    limit = Deadline(30)
    repository = f"{registry.host}/faas/controller"
    # A Docker manifest is answered only to a client that accepts its media type (distribution answers 400 else).
    assert image_tags.published_digest(repository, "1.0.0", access(registry), limit) == docker
    assert image_tags.published_digest(repository, "1.0.1", access(registry), limit) == oci
    assert image_tags.published_digest(f"{registry.host}/controller", "2", access(registry), limit) == top
    assert image_tags.published_digest(repository, "9.9.9", access(registry), limit) is None
    assert image_tags.published_digest(f"{registry.host}/faas/absent", "1", access(registry), limit) is None


# ------------------------------------------------------------------ release: every chart's image exists


@pytest.fixture
def repo(tmp_path: Path, registry, monkeypatch) -> Path:
    """A copy of the repository whose dev images live in the test registry."""
    from support.repo_tree import config_file, copy_repo, set_scalar

    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    source = copy_repo(tmp_path / "deploy")
    for component in ("operator", "controller"):
        set_scalar(config_file(source, "dev", component), "image_repository", f"{registry.host}/faas/{component}")
    return source


def release(capfd, repo: Path, registry, *extra: str) -> tuple[int, str, str]:
    code = main(["--source", str(repo), "release", "--env", "dev", "--registry", f"oci://{registry.host}/charts",
                 "--username", registry.username, "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http", *extra])
    out, err = capfd.readouterr()
    return code, out, err


def image_tag(repo: Path, component: str) -> str:
    from support.repo_tree import config_file, get_scalar

    return get_scalar(config_file(repo, "dev", component), "image_tag")


def chart_tags(registry, name: str) -> int:
    answer = httpx.get(f"{registry.url}/v2/charts/{name}/tags/list", auth=(registry.username, registry.password))
    return answer.status_code


def test_release_refuses_a_missing_image_before_anything_is_pushed(repo, registry, capfd):
    push_image_manifest(registry, "faas/controller", image_tag(repo, "controller"))
    uploads = registry.blob_uploads()
    code, out, err = release(capfd, repo, registry)
    assert code == 1 and out == ""
    missing = f"{registry.host}/faas/operator:{image_tag(repo, 'operator')}"
    assert (f"env/dev/operator/cookiecutter-config.yaml: default_context.image_tag: the image {missing} does not "
            f"exist: its registry answers 404") in err
    assert "env/dev/controller/cookiecutter-config.yaml: default_context.image_tag" not in err
    assert "--skip-image-check" in err and "Traceback" not in err
    assert "check images of dev: ok" not in err  # never said just before the image error
    assert "[faas-deploy] check images of dev: failed, 1 found, 1 missing (" in err
    # Nothing of either chart reached the registry.
    assert registry.blob_uploads() == uploads
    assert chart_tags(registry, "faas-operator") == chart_tags(registry, "faas-controller") == 404


def test_release_with_the_images_present_and_an_unreachable_registry_warned(repo, registry, capfd):
    from support.repo_tree import config_file, set_scalar

    digest = push_image_manifest(registry, "faas/controller", image_tag(repo, "controller"))
    port = closed_port()
    set_scalar(config_file(repo, "dev", "operator"), "image_repository", f"127.0.0.1:{port}/faas/operator")
    code, out, err = release(capfd, repo, registry)
    assert code == 0, err
    assert sorted(line.split(" ", 1)[0] for line in out.splitlines()) == ["pushed", "pushed"]
    controller = f"{registry.host}/faas/controller:{image_tag(repo, 'controller')}"
    assert f"[faas-deploy] image {controller}: present ({digest})" in err
    assert (f"[faas-deploy] WARNING: image 127.0.0.1:{port}/faas/operator:{image_tag(repo, 'operator')} not checked: "
            f"cannot connect to 127.0.0.1:{port}") in err
    assert "[faas-deploy] check images of dev: incomplete, 1 found, 1 not checked (" in err
    assert registry.password not in out + err


def test_skip_image_check_for_air_gapped_registries(repo, registry, capfd):
    code, out, err = release(capfd, repo, registry, "--skip-image-check")
    assert code == 0, err
    assert len(out.splitlines()) == 2 and "image " not in err
    assert "/faas/" not in registry.log_text().split("/v2/charts")[0]  # no image manifest was asked for


def test_an_image_registry_refusing_the_check_gives_a_warning(repo, registry, tmp_path, capfd):
    """The image lives on another registry, which needs credentials the release does not have for it."""
    root = tmp_path / "other"
    root.mkdir()
    proc, other = start_registry(root, "someone", "other-password")
    try:
        from support.repo_tree import config_file, set_scalar

        push_image_manifest(registry, "faas/controller", image_tag(repo, "controller"))
        set_scalar(config_file(repo, "dev", "operator"), "image_repository", f"{other.host}/faas/operator")
        code, out, err = release(capfd, repo, registry)
        other_log = other.log_text()
    finally:
        stop_registry(proc)
    assert code == 0, err
    # TLS by default towards another host: the plain-HTTP test registry cannot be read, which is said, not hidden.
    assert (
        f"WARNING: image {other.host}/faas/operator:{image_tag(repo, 'operator')} not checked: registry {other.host}"
        in err
    )
    assert registry.password not in other_log  # credentials never go to another host


def run(coroutine):
    return asyncio.run(coroutine)


# ------------------------------------------------------------------ the Dagger path: refuse an existing tag


class RecordingEngine:
    """Stands in for the engine's ``Container.publish`` (no engine runs here): records the address, returns
    ``address@digest``."""

    def __init__(self):
        self.published: list[str] = []

    async def publish(self, address: str) -> str:
        self.published.append(address)
        return f"{address}@sha256:{'c' * 64}"


@pytest.fixture
def tls_registry(tmp_path, monkeypatch):
    """The real registry over HTTPS with a CA the client trusts through ``REQUESTS_CA_BUNDLE``."""
    from support.tls import self_signed

    (tmp_path / "tls").mkdir()
    cert, key = self_signed(tmp_path / "tls")
    root = tmp_path / "tls-registry"
    root.mkdir()
    proc, reg = start_registry(root, "ci", "pw-" + "5" * 12, tls=(cert, key))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    try:
        yield reg, cert
    finally:
        stop_registry(proc)


def test_dagger_publish_refuses_an_existing_tag_and_publishes_an_absent_one(tls_registry):
    registry, cert = tls_registry
    existing = push_image_manifest(registry, "faas/controller", "1.0.0", scheme="https", ca_file=cert)
    engine = RecordingEngine()
    secret = SecretValue(registry.password, "dagger secret password")
    with pytest.raises(UserError) as caught:
        run(images_dagger.publish(engine, f"{registry.host}/faas/controller:1.0.0", username="ci", password=secret))
    assert str(caught.value).startswith(f"{registry.host}/faas/controller:1.0.0 already exists ({existing}); "
                                        "an image tag never changes once published")
    assert engine.published == []  # nothing overwritten
    line = run(images_dagger.publish(engine, f"{registry.host}/faas/controller:1.0.1", username="ci", password=secret))
    assert line == f"pushed {registry.host}/faas/controller:1.0.1@sha256:{'c' * 64}"
    assert engine.published == [f"{registry.host}/faas/controller:1.0.1"]


def test_dagger_publish_refuses_when_the_tag_cannot_be_read(tls_registry):
    registry, _ = tls_registry
    engine = RecordingEngine()
    with pytest.raises(UserError, match=r"HTTP 401: credentials refused"):
        run(images_dagger.publish(engine, f"{registry.host}/faas/controller:1.0.0", username="ci",
                                    password=SecretValue("wrong", "dagger secret password")))
    assert engine.published == []


def test_dagger_publish_leaves_an_unreachable_registry_to_the_engine_with_a_warning(capfd):
    engine = RecordingEngine()
    address = f"127.0.0.1:{closed_port()}/faas/controller:1.0.0"
    assert run(images_dagger.publish(engine, address)).startswith(f"pushed {address}@")
    assert f"WARNING: {address} not checked before publishing: cannot connect to" in capfd.readouterr().err

