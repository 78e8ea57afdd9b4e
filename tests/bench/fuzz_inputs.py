"""The long run of the input fuzz suite. A script, not a test: it prints figures.

Run from the repository root:

    dagger/.venv/bin/python tests/bench/fuzz_inputs.py [--examples 2000] [--seed N]

Runs the properties of ``tests/test_fuzz_inputs.py`` (configs through ``config``
and ``bump``, ``dynamic/`` trees through ``manifests``) with ``--examples`` each,
the same oracle (exit 0, or exit 1 naming the file; no traceback, no hang, no
write after a refusal), and prints per property the examples run, the wall
time, the slowest example and the share of refusals. Exits 1 on the first
falsifying example (Hypothesis prints it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, seed, settings

from support import fuzzing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None, help="derandomise with this seed")
    args = parser.parse_args()
    stats: dict[str, list[float | int]] = {}

    def timed(name: str, outcome_code: int, started: float) -> None:
        entry = stats.setdefault(name, [0, 0.0, 0.0, 0])
        took = time.monotonic() - started
        entry[0] += 1
        entry[1] += took
        entry[2] = max(entry[2], took)
        entry[3] += outcome_code == 1

    def config(text: str) -> None:
        with fuzzing.workspace() as source:
            (source / fuzzing.CONFIG).write_text(text, encoding="utf-8", errors="surrogatepass")
            started = time.monotonic()
            outcome = fuzzing.run("--source", str(source), "config", "--env", "dev", "--component", "operator")
            timed("config", outcome.code, started)
            fuzzing.check_outcome(outcome, fuzzing.CONFIG)

    def bump(text: str) -> None:
        with fuzzing.workspace() as source:
            path = source / fuzzing.CONFIG
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            before = path.read_bytes()
            started = time.monotonic()
            outcome = fuzzing.run("--source", str(source), "bump", "--env", "dev", "--component", "operator",
                                  "--image-tag", "0f3c2d1")
            timed("bump", outcome.code, started)
            fuzzing.check_outcome(outcome, fuzzing.CONFIG)
            assert outcome.code == 0 or path.read_bytes() == before

    def dynamic(files: dict[str, bytes]) -> None:
        with fuzzing.workspace() as source:
            directory = source / fuzzing.DYNAMIC
            for child in directory.iterdir():
                child.unlink()
            for name, data in files.items():
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                (directory / name).write_bytes(data)
            out = source / "dev.zip"
            started = time.monotonic()
            outcome = fuzzing.run("--source", str(source), "manifests", "--env", "dev", "--out", str(out))
            timed("dynamic", outcome.code, started)
            fuzzing.check_outcome(outcome, "dynamic")
            assert out.exists() == (outcome.code == 0)

    chosen = settings(max_examples=args.examples, deadline=10_000, database=None,
                      suppress_health_check=list(HealthCheck), derandomize=False)
    properties = [("config", given(fuzzing.config_texts())(config)), ("bump", given(fuzzing.config_texts())(bump)),
                  ("dynamic", given(fuzzing.dynamic_trees())(dynamic))]
    print(f"{'property':<10}{'examples':>10}{'wall s':>10}{'slowest s':>11}{'refused':>9}")
    for name, prop in properties:
        started = time.monotonic()
        run = chosen(prop)
        (seed(args.seed)(run) if args.seed is not None else run)()
        count, _, slowest, refused = stats.get(name, [0, 0.0, 0.0, 0])
        print(f"{name:<10}{count:>10}{time.monotonic() - started:>10.1f}{slowest:>11.3f}"
              f"{refused / max(count, 1):>9.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
