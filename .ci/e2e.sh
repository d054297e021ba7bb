#!/usr/bin/env bash
# End-to-end browser tests (tests/e2e/run.mjs): the console and Swagger UI in headless
# Chromium (Debian's package, driven by playwright-core from npm) against the debug binary.
# Installs what it needs; screenshots land in target/e2e-screenshots/. Bounded to 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
cargo build --quiet
timeout 180 node tests/e2e/run.mjs
