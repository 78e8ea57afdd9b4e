"""Transient registry failures: a fault-injecting HTTP proxy on 127.0.0.1 in front of the real registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faas_deployment.cli import main
from faas_deployment.registry import transport
from support.registry_proxy import Faults, registry_proxy
from support.repo_tree import copy_repo


@pytest.fixture
def faulty_proxy(registry) -> Iterator[tuple[str, Faults]]:
    """The fault-injecting proxy of ``tests/support`` in front of the real registry."""
    with registry_proxy(registry.url) as proxy:
        yield proxy


@pytest.fixture
def fast_retries(monkeypatch):
    """Shorter waits for the test; the policy (what is retried, how often) stays the same."""
    import tenacity

    monkeypatch.setattr(
        transport.OrasRegistry.do_request.retry, "wait", tenacity.wait_exponential_jitter(multiplier=0.05, max=0.2)
    )
    monkeypatch.setattr(
        transport.GuardedSession.ping.retry, "wait", tenacity.wait_exponential_jitter(multiplier=0.05, max=0.2)
    )


def release(tmp_path: Path, host: str, registry, capsys) -> tuple[int, str, str]:
    source = tmp_path / "src"
    if not source.exists():
        copy_repo(source)
    code = main([
        "--source", str(source), "release", "--env", "prod",
        "--registry", f"oci://{host}/charts", "--username", registry.username,
        "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http",
    ])
    out, err = capsys.readouterr()
    return code, out, err


def test_503s_and_a_reset_connection_are_retried(registry, faulty_proxy, fast_retries, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    host, faults = faulty_proxy
    faults.plan = ["503", "503", "reset", "503"]
    code, out, err = release(tmp_path, host, registry, capsys)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["pushed", "pushed"]
    assert faults.injected == 4
    # What was pushed through the faults is intact: a second run finds the same digests.
    code, out2, err = release(tmp_path, host, registry, capsys)
    assert code == 0 and [line.split()[0] for line in out2.splitlines()] == ["unchanged", "unchanged"]
    assert [line.split()[1] for line in out2.splitlines()] == [line.split()[1] for line in out.splitlines()]


def test_a_registry_that_stays_down_fails_after_the_bounded_attempts(
    registry, faulty_proxy, fast_retries, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    host, faults = faulty_proxy
    faults.always = "503"
    code, out, err = release(tmp_path, host, registry, capsys)
    assert code == 1 and out == ""
    assert "503" in err and "Traceback" not in err and registry.password not in err
    # Each chart's publish pings the registry on its own client, retried, then given up.
    assert faults.injected == 2 * transport.RETRY_ATTEMPTS
    assert faults.forwarded == 0
