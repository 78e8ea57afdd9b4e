"""20 concurrent-publisher trials each: charts against the real registry, a merge request pre-release, a local
repository, and Flux OCI artifacts; prints wrong outcomes.

Run: uv run --project dagger --locked python tests/bench/bench_publish_races.py [TRIALS]
Each trial starts two ``faas-deploy publish`` (or ``publish-artifact``) processes of one
version with different content (tests/support/race.py says what counts as wrong).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.race import artifact_trial, local_trial, oci_trial
from support.registry_process import start_registry, stop_registry


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory(prefix="faas-bench-races-") as scratch:
        root = Path(scratch)
        (root / "registry").mkdir()
        proc, registry = start_registry(root / "registry", "ci", "pw-" + os.urandom(9).hex())
        try:
            kinds = (("registry", lambda d: oci_trial(d, registry)),
                     ("registry, pre-release mr.42.3", lambda d: oci_trial(d, registry, prerelease="mr.42.3")),
                     ("local repository", local_trial),
                     ("Flux OCI artifact", lambda d: artifact_trial(d, registry)))
            for kind, run in kinds:
                wrong = 0
                started = time.monotonic()
                for index in range(trials):
                    trial = run(root / "".join(c if c.isalnum() else "-" for c in kind) / str(index))
                    wrong += bool(trial.wrong)
                    for reason in trial.wrong:
                        print(f"  trial {index}: {reason}")
                print(f"{kind}: {trials} trials, {wrong} wrong outcomes ({time.monotonic() - started:.1f} s)")
        finally:
            stop_registry(proc)


if __name__ == "__main__":
    main()
