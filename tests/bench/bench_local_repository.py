"""Publishing into a large local Helm repository (goal in docs/performance.md). A script, not a test: it prints
figures.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/bench_local_repository.py [--packages 1000] [--trials 15]

A populated repository holds ``--packages`` packages (50 charts, the rest as their
versions: real ``.tgz`` files and an ``index.yaml`` listing them, written by ``yaml``
as ``helm repo index`` would); one publish brings it into the layout this project
writes (timed and printed apart: it happens once per repository). The figure is the
time of the ``publish`` verb for a new chart version (``door.charts.release`` of one
component, as the CLI runs it: validate, render, lint, package, then the repository's
lock, rules, index update and durable atomic writes), median of ``--trials``
successive versions, beside the same publishes into a repository that starts empty
(the baseline; the two alternate, so the machine's load weighs on both alike), and
their ratio. Goal: <= 1.2. The repository part alone
(:meth:`LocalRepoTarget.publish`) is printed too: what remains there grows with the
index (writing and syncing its bytes), no longer with parsing it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for the support package

from faas_deployment import door  # noqa: E402
from faas_deployment.door import Workspace  # noqa: E402
from faas_deployment.registry.publishing import LocalRepoTarget  # noqa: E402
from support.repo_tree import copy_repo, set_scalar  # noqa: E402


def populate(directory: Path, packages: int, sample: Path) -> None:
    """``packages`` packages of 50 charts in ``directory``, with the index an earlier publish would leave."""
    directory.mkdir(parents=True)
    index = yaml.safe_load((sample.parent / "index.yaml").read_text())
    entry = next(iter(index["entries"].values()))[0]
    data = sample.read_bytes()
    entries: dict[str, list[dict]] = {}
    for n in range(packages):
        name, version = f"bench-chart-{n % 50}", f"1.{n // 50}.0"
        (directory / f"{name}-{version}.tgz").write_bytes(data)
        entries.setdefault(name, []).insert(0, {**entry, "name": name, "version": version,
                                                "urls": [f"{name}-{version}.tgz"]})
    (directory / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": entries,
                                                          "generated": entry["created"]}, sort_keys=False))


def measure(ws: Workspace, directory: Path, versions: list[str]) -> tuple[list[float], list[float]]:
    """Wall times of the publish verb and of the repository part, one per version."""
    config = ws.config_file("dev", "operator")
    verb, part = [], []
    target = LocalRepoTarget(directory)
    publish = target.publish

    def timed_publish(package, **kwargs):
        started = time.perf_counter()
        try:
            return publish(package, **kwargs)
        finally:
            part.append(time.perf_counter() - started)

    target.publish = timed_publish  # type: ignore[method-assign]
    with contextlib.redirect_stderr(io.StringIO()):
        for version in versions:
            set_scalar(config, "chart_version", version)
            started = time.perf_counter()
            [result] = door.charts.publish_charts(ws, "dev", target, ["operator"])
            verb.append(time.perf_counter() - started)
            assert result.outcome == "pushed", result
    return verb, part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-local-repo-") as scratch:
        root = Path(scratch)
        ws = Workspace(copy_repo(root / "src"), None)
        package = door.charts.package_chart(ws, "dev", "operator", root / "package")
        sample_repo = root / "sample"
        LocalRepoTarget(sample_repo).publish(package, config="bench")
        populate(root / "full", args.packages, sample_repo / package.path.name)
        measure(ws, root / "full", ["8.0.0"])  # the once-per-repository conversion
        for trial in range(2):  # warm both paths (imports, Helm's engine)
            measure(ws, root / f"warm-{trial}", [f"7.{trial}.0"])
        versions = [f"9.{trial}.0" for trial in range(args.trials)]
        empty_verb, empty_part, full_verb, full_part = [], [], [], []
        for version in versions:  # alternated, so the machine's load weighs on both alike
            verb, part = measure(ws, root / "empty", [version])
            empty_verb += verb
            empty_part += part
            verb, part = measure(ws, root / "full", [version])
            full_verb += verb
            full_part += part
        empty, full = statistics.median(empty_verb), statistics.median(full_verb)
        print(f"repository part alone: {statistics.median(full_part) * 1000:.1f} ms with {args.packages} packages, "
              f"{statistics.median(empty_part) * 1000:.1f} ms empty")
        print(f"publish into an empty repository: {empty * 1000:.1f} ms (baseline)")
        print(f"publish into a repository of {args.packages} packages: {full * 1000:.1f} ms / "
              f"{empty * 1000:.1f} ms = {full / empty:.2f} (goal <= 1.20)")


if __name__ == "__main__":
    main()
