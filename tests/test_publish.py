"""Publishing charts: real docker-registry on 127.0.0.1, the real Helm engine, a real HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import helm_python
import pytest
import semver
import yaml

from support.repo_tree import config_file, get_scalar, set_scalar


def oci_flags(registry) -> list[str]:
    return [
        "--registry", f"oci://{registry.host}/charts",
        "--username", registry.username,
        "--password", "env:TEST_REGISTRY_PASSWORD",
        "--plain-http",
    ]


@pytest.fixture
def helm_client(registry, tmp_path):
    """An independent client of the registry: Helm's own, logged in with a private credentials file."""
    client = helm_python.RegistryClient(plain_http=True, credentials_file=str(tmp_path / "helm-credentials.json"))
    client.login(registry.host, registry.username, registry.password, plain_http=True)
    return client


def chart_names(repo_copy: Path, env: str) -> dict[str, str]:
    return {
        c: get_scalar(config_file(repo_copy, env, c), "chart_name")
        for c in ("operator", "controller")
    }


def test_release_push_unchanged_bump_and_refusals(registry, helm_client, repo_copy, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    names = chart_names(repo_copy, "dev")

    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev", *oci_flags(registry))
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith("pushed ") for line in lines)
    for component, name in names.items():
        version = get_scalar(config_file(repo_copy, "dev", component), "chart_version")
        ref = f"oci://{registry.host}/charts/{name}"
        assert helm_client.tags(ref) == [version]
        digest = helm_client.resolve(f"{ref}:{version}")["digest"]
        assert f"pushed {registry.host}/charts/{name}:{version}@{digest}" in lines
        # Helm pulls what was pushed and renders it.
        dest = tmp_path / "pulled" / component
        dest.mkdir(parents=True)
        helm_client.pull(ref, version=version, destination=str(dest), plain_http=True)
        rendered = helm_python.Chart.load(str(dest / f"{name}-{version}.tgz")).render({}, name=name, namespace="faas")
        kinds = {
            yaml.safe_load(text)["kind"] for path, text in rendered.items() if path.endswith(".yaml") and text.strip()
        }
        assert {"Deployment", "Service"} <= kinds
    assert registry.password not in out + err

    # Re-running without a bump changes nothing and uploads no blob.
    uploads = registry.blob_uploads()
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev", *oci_flags(registry))
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["unchanged", "unchanged"]
    assert registry.blob_uploads() == uploads

    # Bumping one chart_version publishes exactly one new version.
    operator_cfg = config_file(repo_copy, "dev", "operator")
    old = get_scalar(operator_cfg, "chart_version")
    new = str(semver.Version.parse(old).bump_patch())
    set_scalar(operator_cfg, "chart_version", new)
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev", *oci_flags(registry))
    assert code == 0, err
    outcomes = sorted(line.split()[0] for line in out.splitlines())
    assert outcomes == ["pushed", "unchanged"]
    assert helm_client.tags(f"oci://{registry.host}/charts/{names['operator']}") == [new, old]
    assert helm_client.tags(f"oci://{registry.host}/charts/{names['controller']}") == [
        get_scalar(config_file(repo_copy, "dev", "controller"), "chart_version")
    ]

    # Changed content under a published version is refused, naming the file and the key.
    set_scalar(operator_cfg, "image_tag", "changed-without-bump")
    uploads = registry.blob_uploads()
    code, out, err = run_cli(
        "--source", str(repo_copy), "publish", "--env", "dev", "--component", "operator", *oci_flags(registry)
    )
    assert code == 1 and out == ""
    assert "env/dev/operator/cookiecutter-config.yaml: chart_version" in err and "bump" in err
    assert "Traceback" not in err
    assert registry.blob_uploads() == uploads

    # check --registry refuses the same change without pushing.
    code, out, err = run_cli("--source", str(repo_copy), "check", "--env", "dev", *oci_flags(registry))
    assert code == 1 and "bump chart_version" in err

    # A version lower than the highest published is refused.
    set_scalar(operator_cfg, "chart_version", "0.0.1")
    code, out, err = run_cli(
        "--source", str(repo_copy), "publish", "--env", "dev", "--component", "operator", *oci_flags(registry)
    )
    assert code == 1 and "lower than the highest published version" in err
    assert helm_client.tags(f"oci://{registry.host}/charts/{names['operator']}") == [new, old]
    assert registry.password not in out + err


def test_wrong_credentials_fail_cleanly_without_the_password(registry, repo_copy, run_cli, monkeypatch):
    wrong = "wrong-" + registry.password[::-1]
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", wrong)
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev", *oci_flags(registry))
    assert code == 1 and out == ""
    assert "401" in err and "credentials" in err
    assert wrong not in err and registry.password not in err
    assert "Traceback" not in err


def test_invalid_config_pushes_nothing(registry, helm_client, repo_copy, run_cli, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    set_scalar(config_file(repo_copy, "dev", "controller"), "chart_version", "not-a-version")
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev", *oci_flags(registry))
    assert code == 1 and out == ""
    assert "env/dev/controller/cookiecutter-config.yaml: default_context.chart_version" in err
    assert registry.blob_uploads() == 0
    name = get_scalar(config_file(repo_copy, "dev", "operator"), "chart_name")
    with pytest.raises(helm_python.HelmRegistryError):
        helm_client.tags(f"oci://{registry.host}/charts/{name}")


def test_unknown_env_and_component_are_named(repo_copy, run_cli):
    code, _, err = run_cli("--source", str(repo_copy), "release", "--env", "staging")
    assert code == 1 and "staging" in err and "dev" in err and "prod" in err
    code, _, err = run_cli("--source", str(repo_copy), "publish", "--env", "dev", "--component", "gateway")
    assert code == 1 and "gateway" in err and "operator" in err


@pytest.fixture
def http_root(tmp_path):
    """Serve a directory over HTTP on 127.0.0.1 (a Helm repository host)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_embedded_default_local_helm_repository(repo_copy, run_cli, http_root, tmp_path):
    charts = repo_copy / "dist" / "charts" / "dev"
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["pushed", "pushed"]
    names = chart_names(repo_copy, "dev")
    versions = {c: get_scalar(config_file(repo_copy, "dev", c), "chart_version") for c in names}
    assert sorted(p.name for p in charts.glob("*.tgz")) == sorted(f"{names[c]}-{versions[c]}.tgz" for c in names)
    before = snapshot(charts)

    # Helm accepts the index: serve the directory and pull through it like a classic repository.
    served, url = http_root
    for path in charts.iterdir():
        (served / path.name).write_bytes(path.read_bytes())
    index = helm_python.repo_index(url)
    assert set(index["entries"]) == set(names.values())
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    helm_python.pull(names["controller"], repo_url=url, version=versions["controller"], destination=str(pulled))
    assert (pulled / f"{names['controller']}-{versions['controller']}.tgz").read_bytes() == before[
        f"{names['controller']}-{versions['controller']}.tgz"
    ]

    # Again: unchanged, and the directory is byte for byte the same (index.yaml included).
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["unchanged", "unchanged"]
    assert snapshot(charts) == before

    # One bump: exactly one new package and index entry, earlier entries kept.
    cfg = config_file(repo_copy, "dev", "controller")
    bumped = str(semver.Version.parse(versions["controller"]).bump_minor())
    set_scalar(cfg, "chart_version", bumped)
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev")
    assert code == 0 and sorted(line.split()[0] for line in out.splitlines()) == ["pushed", "unchanged"]
    assert len(list(charts.glob("*.tgz"))) == 3
    entries = yaml.safe_load((charts / "index.yaml").read_text())["entries"]
    assert sorted(e["version"] for e in entries[names["controller"]]) == sorted([versions["controller"], bumped])
    assert len(entries[names["operator"]]) == 1

    # Content change without a bump is refused here too.
    set_scalar(cfg, "image_tag", "other")
    code, out, err = run_cli("--source", str(repo_copy), "publish", "--env", "dev", "--component", "controller")
    assert code == 1 and "bump chart_version" in err


def test_package_is_byte_identical_and_helm_renders_it(repo_copy, run_cli, tmp_path, monkeypatch):
    outs = []
    for i in range(2):
        code, out, err = run_cli(
            "--source",
            str(repo_copy),
            "package",
            "--env",
            "prod",
            "--component",
            "operator",
            "--out",
            str(tmp_path / f"o{i}"),
        )
        assert code == 0, err
        outs.append(Path(out.strip()))
    assert outs[0].name == outs[1].name and outs[0].read_bytes() == outs[1].read_bytes()
    rendered = helm_python.Chart.load(str(outs[0])).render({}, name="op", namespace="faas")
    assert any("PersistentVolumeClaim" in text for text in rendered.values())
    # The fixed mtime is what makes it reproducible: another SOURCE_DATE_EPOCH gives other bytes.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    code, out, _ = run_cli(
        "--source", str(repo_copy), "package", "--env", "prod", "--component", "operator", "--out", str(tmp_path / "o3")
    )
    assert code == 0 and Path(out.strip()).read_bytes() != outs[0].read_bytes()
