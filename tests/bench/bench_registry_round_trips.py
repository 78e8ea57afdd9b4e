"""Registry round trips of ``release`` and ``publish`` (goal in docs/performance.md). A script, not a test: it
prints figures.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/bench_registry_round_trips.py [--charts 2 10]

A real ``docker-registry`` (htpasswd auth) runs on 127.0.0.1 behind the request-counting
loopback proxy of ``tests/support/registry_proxy.py``; a throwaway copy of ``env/``
holds N components of ``dev`` (copies of the operator, each its own chart name).

- no-op ``release`` of N charts (all published before): requests counted by the proxy,
  beside the goal N + 1; the 401 answers after the first challenge (goal 0) and the
  blob uploads (goal 0);
- first push of one chart: requests, beside the goal 8: with the publish lease (a registry
  that lets a tag be overwritten), and with ``--immutable-tags`` through the proxy refusing
  overwrites as Harbor, ECR and Artifact Registry do (the registry arbitrates, no lease).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for the support package

from faas_deployment.cli import main  # noqa: E402
from support.registry_process import start_registry, stop_registry  # noqa: E402
from support.registry_proxy import registry_proxy  # noqa: E402
from support.repo_tree import config_file, copy_repo, set_scalar  # noqa: E402


def run(source: Path, host: str, *argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["--source", str(source), *argv, "--env", "dev", "--registry", f"oci://{host}/charts",
                     "--username", "ci", "--password", "env:BENCH_REGISTRY_PASSWORD", "--plain-http"])
    if code != 0:
        raise SystemExit(f"faas-deploy {' '.join(argv)} failed")
    return out.getvalue()


def repository(root: Path, charts: int) -> Path:
    source = copy_repo(root / "src")
    dev = source / "env" / "dev"
    for extra in sorted(p.name for p in dev.iterdir() if p.is_dir() and p.name != "operator"):
        shutil.rmtree(dev / extra)
    for n in range(1, charts):
        shutil.copytree(dev / "operator", dev / f"operator{n}")
        set_scalar(config_file(source, "dev", f"operator{n}"), "chart_name", f"faas-operator{n}")
    return source


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charts", type=int, nargs="+", default=[2, 10])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as scratch:
        root = Path(scratch)
        password = "pw-" + os.urandom(9).hex()
        os.environ["BENCH_REGISTRY_PASSWORD"] = password
        (root / "registry").mkdir()
        proc, registry = start_registry(root / "registry", "ci", password)
        try:
            for charts in args.charts:
                source = repository(root / f"n{charts}", charts)
                with registry_proxy(registry.url) as (host, first):
                    run(source, host, "publish", "--component", "operator")
                immutable = None
                if charts > 1:  # another chart, not pushed yet, through a proxy refusing overwrites
                    with registry_proxy(registry.url) as (host, immutable):
                        immutable.lie = "put-immutable"
                        run(source, host, "publish", "--component", "operator1", "--immutable-tags")
                run(source, registry.host, "release")  # every chart published
                with registry_proxy(registry.url) as (host, noop_faults):
                    run(source, host, "release")
                noop = len(noop_faults.log)
                unauthorized = noop_faults.count(status=401)
                print(f"no-op release of {charts} charts: {noop} requests / {charts + 1} (N + 1) = "
                      f"{noop / (charts + 1):.2f} (goal <= 1.00; 2N + 1 expected: a look at each lease tag); "
                      f"401 after the first challenge: "
                      f"{max(0, unauthorized - 1)} (goal 0); blob uploads: "
                      f"{noop_faults.count('POST', path='/blobs/uploads/')} (goal 0)")
                if charts == args.charts[0]:
                    pushed = len(first.log)
                    print(f"first push of a chart, publish lease: {pushed} requests / 8 = {pushed / 8:.2f} "
                          f"(goal <= 1.00)")
                    if immutable is not None:
                        pushed = len(immutable.log)
                        print(f"first push of a chart, --immutable-tags (registry refusing overwrites): {pushed} "
                              f"requests / 8 = {pushed / 8:.2f} (goal <= 1.00)")
        finally:
            stop_registry(proc)


if __name__ == "__main__":
    main_bench()
