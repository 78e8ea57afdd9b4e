"""Merge request pre-releases on an ordinary registry (tags overwritable, no ``--immutable-tags``): the real
``docker-registry``, the real CLI, concurrent publishers as real processes.

A lease tag, or any tag that is not a chart version, is never read as a version
(:mod:`faas_deployment.core.versions`): a pre-release ``1.0.3-mr.42.3`` publishes, two
pipelines publishing it at once get the truth, and the release ``1.0.3`` follows it.
"""

from __future__ import annotations

import pytest

from support.race import oci_trial
from support.repo_tree import config_file, get_scalar

PRERELEASE = "mr.42.3"


def _flags(registry, path: str = "charts/dev") -> list[str]:
    return ["--registry", f"oci://{registry.host}/{path}", "--username", registry.username,
            "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http"]


def _chart(repo_copy, component: str = "operator") -> tuple[str, str]:
    cfg = config_file(repo_copy, "dev", component)
    return get_scalar(cfg, "chart_name"), get_scalar(cfg, "chart_version")


def test_a_merge_request_prerelease_publishes(registry, repo_copy, run_cli, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    name, version = _chart(repo_copy)
    argv = ["--source", str(repo_copy), "publish", "--env", "dev", "--component", "operator", *_flags(registry),
            "--prerelease", PRERELEASE]
    code, out, err = run_cli(*argv)
    assert code == 0, err
    held = registry.held_digest(f"charts/dev/{name}", f"{version}-{PRERELEASE}")
    assert out.strip() == f"pushed {registry.host}/charts/dev/{name}:{version}-{PRERELEASE}@{held}"
    assert registry.tags(f"charts/dev/{name}") == [f"{version}-{PRERELEASE}"]  # no lease tag left
    code, out, err = run_cli(*argv)  # the same pipeline again: nothing changes
    assert code == 0, err
    assert out.strip() == f"unchanged {registry.host}/charts/dev/{name}:{version}-{PRERELEASE}@{held}"
    assert registry.tags(f"charts/dev/{name}") == [f"{version}-{PRERELEASE}"]


@pytest.mark.parametrize("same", [False, True], ids=["other-content", "same-content"])
def test_two_concurrent_prerelease_publishers_get_the_truth(registry, tmp_path, same):
    trial = oci_trial(tmp_path, registry, same=same, prerelease=PRERELEASE)
    assert trial.wrong == [], trial
    assert trial.held is not None, trial
    codes = sorted(code for code, _, _ in trial.outcomes)
    assert codes == ([0, 0] if same else [0, 1]), trial
    firsts = sorted(out.split()[0] for code, out, _ in trial.outcomes if code == 0)
    assert firsts == (["pushed", "unchanged"] if same else ["pushed"]), trial
    if not same:
        [(_, _, err)] = [o for o in trial.outcomes if o[0] == 1]
        assert "other content" in err and ".lease" not in err, err


def test_a_release_after_merge_request_prereleases(registry, repo_copy, run_cli, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    for prerelease in (PRERELEASE, "mr.42.4"):
        code, _, err = run_cli("--source", str(repo_copy), "publish", "--env", "dev", "--component", "operator",
                               *_flags(registry), "--prerelease", prerelease)
        assert code == 0, err
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev", *_flags(registry),
                             "--skip-image-check")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["pushed", "pushed"], out
    for component in ("operator", "controller"):
        name, version = _chart(repo_copy, component)
        expected = [version] + ([f"{version}-{PRERELEASE}", f"{version}-mr.42.4"] if component == "operator" else [])
        assert registry.tags(f"charts/dev/{name}") == sorted(expected)
