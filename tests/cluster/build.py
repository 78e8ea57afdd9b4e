#!/usr/bin/env python3
"""Build the real control plane and Flux from their Go modules, cached by version.

Usage (stdlib only, run by ``.ci/setup``)::

    python3 tests/cluster/build.py            # build what is missing, print the cache directory
    python3 tests/cluster/build.py --update   # regenerate the wrapper modules from COMPONENTS

What is built, each from a wrapper Go module under ``tests/cluster/modules/<name>/`` that
*requires* the component (``go install pkg@version`` refuses modules with replace
directives; a dependency's replaces are ignored by Go, so the wrapper copies them):

- ``kubernetes``: kube-apiserver, kube-controller-manager, kube-scheduler from
  ``k8s.io/kubernetes``, whose go.mod pins each staging module at ``v0.0.0`` with a
  ``./staging`` replace; the wrapper maps each to its published ``v0.<minor>.<patch>``.
  The version ldflags of ``hack/lib/version.sh`` are set so the API server reports
  its real version (not ``v0.0.0-master``, which breaks Helm ``kubeVersion`` checks).
- ``etcd`` (``go.etcd.io/etcd/server/v3``, main package at the module root), ``kwok``
  (``sigs.k8s.io/kwok/cmd/kwok``).
- The Flux controllers of one Flux release (their versions read from the release's
  ``manifests/bases/*/kustomization.yaml`` in ``github.com/fluxcd/flux2/v2``), and the
  Flux Operator, whose binary embeds ``web/dist`` (built by npm, absent from the module
  zip: a placeholder page in a local copy) and must be built in FIPS mode.

Replace lines are generated, never written by hand: from ``go mod edit -json`` of the
component's own go.mod, a replace to a published module is copied; a replace to a
local directory is dropped when the go.mod requires a published version, and mapped
to ``v0.<minor>.<patch>`` of a ``v1.<minor>.<patch>`` component when it requires
``v0.0.0`` (the Kubernetes staging modules).

Output: ``$XDG_CACHE_HOME/faas-deployment/cluster/<key>/`` (default ``~/.cache``), with
``bin/`` (the binaries), ``crds/<component>/`` (each module's ``config/crd/bases``) and
``versions.json``; ``<key>`` hashes the Go version, every wrapper's go.mod and go.sum
and the build flags, so a second run costs a hash and a stat. GOMODCACHE and GOCACHE
keep Go's defaults. Errors: a failing ``go`` command exits 1 with its output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = HERE / "modules"
KUBERNETES = "v1.36.3"
ETCD = "v3.6.17"
KWOK = "v0.8.0"
FLUX = "v2.9.2"
FLUX_OPERATOR = "v0.58.1"
FLUX_CONTROLLERS = ("source-controller", "helm-controller", "notification-controller", "kustomize-controller")
OPERATOR_SOURCE = "flux-operator-src"  # the local copy of the Flux Operator module, with web/dist
# Versions the Go module proxy serving this project does not serve (403), each replaced by the
# nearest one it serves: component -> [(module, version)]. Written into the wrapper as a replace.
SUBSTITUTES = {
    "flux-operator": [("github.com/google/go-containerregistry/pkg/authn/kubernetes",
                       "v0.0.0-20260224031529-85f2bf5f7303")],
}
# CRDs of kinds the project's charts render that no component above defines: module, version,
# files under the module. The dev charts' ExternalSecret (External Secrets Operator).
EXTRA_CRDS = {
    "external-secrets": ("github.com/external-secrets/external-secrets", "v1.3.2",
                         ("config/crds/bases/external-secrets.io_externalsecrets.yaml",)),
}
# Part of the cache key: a change here rebuilds. ASSETS_VERSION: raise it when the files copied change.
ASSETS_VERSION = 1
BUILD_FLAGS = ("-trimpath", "-ldflags=-s -w")


@dataclass(frozen=True)
class Component:
    """One wrapper module: ``module@version`` and the main packages built from it (binary name -> package)."""

    name: str
    module: str
    version: str
    binaries: dict[str, str]
    crds: bool = False
    env: dict[str, str] = field(default_factory=dict)
    local_copy: bool = False  # replaced by a writable copy of the module (Flux Operator: web/dist)
    assets: tuple[str, ...] = ()  # files of the module copied into <out>/<name>/

    def ldflags(self) -> str:
        flags = "-s -w"
        if self.module == "k8s.io/kubernetes":
            major, minor = self.version[1:].split(".")[:2]
            for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
                flags += (f" -X {package}.gitVersion={self.version} -X {package}.gitMajor={major}"
                          f" -X {package}.gitMinor={minor} -X {package}.gitTreeState=clean")
        return flags


def go(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run ``go args`` and return its stdout; exit 1 with its output when it fails."""
    run_env = {**os.environ, "CGO_ENABLED": "0", **(env or {})}
    proc = subprocess.run(["go", *args], cwd=cwd, env=run_env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(
            f"tests/cluster/build.py: go {' '.join(args)} failed (exit {proc.returncode}) in {cwd or Path.cwd()}:\n"
            f"{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def download(module: str, version: str) -> dict:
    """``go mod download -json module@version``: the module's ``Dir``, ``GoMod``, ``Sum``."""
    return json.loads(go("mod", "download", "-json", f"{module}@{version}"))


def flux_controller_versions(release: str) -> dict[str, str]:
    """Controller -> version of a Flux release, from its ``manifests/bases/<controller>/kustomization.yaml``."""
    bases = Path(download("github.com/fluxcd/flux2/v2", release)["Dir"]) / "manifests" / "bases"
    versions = {}
    for name in FLUX_CONTROLLERS:
        text = (bases / name / "kustomization.yaml").read_text()
        found = re.search(rf"/fluxcd/{name}/releases/download/(v[0-9][^/]*)/", text)
        if not found:
            sys.exit(f"tests/cluster/build.py: no release URL of {name} in flux2 {release} manifests/bases/{name}")
        versions[name] = found.group(1)
    return versions


def components() -> list[Component]:
    flux = flux_controller_versions(FLUX)
    found = [
        Component(
            "kubernetes",
            "k8s.io/kubernetes",
            KUBERNETES,
            {
                name: f"k8s.io/kubernetes/cmd/{name}"
                for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
            },
        ),
        Component("etcd", "go.etcd.io/etcd/server/v3", ETCD, {"etcd": "go.etcd.io/etcd/server/v3"}),
        # kwok without kwokctl needs the stages kwokctl embeds (pkg/kwokctl/runtime/cluster.go): a node
        # initialized and kept Ready through its lease, Pods made Ready, completed and deleted.
        Component(
            "kwok",
            "sigs.k8s.io/kwok",
            KWOK,
            {"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
            assets=tuple(
                f"kustomize/stage/{stage}.yaml"
                for stage in (
                    "node/fast/node-initialize",
                    "node/heartbeat-with-lease/node-heartbeat-with-lease",
                    "pod/fast/pod-ready",
                    "pod/fast/pod-complete",
                    "pod/fast/pod-delete",
                )
            ),
        ),
    ]
    for name in FLUX_CONTROLLERS:
        module = f"github.com/fluxcd/{name}"
        found.append(Component(name, module, flux[name], {name: module}, crds=True))
    found.append(Component("flux-operator", "github.com/controlplaneio-fluxcd/flux-operator", FLUX_OPERATOR,
                           {"flux-operator": "github.com/controlplaneio-fluxcd/flux-operator/cmd/operator"},
                           crds=True, env={"GOFIPS140": "latest"}, local_copy=True))
    return found


def replaces(component: Component, gomod: Path) -> list[tuple[str, str, str]]:
    """The wrapper's replace lines ``(old, new, version)``, generated from the component's go.mod."""
    spec = json.loads(go("mod", "edit", "-json", str(gomod)))
    required = {req["Path"]: req["Version"] for req in spec.get("Require") or []}
    lines = []
    for rep in spec.get("Replace") or []:
        old, new = rep["Old"]["Path"], rep["New"]
        if "Version" in new:
            lines.append((old, new["Path"], new["Version"]))
        elif required.get(old) == "v0.0.0":
            lines.append((old, old, "v0." + component.version.split(".", 1)[1]))
        # else: a local directory replacing a module required at its published version: drop it.
    return sorted(lines)


def write_local_copy(component: Component, into: Path) -> None:
    """A writable copy of the module with a placeholder ``web/dist`` (the UI is built by npm, not shipped)."""
    source = Path(download(component.module, component.version)["Dir"])
    if into.exists():
        shutil.rmtree(into)
    shutil.copytree(source, into)
    for path in [into, *into.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    dist = into / "web" / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "index.html").write_text("<!doctype html><title>Flux Operator</title><p>UI not built.</p>\n")


def update(component: Component) -> None:
    """Regenerate ``modules/<name>/go.mod`` and ``go.sum`` from the component's go.mod."""
    info = download(component.module, component.version)
    wrapper = MODULES / component.name
    lines = [
        f"// Generated by tests/cluster/build.py --update from {component.module}@{component.version}: do not edit.",
        f"module faas-deployment/tests/cluster/modules/{component.name}",
        "",
        "go 1.26",
        "",
        "tool (",
    ]
    lines += [f"\t{package}" for package in sorted(component.binaries.values())]
    lines += [")", "", f"require {component.module} {component.version}", ""]
    generated = replaces(component, Path(info["GoMod"]))
    generated += [(module, module, version) for module, version in SUBSTITUTES.get(component.name, [])]
    if component.local_copy:
        generated.append((component.module, f"./{OPERATOR_SOURCE}", ""))
    if generated:
        lines.append("replace (")
        lines += [f"\t{old} => {new} {version}".rstrip() for old, new, version in generated]
        lines.append(")")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / component.name
        work.mkdir()
        (work / "go.mod").write_text("\n".join(lines) + "\n")
        if component.local_copy:
            write_local_copy(component, work / OPERATOR_SOURCE)
        # -e: tidy also resolves the tests of the component's packages, whose dependencies the
        # module proxy may not serve; what the build needs is checked by "go build -mod=readonly".
        go("mod", "tidy", "-e", cwd=work, env=component.env)
        wrapper.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "go.mod", wrapper / "go.mod")
        shutil.copy(work / "go.sum", wrapper / "go.sum")
    print(f"updated {wrapper.relative_to(HERE.parent.parent)} ({len(generated)} replace lines)")


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "faas-deployment" / "cluster"


def cache_key() -> str:
    """Hash of the Go version, the wrappers' go.mod/go.sum and the build flags: what decides the binaries."""
    digest = hashlib.sha256(go("env", "GOVERSION").encode())
    digest.update(repr((BUILD_FLAGS, EXTRA_CRDS, ASSETS_VERSION)).encode())
    for path in sorted(MODULES.glob("*/go.*")):
        digest.update(path.relative_to(MODULES).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def default_binary_name(package: str) -> str:
    """The file ``go build -o DIR/`` writes for ``package``: its last element, or the one before a
    major version suffix (``go.etcd.io/etcd/server/v3`` -> ``server``)."""
    parts = package.split("/")
    return parts[-2] if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]) else parts[-1]


def build(component: Component, out: Path) -> None:
    """``go build`` the component's main packages from its wrapper into ``out/bin``; copy its CRDs."""
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        work = Path(scratch) / component.name
        shutil.copytree(MODULES / component.name, work)
        if component.local_copy:
            write_local_copy(component, work / OPERATOR_SOURCE)
        bin_dir = work / "bin"
        bin_dir.mkdir()
        go("build", "-mod=readonly", "-trimpath", f"-ldflags={component.ldflags()}", "-o", f"{bin_dir}/",
           *component.binaries.values(), cwd=work, env=component.env)
        for name, package in component.binaries.items():
            built = bin_dir / default_binary_name(package)
            shutil.move(built, out / "bin" / name)
    if component.assets:
        root = Path(download(component.module, component.version)["Dir"])
        (out / component.name).mkdir(parents=True, exist_ok=True)
        for asset in component.assets:
            shutil.copy(root / asset, out / component.name / Path(asset).name)
    if component.crds:
        bases = Path(download(component.module, component.version)["Dir"]) / "config" / "crd" / "bases"
        target = out / "crds" / component.name
        target.mkdir(parents=True, exist_ok=True)
        for crd in sorted(bases.glob("*.yaml")):
            shutil.copy(crd, target / crd.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="regenerate the wrapper modules, then build")
    args = parser.parse_args(argv)
    if shutil.which("go") is None:
        sys.exit("tests/cluster/build.py: go is not on PATH; install Go >= 1.26 (the cluster tests need it)")
    wanted = components()
    if args.update:
        for component in wanted:
            update(component)
    out = cache_root() / cache_key()
    if (out / "versions.json").is_file():
        print(f"cluster binaries: {out} (cached)")
        return 0
    started = time.monotonic()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "bin").mkdir(parents=True)
    for component in wanted:
        step = time.monotonic()
        build(component, partial)
        print(f"  built {component.name} {component.version} in {time.monotonic() - step:.0f} s", flush=True)
    for name, (module, version, files) in EXTRA_CRDS.items():
        root = Path(download(module, version)["Dir"])
        (partial / "crds" / name).mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copy(root / file, partial / "crds" / name / Path(file).name)
    versions = {component.name: {"module": component.module, "version": component.version} for component in wanted}
    (partial / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    print(f"cluster binaries: {out} (built in {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
