"""Benchmark of ``check`` of the 4 real charts in a cold process (goal in docs/performance.md). A script, not a
test: it prints figures.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/bench_check.py [--trials 7]

Measure: the wall time of a fresh ``faas-deploy --source REPO check`` process on a
copy of the repository (4 charts: validate, render, strict lint, package, the
publishing rules against the empty local repository, the dynamic manifests).

Baseline, in the same run: the Helm floor, a fresh process that imports the Helm
engine (``helm_python``) and does Helm's own part of the same work on the same 4
charts (strict lint and render of the chart directories ``check`` generates),
nothing else. Both are medians of ``--trials`` runs, alternated, in wall time and in
CPU time (user + system of the process and its threads: on a shared machine the
wall time also measures the neighbours' load).

Goals: measure <= 3x the floor, and <= 0.4 s. The script also prints the start-up
share: a cold process that imports the modules ``check`` loads (the CLI, the door,
the chart, packaging, publishing and manifest modules, the Helm engine) and does
nothing else; the Helm engine's own import is part of the floor too.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PYTHON = Path(sys.executable)

FLOOR = """
import sys
import helm_python
for chart in sys.argv[1:]:
    helm_python.lint(chart, strict=True, kube_version="1.30.0")
    helm_python.Chart.load(chart).render({}, name="bench", namespace="default")
"""

#: The modules ``check`` without --registry loads (tests/test_check_imports.py: nothing more).
STARTUP = (
    "import helm_python, faas_deployment.cli, faas_deployment.door, faas_deployment.charts.chart, "
    "faas_deployment.core.packaging, faas_deployment.registry.publishing, faas_deployment.bundle.templates, "
    "faas_deployment.gitlab.plan, "
    "faas_deployment.core.deadline"
)


def prepare(scratch: Path) -> tuple[Path, list[str]]:
    """A copy of the repository's configs, and the 4 chart directories check generates for them."""
    source = scratch / "source"
    shutil.copytree(ROOT / "env", source / "env")
    sys.path.insert(0, str(ROOT / "dagger" / "src"))
    from faas_deployment import door
    from faas_deployment.core import layout
    from faas_deployment.door import Workspace

    ws = Workspace(source)
    charts = [
        str(door.charts.render_chart(ws, env, component, scratch / "charts" / env))
        for env, component in layout.discover(source)
    ]
    return source, charts


def timed(command: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of a fresh process running ``command``, in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{proc.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        source, charts = prepare(Path(tmp))
        check = [str(PYTHON), "-c", "import sys; from faas_deployment.cli import main; sys.exit(main(sys.argv[1:]))",
                 "--source", str(source), "check"]
        floor = [str(PYTHON), "-c", FLOOR, *charts]
        startup = [str(PYTHON), "-c", STARTUP]
        timed(check), timed(floor), timed(startup)  # warm the file cache
        measures, baselines, startups = [], [], []
        for _ in range(args.trials):
            measures.append(timed(check))
            baselines.append(timed(floor))
            startups.append(timed(startup))
    for kind, index in (("wall", 0), ("CPU", 1)):
        measure = statistics.median(m[index] for m in measures)
        baseline = statistics.median(b[index] for b in baselines)
        started = statistics.median(s[index] for s in startups)
        print(f"[{kind} time, median of {args.trials}] check of {len(charts)} charts, cold process: {measure:.3f} s; "
              f"Helm floor (lint + render of the same charts), cold process: {baseline:.3f} s")
        print(f"  check / floor = {measure:.3f} / {baseline:.3f} = {measure / baseline:.2f}x "
              f"(goal <= 3x: {'met' if measure <= 3 * baseline else 'NOT met'}; "
              f"goal <= 0.4 s: {'met' if measure <= 0.4 else 'NOT met'})")
        print(f"  of which start-up (a cold process importing the modules check loads): {started:.3f} s; "
              f"check beyond start-up / floor = {measure - started:.3f} / {baseline:.3f} = "
              f"{(measure - started) / baseline:.2f}x")

if __name__ == "__main__":
    main()
