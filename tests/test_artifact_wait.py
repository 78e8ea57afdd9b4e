"""``wait --artifact``: the Kustomization ``app-<component>`` of a Flux OCI artifact applied the pushed digest.

Real parts: the project's lightkube client over HTTP to the loopback Kubernetes API
double (serving Kustomizations as kube-apiserver does), the CLI.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from faas_deployment import cli
from faas_deployment.flux import rollout_outcome
from support.flux_doubles import KS, KubeApi, kustomization_status
from support.repo_tree import REPO_ROOT

KUBE_TOKEN = "kube-token-" + "3" * 16
NS, NAME = "flux-system", "app-operator"
OURS = "sha256:" + "1" * 64
OLD = "sha256:" + "0" * 64


def _store_kustomization(api: KubeApi, generation: int = 1) -> None:
    api.put(KS, NS, NAME, {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                           "metadata": {"generation": generation},
                           "spec": {"sourceRef": {"kind": "OCIRepository", "name": NAME}, "path": "./"},
                           "status": kustomization_status("ready", applied=f"latest@{OLD}",
                                                          attempted=f"latest@{OLD}")})


def _play(api: KubeApi, steps: list[dict]) -> threading.Thread:
    def run() -> None:
        for status in steps:
            time.sleep(0.3)
            api.set_status(KS, NS, NAME, status)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait(tmp_path, *extra: str) -> int:
    return cli.main(["--source", str(REPO_ROOT), "wait", "--env", "dev", "--component", "operator",
                     "--kubeconfig", f"file:{tmp_path / 'kubeconfig'}", "--timeout", "3", *extra])


progressing = kustomization_status("progressing", applied=f"latest@{OLD}", attempted=f"latest@{OURS}")
CASES = {
    "applied": ([progressing, kustomization_status("ready", applied=f"latest@{OURS}", attempted=f"latest@{OURS}")],
                0, f"deployed app-operator@{OURS} to flux-system/app-operator in "),
    # The revision the real source-controller gives an OCIRepository pinned by ref.digest, as the
    # ResourceSet's are (internal/controller/ocirepository_controller.go: the digest alone).
    "applied-by-digest": ([progressing, kustomization_status("ready", applied=OURS, attempted=OURS)],
                          0, f"deployed app-operator@{OURS} to flux-system/app-operator in "),
    "health-check-failed": ([progressing, kustomization_status("health-failed", applied=f"latest@{OLD}",
                                                               attempted=f"latest@{OURS}")],
                            3, "failed app-operator@"),
    "stalled": ([progressing, kustomization_status("stalled", applied=f"latest@{OLD}", attempted=f"latest@{OURS}")],
                3, "Stalled=True BuildFailed: kustomize build failed"),
    "another-digest-applied": ([kustomization_status("ready", applied=f"latest@{OLD}", attempted=f"latest@{OLD}")],
                               5, f"lastAppliedRevision latest@{OLD}"),
    # Ready for our digest, but for an older generation of the spec: not yet the verdict.
    "generation-not-observed": ([kustomization_status("ready", applied=f"latest@{OURS}", attempted=f"latest@{OURS}",
                                                      generation=1)], 5, "timeout"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_wait_artifact_outcomes(case, tmp_path, capsys):
    steps, code, text = CASES[case]
    with KubeApi(KUBE_TOKEN) as api:
        _store_kustomization(api, generation=2 if case == "generation-not-observed" else 1)
        if case == "generation-not-observed":  # the stored status observed generation 1 of 2
            api.set_status(KS, NS, NAME, kustomization_status("ready", applied=f"latest@{OLD}",
                                                              attempted=f"latest@{OLD}", generation=1))
        (tmp_path / "kubeconfig").write_text(api.kubeconfig())
        player = _play(api, steps)
        report = tmp_path / "report.json"
        got = _wait(tmp_path, "--artifact", OURS, "--report", str(report))
        player.join()
    out = capsys.readouterr()
    assert got == code, out
    assert text in out.out
    data = json.loads(report.read_text())
    assert data["exit_code"] == code and data["outcomes"][0]["kustomization"] == NAME
    assert data["outcomes"][0]["digest"] == data["outcomes"][0]["revision"] == OURS
    assert KUBE_TOKEN not in out.out + out.err + report.read_text()
    paths = {p for _, p, _ in api.requests}
    assert paths == {"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations"}
    assert all(method == "GET" for method, _, _ in api.requests)


def test_the_verdict_follows_the_event_that_makes_it(tmp_path, capsys):
    """The watch, not a poll: deployed is reported within a second or two of the Ready event."""
    marks: dict[str, float] = {}
    with KubeApi(KUBE_TOKEN) as api:
        _store_kustomization(api)
        (tmp_path / "kubeconfig").write_text(api.kubeconfig())
        ready = kustomization_status("ready", applied=f"latest@{OURS}", attempted=f"latest@{OURS}")

        def play() -> None:
            time.sleep(0.5)
            api.set_status(KS, NS, NAME, progressing)
            time.sleep(0.5)
            api.set_status(KS, NS, NAME, ready)
            marks["ready"] = time.monotonic()
        player = threading.Thread(target=play, daemon=True)
        player.start()
        got = _wait(tmp_path, "--artifact", OURS, "--timeout", "20")
        returned = time.monotonic()
        player.join()
    assert got == 0, capsys.readouterr()
    assert 0 <= returned - marks["ready"] < 2.0, f"reported {returned - marks['ready']:.3f} s after Ready"


@pytest.mark.parametrize("argv, message", [
    (["--artifact", "sha256:abc"], "expected the pushed manifest digest sha256:<64 hex digits>"),
    (["--artifact", "latest"], "expected the pushed manifest digest"),
])
def test_a_malformed_digest_is_a_clear_error(tmp_path, capsys, argv, message):
    (tmp_path / "kubeconfig").write_text(KubeApi(KUBE_TOKEN).kubeconfig())
    assert _wait(tmp_path, *argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_artifact_needs_a_component(capsys):
    code = cli.main(["--source", str(REPO_ROOT), "wait", "--env", "dev", "--artifact", OURS])
    assert code == 1 and "give --component" in capsys.readouterr().err


def test_refused_credentials_and_a_missing_kustomization_are_clear_errors(tmp_path, capsys):
    with KubeApi("another-token") as api:
        _store_kustomization(api)
        (tmp_path / "kubeconfig").write_text(api.kubeconfig().replace("another-token", KUBE_TOKEN))
        assert _wait(tmp_path, "--artifact", OURS) == 1
    out = capsys.readouterr()
    assert "HTTP 401" in out.err and KUBE_TOKEN not in out.out + out.err
    with KubeApi(KUBE_TOKEN) as api:  # nothing stored: the watch never shows it, the wait times out clearly
        (tmp_path / "kubeconfig").write_text(api.kubeconfig())
        assert _wait(tmp_path, "--artifact", OURS, "--timeout", "1") == 5
    assert "no Kustomization seen" in capsys.readouterr().out


def test_carries_reads_the_digest_after_the_tag():
    assert rollout_outcome.carries(f"latest@{OURS}", OURS) and rollout_outcome.carries(OURS, OURS)
    assert not rollout_outcome.carries(f"latest@{OLD}", OURS) and not rollout_outcome.carries("", OURS)
    assert not rollout_outcome.carries(f"{OURS}@{OLD}", OURS)
