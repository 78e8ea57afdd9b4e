"""Benchmark of the ``dynamic/`` templates: bundling speed and admin API readiness. A script, not a test.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/bench_manifests.py [--files 10000] [--total-mb 100] [--runs 3]
        [--trials 40] [--skip-bundle] [--skip-readiness]

1. Bundling ``--files`` manifest templates totalling ``--total-mb`` MB in 100
   directories: ``faas_deployment.bundle.archive.write_bundle`` in a child process
   (start-up and import included) against ``zip -X -r -q`` on the same tree, in
   the same run, alternating, ``--runs`` times each (medians of wall and CPU
   seconds, CPU from ``resource.getrusage``). The child reports its own peak
   resident memory and that of its worker processes. Goal: at most 1.2x zip,
   peak RSS at most 150 MB. A third process, the same ``write_bundle`` with
   :func:`~faas_deployment.bundle.templates.check_content` answering "no problem" and
   no worker processes, shows the floor of the design: reading, deflating and
   writing the zip alone, what any check adds to.
2. Readiness to upload: ``--trials`` loopback admin APIs (``tests/support/admin_api_server.py``)
   served concurrently, each answering 503 on ``/healthz`` for a random 5-75 s,
   each with one :func:`faas_deployment.bundle.admin_api.upload_when_ready` client using
   the default readiness poll. From each API's own request log: the time from the
   API becoming ready to the upload being accepted (p50, p95, max), and the most
   readiness requests in any 60-second window before it was ready. Goal: p95 at
   most 1 s with at most 60 requests a minute.
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for the support package

from faas_deployment.bundle import admin_api, archive, readiness  # noqa: E402
from support.admin_api_server import AdminApiServer  # noqa: E402

REPO = HERE.parent.parent
TOKEN = "bench-token"
WORDS = "function deployment operator replica service scale image port probe ready config value".split()
BUNDLE_GOAL = 1.2
RSS_GOAL_MB = 150
LATENCY_GOAL_S = 1.0
RATE_GOAL_PER_MIN = 60


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# -- bundling -------------------------------------------------------------------------


def make_tree(root: Path, files: int, total_bytes: int) -> int:
    """Write ``files`` ConfigMap templates of about ``total_bytes`` in all; return the bytes written."""
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
            line = f'  key{key}: "{value}"'
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
import resource, sys
from pathlib import Path
from faas_deployment.bundle import archive
bundle = archive.write_bundle(Path(sys.argv[1]), Path(sys.argv[2]), log=None)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(bundle.sha256, f"{own:.1f}", f"{workers:.1f}")
"""

FLOOR_CHILD = """
import sys
from pathlib import Path
from faas_deployment.bundle import archive, templates
templates.check_content = lambda shown, data: []  # the floor: every file taken as valid, unread by YAML
templates.PARALLEL_MIN_BYTES = float("inf")  # and no worker processes to hand bytes to
print(archive.write_bundle(Path(sys.argv[1]), Path(sys.argv[2]), log=None).sha256)
"""


def cpu_of_children() -> float:
    """User plus system CPU seconds of the waited-for child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str]) -> tuple[float, float, str]:
    """``(wall seconds, CPU seconds, standard output)`` of one process (with its own children)."""
    started, cpu = time.perf_counter(), cpu_of_children()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {done.stderr}")
    return wall, cpu_of_children() - cpu, done.stdout.strip()


def bench_bundle(files: int, total_mb: int, runs: int) -> bool:
    work = Path(tempfile.mkdtemp(prefix="bench-tree-"))
    try:
        tree = work / "dynamic"
        written = make_tree(tree, files, total_mb * 1_000_000)
        print(f"== bundle {files} files, {written / 1e6:.1f} MB in 100 directories ({runs} runs each, medians) ==")
        zip_walls, our_walls, floor_walls, own_rss, worker_rss, digests = [], [], [], [], [], set()
        zip_cpus, our_cpus, floor_cpus = [], [], []
        for run in range(runs):
            (work / "zip.zip").unlink(missing_ok=True)
            wall, cpu, _ = timed(["/bin/sh", "-c", f"cd {tree} && exec zip -X -r -q {work / 'zip.zip'} ."])
            zip_walls.append(wall)
            zip_cpus.append(cpu)
            wall, cpu, out = timed([sys.executable, "-c", CHILD, str(tree), str(work / f"ours-{run}.zip")])
            our_walls.append(wall)
            our_cpus.append(cpu)
            digest, own, workers = out.split()
            digests.add(digest)
            own_rss.append(float(own))
            worker_rss.append(float(workers))
            wall, cpu, out = timed([sys.executable, "-c", FLOOR_CHILD, str(tree), str(work / "floor.zip")])
            floor_walls.append(wall)
            floor_cpus.append(cpu)
            digests.add(out)
        zip_wall, our_wall = statistics.median(zip_walls), statistics.median(our_walls)
        floor_wall = statistics.median(floor_walls)
        zip_cpu, our_cpu, floor_cpu = map(statistics.median, (zip_cpus, our_cpus, floor_cpus))
        ratio = our_wall / zip_wall
        peak = max(max(own_rss), max(worker_rss))
        print(f"zip -X -r:     {zip_wall:6.2f} s  (runs: {', '.join(f'{w:.2f}' for w in zip_walls)})")
        print(f"write_bundle:  {our_wall:6.2f} s  (runs: {', '.join(f'{w:.2f}' for w in our_walls)}; "
              "a whole process: start-up, import, validation and zip)")
        print(f"write_bundle / zip -X -r = {our_wall:.2f} / {zip_wall:.2f} = {ratio:.2f}x (goal <= {BUNDLE_GOAL}x)")
        print(f"CPU: write_bundle {our_cpu:.2f} s (workers included), zip {zip_cpu:.2f} s: "
              f"{our_cpu / zip_cpu:.2f}x")
        print(f"floor, write_bundle without content checks: {floor_wall:.2f} s, {floor_wall / zip_wall:.2f}x zip "
              f"(CPU {floor_cpu:.2f} s, {floor_cpu / zip_cpu:.2f}x); the checks add "
              f"{our_cpu - floor_cpu:.2f} CPU s, {(our_cpu - floor_cpu) / zip_cpu:.2f}x zip's CPU")
        print(f"peak RSS: {max(own_rss):.1f} MiB bundling process, {max(worker_rss):.1f} MiB largest worker "
              f"(goal <= {RSS_GOAL_MB} MB; tree {written / 2**20:.0f} MiB)")
        print(f"sizes: ours {(work / 'ours-0.zip').stat().st_size / 1e6:.1f} MB, zip "
              f"{(work / 'zip.zip').stat().st_size / 1e6:.1f} MB; {runs} runs byte-identical: {len(digests) == 1}")
        return ratio <= BUNDLE_GOAL and peak <= RSS_GOAL_MB and len(digests) == 1
    finally:
        shutil.rmtree(work)


# -- readiness ------------------------------------------------------------------------


def most_in_a_minute(times: list[float]) -> int:
    """The most of ``times`` (seconds, sorted) inside any window ``[t, t + 60)``."""
    return max((bisect.bisect_left(times, t + 60) - i for i, t in enumerate(times)), default=0)


def bench_readiness(trials: int) -> bool:
    bundle_dir = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    bundle = archive.write_bundle(REPO / "env/dev/operator/dynamic", bundle_dir / "dev.zip", log=None)
    rng = random.Random(3)
    results: list[tuple[AdminApiServer, float]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def trial(unready: float) -> None:
        server = AdminApiServer(TOKEN, unready_for=unready).start()
        try:
            admin_api.upload_when_ready(server.url, bundle, TOKEN, timeout=150, quiet=True)
            with lock:
                results.append((server, unready))
        except Exception as exc:  # counted and shown below
            failures.append(str(exc))
        finally:
            server.stop()

    threads = [threading.Thread(target=trial, args=(rng.uniform(5, 75),)) for _ in range(trials)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shutil.rmtree(bundle_dir)
    latencies = [server.accepted[0].at - server.ready_at for server, _ in results]
    waiting = [sorted(r.at for r in server.requests if r.path == "/healthz" and r.at < server.ready_at)
               for server, _ in results]
    busiest = max(most_in_a_minute(times) for times in waiting)
    mean_rate = sum(len(times) for times in waiting) / sum(unready for _, unready in results) * 60
    p95 = percentile(latencies, 95)
    print(f"== admin API ready -> upload accepted (default poll: {readiness.Poll()}) ==")
    print(f"{len(results)} trials served concurrently, each API not ready for 5-75 s; run took "
          f"{time.monotonic() - started:.0f} s; failures: {len(failures)} {failures[:1]}")
    print(f"latency from ready to accepted (API request log): p50 {percentile(latencies, 50):.2f} s, "
          f"p95 {p95:.2f} s, max {max(latencies):.2f} s")
    print(f"p95 latency / goal = {p95:.2f} / {LATENCY_GOAL_S:.2f} s = {p95 / LATENCY_GOAL_S:.2f} (goal <= 1)")
    print(f"readiness requests while waiting: at most {busiest} in any minute, {mean_rate:.1f} per minute on "
          f"average; {busiest} / {RATE_GOAL_PER_MIN} = {busiest / RATE_GOAL_PER_MIN:.2f} (goal <= 1)")
    return not failures and p95 <= LATENCY_GOAL_S and busiest <= RATE_GOAL_PER_MIN


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--total-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--skip-bundle", action="store_true")
    parser.add_argument("--skip-readiness", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    met = []
    if not args.skip_bundle:
        met.append(("bundle", bench_bundle(args.files, args.total_mb, args.runs)))
    if not args.skip_readiness:
        met.append(("readiness", bench_readiness(args.trials)))
    print("goals: " + ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in met))
    return 0


if __name__ == "__main__":
    sys.exit(main())
