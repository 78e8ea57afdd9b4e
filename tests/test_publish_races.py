"""Concurrent publishers of one chart version, as real processes, against the real registry and a local repository.

A few trials here (CI stays fast); ``tests/bench/bench_publish_races.py`` runs 20 of each.
"""

from __future__ import annotations

import pytest

from support.race import artifact_trial, local_trial, oci_trial
from support.registry_proxy import registry_proxy

TRIALS = 3


@pytest.mark.parametrize("same", [False, True], ids=["other-content", "same-content"])
def test_concurrent_publishers_to_the_registry_get_the_truth(registry, tmp_path, same):
    for index in range(TRIALS if not same else 1):
        trial = oci_trial(tmp_path / str(index), registry, same=same)
        assert trial.wrong == [], trial
        assert trial.held is not None
        codes = sorted(code for code, _, _ in trial.outcomes)
        if same:
            assert codes == [0, 0]  # one pushed, the other unchanged
        else:
            assert codes == [0, 1], trial  # one wins, the other is told the version holds other content
            [(_, _, err)] = [o for o in trial.outcomes if o[0] == 1]
            assert "other content" in err


@pytest.mark.parametrize("same", [False, True], ids=["other-content", "same-content"])
def test_on_a_registry_refusing_overwrites_the_registry_arbitrates(registry, tmp_path, same):
    """``--immutable-tags``: no lease; of the two manifest PUTs the registry lets one land, and the
    other publisher reads the version back: ``unchanged`` for the same content, refused for other."""
    with registry_proxy(registry.url) as (host, faults):
        faults.lie = "put-immutable"
        for index in range(TRIALS if not same else 1):
            trial = oci_trial(tmp_path / str(index), registry, same=same, host=host, flags=("--immutable-tags",))
            assert trial.wrong == [], trial
            assert trial.held is not None
            assert sorted(code for code, _, _ in trial.outcomes) == ([0, 0] if same else [0, 1]), trial
            assert [out.split()[0] for code, out, _ in trial.outcomes if code == 0] in (
                (["pushed", "unchanged"], ["unchanged", "pushed"]) if same else (["pushed"],)), trial
        assert faults.count(path="/lease-") == 0  # the registry arbitrates: no lease taken


@pytest.mark.parametrize("same", [False, True], ids=["other-content", "same-content"])
def test_concurrent_publishers_of_one_flux_artifact_version_get_the_truth(registry, tmp_path, same):
    """``publish-artifact`` takes the charts' protocol (the lease, the state read again, the read-back)."""
    for index in range(TRIALS + 1 if not same else 1):
        trial = artifact_trial(tmp_path / str(index), registry, same=same)
        assert trial.wrong == [], trial
        assert trial.held is not None, trial
        assert sorted(code for code, _, _ in trial.outcomes) == ([0, 0] if same else [0, 1]), trial
        assert sorted(out.split()[0] for code, out, _ in trial.outcomes if code == 0) == (
            ["pushed", "unchanged"] if same else ["pushed"]), trial
        if not same:
            [(_, _, err)] = [o for o in trial.outcomes if o[0] == 1]
            assert "other content" in err, err


def test_concurrent_publishers_to_a_local_repository_get_the_truth(tmp_path):
    for index in range(TRIALS):
        trial = local_trial(tmp_path / str(index))
        assert trial.wrong == [], trial
        assert sorted(code for code, _, _ in trial.outcomes) == [0, 1], trial


def test_a_publisher_waiting_for_the_lease_says_so_once(registry, capsys):
    """Another publisher's live lease: the wait is announced in one line, then the deadline ends it."""
    from faas_deployment.core.deadline import Deadline, DeadlineExceeded
    from faas_deployment.core.secrets import SecretValue
    from faas_deployment.registry import lease
    from faas_deployment.registry.credentials import RegistryCredentials
    from faas_deployment.registry.registry_client import RegistryClient

    client = RegistryClient(f"oci://{registry.host}/charts", plain_http=True,
                           credentials=RegistryCredentials(registry.username, SecretValue(registry.password, "env:X")))
    held = lease.acquire(client, "demo", "1.0.0", "sha256:" + "1" * 64, Deadline(30))
    assert held is not None
    try:
        with pytest.raises(DeadlineExceeded):
            lease.acquire(client, "demo", "1.0.0", "sha256:" + "2" * 64, Deadline(1.5))
    finally:
        lease.release(client, held)
    waits = [line for line in capsys.readouterr().err.splitlines() if "another publisher holds it" in line]
    assert waits == [f"[faas-deploy] waiting for the publish lease {registry.host}/charts/demo:lease-1.0.0: "
                     f"another publisher holds it; polling every {lease.POLL_SECONDS:g} s"]
