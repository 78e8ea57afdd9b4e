"""``deploy`` and ``wait`` against the real control plane and Flux controllers. A script, not a test:
it prints figures (goals in docs/flux.md, "Waiting").

Run from the repository root, after ``bash .ci/setup`` built the cluster:

    dagger/.venv/bin/python tests/bench/bench_cluster_deploy.py [--runs 3] [--idle 60]

- **Ready -> reported**: ``deploy --component operator`` of a bumped chart while a second
  watch (the admin's, not the pipeline's) notes the instant helm-controller's HelmRelease
  turns Ready on the pushed revision; the figure is the time from that instant to
  ``deploy`` returning ``deployed`` (goal <= 1 s).
- **API requests a minute while waiting**: ``wait`` for a revision nobody pushed, ``--idle``
  seconds; the pipeline's requests are counted in the API server's audit log (user
  ``faas-ci``), goal <= 60 a minute for one release.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for the support package

from faas_deployment.cli import main  # noqa: E402
from support.cluster import Cluster, binaries_dir  # noqa: E402
from support.flux_env import FluxEnv, ready  # noqa: E402
from support.registry_process import start_registry, stop_registry  # noqa: E402


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def ready_instant(env: FluxEnv, revision: str, stop: threading.Event, seen: list[float]) -> None:
    """Watch HelmRelease faas-operator as the admin; append the monotonic instant it is Ready on ``revision``."""
    path = f"/apis/helm.toolkit.fluxcd.io/v2/namespaces/{env.ns}/helmreleases"
    with env.cluster.http() as api:
        while not stop.is_set():
            with api.stream("GET", path, params={"watch": "true", "fieldSelector": "metadata.name=faas-operator",
                                                 "timeoutSeconds": "30"}, timeout=40) as answer:
                for line in answer.iter_lines():
                    obj = json.loads(line)["object"]
                    history = (obj.get("status") or {}).get("history") or [{}]
                    if ready(obj) and history[0].get("chartVersion") == revision:
                        seen.append(time.monotonic())
                        return
                    if stop.is_set():
                        return


def main_bench() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        root = Path(scratch)
        (root / "cluster").mkdir()
        (root / "registry").mkdir()
        cluster = Cluster(root / "cluster", binaries_dir())
        proc, registry = start_registry(root / "registry", "ci", "pw-bench-0123456789")
        try:
            cluster.start()
            print(f"cluster ready in {cluster.ready_seconds:.1f} s")
            env = FluxEnv(cluster, registry, root / "env", run_cli)
            env.install()
            code, out, err = env.deploy()
            assert code == 0, out + err
            lags = []
            for _ in range(args.runs):
                env.bump("operator")
                expected = env.expected("operator")
                stop, seen = threading.Event(), []
                watcher = threading.Thread(target=ready_instant, args=(env, expected.revision, stop, seen), daemon=True)
                watcher.start()
                code, out, err = env.deploy("--component", "operator")
                returned = time.monotonic()
                stop.set()
                assert code == 0 and seen, out + err
                lags.append(returned - seen[0])
                print(f"  Ready -> deploy reported: {lags[-1]:.3f} s")
            print(f"Ready -> reported: max {max(lags):.3f} s over {len(lags)} runs (goal <= 1 s)")
            before = len(cluster.ci_requests())
            env.bump("operator")  # configured, never pushed: the wait sees nothing of its own
            started = time.monotonic()
            code, out, err = env.cli("wait", "--env", "dev", "--component", "operator",
                                     "--kubeconfig", f"file:{env.kubeconfig}", "--timeout", str(args.idle))
            waited = time.monotonic() - started
            requests = cluster.ci_requests()[before:]
            per_minute = len(requests) * 60 / waited
            print(f"wait ({code}, {waited:.0f} s): {len(requests)} API requests, {per_minute:.1f} a minute "
                  f"(goal <= 60): {sorted({r['verb'] for r in requests})}")
        finally:
            cluster.stop()
            stop_registry(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main_bench())
