#!/usr/bin/env bash
# Measures s3edge with http-tests/cache-tests (https://cache-tests.fyi), the
# independent conformance suite for HTTP caches, as a reverse proxy:
#
#   scripts/cache-tests.sh [SUITE_DIR]
#
# SUITE_DIR (default ../shared/cache-tests, beside this repository) is a copy
# of the suite with its `run.sh` and `score.mjs`. Without one: clone
# https://github.com/http-tests/cache-tests and add the two scripts from the
# shared copy, or point SUITE_DIR at that copy. Needs node >= 20 and npm (the
# suite's first run does `npm install` in SUITE_DIR).
#
# It starts the suite's origin server, then s3edge (S3EDGE_BIN, default a
# debug build made here) with one HTTP-origin site in front of it and default
# flags, runs every reverse-proxy test through s3edge, and prints the score
# beside the published results. The raw results stay in
# target/cache-tests/results.json; `node SUITE_DIR/score.mjs FILE --list fail`
# lists the failures.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
suite=${1:-$here/../shared/cache-tests}
if [ ! -x "$suite/run.sh" ] || [ ! -f "$suite/score.mjs" ]; then
  echo "cache-tests: no suite in $suite (expected run.sh and score.mjs there)." >&2
  sed -n '7,10p' "$0" >&2
  exit 2
fi
suite=$(cd "$suite" && pwd)
command -v node >/dev/null || { echo "cache-tests: node (>= 20) is needed" >&2; exit 2; }

if [ -z "${S3EDGE_BIN:-}" ]; then
  (cd "$here" && cargo build --quiet)
  S3EDGE_BIN=$here/target/debug/s3edge
fi
out=$here/target/cache-tests
rm -rf "$out"
mkdir -p "$out/sites"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin_port=$(free_port)
edge_port=$(free_port)
admin_port=$(free_port)

cat > "$out/sites/cache-tests.toml" <<EOF
# Everything to the suite's origin server; RFC 9111 rules, default settings.
default = true
[origin]
url = "http://127.0.0.1:$origin_port"
EOF

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$suite/run.sh" origin "$origin_port" > "$out/origin.log" 2>&1 &
pids+=($!)
"$S3EDGE_BIN" serve --sites "$out/sites" --listen "127.0.0.1:$edge_port" \
  --admin-listen "127.0.0.1:$admin_port" --cache-dir "$out/cache" \
  --access-log "$out/access.log" > "$out/s3edge.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 300); do
  if curl -fs "http://127.0.0.1:$admin_port/healthz" >/dev/null 2>&1 \
    && curl -s -o /dev/null "http://127.0.0.1:$origin_port/" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

echo "cache-tests through s3edge at http://127.0.0.1:$edge_port (origin on :$origin_port), $(date -u '+%Y-%m-%d %H:%M UTC')"
"$suite/run.sh" client "http://127.0.0.1:$edge_port" "$out/results.json"
