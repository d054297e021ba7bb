#!/usr/bin/env bash
# Fuzzes the running binary with schemathesis against the OpenAPI document it serves: no 5xx,
# every response conforms to the document (status codes, content types, headers, bodies).
# Bounded: a fixed number of examples per operation and a fixed seed. Exceptions per operation,
# with reasons, are in schemathesis.toml beside this script.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SCHEMATHESIS_VENV:-/tmp/exports-api-schemathesis}"
if [ ! -x "$VENV/bin/st" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==4.32.5"
fi
DATA="$(mktemp -d)"
if [ -n "${ST_BASE_URL:-}" ]; then
  # a server started by the caller (.ci/replicas.sh: two replicas behind one address)
  BASE="$ST_BASE_URL"; KEY="$ST_API_KEY"
  trap 'rm -rf "$DATA"' EXIT
else
  cargo build --quiet
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  KEY="schemathesis-key-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
  EXPORTS_API_KEY="$KEY" target/debug/exports-api serve --demo --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
    >"$DATA/stdout.log" 2>"$DATA/server.log" &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    kill -0 $SERVER 2>/dev/null || { cat "$DATA/server.log"; exit 1; }
    python3 -c 'import time; time.sleep(0.1)'
  done
  BASE="http://127.0.0.1:$PORT"
fi
SCHEMATHESIS_HOOKS=st_hooks PYTHONPATH=.ci "$VENV/bin/st" --config-file .ci/schemathesis.toml run \
  "$BASE/openapi.json" -H "x-api-key: $KEY" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" --seed 1 --workers 1 --no-color \
  --generation-database none --report junit --report-dir "$DATA/report" ${ST_EXTRA_ARGS:-}
