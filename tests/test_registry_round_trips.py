"""Registry round trips, counted by the loopback proxy in front of the real registry (counts are deterministic).

- a no-op ``release`` of N charts: one probe (the only 401, the auth challenge), then per chart
  one manifest ``HEAD`` and one look at its lease tag (a lease a killed run left goes),
  carrying the credentials; no tag list, no blob upload;
- the first push of a chart: the requests the publishing protocol needs (docs/publishing.md,
  "Round trips"), each named here so a new one is a conscious change; 8 on a registry that
  refuses to overwrite a tag (``--immutable-tags``), where the registry arbitrates.
"""

from __future__ import annotations

import pytest

from faas_deployment.cli import main
from support.registry_proxy import registry_proxy
from support.repo_tree import config_file, copy_repo, get_scalar


@pytest.fixture
def source(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    return copy_repo(tmp_path / "src")


def release(capsys, source, host: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--source", str(source), *argv, "--env", "dev", "--registry", f"oci://{host}/charts",
                 "--username", "ci", "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_no_op_release_costs_two_requests_per_chart_and_one_challenge(registry, source, capsys):
    code, out, err = release(capsys, source, registry.host, "release")
    assert code == 0 and out.count("pushed ") == 2, err
    with registry_proxy(registry.url) as (host, faults):
        code, out, err = release(capsys, source, host, "release")
    assert code == 0 and out.count("unchanged ") == 2, err
    charts = 2
    assert len(faults.log) <= 2 * charts + 1, faults.log
    assert [entry[:3] for entry in faults.log if entry[2] == 401] == [("GET", "/v2/", 401)]
    assert faults.count("HEAD", 200, "/manifests/") == charts
    assert faults.count("GET", 404, "/manifests/lease-") == charts
    assert all(scheme == "Basic" for method, path, status, scheme in faults.log if status != 401)
    assert faults.count(path="/tags/list") == 0 and faults.count(path="/blobs/") == 0


#: The first push of a chart, request by request (docs/publishing.md, "Round trips").
FIRST_PUSH = [
    ("GET", "/v2/", 401),                                  # the auth scheme (the one challenge)
    ("HEAD", "manifests/{v}", 404),                      # the version: absent
    ("GET", "tags/list", 404),                             # the tag list (NAME_UNKNOWN): no higher version
    ("POST", "blobs/uploads/", 202), ("PUT", "blobs/uploads/", 201),  # the chart's config blob
    ("POST", "blobs/uploads/", 202), ("PUT", "blobs/uploads/", 201),  # the chart's layer
    ("GET", "manifests/lease-{v}", 404),                 # the lease: free
    ("PUT", "manifests/lease-{v}", 201),                 # the lease: ours written
    ("GET", "manifests/lease-{v}", 200),                 # the lease: still ours after the settle time
    ("GET", "tags/list", 200),                             # the state again, under the lease
    ("HEAD", "manifests/{v}", 404),
    ("PUT", "manifests/{v}", 201),                       # the version
    ("GET", "manifests/{v}", 200),                       # read back: our digest
    ("DELETE", "manifests/sha256:", 202),                  # the lease released
]


def test_a_first_push_makes_the_requests_of_the_protocol_and_no_more(registry, source, capsys):
    with registry_proxy(registry.url) as (host, faults):
        code, out, err = release(capsys, source, host, "publish", "--component", "operator")
    assert code == 0 and out.startswith("pushed "), err
    version = get_scalar(config_file(source, "dev", "operator"), "chart_version")
    made = [(method, path, status) for method, path, status, _ in faults.log]
    assert len(made) == len(FIRST_PUSH), made
    for (method, path, status), (want_method, want_path, want_status) in zip(made, FIRST_PUSH, strict=True):
        assert (method, status) == (want_method, want_status) and want_path.format(v=version) in path, made
    assert all(scheme == "Basic" for *_, status, scheme in faults.log if status != 401)
    assert registry.blob_uploads() == 2


#: The first push on a registry that refuses overwrites (``--immutable-tags``): no lease, no read-back.
FIRST_PUSH_IMMUTABLE = [
    ("GET", "/v2/", 401),                                  # the auth scheme (the one challenge)
    ("HEAD", "manifests/{v}", 404),                      # the version: absent
    ("GET", "tags/list", 404),                             # the tag list: no higher version
    ("POST", "blobs/uploads/", 202), ("PUT", "blobs/uploads/", 201),  # the chart's config blob
    ("POST", "blobs/uploads/", 202), ("PUT", "blobs/uploads/", 201),  # the chart's layer
    ("PUT", "manifests/{v}", 201),                       # the version: accepted on a free tag, for good
]


def test_a_first_push_on_a_registry_refusing_overwrites_makes_eight_requests(registry, source, capsys):
    with registry_proxy(registry.url) as (host, faults):
        faults.lie = "put-immutable"
        code, out, err = release(capsys, source, host, "publish", "--component", "operator", "--immutable-tags")
    assert code == 0 and out.startswith("pushed "), err
    version = get_scalar(config_file(source, "dev", "operator"), "chart_version")
    made = [(method, path, status) for method, path, status, _ in faults.log]
    assert len(made) == len(FIRST_PUSH_IMMUTABLE) == 8, made
    for (method, path, status), (want_method, want_path, want_status) in zip(made, FIRST_PUSH_IMMUTABLE, strict=True):
        assert (method, status) == (want_method, want_status) and want_path.format(v=version) in path, made
    name = get_scalar(config_file(source, "dev", "operator"), "chart_name")
    assert registry.held_digest(f"charts/{name}", version) == out.strip().rsplit("@", 1)[1]
