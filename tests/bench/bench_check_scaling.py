"""Benchmark of ``check``'s own work per chart, beyond Helm's (goal in docs/performance.md). A script, not a
test: it prints figures.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/bench_check_scaling.py [--charts 10 100] [--trials 3]

For each size N, a source tree holds N components spread over environments as real
repositories spread them, ``--per-env`` to an environment (default 2: 100 charts are
50 environments; copies of ``env/prod/operator``, each with its own ``chart_name``).
``check`` of every environment runs in this process, each trial with a new
workspace, as each run has (after one warm-up run, so start-up and the one-time
template compilation are not counted), and every call into the Helm engine
(``helm_python``: lint, package, chart loading and rendering) is timed. The walks of
``env/`` (``os.scandir`` of it: environment and component discovery) are counted. The figure is the time per chart
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
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "dagger" / "src"))

import helm_python  # noqa: E402

from faas_deployment import door  # noqa: E402
from faas_deployment.core import progress  # noqa: E402
from faas_deployment.door import Workspace  # noqa: E402

HELM_TIME = [0.0]
WALKS = [0]


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


def count_walks(env_dir: Path) -> None:
    """Count every ``os.scandir`` of ``env_dir`` (discovery's walk) into :data:`WALKS`."""
    real, watched = os.scandir, str(env_dir)

    def counting(path=".", *args, **kwargs):
        if not isinstance(path, int) and os.fspath(path) == watched:
            WALKS[0] += 1
        return real(path, *args, **kwargs)

    os.scandir = counting


def build(root: Path, charts: int, per_env: int) -> Path:
    example = ROOT / "env" / "prod" / "operator"
    text = (example / "cookiecutter-config.yaml").read_text()
    for n in range(charts):
        target = root / "env" / f"bench{n // per_env:03d}" / f"c{n:03d}"
        shutil.copytree(example, target, ignore=shutil.ignore_patterns("dynamic"))
        (target / "cookiecutter-config.yaml").write_text(
            text.replace('chart_name: "faas-operator"', f'chart_name: "faas-c{n:03d}"'))
    return root


def measure(source: Path, charts: int, trials: int) -> tuple[float, float, int]:
    """Best of ``trials``: (seconds per chart beyond Helm, check seconds, walks of ``env/``)."""
    best = (float("inf"), float("inf"), 0)
    for _ in range(trials):
        HELM_TIME[0], WALKS[0] = 0.0, 0
        started = time.process_time()
        report = door.check.check(Workspace(source)).text
        total = time.process_time() - started
        assert len([line for line in report.splitlines() if line.startswith("ok bench")
                    and ": dynamic" not in line]) == charts, report
        best = min(best, ((total - HELM_TIME[0]) / charts, total, WALKS[0]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charts", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--per-env", type=int, default=2, help="charts per environment")
    args = parser.parse_args()
    instrument()
    quiet = open("/dev/null", "w")  # progress lines are not the figure
    progress_step = progress.step
    progress.step = lambda name, stream=None: progress_step(name, quiet)
    from faas_deployment.charts import build as chart_steps
    from faas_deployment.door import charts, check

    for module in (chart_steps, charts, check):  # each holds its own reference to progress.step
        module.step = progress.step  # type: ignore[attr-defined]
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-check-scaling-") as tmp:
        for charts in args.charts:
            source = build(Path(tmp) / f"n{charts}", charts, args.per_env)
            count_walks(source / "env")
            door.check.check(Workspace(source))  # warm-up: template compiled, caches filled
            figures[charts], total, walks = measure(source, charts, args.trials)
            envs = -(-charts // args.per_env)
            print(f"{charts} charts over {envs} environments: {figures[charts] * 1000:.1f} ms per chart beyond "
                  f"Helm's own work; check {total:.2f} s CPU, {walks} walks of env/")
    small, large = min(figures), max(figures)
    ratio = figures[large] / figures[small]
    print(f"per chart at {large} / per chart at {small} = {figures[large] * 1000:.1f} / {figures[small] * 1000:.1f} ms "
          f"= {ratio:.2f}x (goal: linear, <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'}; "
          f"<= 15 ms per chart at {large}: {'met' if figures[large] <= 0.015 else 'NOT met'})")


if __name__ == "__main__":
    main()
