"""Every registry verb ends within its --timeout plus 2 s against silent and dripping servers on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from faas_deployment.cli import main
from support.registry_proxy import stalling_server
from support.repo_tree import copy_repo

TIMEOUT = 4.0


@pytest.mark.parametrize("mode", ["silent", "drip"])
@pytest.mark.parametrize("verb", [
    ["publish", "--env", "dev", "--component", "operator"],
    ["release", "--env", "dev"],
    ["check", "--env", "dev"],
])
def test_registry_verbs_end_within_the_deadline(tmp_path, capsys, mode, verb):
    source = copy_repo(tmp_path / "src")
    with stalling_server(mode) as host:
        started = time.monotonic()
        code = main(["--source", str(source), *verb, "--registry", f"oci://{host}/charts", "--plain-http",
                     "--timeout", str(TIMEOUT)])
        elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert "deadline" in err or "timed out" in err, err
    assert elapsed < TIMEOUT + 2, elapsed


def test_a_bad_timeout_is_a_clear_error(tmp_path, capsys):
    source = copy_repo(tmp_path / "src")
    code = main(["--source", str(source), "publish", "--env", "dev", "--component", "operator",
                 "--registry", "oci://127.0.0.1:9/charts", "--timeout", "0"])
    assert code == 1 and "--timeout" in capsys.readouterr().err
