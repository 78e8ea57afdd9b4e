"""Concurrent publishers as real processes: two ``faas-deploy publish`` runs of one chart version.

One trial: two source trees whose ``dev/operator`` charts share ``chart_version``
but differ in content (``chart_description``), or not (``same=True``); both
processes start together against one target. The truth afterwards is what the
target holds. A wrong outcome is a process that exits 0 claiming a digest the
target does not hold, more than one ``pushed``, or a version left with no
content although a process said it pushed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from support.repo_tree import config_file, copy_repo, get_scalar, set_scalar


@dataclass
class Trial:
    outcomes: list[tuple[int, str, str]]  # (exit code, stdout, stderr) per process
    held: str | None  # the digest the target holds for the version afterwards
    wrong: list[str]  # why this trial went wrong, empty when right


def _sources(root: Path, same: bool) -> list[Path]:
    sources = []
    for index in range(2):
        source = copy_repo(root / f"src{index}")
        if not same:
            set_scalar(config_file(source, "dev", "operator"), "chart_description", f"publisher {index}")
        sources.append(source)
    return sources


def _judge(outcomes: list[tuple[int, str, str]], held: str | None) -> list[str]:
    wrong = []
    pushed = [out for code, out, _ in outcomes if code == 0 and out.startswith("pushed ")]
    if len(pushed) > 1:
        wrong.append("more than one publisher says pushed")
    for code, out, err in outcomes:
        if code == 0:
            claimed = out.strip().rsplit("@", 1)[-1]
            if claimed != held:
                wrong.append(f"a publisher says {out.strip()!r} but the target holds {held}")
        elif "Traceback" in err:
            wrong.append(f"a traceback: {err[-300:]}")
    return wrong


def oci_trial(root: Path, registry, *, same: bool = False, host: str | None = None, flags: tuple[str, ...] = (),
              prerelease: str = "") -> Trial:
    """One trial against ``registry`` (the test registry), under ``oci://host/<root name>``; the
    publishers reach it through ``host`` when given (a proxy in front of it), with ``flags`` added;
    ``prerelease`` publishes ``<chart_version>-<prerelease>`` (``--prerelease``)."""
    path = f"race{os.urandom(4).hex()}"
    sources = _sources(root, same)
    env = {**os.environ, "TEST_REGISTRY_PASSWORD": registry.password}
    argv = ["--registry", f"oci://{host or registry.host}/{path}", "--username", registry.username,
            "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http", "--timeout", "120", *flags,
            *(("--prerelease", prerelease) if prerelease else ())]
    outcomes = _run_together(sources, argv, env)
    cfg = config_file(sources[0], "dev", "operator")
    name, version = get_scalar(cfg, "chart_name"), get_scalar(cfg, "chart_version")
    held = registry.held_digest(f"{path}/{name}", f"{version}-{prerelease}" if prerelease else version)
    return Trial(outcomes, held, _judge(outcomes, held))


def local_trial(root: Path, *, same: bool = False) -> Trial:
    """One trial against one local Helm repository shared by both publishers (``--source`` differs)."""
    sources = _sources(root, same)
    shared = root / "charts"
    shared.mkdir()
    for source in sources:
        (source / "dist" / "charts").mkdir(parents=True)
        (source / "dist" / "charts" / "dev").symlink_to(shared)  # dev's local repository
    outcomes = _run_together(sources, [], dict(os.environ))
    cfg = config_file(sources[0], "dev", "operator")
    name, version = get_scalar(cfg, "chart_name"), get_scalar(cfg, "chart_version")
    index = shared / "index.yaml"
    held = None
    if index.exists():
        entries = (yaml.safe_load(index.read_text()) or {}).get("entries", {}).get(name, [])
        held = next((f"sha256:{e['digest']}" for e in entries if str(e.get("version")) == version), None)
    wrong = _judge(outcomes, held)
    package = shared / f"{name}-{version}.tgz"
    if held:
        import hashlib
        if not package.exists() or "sha256:" + hashlib.sha256(package.read_bytes()).hexdigest() != held:
            wrong.append("the package file is missing or its digest is not the index's")
    return Trial(outcomes, held, wrong)


def artifact_trial(root: Path, registry, *, same: bool = False) -> Trial:
    """One trial of two ``publish-artifact --manifests DIR`` processes of one Flux artifact version
    (``app-operator-<chart_version>``) into one repository of ``registry``; their manifests differ
    (``same=False``) or not. Wrong: more than one ``pushed``, a ``pushed`` whose layer the version
    tag does not hold, a traceback."""
    import json

    import httpx

    path = f"race{os.urandom(4).hex()}/manifests"
    source = copy_repo(root / "src")
    runs = []
    for index in range(2):
        manifests = root / f"manifests{index}"
        manifests.mkdir(parents=True)
        data = "same" if same else f"publisher {index}"
        (manifests / "config.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: race\ndata:\n  who: {data}\n")
        runs.append(["--objects", str(manifests)])
    env = {**os.environ, "TEST_REGISTRY_PASSWORD": registry.password}
    argv = ["--registry", f"oci://{registry.host}/{path}", "--username", registry.username,
            "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http", "--revision", "main@sha1:" + "0" * 40,
            "--source-url", "https://git.example.org/faas.git"]
    outcomes = _run_together([source, source], argv, env, verb="publish-artifact", extra=runs)
    version = get_scalar(config_file(source, "dev", "operator"), "chart_version")
    answer = httpx.get(
        f"{registry.url}/v2/{path}/manifests/app-operator-{version}",
        auth=(registry.username, registry.password),
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    held = json.loads(answer.content)["layers"][0]["digest"] if answer.status_code == 200 else None
    wrong = []
    pushed = [out for code, out, _ in outcomes if code == 0 and out.startswith("pushed ")]
    if len(pushed) > 1:
        wrong.append("more than one publisher says pushed")
    layers = [_layer_of_run(index, root) for index in range(2)]
    for index, (code, out, err) in enumerate(outcomes):
        if code == 0 and out.startswith("pushed ") and layers[index] != held:
            wrong.append(f"publisher {index} says pushed but the version holds another layer")
        if "Traceback" in err:
            wrong.append(f"a traceback: {err[-300:]}")
    if pushed and held is None:
        wrong.append("a publisher says pushed but the version tag is absent")
    return Trial(outcomes, held, wrong)


def _layer_of_run(index: int, root: Path) -> str:
    """The layer digest of publisher ``index``'s artifact, as the pipeline builds it (the files decide it alone)."""
    from faas_deployment.flux import artifacts

    files = artifacts.directory_files(root / f"manifests{index}")
    return artifacts.flux_artifact(files, source="", revision="", created="2026-01-01T00:00:00Z").layer_digest


def _run_together(sources: list[Path], argv: list[str], env: dict[str, str], *, verb: str = "publish",
                  extra: list[list[str]] | None = None) -> list[tuple[int, str, str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "faas_deployment.cli", "--source", str(source), verb, "--env", "dev",
             "--component", "operator", *argv, *(extra[index] if extra else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for index, source in enumerate(sources)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append((proc.returncode, out, err))
    return results
