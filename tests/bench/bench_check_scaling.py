"""Benchmark of ``check``'s own work per chart, beyond Helm's (goal in the README, "Performance"). A script, not a
test: it prints figures.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/bench_check_scaling.py [--charts 10 100] [--trials 3]

For each size N, a source tree holds one environment of N components (copies of
``env/prod/operator``, each with its own ``chart_name``). ``check`` runs in this
process (after one warm-up run, so start-up and the one-time template compilation
are not counted) and every call into the Helm engine (``helm_python``: lint,
package, chart loading and rendering) is timed. The figure is the time per chart
beyond Helm's own work: ``(check total - Helm time) / N``, best of ``--trials``,
in CPU time of this process (``time.process_time``: the machine is shared, and
wall time there measures the neighbours' load as much as this code).

Baseline, in the same run: the same figure at the smallest size. Goals: at the
largest size <= 15 ms per chart, and linear growth (the per-chart figure of the
largest size at most 1.5x the smallest's).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "dagger" / "src"))

import helm_python  # noqa: E402

from faas_deployment import progress  # noqa: E402
from faas_deployment.pipeline import Workspace  # noqa: E402

HELM_TIME = [0.0]


def _timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            HELM_TIME[0] += time.process_time() - started

    return wrapper


def instrument() -> None:
    """Time every entry into the Helm engine that check makes."""
    helm_python.lint = _timed(helm_python.lint)
    helm_python.package = _timed(helm_python.package)
    helm_python.Chart.load = _timed(helm_python.Chart.load)
    helm_python.Chart.render = _timed(helm_python.Chart.render)


def build(root: Path, charts: int) -> Path:
    example = ROOT / "env" / "prod" / "operator"
    text = (example / "cookiecutter-config.yaml").read_text()
    for n in range(charts):
        target = root / "env" / "bench" / f"c{n:03d}"
        shutil.copytree(example, target, ignore=shutil.ignore_patterns("dynamic"))
        (target / "cookiecutter-config.yaml").write_text(
            text.replace('chart_name: "faas-operator"', f'chart_name: "faas-c{n:03d}"'))
    return root


def measure(source: Path, charts: int, trials: int) -> float:
    ws = Workspace(source)
    best = float("inf")
    for _ in range(trials):
        HELM_TIME[0] = 0.0
        started = time.process_time()
        report = ws.check("bench").text
        total = time.process_time() - started
        assert report.count("\nok bench/") + report.startswith("ok bench/") == charts, report
        best = min(best, (total - HELM_TIME[0]) / charts)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charts", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    instrument()
    quiet = open("/dev/null", "w")  # progress lines are not the figure
    progress_step = progress.step
    progress.step = lambda name, stream=None: progress_step(name, quiet)
    import faas_deployment.pipeline as pipeline
    pipeline.step = progress.step
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-check-scaling-") as tmp:
        for charts in args.charts:
            source = build(Path(tmp) / f"n{charts}", charts)
            Workspace(source).check("bench")  # warm-up: template compiled, caches filled
            figures[charts] = measure(source, charts, args.trials)
            print(f"{charts} charts: {figures[charts] * 1000:.1f} ms per chart beyond Helm's own work")
    small, large = min(figures), max(figures)
    ratio = figures[large] / figures[small]
    print(f"per chart at {large} / per chart at {small} = {figures[large] * 1000:.1f} / {figures[small] * 1000:.1f} ms "
          f"= {ratio:.2f}x (goal: linear, <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'}; "
          f"<= 15 ms per chart at {large}: {'met' if figures[large] <= 0.015 else 'NOT met'})")


if __name__ == "__main__":
    main()
