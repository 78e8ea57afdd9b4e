"""Registry access: credentials (both or neither), --registry forms, TLS with a private CA, retries announced.

Against the real registry (htpasswd auth), reached directly or through the loopback
proxy of ``tests/support`` (plain, or HTTPS with a self-signed certificate).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import SecretValue
from faas_deployment.images import buildah
from faas_deployment.registry.credentials import RegistryCredentials, check_pair
from support.registry_proxy import registry_proxy
from support.repo_tree import copy_repo
from support.tls import self_signed


@pytest.fixture
def source(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    return copy_repo(tmp_path / "src")


def publish(run_cli, source, root: str, *extra: str) -> tuple[int, str, str]:
    return run_cli("--source", str(source), "publish", "--env", "dev", "--component", "operator",
               "--registry", root, *extra)


# ------------------------------------------------------------------ credentials


@pytest.mark.parametrize("flags", [
    [],                                          # no credentials at all
], ids=["no-credentials"])
def test_a_registry_that_needs_credentials_says_so(registry, source, run_cli, flags):
    code, out, err = publish(run_cli, source, f"oci://{registry.host}/charts", "--plain-http", *flags)
    assert code == 1 and out == ""
    assert "Traceback" not in err and "_basic_auth" not in err, err
    assert f"registry {registry.host}: the registry needs credentials: pass --username and --password" in err, err


@pytest.mark.parametrize(("flags", "message"), [
    (["--username", "ci"], "--username given without --password"),
    (["--password", "env:TEST_REGISTRY_PASSWORD"], "--password given without --username"),
])
def test_username_and_password_go_together(registry, source, run_cli, flags, message):
    code, out, err = publish(run_cli, source, f"oci://{registry.host}/charts", "--plain-http", *flags)
    assert code == 1 and out == "" and "Traceback" not in err
    assert f"--username and --password go together: {message}" in err, err
    assert registry.password not in err


@pytest.mark.parametrize(("username", "password", "expected"), [
    (None, None, False), ("", None, False), ("ci", SecretValue("s", "t"), True),
])
def test_check_pair_accepts_both_or_neither(username, password, expected):
    assert check_pair(username, password) is expected


@pytest.mark.parametrize(
    ("username", "password"), [("ci", None), (None, SecretValue("s", "t")), ("", SecretValue("s", "t"))]
)
def test_check_pair_refuses_one_alone(username, password):
    with pytest.raises(UserError, match="go together"):
        check_pair(username, password)
    with pytest.raises(UserError, match="go together"):
        RegistryCredentials.from_flags(username, password)


def test_credentials_never_show_the_password():
    credentials = RegistryCredentials("ci", SecretValue("s3cret-value", "env:X"))
    assert "s3cret-value" not in repr(credentials) + str(credentials) + f"{credentials}"
    assert RegistryCredentials.from_flags(None, None) is None


def test_image_publishing_takes_the_same_credentials_value(tmp_path):
    # publish_image has no username/password of its own: only the one value, checked where it is made.
    with pytest.raises(TypeError):
        buildah.publish_image(tmp_path, repository="127.0.0.1:1/x/y", tag="t", username="ci")  # type: ignore[call-arg]


# ------------------------------------------------------------------ --registry forms


def test_an_empty_registry_is_refused_not_the_local_repository(source, run_cli):
    code, out, err = run_cli("--source", str(source), "release", "--env", "dev", "--registry", "",
                         "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD")
    assert code == 1 and out == "" and "Traceback" not in err
    assert "--registry: empty" in err, err
    assert not (source / "dist").exists()


@pytest.mark.parametrize("flags", [("--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD"),
                                   ("--immutable-tags",)], ids=["credentials", "immutable-tags"])
def test_registry_flags_without_a_registry_are_refused(source, run_cli, flags):
    code, out, err = run_cli("--source", str(source), "release", "--env", "dev", *flags)
    assert code == 1 and out == "" and "are for a registry" in err, err
    assert not (source / "dist").exists()


@pytest.mark.parametrize("root", ["oci://{host}/Charts", "oci://{host}/charts/Faas", "oci://{host}/charts//x",
                                  "oci://{host}/-charts", "oci://bad host/charts"])
def test_a_repository_path_helm_cannot_pull_is_refused_before_any_push(registry, source, run_cli, root):
    code, out, err = publish(run_cli, source, root.format(host=registry.host), "--plain-http",
                             "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD")
    assert code == 1 and out == "" and "Traceback" not in err
    assert "--registry:" in err, err
    assert registry.blob_uploads() == 0


# ------------------------------------------------------------------ TLS and --ca-file


@pytest.fixture
def tls_registry(registry, tmp_path):
    """The registry behind an HTTPS proxy whose certificate is self-signed; yields (host, faults, cert file)."""
    cert, key = self_signed(tmp_path)
    with registry_proxy(registry.url, tls=(cert, key)) as (host, faults):
        yield host, faults, cert


def test_an_untrusted_certificate_fails_at_once_with_its_cause(tls_registry, source, run_cli):
    host, faults, _ = tls_registry
    started = time.monotonic()
    code, out, err = publish(run_cli, source, f"oci://{host}/charts",
                             "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD")
    elapsed = time.monotonic() - started
    assert code == 1 and out == "" and "Traceback" not in err
    assert "certificate verify failed: self-signed certificate" in err, err
    assert "--ca-file" in err and "--plain-http" not in err and "attempt 2" not in err, err
    assert elapsed < 2.5  # no retries (they took about 9 s)


def test_a_plain_http_registry_reached_over_tls_says_so(registry, source, run_cli):
    code, out, err = publish(run_cli, source, f"oci://{registry.host}/charts",
                             "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD")
    assert code == 1 and "Traceback" not in err
    assert "TLS failed" in err and "--plain-http" in err and "attempt 2" not in err, err


def test_ca_file_lets_charts_and_artifacts_through_a_private_ca(tls_registry, source, registry, run_cli):
    host, faults, cert = tls_registry
    code, out, err = publish(run_cli, source, f"oci://{host}/charts", "--ca-file", str(cert),
                             "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD")
    assert code == 0 and out.startswith(f"pushed {host}/charts/"), err
    code, out, err = run_cli("--source", str(source), "publish-artifact", "--env", "dev", "--component", "operator",
                         "--registry", f"oci://{host}/faas/apps", "--ca-file", str(cert),
                         "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD",
                         "--revision", f"main@sha1:{'0' * 40}", "--source-url", "https://gitlab.example.org/faas/deploy")
    assert code == 0 and "app-operator" in out, err


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_a_bad_ca_file_is_a_clear_error(registry, source, run_cli, tmp_path, content):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    code, out, err = publish(run_cli, source, f"oci://{registry.host}/charts", "--ca-file", str(path),
                             "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD")
    assert code == 1 and "Traceback" not in err and f"--ca-file {path}:" in err, err


def test_ca_file_lets_buildah_push_an_image_through_a_private_ca(tls_registry, registry, tmp_path):
    host, faults, cert = tls_registry
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY out.txt /out.txt\n")
    (context / "out.txt").write_text("built\n")
    credentials = RegistryCredentials(registry.username, SecretValue(registry.password, "env:X"))
    # without the CA the tag check before the push refuses the certificate, with its cause and the hint
    with pytest.raises(UserError, match="(?s)certificate verify failed.*--ca-file"):
        buildah.publish_image(context, repository=f"{host}/faas/ca", tag="a1", credentials=credentials, timeout=60)
    published = buildah.publish_image(context, repository=f"{host}/faas/ca", tag="a1", credentials=credentials,
                                      ca_file=cert, timeout=60)
    assert published.reference == f"{host}/faas/ca:a1" and published.digest.startswith("sha256:")
    inspected = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds", f"{registry.username}:{registry.password}",
         "--format", "{{.Digest}}", f"docker://{registry.host}/faas/ca:a1"],
        capture_output=True, text=True, check=True,
    )
    assert inspected.stdout.strip() == published.digest


# ------------------------------------------------------------------ retries


def test_each_retry_is_announced(registry, source, run_cli):
    with registry_proxy(registry.url) as (host, faults):
        faults.plan = ["503", "503"]
        code, out, err = publish(run_cli, source, f"oci://{host}/charts", "--plain-http",
                                 "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "; attempt " in line]
    assert len(lines) == 2, err
    assert lines[0].startswith(f"[faas-deploy] registry {host}: GET /v2/: HTTP 503 from the registry; attempt 2 in ")
    assert lines[1].endswith(" s") and "attempt 3 in " in lines[1]
    assert registry.password not in err


def test_access_given_for_a_host_reaches_that_host_only():
    """``Registry.host`` (Dagger's ``with-registry --address``): the flags stay for that ``host[:port]``
    (host without case, the port part of the name); another registry, or a malformed URL, gets none."""
    from faas_deployment.core.secrets import SecretValue
    from faas_deployment.door import Registry

    given = Registry("oci://registry.example.org/charts", "ci", SecretValue("pw-0123", "test"), plain_http=True,
                     ca_file="ca.pem", host="Registry.Example.org")
    assert given.for_url("oci://registry.example.org/charts/dev") is given
    for other in ("oci://registry.example.org:5000/charts", "oci://other.example.org/charts", "registry.example.org"):
        scoped = given.for_url(other)
        assert (scoped.username, scoped.password, scoped.plain_http, scoped.ca_file) == (None, None, False, None)
        assert scoped.registry == given.registry
    per_verb = Registry("oci://x.example.org/c", "ci", SecretValue("pw-0123", "test"))  # the CLI's flags: no host
    assert per_verb.for_url("oci://other.example.org/c") is per_verb
