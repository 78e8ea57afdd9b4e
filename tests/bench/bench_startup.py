"""Benchmark of the CLI's start-up (goal in docs/performance.md). A script, not a test: it prints figures.

Run from the repository root (after ``bash .ci/setup``, which compiles the bytecode):

    dagger/.venv/bin/python tests/bench/bench_startup.py [--runs 30] [--importtime]

Each run is a cold process: the venv's ``faas-deploy`` console script itself (not
``uv run``, whose own start-up would be measured too) with ``--help``, and, in the
same run and interleaved with it, the baseline ``python -c pass`` of the same
interpreter. Printed: both medians (wall seconds), their difference (what the
project's start-up costs), the ratio, and the goal, ``faas-deploy --help`` ≤ 0.15 s
wall. ``--importtime`` adds the ten slowest imports (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAAS_DEPLOY = BIN / "faas-deploy"
GOAL_SECONDS = 0.15


def wall(argv: list[str]) -> float:
    """Wall seconds of one process running ``argv`` to completion (output discarded)."""
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - started


def slowest_imports(count: int = 10) -> list[str]:
    """The ``count`` imports with the largest cumulative time (microseconds) when ``--help`` runs."""
    code = "from faas_deployment.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         cwd=ROOT).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                rows.append((int(cumulative), name.rstrip()))
    return [f"{us / 1000:8.1f} ms {name}" for us, name in sorted(rows, reverse=True)[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="processes of each kind (default: %(default)s)")
    parser.add_argument("--importtime", action="store_true", help="also list the ten slowest imports")
    args = parser.parse_args()
    if not FAAS_DEPLOY.is_file():
        sys.exit(f"{FAAS_DEPLOY}: not found; run with the venv's python (dagger/.venv/bin/python)")
    compiled = any((ROOT / "dagger/src/faas_deployment/__pycache__").glob("cli.*.pyc"))
    print(f"interpreter {sys.executable}; PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}; "
          f"project bytecode compiled: {'yes' if compiled else 'no (run bash .ci/setup)'}")
    help_runs, pass_runs = [], []
    wall([str(FAAS_DEPLOY), "--help"])  # warm the page cache once: "cold" means a new process, not a cold disk
    for _ in range(args.runs):
        pass_runs.append(wall([sys.executable, "-c", "pass"]))
        help_runs.append(wall([str(FAAS_DEPLOY), "--help"]))
    measure, baseline = statistics.median(help_runs), statistics.median(pass_runs)
    print(f"faas-deploy --help: median {measure:.3f} s (min {min(help_runs):.3f}, max {max(help_runs):.3f}) "
          f"over {args.runs} processes")
    print(f"python -c pass:     median {baseline:.3f} s (min {min(pass_runs):.3f}, max {max(pass_runs):.3f})")
    print(f"project start-up beyond the interpreter: {measure - baseline:.3f} s")
    verdict = "met" if measure <= GOAL_SECONDS else "NOT met"
    print(f"faas-deploy --help / python -c pass = {measure:.3f} / {baseline:.3f} = {measure / baseline:.1f}x "
          f"(goal: faas-deploy --help <= {GOAL_SECONDS} s wall: {verdict})")
    if args.importtime:
        print("slowest imports (cumulative):")
        print("\n".join(slowest_imports()))


if __name__ == "__main__":
    main()
