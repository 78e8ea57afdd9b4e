"""The Kubernetes API as a hostile party: deadlines hold, answers are read as what they are.

Real parts: the CLI in-process, the project's Kubernetes client over HTTP to the
loopback Kubernetes API double (``support/flux_doubles.py``) with its faults
(drip, silence, raw answers, watches that close at once or expire with 410),
shaped as kube-apiserver answers; the Debian registry for ``deploy``.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from faas_deployment import cli, door
from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import SecretValue
from faas_deployment.door import Workspace
from faas_deployment.flux import kube_api, rollout, rollout_outcome
from faas_deployment.gitlab import source_state
from support.flux_doubles import (
    HR,
    OCI,
    KubeApi,
    answer,
    close_watch,
    drip,
    expire_watch,
    play,
    scenario,
    silent,
)
from support.repo_tree import REPO_ROOT, copy_repo

KUBE_TOKEN = "kube-token-" + "3" * 16
NS, NAME = "faas-dev", "faas-operator"
OLD = f"0.0.1+{'a' * 12}"


@pytest.fixture(scope="module")
def expected() -> rollout_outcome.Expected:
    return door.deploy.expected_for(Workspace(REPO_ROOT), "dev", "operator")


def _store(api: KubeApi, expected: rollout_outcome.Expected, status: dict | None = None) -> None:
    api.put(HR, NS, NAME, {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                           "metadata": {"generation": 1},
                           "spec": {"chartRef": {"kind": "OCIRepository", "name": NAME}},
                           "status": status if status is not None else {"observedGeneration": 1}})
    api.put(OCI, NS, NAME, {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                            "metadata": {"generation": 1},
                            "status": {"artifact": {"revision": expected.source_revision}}})


def _wait(api: KubeApi, tmp_path: Path, capsys, timeout: str = "4", *extra: str) -> tuple[int, str, str, float]:
    (tmp_path / "kc").write_text(api.kubeconfig())
    started = time.monotonic()
    code = cli.main(["--source", str(REPO_ROOT), "wait", "--env", "dev", "--component", "operator",
                     "--kubeconfig", f"file:{tmp_path / 'kc'}", "--timeout", timeout, *extra])
    seconds = time.monotonic() - started
    out = capsys.readouterr()
    assert "Traceback" not in out.err and KUBE_TOKEN not in out.out + out.err
    return code, out.out, out.err, seconds


# --------------------------------------------------------------------------- deadlines

FAULTS = {
    "drip-source-get": lambda api: drip(api, "ocirepositories"),
    "silent-source-get": lambda api: silent(api, "ocirepositories"),
    "drip-watch": lambda api: drip(api, "helmreleases", watch=True),
    "silent-watch": lambda api: silent(api, "helmreleases", watch=True),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_wait_holds_its_deadline_against_a_server_that_drips_or_hangs(expected, tmp_path, capsys, fault):
    with KubeApi(KUBE_TOKEN) as api:
        _store(api, expected)
        api.faults.append(FAULTS[fault](api))
        code, out, err, seconds = _wait(api, tmp_path, capsys, "4")
    assert seconds < 4 + 2, f"{fault}: {seconds:.1f} s"
    assert code == rollout_outcome.EXIT_CODES[rollout_outcome.TIMEOUT] and "timeout" in out, (out, err)


@pytest.mark.parametrize("fault", ["drip-patch", "silent-patch", "drip-watch"])
def test_deploy_holds_its_deadline_against_a_server_that_drips_or_hangs(registry, tmp_path, monkeypatch, capsys,
                                                                        fault):
    source = copy_repo(tmp_path / "repo")
    env_file = source / "env" / "dev" / "environment.yaml"
    env_file.write_text(env_file.read_text().replace("oci://registry.example.org/eo4eu-faas/charts/dev",
                                                     f"oci://{registry.host}/charts/dev"))
    with KubeApi(KUBE_TOKEN) as api:
        for component in ("operator", "controller"):
            api.put(HR, NS, f"faas-{component}", {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}})
            api.put(OCI, NS, f"faas-{component}", {"metadata": {"generation": 1}, "status": {}})
        if fault == "drip-patch":
            api.faults.append(drip(api, "ocirepositories"))  # the PATCH of the source drips
        elif fault == "silent-patch":
            api.faults.append(silent(api, "ocirepositories"))
        else:
            api.faults.append(drip(api, "helmreleases", watch=True))
        (tmp_path / "kc").write_text(api.kubeconfig())
        monkeypatch.setenv("REG_PW", registry.password)
        started = time.monotonic()
        code = cli.main(["--source", str(source), "deploy", "--env", "dev", "--username", registry.username,
                         "--password", "env:REG_PW", "--plain-http", "--trigger-api",
                         "--kubeconfig", f"file:{tmp_path / 'kc'}", "--timeout", "6"])
        seconds = time.monotonic() - started
    out = capsys.readouterr()
    assert seconds < 6 + 2, f"{fault}: {seconds:.1f} s"
    assert code in (1, rollout_outcome.EXIT_CODES[rollout_outcome.TIMEOUT]) and "Traceback" not in out.err, out
    assert KUBE_TOKEN not in out.out + out.err and registry.password not in out.out + out.err


@pytest.mark.parametrize("fault", ["drip", "silent"])
def test_promote_reads_the_live_release_within_its_deadline(tmp_path, fault):
    with KubeApi(KUBE_TOKEN) as api:
        api.put(HR, NS, "faas-controller", {"metadata": {"generation": 1}, "status": {}})
        api.faults.append(drip(api, "helmreleases") if fault == "drip" else silent(api, "helmreleases"))
        client = rollout.make_client(SecretValue(api.kubeconfig(), "file:kc"))
        state = source_state.ClusterState(REPO_ROOT, client, timeout=3)
        started = time.monotonic()
        with pytest.raises(UserError, match="HelmRelease faas-dev/faas-controller: .*(before the deadline|at the "
                                            "deadline|in time)"):
            state("dev", "controller")
        assert time.monotonic() - started < 3 + 2


def test_promote_kubeconfig_holds_its_timeout_flag(tmp_path, capsys):
    with KubeApi(KUBE_TOKEN) as api:
        api.put(HR, NS, "faas-controller", {"metadata": {"generation": 1}, "status": {}})
        api.faults.append(silent(api, "helmreleases"))
        (tmp_path / "kc").write_text(api.kubeconfig())
        started = time.monotonic()
        code = cli.main(["--source", str(REPO_ROOT), "promote", "--from", "dev", "--to", "prod",
                         "--component", "controller", "--kubeconfig", f"file:{tmp_path / 'kc'}", "--timeout", "3"])
        seconds = time.monotonic() - started
    out = capsys.readouterr()
    assert seconds < 3 + 2, f"{seconds:.1f} s"
    assert code == 1 and "HelmRelease faas-dev/faas-controller" in out.err and "Traceback" not in out.err, out
    assert KUBE_TOKEN not in out.out + out.err


# --------------------------------------------------------------------------- answers read as what they are

RAW = {
    "garbage": (b"<html><body>502 Bad Gateway</body></html>", "text/html", "not JSON"),
    "binary": (bytes(range(256)) * 4, "application/octet-stream", "not JSON"),
    "oversized": (b'{"kind": "OCIRepository", "pad": "' + b"x" * (kube_api.MAX_BYTES + 10) + b'"}',
                  "application/json", "larger than"),
    "nested": (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested too deeply"),
    "a-list": (b"[1, 2, 3]", "application/json", "not an object"),
}


@pytest.mark.parametrize("case", list(RAW))
def test_a_malformed_answer_is_named_for_what_it_is(expected, tmp_path, capsys, case):
    body, content_type, said = RAW[case]
    with KubeApi(KUBE_TOKEN) as api:
        _store(api, expected)
        api.faults.append(answer("ocirepositories", body, content_type=content_type))
        code, _out, err, seconds = _wait(api, tmp_path, capsys)
    assert code == 1 and said in err and "cannot reach" not in err, err
    assert len(err) < 2000 and seconds < 6


@pytest.mark.parametrize("case", ["garbage-line", "not-an-event", "unknown-type"])
def test_a_malformed_watch_event_is_named_for_what_it_is(expected, tmp_path, capsys, case):
    line = {"garbage-line": b"}{not json\n", "not-an-event": b'[1]\n',
            "unknown-type": b'{"type": "EXPLODED", "object": {}}\n'}[case]
    with KubeApi(KUBE_TOKEN) as api:
        _store(api, expected)
        api.faults.append(answer("helmreleases", line, watch=True))
        code, _out, err, _ = _wait(api, tmp_path, capsys)
    assert code == 1 and "(watch)" in err and "cannot reach" not in err, err


#: Paths the verdicts read, and the JSON values of a wrong type tried at each.
WRONG = [None, [], ["x"], "text", 7, {"a": 1}, True, 1.5]
def _set(obj: dict, path: str, value) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        if part.endswith("[]"):
            key = part[:-2]
            if not isinstance(obj.get(key), list) or not obj[key] or not isinstance(obj[key][0], dict):
                obj[key] = [{}]
            obj = obj[key][0]
        else:
            if not isinstance(obj.get(part), dict):
                obj[part] = {}
            obj = obj[part]
    last = parts[-1]
    if last.endswith("[]"):
        obj[last[:-2]] = [value]
    else:
        obj[last] = value


PATHS = [path for path, _ in rollout_outcome.FIELDS if path not in ("metadata", "metadata.resourceVersion")]


def test_a_wrongly_typed_status_is_an_error_naming_the_object_and_field(expected):
    """Every field the verdicts read, given each wrong JSON type, over the wire (one server, many objects)."""
    with KubeApi(KUBE_TOKEN) as api:
        client = rollout.make_client(SecretValue(api.kubeconfig(), "file:kc"))

        @hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(path=st.sampled_from(PATHS), value=st.sampled_from(WRONG), case=st.sampled_from(["success", "stalled"]))
        def check(path, value, case):
            steps = scenario(case, chart=expected.chart, ns=NS, name=NAME, old=OLD, new=expected.revision)
            obj = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"generation": 1},
                   "spec": {"test": {"enable": False}}, "status": json.loads(json.dumps(steps[-1][1]))}
            _set(obj, path, value)
            api.put(HR, NS, NAME, obj)
            try:
                got = rollout.get_release(client, NS, NAME, timeout=5)
            except UserError as exc:
                text = str(exc)
                # the field, or the element inside it that has the wrong type
                where = re.escape(path.replace("[]", "[0]"))
                assert re.match(rf"HelmRelease {NS}/{NAME}: {where}(\[\d+\]|\.\w+)*: expected ", text), text
                return
            rollout_outcome.evaluate(got, expected, source_ours=True)  # a well-typed object never raises
            rollout_outcome.evaluate_kustomization(got, expected.digest)
            rollout_outcome.summary(got)
            rollout_outcome.candidate(got, expected)

        check()


def test_every_wrong_type_is_refused_through_the_watch(expected, tmp_path, capsys):
    obj_status = {"observedGeneration": 1, "conditions": "Ready"}
    with KubeApi(KUBE_TOKEN) as api:
        _store(api, expected, status=obj_status)
        code, _out, err, _seconds = _wait(api, tmp_path, capsys)
    assert code == 1 and f"HelmRelease {NS}/{NAME}: status.conditions: expected a list, got a string" in err, err


# --------------------------------------------------------------------------- the watch protocol


def test_a_watch_expired_with_410_lists_again_and_resumes(expected, tmp_path, capsys):
    with KubeApi(KUBE_TOKEN) as api:
        _store(api, expected)
        api.faults.append(expire_watch(api, HR, NS))
        steps = scenario("success", chart=expected.chart, ns=NS, name=NAME, old=OLD, new=expected.revision)
        player = play(api, steps, expected, NS, NAME, gap=0.3)
        code, out, err, _ = _wait(api, tmp_path, capsys, "8")
        player.join()
        gets = [p for m, p, _ in api.requests if m == "GET" and p.endswith(f"/helmreleases/{NAME}")]
    assert code == 0 and out.startswith("deployed "), (out, err)
    assert gets, "no list (GET) after the 410"


def test_a_watch_that_closes_at_once_is_reopened_with_backoff(expected, tmp_path, capsys):
    with KubeApi(KUBE_TOKEN) as api:
        _store(api, expected)
        api.faults.append(close_watch("helmreleases"))
        code, _out, _err, seconds = _wait(api, tmp_path, capsys, "5")
        watches = api.watches("helmreleases")
    assert code == rollout_outcome.EXIT_CODES[rollout_outcome.TIMEOUT]
    # client-go's reflector backoff: 0.8 s doubling (+ up to as much jitter): at most 4 watches in 5 s
    assert 2 <= len(watches) <= 4, f"{len(watches)} watches in {seconds:.1f} s"
    gaps = [b - a for a, b in itertools.pairwise(watches)]
    assert all(g >= 0.75 for g in gaps), gaps


# --------------------------------------------------------------------------- messages from the cluster


def test_condition_messages_are_escaped_and_redacted_on_stdout_and_in_the_report(expected, tmp_path, capsys,
                                                                                 monkeypatch):
    hostile = f"\x1b[2J\x1b[31mupgrade failed\r\n token {KUBE_TOKEN} \u202eevil\x07"
    status = {"observedGeneration": 1, "lastAttemptedRevision": expected.revision,
              "conditions": [{"type": "Ready", "status": "False", "reason": "UpgradeFailed", "message": hostile,
                              "observedGeneration": 1},
                             {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": hostile,
                              "observedGeneration": 1}]}
    with KubeApi(KUBE_TOKEN) as api:
        _store(api, expected, status=status)
        report = tmp_path / "report.json"
        code, out, err, _ = _wait(api, tmp_path, capsys, "4", "--report", str(report))
        text = report.read_text()
    assert code == rollout_outcome.EXIT_CODES[rollout_outcome.FAILED], (out, err)
    for shown in (out, text):
        assert KUBE_TOKEN not in shown and "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "upgrade failed" in out and "***" in out
    data = json.loads(text)
    messages = [c["message"] for c in data["outcomes"][0]["conditions"]]
    assert all("\\x1b" in m and "***" in m for m in messages), messages


@pytest.mark.parametrize("path", [p for p, _ in rollout_outcome.FIELDS if not p.startswith("metadata")])
def test_wait_through_the_cli_names_the_object_and_field_of_a_wrong_type(expected, tmp_path, capsys, path):
    """The watch path end to end: the first wrong JSON type (a list) at each field the verdicts read."""
    steps = scenario("success", chart=expected.chart, ns=NS, name=NAME, old=OLD, new=expected.revision)
    obj = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"generation": 1},
           "spec": {"test": {"enable": False}}, "status": json.loads(json.dumps(steps[-1][1]))}
    wrong = "text" if path.endswith("[]") or path in ("status.conditions", "status.history") else ["x"]
    _set(obj, path, wrong)
    with KubeApi(KUBE_TOKEN) as api:
        _store(api, expected)
        api.put(HR, NS, NAME, obj)
        code, _out, err, seconds = _wait(api, tmp_path, capsys, "4")
    where = re.escape(path.replace("[]", "[0]"))
    assert code == 1 and re.search(rf"HelmRelease {NS}/{NAME}: {where}(\[\d+\]|\.\w+)*: expected ", err), err
    assert seconds < 4
