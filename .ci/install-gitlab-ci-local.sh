#!/usr/bin/env bash
# Install the pinned gitlab-ci-local (npm) into .ci/node/node_modules from the
# committed package-lock.json; tests/test_gitlab_ci.py runs
# .ci/node/node_modules/.bin/gitlab-ci-local. 4.73.0 is the last version that
# runs on Node 20. Needs node/npm and Debian rsync. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/node"
want="$(node -p 'require("./package.json").dependencies["gitlab-ci-local"]')"
have="$(node -p 'try { require("./node_modules/gitlab-ci-local/package.json").version } catch (e) { "" }')"
if [ "$have" != "$want" ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
./node_modules/.bin/gitlab-ci-local --version >/dev/null
