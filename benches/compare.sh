#!/usr/bin/env bash
# s3edge against nginx proxy_cache and Varnish, on one machine, in one run.
#
#   bash benches/compare.sh
#
# Everything listens on 127.0.0.1; every process started here is stopped on
# exit (trap). The machine is shared and noisy: read the ratios, not the
# absolute numbers, and compare only numbers from the same run.
#
# Set-up (see docs/PERFORMANCE.md for the reasoning and every run):
#   - origin for s3edge: its embedded S3 store (real S3 REST + SigV4), bucket
#     `bench` = a temporary folder holding a fixed object set;
#   - origin for nginx and Varnish: an nginx static-file server (127.0.0.1:18490)
#     on the SAME folder (the embedded store only speaks SigV4, which neither
#     nginx nor Varnish can sign). The caches are compared on hits, where the
#     origin plays no part; the miss test compares s3edge with its own origin.
#   - s3edge        127.0.0.1:18480 (admin 19480, embedded S3 19400), DEFAULT
#                   cache flags (256 MiB memory tier, objects above 8 MiB on
#                   disk only): the headline rows, a 64 MiB hit from disk;
#   - s3edge tuned  127.0.0.1:18484 (admin 19481, embedded S3 19401), the
#                   same with `--memory-object-max 128MiB`: only the labelled
#                   row of a 64 MiB hit from the memory tier;
#   - nginx cache   127.0.0.1:18481 (proxy_cache on disk, sendfile, proxy_cache_lock)
#   - Varnish       127.0.0.1:18482 (-s malloc,256m: sized like s3edge's memory tier)
#   - ceiling       127.0.0.1:18483 (nginx `return 200 "ok"`)
# Helpers: benches/client.py (coalescing and TTFB clients), benches/report.py
# (the markdown table).
#
# Environment:
#   S3EDGE_BIN          use this binary instead of building one
#   CARGO_TARGET_DIR    where `cargo build --release` puts it (default: target)
#   BENCH_SECONDS       length of each wrk run (default 8)
#   BENCH_ROUNDS        rounds A B C ... (default 3; medians are reported)
#   BENCH_TTFB_SAMPLES  miss-latency samples per side (default 200)
#   BENCH_FILL_COUNT    4 MiB objects pushed through s3edge before the RSS reading
#                       (default 96: 384 MiB, 1.5x the default --memory-cache-size)
#   BENCH_OUT           result file (default benches/results/latest.md)
#   BENCH_KEEP_TMP=1    keep the temporary folder (logs, configs) for inspection
#   BENCH_PIN=1         servers on every CPU but the last, wrk and the clients on
#                       the last (benches/lib.sh says why)
#   BENCH_CLOSE=1       each wrk run waits for the two cores to be close, and
#                       is made again when they were apart just after it
#                       (benches/lib.sh, await_close_cores, after_measurement)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
INVOCATION="bash benches/compare.sh${*:+ $*}"
for v in BENCH_FILL_COUNT BENCH_TTFB_SAMPLES BENCH_ROUNDS BENCH_SECONDS BENCH_PIN BENCH_CLOSE; do
    [[ -z ${!v:-} ]] || INVOCATION="$v=${!v} $INVOCATION"
done
# Paths are one machine's: the results file, which is committed, names them
# by what they are.
[[ -z ${CARGO_TARGET_DIR:-} ]] || INVOCATION="CARGO_TARGET_DIR=<target dir> $INVOCATION"
[[ -z ${S3EDGE_BIN:-} ]] || INVOCATION="S3EDGE_BIN=<release binary> $INVOCATION"
SECS=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
TTFB_SAMPLES=${BENCH_TTFB_SAMPLES:-200}
TTFB_WARMUP=20
OUT=${BENCH_OUT:-$HERE/results/latest.md}
export PATH="$PATH:/usr/sbin:/sbin"
export S3EDGE_EMBEDDED_ACCESS_KEY=${S3EDGE_EMBEDDED_ACCESS_KEY:-s3edge-dev}
export S3EDGE_EMBEDDED_SECRET_KEY=${S3EDGE_EMBEDDED_SECRET_KEY:-s3edge-dev-secret}

P_S3EDGE=18480 P_NGINX=18481 P_VARNISH=18482 P_CEILING=18483 P_ORIGIN=18490
P_ADMIN=19480 P_S3=19400
P_TUNED=18484 P_TUNED_ADMIN=19481 P_TUNED_S3=19401
SERVERS=(s3edge nginx varnish)
declare -A PORT=([s3edge]=$P_S3EDGE [nginx]=$P_NGINX [varnish]=$P_VARNISH [ceiling]=$P_CEILING [s3edge-tuned]=$P_TUNED)

KEEP_TMP=${BENCH_KEEP_TMP:-}
# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"

# ---------------------------------------------------------------- 1. tools --
install_missing nginx=nginx varnishd=varnish wrk=wrk curl=curl
command -v python3 >/dev/null || die "python3 is required"
python3 -c 'import botocore' 2>/dev/null || python3 -m pip install --quiet boto3 ||
    $SUDO apt-get install -y python3-botocore

refuse_busy_ports $P_S3EDGE $P_NGINX $P_VARNISH $P_CEILING $P_ORIGIN $P_ADMIN $P_S3 $P_TUNED $P_TUNED_ADMIN $P_TUNED_S3

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- 2. build --
BIN=$(release_binary)

# -------------------------------------------------------------- 3. objects --
TMP=$(mktemp -d /tmp/s3edge-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers and Varnish run as their own users
BUCKET=$TMP/sites/buckets/bench
mkdir -p "$BUCKET" "$TMP/nginx" "$TMP/cache" "$TMP/cache-tuned"
log "object set in $BUCKET"
head -c 4096 /dev/urandom >"$BUCKET/4k.bin"
head -c $((64 << 20)) /dev/urandom >"$BUCKET/64m.bin"
python3 - "$BUCKET/app.js" <<'PY'
# ~100 KiB of deterministic, varied JavaScript (compresses like real bundles).
import random, sys
r = random.Random(8)
nouns = "user session cart item price order render config state event node value index request response cache token route page list filter query schema widget layout".split()
verbs = "get set load save build parse render update compute merge apply reset fetch format resolve".split()
def ident():
    return r.choice(verbs) + r.choice(nouns).title() + r.choice(nouns).title()
out = ['"use strict";', "(function (global) {"]
n = 0
while sum(len(l) + 1 for l in out) < 100 * 1024:
    n += 1
    a, b, c = r.sample(nouns, 3)
    k = r.randrange(5)
    if k == 0:
        out.append(f"  function {ident()}{n}({a}, {b}) {{\n    if (!{a} || typeof {a}.{b} !== 'object') {{ return null; }}\n"
                   f"    const {c} = Object.keys({a}.{b}).filter((k) => k.length > {r.randrange(1, 9)});\n"
                   f"    return {c}.map((k) => ({{ key: k, value: {a}.{b}[k] * {r.randrange(2, 999)} }}));\n  }}")
    elif k == 1:
        out.append(f"  const {a.upper()}_{b.upper()}_{n} = {{ id: {r.randrange(10**6)}, name: \"{a}-{b}-{c}\", enabled: {r.choice(['true', 'false'])}, "
                   f"ratio: {r.random():.4f}, tags: [\"{a}\", \"{c}\"] }};")
    elif k == 2:
        out.append(f"  class {a.title()}{b.title()}{n} {{\n    constructor({c}) {{ this.{c} = {c}; this.count = {r.randrange(100)}; }}\n"
                   f"    {ident()}() {{ return `{a}/${{this.{c}}}/{b}?page=${{this.count}}`; }}\n  }}")
    elif k == 3:
        out.append(f"  global.{ident()}{n} = async ({a}) => {{\n    const res = await fetch(\"/api/{a}/{b}/\" + encodeURIComponent({a}.id));\n"
                   f"    if (res.status !== {r.choice([200, 201, 204])}) throw new Error(\"{c} failed: \" + res.status);\n    return res.json();\n  }};")
    else:
        out.append(f"  // {ident()}: keeps {a} and {b} in sync with {c} (#{r.randrange(9999)})\n"
                   f"  for (let i = 0; i < {r.randrange(2, 64)}; i += 1) {{ {a}List[i] = ({b}Map.get(i) || 0) + {r.randrange(1, 50)}; }}")
out.append("})(typeof window !== 'undefined' ? window : globalThis);")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
COLD_SIZE=$((4 << 20))
n=0
for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${SERVERS[@]}"; do
        n=$((n + 1))
        head -c $COLD_SIZE /dev/urandom >"$BUCKET/cold-$n.bin"
    done
done
for ((i = 0; i < TTFB_WARMUP + TTFB_SAMPLES; i++)); do
    head -c 4096 /dev/urandom >"$BUCKET/$(printf 'miss-%04d.bin' "$i")"
done
# The fill: distinct 4 MiB objects (below the default --memory-object-max, so
# they go to the memory tier) adding up to 1.5x --memory-cache-size, so that
# the RSS row checks the memory bound under pressure, not just a small working
# set.
FILL_COUNT=${BENCH_FILL_COUNT:-96}
head -c $((4 << 20)) /dev/urandom >"$TMP/fill-base"
for ((i = 0; i < FILL_COUNT; i++)); do
    { printf 'fill object %04d\n' "$i"; cat "$TMP/fill-base"; } >"$BUCKET/$(printf 'fill-%04d.bin' "$i")"
done
rm -f "$TMP/fill-base"
chmod -R a+rX "$TMP"
JS_SIZE=$(stat -c %s "$BUCKET/app.js")

# --------------------------------------------------------------- servers --
cat >"$TMP/sites/bench.toml" <<EOF
default = true

[origin]
bucket = "bench"
endpoint = "embedded"
EOF
log "starting s3edge (default cache flags) and s3edge tuned (--memory-object-max 128MiB)"
"$BIN" serve --sites "$TMP/sites" \
    --listen 127.0.0.1:$P_S3EDGE --admin-listen 127.0.0.1:$P_ADMIN \
    --embedded-s3-listen 127.0.0.1:$P_S3 --access-log off \
    --cache-dir "$TMP/cache" >"$TMP/s3edge.log" 2>&1 &
S3EDGE_PID=$!
PIDS+=("$S3EDGE_PID")
"$BIN" serve --sites "$TMP/sites" \
    --listen 127.0.0.1:$P_TUNED --admin-listen 127.0.0.1:$P_TUNED_ADMIN \
    --embedded-s3-listen 127.0.0.1:$P_TUNED_S3 --access-log off \
    --memory-object-max 128MiB --cache-dir "$TMP/cache-tuned" >"$TMP/s3edge-tuned.log" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$P_ADMIN/readyz" && break
    kill -0 "$S3EDGE_PID" 2>/dev/null || { cat "$TMP/s3edge.log" >&2; die "s3edge exited"; }
    sleep 0.2
done
wait_port $P_S3EDGE s3edge
wait_port $P_TUNED "s3edge tuned"

{
    nginx_conf_head
    cat <<EOF
    types { application/javascript js; }
    log_format origin '\$http_x_bench_via \$request_method \$uri \$status';
    proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=bench:16m max_size=2g inactive=1h use_temp_path=off;

    upstream origin {
        server 127.0.0.1:$P_ORIGIN;
        keepalive 32;
    }

    # The plain-HTTP origin of nginx and Varnish: the bucket's folder.
    server {
        listen 127.0.0.1:$P_ORIGIN;
        root $BUCKET;
        access_log $TMP/origin-access.log origin;
    }

    # nginx as the cache.
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Bench-Via nginx;
            proxy_cache bench;
            proxy_cache_lock on;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }

    # The ceiling: the least an HTTP server can do per request.
    server {
        listen 127.0.0.1:$P_CEILING;
        location / { return 200 "ok"; }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
log "starting nginx"
nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

cat >"$TMP/varnish.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$P_ORIGIN"; }
sub vcl_backend_fetch { set bereq.http.X-Bench-Via = "varnish"; }
EOF
log "starting varnish"
varnishd -F -n "$TMP/varnish" -a 127.0.0.1:$P_VARNISH -T 127.0.0.1:0 \
    -f "$TMP/varnish.vcl" -s malloc,256m -t 3600 >"$TMP/varnish.log" 2>&1 &
PIDS+=($!)
for p in $P_ORIGIN $P_NGINX $P_CEILING; do wait_port "$p" nginx; done
wait_port $P_VARNISH varnish

# ------------------------------------------------------------ helpers ------
url() { echo "http://127.0.0.1:${PORT[$1]}$2"; }
origin_requests_s3edge() {
    curl -sf "http://127.0.0.1:$P_ADMIN/metrics" |
        awk '/^s3edge_origin_requests_total\{/ && /site="bench"/ { s += $NF } END { print s + 0 }'
}
origin_requests_via() { # nginx|varnish [KEY]: lines in the shared origin's log
    local n
    n=$(grep -c "^$1 GET /${2:-}" "$TMP/origin-access.log" 2>/dev/null) || true
    echo "${n:-0}"
}
declare -A RES=()     # "scenario,server" -> "v1 v2 v3"
declare -A PROBLEM=() # "scenario,server" -> text
wrk_once() { # SCENARIO SERVER PATH CONNS [wrk args...]; appends req/s
    local scenario=$1 server=$2 path=$3 conns=$4 out rps
    shift 4
    while :; do
        await_close_cores
        out=$(timeout $((SECS + 60)) "${CLIENT[@]}" wrk -t2 -c"$conns" -d"${SECS}s" "$@" "$(url "$server" "$path")" 2>&1) ||
            die "wrk failed against $server: $out"
        rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
        [[ -n $rps ]] || die "no Requests/sec from wrk against $server: $out"
        after_measurement "$scenario $server round $r" && break
        log "  ($scenario $server: $rps req/s not kept)"
    done
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        PROBLEM[$scenario,$server]=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | paste -sd';')
    fi
    RES[$scenario,$server]="${RES[$scenario,$server]:-}${RES[$scenario,$server]:+ }$rps"
    log "  $scenario $server: $rps req/s"
    sleep 1
}

# ------------------------------------------------------------ 5. warm up ---
log "warming the caches and checking every answer"
check_body() { # SERVER PATH FILE [curl args]
    local got want
    got=$(curl -sf "${@:4}" "$(url "$1" "$2")" | sha256sum | cut -c1-64)
    want=$(sha256sum <"$3" | cut -c1-64)
    [[ $got == "$want" ]] || die "$1 $2: body differs from the object"
}
for s in "${SERVERS[@]}"; do
    for obj in 4k.bin 64m.bin app.js; do
        for _ in 1 2; do curl -sf -o /dev/null "$(url "$s" "/$obj")"; done
        check_body "$s" "/$obj" "$BUCKET/$obj"
    done
done
for _ in 1 2; do curl -sf -o /dev/null "$(url s3edge-tuned /64m.bin)"; done
check_body s3edge-tuned /64m.bin "$BUCKET/64m.bin"
for _ in 1 2; do curl -sf -o /dev/null -H 'Accept-Encoding: br' "$(url s3edge /app.js)"; done
check_body s3edge /app.js "$BUCKET/app.js" --compressed -H 'Accept-Encoding: br'
hit_header() { # SERVER PATH HEADER-REGEX [curl args]: the matching response header lines
    curl -sf -o /dev/null -D - "${@:4}" "$(url "$1" "$2")" | tr -d '\r' | grep -iE "$3" || true
}
for obj in 4k.bin 64m.bin app.js; do
    h=$(hit_header s3edge "/$obj" '^cache-status:')
    [[ ${h,,} == *"s3edge; hit"* ]] || die "s3edge /$obj is not a hit after warming: $h"
    h=$(hit_header nginx "/$obj" '^x-cache-status:')
    [[ $h == *HIT* ]] || die "nginx /$obj is not a hit after warming: $h"
    h=$(hit_header varnish "/$obj" '^x-varnish:')
    [[ $h =~ [0-9]+\ [0-9]+ ]] || die "varnish /$obj is not a hit after warming: $h"
done
h=$(hit_header s3edge /app.js '^(cache-status|content-encoding):' -H 'Accept-Encoding: br')
[[ ${h,,} == *"content-encoding: br"* && ${h,,} == *"s3edge; hit"* ]] ||
    die "s3edge /app.js with br is not a compressed hit: $h"
JS_BR_SIZE=$(curl -sf -H 'Accept-Encoding: br' "$(url s3edge /app.js)" | wc -c)

# ------------------------------------------------------------- 5. wrk ------
ORIGIN_BEFORE_HITS=$(origin_requests_s3edge)
VIA_NGINX_BEFORE=$(origin_requests_via nginx)
VIA_VARNISH_BEFORE=$(origin_requests_via varnish)
log "hits: wrk -t2 -d${SECS}s, $ROUNDS rounds of A B C"
core_distance start
for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${SERVERS[@]}" ceiling; do
        path=/4k.bin; [[ $s != ceiling ]] || path=/
        wrk_once hit4k "$s" "$path" 64
    done
done
for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${SERVERS[@]}" s3edge-tuned; do wrk_once hit64m "$s" /64m.bin 4 --timeout 30s; done
done
for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${SERVERS[@]}"; do wrk_once js "$s" /app.js 64; done
    wrk_once jsbr s3edge /app.js 64 -H 'Accept-Encoding: br'
done
ORIGIN_DURING_HITS="s3edge $(($(origin_requests_s3edge) - ORIGIN_BEFORE_HITS)),"
ORIGIN_DURING_HITS+=" nginx $(($(origin_requests_via nginx) - VIA_NGINX_BEFORE)),"
ORIGIN_DURING_HITS+=" varnish $(($(origin_requests_via varnish) - VIA_VARNISH_BEFORE))"
log "origin requests during the hit runs: $ORIGIN_DURING_HITS"

# ------------------------------------------------------- 6. coalescing -----
log "coalescing: 100 concurrent GETs of a cold $((COLD_SIZE >> 20)) MiB key"
declare -A COLD=() COLD_CLIENT=()
n=0
for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${SERVERS[@]}"; do
        n=$((n + 1))
        key=cold-$n.bin
        before=$(origin_requests_s3edge)
        client=$(timeout 180 "${CLIENT[@]}" python3 "$HERE/client.py" coalesce "127.0.0.1:${PORT[$s]}" "/$key" 100 $COLD_SIZE)
        sleep 1 # let the fill and the logs settle
        case $s in
        s3edge) count=$(($(origin_requests_s3edge) - before)) ;;
        *) count=$(origin_requests_via "$s" "$key") ;;
        esac
        COLD[$s]="${COLD[$s]:-}${COLD[$s]:+, }$count"
        COLD_CLIENT[$s]="${COLD_CLIENT[$s]:-}${COLD_CLIENT[$s]:+; }$client"
        log "  $s $key: $count origin request(s); client: $client"
    done
done

# ------------------------------------------------------------ 7. TTFB ------
log "miss TTFB: $TTFB_SAMPLES fresh keys through s3edge and straight from its S3 origin"
TTFB=$(timeout 600 "${CLIENT[@]}" python3 "$HERE/client.py" ttfb "127.0.0.1:$P_S3EDGE" "127.0.0.1:$P_S3" bench \
    'miss-%04d.bin' "$TTFB_SAMPLES" "$TTFB_WARMUP")
log "  $TTFB"

# ------------------------------------------------------------- 8. RSS ------
RSS_BEFORE_FILL_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$S3EDGE_PID/status")
log "fill: $FILL_COUNT distinct 4 MiB objects ($((FILL_COUNT * 4)) MiB) through s3edge, twice"
for _ in 1 2; do
    for ((i = 0; i < FILL_COUNT; i++)); do
        curl -sf -o /dev/null --max-time 60 "$(url s3edge "$(printf '/fill-%04d.bin' "$i")")"
    done
done
sleep 2
RSS_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$S3EDGE_PID/status")
HWM_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$S3EDGE_PID/status")
log "  RSS $((RSS_BEFORE_FILL_KB >> 10)) MiB before the fill, $((RSS_KB >> 10)) MiB after (peak $((HWM_KB >> 10)) MiB)"
CACHE_METRICS=$(curl -sf "http://127.0.0.1:$P_ADMIN/metrics" | grep -E '^s3edge_cache_(bytes|entries)' | paste -sd' ')
# A /metrics scrape runs the memory tier's pending maintenance (moka evicts in
# batches, on later cache operations): the reading after it shows how much of
# the RSS above was entries already over the budget but not yet evicted. The
# RSS row keeps the reading before it.
# The allocator's own figures (s3edge_allocator_bytes) split the RSS into live
# bytes and allocator overhead. A last reading 15 s later shows what the idle
# node settles at.
sleep 2
RSS_SCRAPED_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$S3EDGE_PID/status")
ALLOCATOR_METRICS=$(curl -sf "http://127.0.0.1:$P_ADMIN/metrics" | grep -E '^s3edge_allocator_bytes' | paste -sd' ' || true)
log "  RSS $((RSS_SCRAPED_KB >> 10)) MiB after a /metrics scrape (the memory tier's pending evictions done) and 2 s; $ALLOCATOR_METRICS"
sleep 13
RSS_IDLE_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$S3EDGE_PID/status")
log "  RSS $((RSS_IDLE_KB >> 10)) MiB 15 s after the scrape"

# ------------------------------------------------------------ 9. report ----
export_results() {
    local k
    for k in "${!RES[@]}"; do printf 'RES\t%s\t%s\n' "$k" "${RES[$k]}"; done
    for k in "${!PROBLEM[@]}"; do printf 'PROBLEM\t%s\t%s\n' "$k" "${PROBLEM[$k]}"; done
    for k in "${!COLD[@]}"; do printf 'COLD\t%s\t%s\n' "$k" "${COLD[$k]}"; done
    for k in "${!COLD_CLIENT[@]}"; do printf 'COLDCLIENT\t%s\t%s\n' "$k" "${COLD_CLIENT[$k]}"; done
    printf 'TTFB\t-\t%s\n' "$TTFB"
    printf 'RSS\t-\t%s %s %s %s %s\n' "$RSS_KB" "$HWM_KB" "$RSS_BEFORE_FILL_KB" "$RSS_SCRAPED_KB" "$RSS_IDLE_KB"
}
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
GIT=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(cd "$REPO" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then GIT+=" + uncommitted changes"; fi
export B_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') B_CPU=$CPU B_KERNEL=$(uname -r)
export B_CMD=$INVOCATION B_SECS=$SECS B_ROUNDS=$ROUNDS B_GIT=$GIT
export B_LOAD="$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
export B_BUILT=$(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')
export B_NGINX=$(nginx -v 2>&1 | sed 's/.*version: //') B_VARNISH=$(varnishd -V 2>&1 | head -1 | sed 's/varnishd (\(varnish-[^ ]*\).*/\1/')
export B_WRK=$(wrk -v 2>&1 | head -1 | awk '{ print $2 }') B_JS=$JS_SIZE B_JSBR=$JS_BR_SIZE
export B_FILL=$FILL_COUNT B_HITORIGIN=$ORIGIN_DURING_HITS B_CACHE=$CACHE_METRICS B_COLDSIZE=$COLD_SIZE
export B_ALLOCATOR=$ALLOCATOR_METRICS B_CORES=$(cores_summary)
mkdir -p "$(dirname "$OUT")"
export_results | python3 "$HERE/report.py" >"$OUT"
cat "$OUT"
log "written to $OUT"
