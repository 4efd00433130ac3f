#!/usr/bin/env bash
# Runs schemathesis (pip install schemathesis) with every check against the axum example on
# a memory store, as a management client with the bootstrap key. Extra arguments go to
# schemathesis (e.g. --max-examples 100).
set -euo pipefail
cd "$(dirname "$0")/../.."
port="${PORT:-8099}"
key="schemathesis-admin-key-0123456789abcdef"
cargo build -q -p example-axum
PORTCULLIS_STORE=memory PORTCULLIS_ADDR="127.0.0.1:$port" \
    PORTCULLIS_PUBLIC_URL="http://localhost:$port" PORTCULLIS_ADMIN_KEY="$key" \
    target/debug/example-axum >/dev/null &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/api/v1/openapi.json" >/dev/null && break
    sleep 0.1
done
schemathesis --config-file crates/http-suite/schemathesis.toml run \
    "http://127.0.0.1:$port/api/v1/openapi.json" --checks all \
    -H "Authorization: Bearer $key" "$@"
