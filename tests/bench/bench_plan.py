"""Benchmark of ``plan`` over many environments (figure in docs/plan.md). A script, not a test: it prints figures.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/bench_plan.py [--envs 10 50] [--trials 5]

For each size N, a throwaway git repository (real bare ``origin``) holds N
environments x 2 components (copies of ``env/prod``: operator with ``dynamic/``, and
controller), committed on ``main``; a second commit bumps ``chart_version`` in every
tenth environment's operator, edits one ``dynamic/`` file elsewhere and the README.
The figure is the wall time of the whole ``plan`` (git base resolution, exporting
both trees with ``git archive``, comparing) as the CLI runs it, best of
``--trials``, with the per-target cost and the ratio of the largest size to the
smallest (linear growth: ratio close to the size ratio). Goal: 50 x 2 under 2 s.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for the support package

from faas_deployment.gitlab import gitrefs  # noqa: E402
from support.plan_repo import PlanRepo  # noqa: E402


def build(root: Path, envs: int) -> PlanRepo:
    repo = PlanRepo(root)
    shutil.rmtree(repo.path("env/dev"))
    for n in range(envs):
        if n:
            shutil.copytree(repo.path("env/prod"), repo.path(f"env/e{n:03d}"))
    repo.commit(f"{envs} environments")
    for n in range(1, envs, 10):
        repo.edit(f"env/e{n:03d}/operator/cookiecutter-config.yaml", 'chart_version: "1.0.2"',
                  'chart_version: "1.0.3"')
    repo.append(f"env/e{envs - 1:03d}/operator/dynamic/configmap.yaml" if envs > 1 else
                "env/prod/operator/dynamic/configmap.yaml", "# tuned")
    repo.append("README.md", "notes")
    repo.commit("change")
    return repo


def measure(repo: PlanRepo, trials: int) -> tuple[float, int]:
    best, items = float("inf"), 0
    for _ in range(trials):
        started = time.perf_counter()
        result = gitrefs.plan_repository(repo.work, None, None, None, {})
        best = min(best, time.perf_counter() - started)
        items = len(result.items)
    return best, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as scratch:
        for envs in args.envs:
            repo = build(Path(scratch) / f"n{envs}", envs)
            seconds, items = measure(repo, args.trials)
            figures.append((envs, seconds))
            print(f"{envs:4d} environments x 2 components: plan {seconds:.3f} s "
                  f"({items} items, {1000 * seconds / (2 * envs):.2f} ms per target)")
    (small, t_small), (large, t_large) = figures[0], figures[-1]
    print(f"ratio {large}/{small} environments: time x{t_large / t_small:.2f} for size x{large / small:.2f}")
    print(f"goal 50 x 2 under 2 s: {'met' if all(t < 2.0 for n, t in figures if n <= 50) else 'MISSED'}")


if __name__ == "__main__":
    main()
