#!/usr/bin/env bash
# The scale-out deployment (issue 11) as the independent check runs it: two replicas of the
# binary on one PostgreSQL database and one S3 bucket (moto in server mode), behind one address
# (nginx, round robin). Through that address: schemathesis (the same run as .ci/schemathesis.sh),
# then 20 exports that must all complete, each run once, by both replicas between them, and
# download through presigned URLs. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y -qq nginx-light >/dev/null
fi
if [ -d /usr/lib/postgresql/15/bin ]; then export PATH="/usr/lib/postgresql/15/bin:$PATH"; fi
cargo build --quiet
BIN="$PWD/target/debug/exports-api"
TMP="$(mktemp -d)"
chmod 755 "$TMP"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  as_pg pg_ctl -D "$TMP/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# PostgreSQL 15, a throwaway cluster (initdb refuses root: as root it runs as `postgres`)
mkdir "$TMP/pg" && { [ "$(id -u)" != 0 ] || chown postgres "$TMP" "$TMP/pg"; }
as_pg initdb -D "$TMP/pg" -A trust -U exports --no-sync -E UTF8 --locale=C >/dev/null
PGPORT="$(free_port)"
as_pg pg_ctl -D "$TMP/pg" -o "-p $PGPORT -k $TMP -c listen_addresses=127.0.0.1 -c fsync=off" \
  -l "$TMP/pg/log" -w start >/dev/null
export EXPORTS_DATABASE_URL="postgres://exports@127.0.0.1:$PGPORT/postgres"

# the bucket
S3PORT="$(free_port)"
python3 -m moto.server -p "$S3PORT" >"$TMP/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$S3PORT/" >/dev/null && break; sleep 0.1; done
curl -fsS -X PUT "http://127.0.0.1:$S3PORT/exports-ci" >/dev/null
export AWS_ACCESS_KEY_ID=ci AWS_SECRET_ACCESS_KEY=ci EXPORTS_S3_ENDPOINT="http://127.0.0.1:$S3PORT"
export EXPORTS_STORAGE_URL="s3://exports-ci/replicas"
export EXPORTS_SIGNING_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
export EXPORTS_API_KEY="replicas-key-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

# one address in front
FRONT="$(free_port)"
P1="$(free_port)"
P2="$(free_port)"
export EXPORTS_PUBLIC_URL="http://127.0.0.1:$FRONT"
cat >"$TMP/nginx.conf" <<EOF
pid $TMP/nginx.pid;
error_log $TMP/nginx.err;
events {}
http {
  access_log off;
  client_body_temp_path $TMP/nginx-body;
  proxy_temp_path $TMP/nginx-proxy;
  upstream replicas { server 127.0.0.1:$P1; server 127.0.0.1:$P2; }
  server {
    listen 127.0.0.1:$FRONT;
    client_max_body_size 0;
    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
EOF
nginx -c "$TMP/nginx.conf"

start_replica() { # port name [flags…]
  local port=$1 name=$2
  shift 2
  "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$TMP/$name" --workers 2 "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.log" &
  PIDS+=($!)
  local pid=$!
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$TMP/$name.log"; exit 1; }
    sleep 0.1
  done
  echo "replica $name did not start"; cat "$TMP/$name.log"; exit 1
}
start_replica "$P1" r1 --demo
start_replica "$P2" r2

# nginx answers TRACE itself (405 without `Allow`) before any replica sees it: that one check
# is about the proxy, and .ci/schemathesis.sh makes it against the binary alone
ST_BASE_URL="http://127.0.0.1:$FRONT" ST_API_KEY="$EXPORTS_API_KEY" ST_EXTRA_ARGS="--exclude-checks unsupported_method" \
  bash .ci/schemathesis.sh

python3 .ci/replicas_check.py "http://127.0.0.1:$FRONT" "$EXPORTS_API_KEY" \
  "http://127.0.0.1:$P1" "http://127.0.0.1:$P2"
