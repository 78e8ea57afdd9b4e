"""Lying or partial registry answers (a proxy on 127.0.0.1 in front of the real registry): refuse, never push.

Each case publishes the chart once directly, then tries to publish other content
under the same version (or a lower version) through a proxy that hides the truth
in one way; the pipeline must refuse, and the registry must still hold the first
content.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faas_deployment.cli import main
from faas_deployment.core.secrets import SecretValue
from faas_deployment.registry.credentials import RegistryCredentials
from support.registry_proxy import recording_server, registry_proxy
from support.repo_tree import config_file, copy_repo, get_scalar, set_scalar


def publish(capsys, source: Path, host: str, registry, *extra: str) -> tuple[int, str, str]:
    code = main([
        "--source", str(source), "publish", "--env", "dev", "--component", "operator",
        "--registry", f"oci://{host}/charts", "--username", registry.username,
        "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http", *extra,
    ])
    out, err = capsys.readouterr()
    return code, out, err


def held_digest(registry, name: str, version: str) -> str | None:
    return registry.held_digest(f"charts/{name}", version)


@pytest.fixture
def published(registry, tmp_path, capsys, monkeypatch):
    """dev/operator published directly; the source then changed without a bump. Yields (source, name, version,
    digest)."""
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    source = copy_repo(tmp_path / "src")
    code, out, err = publish(capsys, source, registry.host, registry)
    assert code == 0 and out.startswith("pushed "), err
    path = config_file(source, "dev", "operator")
    name, version = get_scalar(path, "chart_name"), get_scalar(path, "chart_version")
    digest = out.strip().rsplit("@", 1)[1]
    set_scalar(path, "chart_description", "other content, same version")
    return source, name, version, digest


def bumped(source: Path) -> str:
    """Raise the chart's version (a version not yet published is what needs the tag list); returns it."""
    path = config_file(source, "dev", "operator")
    set_scalar(path, "chart_version", "9.9.9")
    return "9.9.9"


@pytest.mark.parametrize(
    ("lie", "told"),
    [
        ("head-404", "the registry's answers disagree"),
        ("head-no-digest", "already published with other content"),
        ("tags-404", "already published with other content"),
    ],
)
def test_a_lying_registry_is_refused_and_the_published_version_kept(registry, published, capsys, lie, told):
    source, name, version, digest = published
    with registry_proxy(registry.url) as (host, faults):
        faults.lie = lie
        code, out, err = publish(capsys, source, host, registry)
    assert code == 1 and out == "", out
    assert "Traceback" not in err and registry.password not in err
    assert told in err, err
    assert held_digest(registry, name, version) == digest


def test_a_new_version_behind_a_tag_list_404_is_refused(registry, published, capsys):
    """A published version is settled by HEAD alone; a new one needs the tag list, and its lie is caught."""
    source, name, version, digest = published
    new_version = bumped(source)
    with registry_proxy(registry.url) as (host, faults):
        faults.lie = "tags-404"
        code, out, err = publish(capsys, source, host, registry)
    assert code == 1 and out == "" and "Traceback" not in err
    assert "HTTP 404 without the NAME_UNKNOWN error" in err and "nothing was pushed" in err, err
    assert held_digest(registry, name, new_version) is None and held_digest(registry, name, version) == digest


def test_a_lower_version_behind_a_tag_list_404_is_refused(registry, published, capsys):
    source, name, version, digest = published
    path = config_file(source, "dev", "operator")
    set_scalar(path, "chart_version", "0.0.1")
    with registry_proxy(registry.url) as (host, faults):
        faults.lie = "tags-404"
        code, out, err = publish(capsys, source, host, registry)
    assert code == 1 and out == "" and "Traceback" not in err
    assert held_digest(registry, name, "0.0.1") is None


@pytest.mark.parametrize("lie", ["tags-not-json", "tags-json-list", "tags-non-string", "tags-link-loop"])
def test_a_malformed_tag_list_is_a_clear_error(registry, published, capsys, lie):
    source, name, version, digest = published
    new_version = bumped(source)
    with registry_proxy(registry.url) as (host, faults):
        faults.lie = lie
        code, out, err = publish(capsys, source, host, registry)
    assert code == 1 and out == ""
    assert "Traceback" not in err and "listing tags" in err, err
    assert held_digest(registry, name, version) == digest
    assert held_digest(registry, name, new_version) is None


def test_credentials_never_follow_a_link_to_another_host(registry, published, capsys):
    source, *_ = published
    bumped(source)
    with recording_server() as (foreign, recorder), registry_proxy(registry.url) as (host, faults):
        faults.lie, faults.foreign = "tags-link-foreign", foreign
        code, out, err = publish(capsys, source, host, registry)
    assert code == 1 and "another host" in err and "Traceback" not in err
    assert recorder.requests == []  # not even a request without credentials


@pytest.mark.parametrize("same_content", [True, False])
def test_a_registry_refusing_overwrites_is_taken_at_its_word(registry, published, capsys, same_content):
    """Tag immutability: the PUT over an existing tag is refused; the version is read back and that is the answer."""
    source, name, version, digest = published
    if same_content:
        original = copy_repo(source.parent / "orig")
        config_file(source, "dev", "operator").write_bytes(config_file(original, "dev", "operator").read_bytes())
    with registry_proxy(registry.url) as (host, faults):
        faults.lie, faults.hidden_tag = "put-immutable", version
        code, out, err = publish(capsys, source, host, registry)
        assert faults.revealed  # the pipeline went as far as the PUT
    if same_content:
        assert code == 0 and out.strip() == f"unchanged {host}/charts/{name}:{version}@{digest}", err
    else:
        assert code == 1 and "already published with other content" in err and "Traceback" not in err
    assert held_digest(registry, name, version) == digest


@pytest.fixture
def registry_for_fuzz(registry):
    with registry_proxy(registry.url) as (host, faults):
        yield host, faults, registry


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        st.binary(max_size=64),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(["tags", "name", "errors"]), inner, max_size=3)
            ),
            max_leaves=8,
        ).map(lambda v: __import__("json").dumps(v).encode()),
    ),
    status=st.sampled_from([200, 404, 400]),
)
def test_fuzzed_tag_list_answers_give_no_traceback(registry_for_fuzz, body, status):
    from faas_deployment.core.errors import UserError
    from faas_deployment.registry.registry_client import RegistryClient

    host, faults, reg = registry_for_fuzz
    faults.fixed = (status, body)
    client = RegistryClient(f"oci://{host}/charts", plain_http=True,
                           credentials=RegistryCredentials(reg.username, SecretValue(reg.password, "test")))
    try:
        tags = client.tags("faas-operator")
    except UserError as exc:
        assert reg.password not in str(exc)
    else:
        assert tags is None or all(isinstance(t, str) for t in tags)
