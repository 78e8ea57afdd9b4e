"""What tests of the admin API client share: the double's token, fast client timings, the installed CLI."""

from __future__ import annotations

import sys
from pathlib import Path

from faas_deployment.bundle import admin_api, readiness

TOKEN = "tok-5ecret-Zq9x7"  # the token the admin API double (``admin_api_server.py``) is started with
FAST = admin_api.Backoff(initial=0.05, cap=0.2, jitter=0.05)  # seconds: retries of a test last a fraction of a second
FAST_POLL = readiness.Poll(interval=0.05, jitter=0.01)  # seconds between readiness probes
FAAS_DEPLOY = Path(sys.executable).with_name("faas-deploy")  # the installed console script of this venv
