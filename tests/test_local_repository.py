"""The local Helm repository (dist/charts/<env>/): strict index reading, strays never indexed; chart-name collisions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from support.repo_tree import config_file, copy_repo, get_scalar, set_scalar


@pytest.mark.parametrize(
    "content", [b"entries: []\n", b"\x00\xff\xfe binary", b"entries: {faas-operator: 3}\n", b"[1, 2]\n", b"a: [\n"]
)
def test_a_broken_index_is_a_clear_error(tmp_path, run_cli, content):
    source = copy_repo(tmp_path / "src")
    charts = source / "dist" / "charts" / "dev"
    charts.mkdir(parents=True)
    (charts / "index.yaml").write_bytes(content)
    for verb in (["publish", "--env", "dev", "--component", "operator"], ["release", "--env", "dev"]):
        code, out, err = run_cli("--source", str(source), *verb)
        assert code == 1 and "Traceback" not in err and "index.yaml: not a Helm repository index" in err, err
    assert (charts / "index.yaml").read_bytes() == content
    assert sorted(p.name for p in charts.iterdir() if not p.name.startswith(".")) == ["index.yaml"]


def test_a_stray_package_is_never_indexed(tmp_path, run_cli):
    source = copy_repo(tmp_path / "src")
    charts = source / "dist" / "charts" / "dev"
    charts.mkdir(parents=True)
    name = get_scalar(config_file(source, "dev", "operator"), "chart_name")
    (charts / f"{name}-9.9.9.tgz").write_bytes(b"left by a killed run")
    code, out, err = run_cli("--source", str(source), "publish", "--env", "dev", "--component", "operator")
    assert code == 0 and out.startswith("pushed "), err
    index = yaml.safe_load((charts / "index.yaml").read_text())
    assert [e["version"] for e in index["entries"][name]] == [
        get_scalar(config_file(source, "dev", "operator"), "chart_version")
    ]
    assert not list(charts.glob("*.partial")) and not list(charts.glob(".faas-index-*"))


@pytest.mark.parametrize("verb", [
    ["check", "--env", "dev"], ["release", "--env", "dev"], ["publish", "--env", "dev", "--component", "operator"],
])
def test_two_components_may_not_share_a_chart_name(tmp_path, run_cli, verb):
    source = copy_repo(tmp_path / "src")
    controller = get_scalar(config_file(source, "dev", "controller"), "chart_name")
    set_scalar(config_file(source, "dev", "operator"), "chart_name", controller)
    code, out, err = run_cli("--source", str(source), *verb)
    assert code == 1 and "Traceback" not in err
    assert "env/dev/operator/cookiecutter-config.yaml" in err and "env/dev/controller/cookiecutter-config.yaml" in err
    assert "chart_name" in err
    assert not (source / "dist" / "charts" / "dev" / "index.yaml").exists()


@pytest.mark.parametrize("damage", ["deleted", "altered"])
def test_an_indexed_package_missing_or_altered_is_written_again(tmp_path, run_cli, damage):
    """The index alone is not the truth: a listed version whose file is gone or changed is not ``unchanged``."""
    source = copy_repo(tmp_path / "src")
    charts = source / "dist" / "charts" / "dev"
    argv = ["--source", str(source), "publish", "--env", "dev", "--component", "operator"]
    code, out, err = run_cli(*argv)
    assert code == 0 and out.startswith("pushed "), err
    package = Path(out.split()[1].rsplit("@", 1)[0])
    original, index = package.read_bytes(), (charts / "index.yaml").read_bytes()
    if damage == "deleted":
        package.unlink()
    else:
        package.write_bytes(b"not the published package")
    code, out, err = run_cli(*argv)
    assert code == 0 and out.startswith(f"pushed {package}@"), (out, err)
    assert package.read_bytes() == original and (charts / "index.yaml").read_bytes() == index
    code, out, err = run_cli(*argv)
    assert code == 0 and out.startswith(f"unchanged {package}@"), (out, err)


def test_an_indexed_package_with_other_content_under_its_version_is_still_refused(tmp_path, run_cli):
    source = copy_repo(tmp_path / "src")
    argv = ["--source", str(source), "publish", "--env", "dev", "--component", "operator"]
    code, out, err = run_cli(*argv)
    assert code == 0, err
    package = Path(out.split()[1].rsplit("@", 1)[0])
    package.unlink()
    set_scalar(config_file(source, "dev", "operator"), "chart_description", "other content, same version")
    code, out, err = run_cli(*argv)
    assert code == 1 and "already published with other content" in err and not package.exists(), err


def test_the_index_update_keeps_every_entry_and_orders_versions_newest_first(tmp_path, run_cli):
    source = copy_repo(tmp_path / "src")
    path = config_file(source, "dev", "operator")
    name = get_scalar(path, "chart_name")
    versions = ["1.0.0", "1.2.0", "1.10.0"]
    for version in versions:
        set_scalar(path, "chart_version", version)
        code, out, err = run_cli("--source", str(source), "publish", "--env", "dev", "--component", "operator")
        assert code == 0 and out.startswith("pushed "), err
    index = yaml.safe_load((source / "dist" / "charts" / "dev" / "index.yaml").read_text())
    entries = index["entries"][name]
    assert [e["version"] for e in entries] == ["1.10.0", "1.2.0", "1.0.0"]
    for entry in entries:
        assert entry["urls"] == [f"{name}-{entry['version']}.tgz"] and len(entry["digest"]) == 64
        assert entry["name"] == name and entry["apiVersion"] and entry["created"].endswith("Z")
    assert index["apiVersion"] == "v1" and index["generated"].endswith("Z")


@pytest.fixture
def served_charts(tmp_path):
    """``src/dist/charts/dev`` served over HTTP on 127.0.0.1, as a Helm repository host; yields (source, url)."""
    import functools
    import http.server
    import threading

    source = copy_repo(tmp_path / "src")
    charts = source / "dist" / "charts" / "dev"
    charts.mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(charts))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield source, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_helm_reads_the_index_through_incremental_updates_and_a_foreign_index(served_charts, run_cli):
    import helm_python

    source, url = served_charts
    charts = source / "dist" / "charts" / "dev"
    path = config_file(source, "dev", "operator")
    name = get_scalar(path, "chart_name")
    # A foreign index (as helm repo index writes it: block YAML) listing another chart.
    (charts / "index.yaml").write_text(
        "apiVersion: v1\nentries:\n  other:\n  - apiVersion: v2\n    name: other\n    version: 0.1.0\n"
        "    digest: " + "0" * 64 + "\n    urls:\n    - other-0.1.0.tgz\n    created: \"2020-01-01T00:00:00Z\"\n"
        "generated: \"2020-01-01T00:00:00Z\"\n")
    for version in ["2.0.0", "2.0.1", "2.1.0"]:
        set_scalar(path, "chart_version", version)
        code, out, err = run_cli("--source", str(source), "publish", "--env", "dev", "--component", "operator")
        assert code == 0 and out.startswith("pushed "), err
    index = helm_python.repo_index(url)
    assert [e["version"] for e in index["entries"][name]] == ["2.1.0", "2.0.1", "2.0.0"]
    assert [e["version"] for e in index["entries"]["other"]] == ["0.1.0"]
    pulled = charts.parent / "pulled"
    pulled.mkdir()
    helm_python.pull(name, repo_url=url, version="2.0.1", destination=str(pulled))
    assert (pulled / f"{name}-2.0.1.tgz").read_bytes() == (charts / f"{name}-2.0.1.tgz").read_bytes()


def test_a_hand_edit_of_an_index_this_project_wrote_is_read_in_full_again(tmp_path, run_cli):
    source = copy_repo(tmp_path / "src")
    charts = source / "dist" / "charts" / "dev"
    argv = ["--source", str(source), "publish", "--env", "dev", "--component", "operator"]
    code, out, err = run_cli(*argv)
    assert code == 0, err
    index = charts / "index.yaml"
    index.write_text(index.read_text().replace('"entries":', "entries:").replace("entries:", "entries: [", 1))
    set_scalar(config_file(source, "dev", "operator"), "chart_version", "5.0.0")
    code, out, err = run_cli(*argv)
    assert code == 1 and "index.yaml: not a Helm repository index" in err and "Traceback" not in err, err
