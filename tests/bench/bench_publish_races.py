"""20 concurrent-publisher trials against the real registry and 20 against a local repository; prints wrong outcomes.

Run: uv run --project dagger --locked python tests/bench/bench_publish_races.py [TRIALS]
Each trial starts two ``faas-deploy publish`` processes of one chart version with
different content (tests/support/race.py says what counts as wrong).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.registry_process import start_registry, stop_registry  # noqa: E402
from support.race import local_trial, oci_trial  # noqa: E402


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory(prefix="faas-bench-races-") as scratch:
        root = Path(scratch)
        (root / "registry").mkdir()
        proc, registry = start_registry(root / "registry", "ci", "pw-" + os.urandom(9).hex())
        try:
            for kind, run in (("registry", lambda d: oci_trial(d, registry)), ("local repository", local_trial)):
                wrong = 0
                started = time.monotonic()
                for index in range(trials):
                    trial = run(root / kind.replace(" ", "-") / str(index))
                    wrong += bool(trial.wrong)
                    for reason in trial.wrong:
                        print(f"  trial {index}: {reason}")
                print(f"{kind}: {trials} trials, {wrong} wrong outcomes ({time.monotonic() - started:.1f} s)")
        finally:
            stop_registry(proc)


if __name__ == "__main__":
    main()
