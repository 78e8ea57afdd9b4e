"""Benchmark of the dynamic-manifests path (issue 3, part 8). A script, not a test: it prints figures.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/bench_manifests.py [--trials 20] [--files 10000] [--total-mb 100]

1. Readiness to upload, with the default backoff (0.5 s doubling to a 4 s cap, plus
   0-1 s jitter): ``--trials`` loopback admin APIs (tests/admin_api_server.py), each
   answering 503 for a random 8-20 s, are served concurrently; for each, the time
   from the API becoming ready to the upload being accepted (p50, p95, max), and
   the readiness requests made per minute while it was not ready (overall, and in
   the steady state after the backoff reached its cap).
2. Bundling ``--files`` manifests totalling ``--total-mb`` MB in 100 directories:
   wall time of validation alone and of ``write_bundle`` (validation + zip),
   against ``zip -X -r -q`` on the same tree in the same run; peak resident memory
   (GNU ``time`` of a child process each) against a child that only imports
   the module, so the difference is what bundling costs.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for admin_api_server

from admin_api_server import AdminApiServer  # noqa: E402

from faas_deployment import admin_api, manifests  # noqa: E402

REPO = HERE.parent.parent
TOKEN = "bench-token"
WORDS = "function deployment operator replica service scale image port probe ready config value".split()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def bench_readiness(trials: int) -> None:
    bundle_dir = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    bundle = manifests.write_bundle(REPO / "env/dev/operator/dynamic", bundle_dir / "dev.zip", log=None)
    rng = random.Random(3)
    results: list[tuple[AdminApiServer, float, float]] = []
    lock = threading.Lock()

    def trial(unready: float) -> None:
        server = AdminApiServer(TOKEN, unready_for=unready).start()
        try:
            admin_api.upload_manifests(server.url, bundle, TOKEN, timeout=120, log=None)
            with lock:
                results.append((server, server.accepted[0].at, unready))
        finally:
            server.stop()

    threads = [threading.Thread(target=trial, args=(rng.uniform(8, 20),)) for _ in range(trials)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies = [accepted - server.ready_at for server, accepted, _ in results]
    waiting = [r for server, _, _ in results for r in server.requests if r.path == "/healthz" and r.at < server.ready_at]
    unready_seconds = sum(unready for _, _, unready in results)
    steady = [r for server, _, _ in results for r in server.requests
              if r.path == "/healthz" and server.started + 8 <= r.at < server.ready_at]
    steady_seconds = sum(unready - 8 for _, _, unready in results)
    print("== readiness -> upload (default backoff: 0.5 s x2 up to 4 s, + 0-1 s jitter) ==")
    print(f"trials: {len(results)} concurrent, API not ready for 8-20 s each; run took {time.monotonic() - started:.1f} s")
    print(f"latency from ready to upload accepted: p50 {percentile(latencies, 50):.2f} s, "
          f"p95 {percentile(latencies, 95):.2f} s, max {max(latencies):.2f} s, mean {statistics.mean(latencies):.2f} s")
    print(f"readiness requests while waiting: {len(waiting) / unready_seconds * 60:.1f} per minute overall, "
          f"{len(steady) / steady_seconds * 60:.1f} per minute once at the cap (after 8 s)")
    shutil.rmtree(bundle_dir)


def make_tree(root: Path, files: int, total_bytes: int) -> int:
    rng = random.Random(7)
    per_file = total_bytes // files
    written = 0
    for index in range(files):
        lines = [
            "apiVersion: v1",
            "kind: ConfigMap",
            "metadata:",
            f"  name: fn-{{{{ .FunctionName }}}}-{index}",
            '  namespace: "{{ .Namespace }}"',
            "data:",
        ]
        size = sum(len(line) + 1 for line in lines)
        key = 0
        while size < per_file:
            value = " ".join(rng.choice(WORDS) for _ in range(12)) + f" {rng.getrandbits(64):x}"
            line = f"  key{key}: \"{value}\""
            lines.append(line)
            size += len(line) + 1
            key += 1
        path = root / f"group-{index % 100:03d}" / f"configmap-{index:05d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "\n".join(lines) + "\n"
        path.write_text(data)
        written += len(data)
    return written


CHILD = """
import sys, time
from pathlib import Path
from faas_deployment import manifests
mode, tree, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
started = time.perf_counter()
if mode == "validate":
    manifests.validate_dynamic(tree, log=None)
elif mode == "bundle":
    b = manifests.write_bundle(tree, out, log=None)
print(f"{time.perf_counter() - started:.3f}")
"""


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one child, measured by GNU time.

    Not ``wait4`` on our own child: Linux carries the forking parent's peak RSS
    into the child's figure across ``exec``; GNU time's child is forked from a tiny process.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *argv], capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{argv[:3]} failed: {done.stderr}")
        peak_kib = int(report.read().strip().splitlines()[-1])
    return wall, peak_kib / 1024, done.stdout.strip()


def bench_bundle(files: int, total_mb: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-tree-"))
    try:
        tree = work / "dynamic"
        written = make_tree(tree, files, total_mb * 1_000_000)
        python = sys.executable
        print(f"== bundling {files} files, {written / 1e6:.1f} MB in 100 directories ==")
        rows = []
        for label, argv in (
            ("import only (baseline)", [python, "-c", CHILD, "none", str(tree), str(work / "x.zip")]),
            ("validate_dynamic", [python, "-c", CHILD, "validate", str(tree), str(work / "x.zip")]),
            ("write_bundle (validate + zip)", [python, "-c", CHILD, "bundle", str(tree), str(work / "ours.zip")]),
        ):
            wall, rss, inner = run_child(argv)
            rows.append((label, wall, rss, float(inner)))
        zip_wall, zip_rss, _ = run_child(["/bin/sh", "-c", f"cd {tree} && zip -X -r -q {work / 'zip.zip'} ."])
        again_wall, again_rss, again_inner = run_child([python, "-c", CHILD, "bundle", str(tree), str(work / "ours2.zip")])
        rows.append(("write_bundle again (after zip)", again_wall, again_rss, float(again_inner)))
        same = (work / "ours.zip").read_bytes() == (work / "ours2.zip").read_bytes()
        for label, wall, rss, inner in rows:
            print(f"{label:32s} in-process {inner:6.2f} s  (process {wall:6.2f} s)  peak RSS {rss:7.1f} MiB")
        print(f"{'zip -X -r -q (same tree)':32s} process {zip_wall:6.2f} s  peak RSS {zip_rss:7.1f} MiB")
        best = min(rows[2][3], rows[3][3])
        zip_step = best - rows[1][3]
        print(f"write_bundle / zip: {best / zip_wall:.2f}x; the zip step alone (write_bundle - validate_dynamic, "
              f"{zip_step:.2f} s) / zip: {zip_step / zip_wall:.2f}x")
        print(f"bundling memory over the import baseline: {rows[2][2] - rows[0][2]:.1f} MiB "
              f"(tree is {written / 2**20:.0f} MiB)")
        print(f"sizes: ours {(work / 'ours.zip').stat().st_size / 1e6:.1f} MB, "
              f"zip {(work / 'zip.zip').stat().st_size / 1e6:.1f} MB; two runs byte-identical: {same}")
    finally:
        shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--total-mb", type=int, default=100)
    parser.add_argument("--skip-readiness", action="store_true")
    parser.add_argument("--skip-bundle", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if not args.skip_readiness:
        bench_readiness(args.trials)
    if not args.skip_bundle:
        bench_bundle(args.files, args.total_mb)


if __name__ == "__main__":
    main()
