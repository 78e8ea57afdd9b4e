#!/usr/bin/env bash
# Install the pinned gitlab-ci-local (npm) into .ci/node/node_modules from the
# committed package-lock.json; tests/test_gitlab_ci.py runs
# .ci/node/node_modules/.bin/gitlab-ci-local. 4.73.0 is the last version that
# runs on Node 20. Needs node/npm and Debian rsync. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/node"
# Reinstall when any pinned package is missing or at another version.
stale="$(node -e '
const deps = require("./package.json").dependencies;
const stale = Object.entries(deps).filter(([name, want]) => {
  try { return require("./node_modules/" + name + "/package.json").version !== want; } catch (e) { return true; }
});
console.log(stale.map(([name]) => name).join(" "));
')"
if [ -n "$stale" ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
./node_modules/.bin/gitlab-ci-local --version >/dev/null
