"""An interrupted ``release`` never blocks the next one: SIGINT and SIGKILL at random points, real processes,
the real registry (tags overwritable, no ``--immutable-tags``).

On SIGINT (and SIGTERM, which the CLI handles the same way) the run gives its
publish leases back; after SIGKILL the lease it held is past its stated lifetime
(:data:`lease.LIFETIME_SECONDS`) by the time the next run has waited that long, and
is taken over with one line saying so. Either way the next run finishes within its
normal time (plus, after a kill, at most one lifetime) and no lease tag is left.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from faas_deployment.core import versions
from faas_deployment.registry import lease
from support.repo_tree import config_file, copy_repo, get_scalar

SEED = 20261207
TRIALS = 4


def _argv(source, registry, path: str) -> list[str]:
    return [sys.executable, "-m", "faas_deployment.cli", "--source", str(source), "release", "--env", "dev",
            "--registry", f"oci://{registry.host}/{path}", "--username", registry.username,
            "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http", "--skip-image-check"]


def _env(registry) -> dict[str, str]:
    return {**os.environ, "TEST_REGISTRY_PASSWORD": registry.password}


def _charts(source) -> dict[str, str]:
    return {
        get_scalar(config_file(source, "dev", c), "chart_name"): get_scalar(
            config_file(source, "dev", c), "chart_version"
        )
        for c in ("operator", "controller")
    }


def _timed(argv, env) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=400, check=False)
    return time.monotonic() - started, done


def _lease_tags(registry, path: str, charts: dict[str, str]) -> list[str]:
    return [f"{name}:{t}" for name in charts for t in registry.tags(f"{path}/{name}") if versions.is_lease_tag(t)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_the_run_after_an_interrupted_release_finishes_in_its_normal_time(registry, tmp_path, signum):
    source = copy_repo(tmp_path / "src")
    charts, env = _charts(source), _env(registry)
    normal, done = _timed(_argv(source, registry, "normal"), env)  # a whole release: the normal time
    assert done.returncode == 0, done.stderr
    bound = 1.5 * normal + 2 + (lease.LIFETIME_SECONDS if signum == signal.SIGKILL else 0)
    rng = random.Random(SEED + signum)
    seen = []
    for trial in range(TRIALS):
        path = f"t{trial}"
        first = subprocess.Popen(_argv(source, registry, path), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        # A random point of the publishing protocol: from the first lease tag on the registry to past the end.
        limit = time.monotonic() + 60
        while not _lease_tags(registry, path, charts) and first.poll() is None and time.monotonic() < limit:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 1.0))
        at_signal = _lease_tags(registry, path, charts)
        first.send_signal(signum)
        _, err = first.communicate(timeout=60)
        seen.append((first.returncode, at_signal))
        if signum == signal.SIGINT and first.returncode == 130:
            assert err.strip().endswith("faas-deploy: interrupted") and "Traceback" not in err, err
        seconds, done = _timed(_argv(source, registry, path), env)
        assert done.returncode == 0, (trial, done.stderr)
        print(f"{signum.name} trial {trial}: lease tags at the signal {at_signal}, exit {first.returncode}; "
              f"next run {seconds:.1f} s (normal {normal:.1f} s, bound {bound:.1f} s)")
        assert seconds <= bound, (trial, seconds, bound, done.stderr)
        assert sorted(line.split()[0] for line in done.stdout.splitlines()) in (
            ["pushed", "pushed"], ["pushed", "unchanged"], ["unchanged", "unchanged"]), done.stdout
        assert _lease_tags(registry, path, charts) == [], (trial, done.stderr)
        for name, version in charts.items():
            assert registry.tags(f"{path}/{name}") == [version]
            assert registry.held_digest(f"{path}/{name}", version) is not None
        takeovers = [line for line in done.stderr.splitlines() if "taking over the publish lease" in line]
        assert len(takeovers) <= len(charts), done.stderr  # said once per lease taken over
        if signum == signal.SIGINT:
            assert takeovers == [], done.stderr  # an interrupted run gave its leases back
    # the signal landed while the run held a lease in at least one trial (the point of the test)
    assert any(at_signal for _, at_signal in seen), seen


def test_a_lease_past_its_lifetime_is_taken_over_and_said_once(registry, capsys):
    """A holder that died (its lease never released) blocks the next publisher for at most the lifetime."""
    from faas_deployment.core.deadline import Deadline
    from faas_deployment.core.secrets import SecretValue
    from faas_deployment.registry.credentials import RegistryCredentials
    from faas_deployment.registry.registry_client import RegistryClient

    client = RegistryClient(f"oci://{registry.host}/charts", plain_http=True,
                           credentials=RegistryCredentials(registry.username, SecretValue(registry.password, "env:X")))
    dead = lease.acquire(client, "demo", "1.0.0", "sha256:" + "1" * 64, Deadline(30))
    assert dead is not None
    lease._forget(dead)  # as if its process were killed: nobody releases it
    started = time.monotonic()
    taker = lease.acquire(client, "demo", "1.0.0", "sha256:" + "2" * 64, Deadline(30))
    waited = time.monotonic() - started
    assert taker is not None and taker.nonce != dead.nonce
    assert waited <= lease.LIFETIME_SECONDS + 2 * lease.SETTLE_SECONDS + 1, waited
    lease.release(client, taker)
    assert registry.tags("charts/demo") == []
    err = capsys.readouterr().err.splitlines()
    taken = [line for line in err if "taking over" in line]
    assert len(taken) == 1, err
    assert taken[0].startswith(f"[faas-deploy] taking over the publish lease {registry.host}/charts/demo:lease-1.0.0: "
                               "written ") and f"past its stated lifetime of {lease.LIFETIME_SECONDS:g} s" in taken[0]
    assert len([line for line in err if "another publisher holds it" in line]) == 1


def test_an_interrupt_gives_leases_back_and_stops_their_publishers_only(registry):
    """``release_all`` (the CLI's Ctrl-C path): the lease tag goes, its publisher may not push any more,
    and a publisher started afterwards in the same process (the CLI run again in-process) is unaffected."""
    from faas_deployment.core.deadline import Deadline
    from faas_deployment.core.secrets import SecretValue
    from faas_deployment.registry.credentials import RegistryCredentials
    from faas_deployment.registry.registry_client import RegistryClient

    client = RegistryClient(f"oci://{registry.host}/charts", plain_http=True,
                           credentials=RegistryCredentials(registry.username, SecretValue(registry.password, "env:X")))
    held = lease.acquire(client, "demo", "1.0.0", "sha256:" + "1" * 64, Deadline(30))
    assert held is not None and registry.tags("charts/demo") == ["lease-1.0.0"]
    started = time.monotonic()
    lease.release_all()
    assert time.monotonic() - started < lease.INTERRUPT_SECONDS
    assert registry.tags("charts/demo") == []
    with pytest.raises(lease.Interrupted), lease.pushing(held):
        pass
    later = lease.acquire(client, "demo", "1.0.0", "sha256:" + "2" * 64, Deadline(30))
    assert later is not None
    with lease.pushing(later):
        pass
    lease.release(client, later)
    assert registry.tags("charts/demo") == []
