#!/usr/bin/env bash
# A working set larger than memory (issue 19): s3edge against nginx
# proxy_cache and Varnish on 20,000 objects, in one run on one machine.
#
#   bash benches/workingset.sh
#
# It installs nginx, Varnish, wrk and curl with apt-get when they are missing
# and builds s3edge in release mode unless S3EDGE_BIN names a binary (see
# benches/lib.sh). Everything listens on 127.0.0.1; every process started here
# is stopped on exit.
#
#   - objects: 20,000, sizes log-normal (median 30 KiB, sigma 1.6) clipped to
#     1 KiB..4 MiB, about 2 GiB, generated deterministically (same names, sizes
#     and bytes on every machine) into the embedded store's bucket folder;
#   - requests: a fixed Zipf(s = 1.0) sequence over the objects (popularity
#     independent of size), replayed by wrk (-t2 -c64) through a Lua script,
#     each wrk thread from its own offset in the sequence;
#   - s3edge: `--memory-cache-size 256MiB --disk-cache-size 4GiB`, every
#     other flag at its default; origin: its embedded S3 store;
#   - nginx: proxy_cache on disk, max_size=4g, sendfile; Varnish: `-s
#     file,4G` (the same total capacity as s3edge's two tiers); both fetch
#     from an nginx static origin on the same folder (they cannot sign SigV4);
#   - a warm-up pass per cache: the first BENCH_WARMUP requests of the same
#     sequence (default: all of it, half per wrk thread), the same count for
#     every cache however fast it is; then rounds A B C (BENCH_ROUNDS,
#     default 3) of BENCH_SECONDS (default 15). Until 2026-11-29 the
#     warm-up was the first 100,000 requests only, so the timed rounds also
#     met first-seen objects, the more of them the faster a cache got
#     through the sequence, each fetched from that cache's origin (for
#     s3edge its embedded S3 store, for the others a static nginx): the
#     rounds then measured misses too, not only a warm cache;
#     the table has the medians of req/s, the hit ratio (1 - origin requests
#     / requests, counted by s3edge's metrics and by the origin's access log
#     for nginx and Varnish) over the warm-up, which is the same requests for
#     every cache (the rounds' ratios are shown too, but a faster cache gets
#     further into the sequence and meets its first-seen objects sooner), and
#     s3edge's RSS after the run (target: <= 256 MiB + 64 MiB), and each
#     server's CPU per response (user and system time of its processes
#     around each round, from /proc, over the responses: what it spent on
#     each answer, apart from what the client spent).
#
# BENCH_TLS=1 runs the same over HTTPS (TLS 1.3, HTTP/1.1, keep-alive, one
# self-signed certificate for `localhost`): s3edge's `--tls-listen` against
# nginx's `listen ... ssl` in front of the same proxy_cache. Varnish does not
# terminate TLS, so it sits this one out. Results go to
# benches/results/workingset-tls.md.
#
# BENCH_H2=1 runs it over HTTP/2 (TLS 1.3, ALPN h2), as browsers fetch a
# site's assets: s3edge against nginx `listen ... ssl http2` in front of the
# same proxy_cache. The warm-up is the HTTPS one (wrk, HTTP/1.1); the timed
# rounds are 16 h2load processes of one connection and 10 streams each
# (h2load walks one URI list from its start on every connection, so each
# connection gets its own process and its own sixteenth of the sequence,
# as each wrk thread starts at its own offset). Results go to
# benches/results/workingset-h2.md.
#
# S3EDGE_BIN_B=<binary> adds a second s3edge, "s3edge-b", with its own
# ports and cache directory, measured in the same rounds beside the first
# (A B in odd rounds, B A in even ones, then the peers: the side measured
# second tends to gain a little): the table gains its column and B/A, the
# ratio of two builds (or of two settings: S3EDGE_ENV_A and S3EDGE_ENV_B
# are environment assignments, e.g. "RUST_LOG=warn", for the first and the
# second) on the working set, in one run.
#
# Environment: S3EDGE_BIN, CARGO_TARGET_DIR, BENCH_SECONDS, BENCH_ROUNDS,
# BENCH_WARMUP (default: BENCH_REQUESTS), BENCH_REQUESTS (length of the
# sequence, default 400000), BENCH_OUT (default benches/results/workingset.md), BENCH_KEEP_TMP=1,
# BENCH_PIN=1 (servers on every CPU but the last, wrk on the last: benches/lib.sh),
# BENCH_CLOSE=1 (each round waits for the two cores to be close, and is made
# again when they were apart just after it: benches/lib.sh), BENCH_TLS=1,
# BENCH_H2=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
INVOCATION="bash benches/workingset.sh"
for v in BENCH_ROUNDS BENCH_SECONDS BENCH_WARMUP BENCH_REQUESTS BENCH_PIN BENCH_CLOSE BENCH_TLS BENCH_H2 \
    S3EDGE_ENV_A S3EDGE_ENV_B; do
    [[ -z ${!v:-} ]] || INVOCATION="$v=$(printf '%q' "${!v}") $INVOCATION"
done
# A binary by its name only: the path is this machine's.
[[ -z ${S3EDGE_BIN_B:-} ]] || INVOCATION="S3EDGE_BIN_B=<$(basename "$S3EDGE_BIN_B")> $INVOCATION"
SECS=${BENCH_SECONDS:-15}
ROUNDS=${BENCH_ROUNDS:-3}
REQUESTS=${BENCH_REQUESTS:-400000}
WARMUP=${BENCH_WARMUP:-$REQUESTS}
TLS=${BENCH_TLS:-}
H2=${BENCH_H2:-}
[[ $H2 != 1 ]] || TLS=1
# h2load: processes (one connection each) and streams per connection.
H2_CONNS=16 H2_STREAMS=10
SUFFIX=${TLS:+-tls} NGINX_HTTP2="" CLIENT_DESC="\`wrk -t2 -c64\`" CONNS_DESC="64 conns"
if [[ $H2 == 1 ]]; then
    SUFFIX=-h2 NGINX_HTTP2=" http2"
    CLIENT_DESC="$H2_CONNS \`h2load -c1 -m$H2_STREAMS\` at once (the warm-up: \`wrk -t2 -c64\`, HTTP/1.1)"
    CONNS_DESC="HTTP/2, $H2_CONNS conns x $H2_STREAMS streams"
fi
OUT=${BENCH_OUT:-$HERE/results/workingset$SUFFIX.md}
MEMORY_MIB=256
export PATH="$PATH:/usr/sbin:/sbin"
export S3EDGE_EMBEDDED_ACCESS_KEY=${S3EDGE_EMBEDDED_ACCESS_KEY:-s3edge-dev}
export S3EDGE_EMBEDDED_SECRET_KEY=${S3EDGE_EMBEDDED_SECRET_KEY:-s3edge-dev-secret}

P_S3EDGE=18780 P_NGINX=18781 P_VARNISH=18782 P_ORIGIN=18790 P_ADMIN=19780 P_S3=19700
P_S3EDGE_TLS=18783 P_NGINX_TLS=18784
# s3edge-b (S3EDGE_BIN_B): plain, TLS, admin, embedded S3.
P_B=18785 P_B_TLS=18786 P_B_ADMIN=19781 P_B_S3=19701
BIN_B=${S3EDGE_BIN_B:-}
SERVERS=(s3edge nginx varnish)
declare -A PORT=([s3edge]=$P_S3EDGE [nginx]=$P_NGINX [varnish]=$P_VARNISH)
declare -A ADMIN=([s3edge]=$P_ADMIN [s3edge-b]=$P_B_ADMIN)
SCHEME=http HOST=127.0.0.1 CURL=(curl -sf)
if [[ $TLS == 1 ]]; then
    SERVERS=(s3edge nginx)
    PORT=([s3edge]=$P_S3EDGE_TLS [nginx]=$P_NGINX_TLS)
    # The certificate's name, sent as SNI.
    SCHEME=https HOST=localhost
fi
if [[ -n $BIN_B ]]; then
    SERVERS=(s3edge s3edge-b "${SERVERS[@]:1}")
    PORT[s3edge-b]=$P_B
    [[ $TLS != 1 ]] || PORT[s3edge-b]=$P_B_TLS
fi

KEEP_TMP=${BENCH_KEEP_TMP:-}
# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"

install_missing nginx=nginx varnishd=varnish wrk=wrk curl=curl openssl=openssl
[[ $H2 != 1 ]] || install_missing h2load=nghttp2-client
command -v python3 >/dev/null || die "python3 is required"
refuse_busy_ports $P_S3EDGE $P_NGINX $P_VARNISH $P_ORIGIN $P_ADMIN $P_S3 $P_S3EDGE_TLS $P_NGINX_TLS
[[ -z $BIN_B ]] || refuse_busy_ports $P_B $P_B_TLS $P_B_ADMIN $P_B_S3
[[ -z $BIN_B || -x $BIN_B ]] || die "S3EDGE_BIN_B=$BIN_B is not an executable"
[[ $TLS != 1 ]] || require_localhost
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

BIN=$(release_binary)

# ------------------------------------------------- objects and sequence --
TMP=$(mktemp -d /tmp/s3edge-workingset.XXXXXX)
chmod 755 "$TMP"
BUCKET=$TMP/sites/buckets/bench
mkdir -p "$BUCKET/ws" "$TMP/nginx" "$TMP/varnish"
log "generating 20,000 objects and a Zipf(1.0) sequence of $REQUESTS requests"
python3 - "$BUCKET/ws" "$TMP/paths.txt" "$REQUESTS" <<'PY' >"$TMP/objects.txt"
import itertools, math, os, random, sys
folder, paths, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
N = 20_000
r = random.Random(19)
base = r.randbytes(8 << 20)
sizes = [min(4 << 20, max(1024, int(r.lognormvariate(math.log(30 * 1024), 1.6)))) for _ in range(N)]
for i, size in enumerate(sizes):
    head = b"object %05d\n" % i
    at = (i * 4099) % (4 << 20)
    with open(os.path.join(folder, "%05d.bin" % i), "wb") as f:
        f.write(head + base[at:at + size - len(head)])
# Popularity rank k (1 = most requested) has weight 1/k; ranks are dealt to
# objects at random, so popularity does not follow size.
objects = list(range(N))
r.shuffle(objects)
cum = list(itertools.accumulate(1.0 / k for k in range(1, N + 1)))
picks = r.choices(objects, cum_weights=cum, k=requests)
with open(paths, "w") as f:
    f.writelines("/ws/%05d.bin\n" % i for i in picks)
print(f"{N} objects, {sum(sizes) / 2**30:.2f} GiB, median {sorted(sizes)[N // 2]} bytes, "
      f"{len(set(picks))} distinct objects requested")
PY
log "  $(cat "$TMP/objects.txt")"
bench_certificate
[[ $TLS == 1 ]] && CURL+=(--cacert "$TMP/bench.pem")
cat >"$TMP/zipf.lua" <<'LUA'
-- Replays the request sequence in paths.txt; each wrk thread starts at its
-- own offset so that the threads do not ask for the same object at once.
local threads = 0
function setup(thread)
    thread:set("id", threads)
    threads = threads + 1
end
local paths, n, i = {}, 0, 0
function init(args)
    for line in io.lines(args[1]) do
        n = n + 1
        paths[n] = line
    end
    i = math.floor(n * (id or 0) / 2)
end
function request()
    i = i % n + 1
    return wrk.format("GET", paths[i])
end
LUA
# The warm-up: the same replay, each thread stopping after its share of
# BENCH_WARMUP responses (args[2]) and leaving a file (args[3] .. id) to say
# so (wrk itself runs for its whole -d; the shell interrupts it).
{
    cat "$TMP/zipf.lua"
    cat <<'LUA'
local replay_init, replay_request, left, share, sent, first = init, request, 0, 0, 0, nil
function init(args)
    replay_init(args)
    left = tonumber(args[2])
    share = left
    args_done = args[3]
end
-- Past its share, a thread's other connections still have requests to send
-- until it stops: they repeat the thread's first path (a hit by then), so
-- the warm-up's origin requests are those of the same requests for every
-- cache, not of however many more each cache's timing let through.
function request()
    sent = sent + 1
    if sent > share then
        return wrk.format("GET", first)
    end
    local req = replay_request()
    if sent == 1 then
        first = paths[i]
    end
    return req
end
function response()
    left = left - 1
    if left == 0 then
        io.open(args_done .. (id or 0), "w"):close()
        wrk.thread:stop()
    end
end
LUA
} >"$TMP/warmup.lua"
chmod -R a+rX "$TMP"

# --------------------------------------------------------------- servers --
cat >"$TMP/sites/bench.toml" <<EOF
default = true
hosts = ["localhost"]

[origin]
bucket = "bench"
endpoint = "embedded"

[tls]
cert = "$TMP/bench.pem"
key = "$TMP/bench.key"
EOF
log "starting s3edge (--memory-cache-size ${MEMORY_MIB}MiB --disk-cache-size 4GiB)"
declare -A S3EDGE_PIDS=()
start_s3edge() { # NAME BINARY PLAIN TLS ADMIN S3 ENV: one s3edge node, its own cache
    local name=$1 bin=$2 env
    read -r -a env <<<"$7"
    mkdir -p "$TMP/cache-$name"
    env "${env[@]}" "$bin" serve --sites "$TMP/sites" --listen "127.0.0.1:$3" \
        --tls-listen "127.0.0.1:$4" --admin-listen "127.0.0.1:$5" --embedded-s3-listen "127.0.0.1:$6" \
        --access-log off --memory-cache-size ${MEMORY_MIB}MiB --disk-cache-size 4GiB \
        --cache-dir "$TMP/cache-$name" >"$TMP/$name.log" 2>&1 &
    S3EDGE_PIDS[$name]=$!
    PIDS+=("$!")
}
start_s3edge s3edge "$BIN" $P_S3EDGE $P_S3EDGE_TLS $P_ADMIN $P_S3 "${S3EDGE_ENV_A:-}"
[[ -z $BIN_B ]] || start_s3edge s3edge-b "$BIN_B" $P_B $P_B_TLS $P_B_ADMIN $P_B_S3 "${S3EDGE_ENV_B:-}"

{
    nginx_conf_head
    cat <<EOF
    log_format origin '\$http_x_bench_via \$request_method \$uri \$status';
    proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=ws:32m max_size=4g inactive=1h use_temp_path=off;
    upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 32; }
    server {
        listen 127.0.0.1:$P_ORIGIN;
        root $BUCKET;
        access_log $TMP/origin-access.log origin;
    }
EOF
    nginx_tls_conf
    cat <<EOF
    server {
        listen 127.0.0.1:$P_NGINX;
        listen 127.0.0.1:$P_NGINX_TLS ssl$NGINX_HTTP2;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Bench-Via nginx;
            proxy_cache ws;
            proxy_cache_lock on;
            proxy_cache_valid 200 1h;
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
declare -A SERVER_PID=([nginx]=$!)
for s in "${!S3EDGE_PIDS[@]}"; do SERVER_PID[$s]=${S3EDGE_PIDS[$s]}; done
if [[ $TLS != 1 ]]; then
    cat >"$TMP/varnish.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$P_ORIGIN"; }
sub vcl_backend_fetch { set bereq.http.X-Bench-Via = "varnish"; }
EOF
    varnishd -F -n "$TMP/varnish/state" -a 127.0.0.1:$P_VARNISH -T 127.0.0.1:0 \
        -f "$TMP/varnish.vcl" -s file,"$TMP/varnish/storage.bin",4G -t 3600 >"$TMP/varnish.log" 2>&1 &
    PIDS+=($!)
    SERVER_PID[varnish]=$!
fi
for p in $P_ORIGIN "${PORT[@]}"; do wait_port "$p" "port $p"; done

# ------------------------------------------------------------- helpers ----
url() { echo "$SCHEME://$HOST:${PORT[$1]}$2"; }
origin_requests() { # SERVER: origin requests so far
    case $1 in
    s3edge*)
        curl -sf "http://127.0.0.1:${ADMIN[$1]}/metrics" |
            awk '/^s3edge_origin_requests_total\{/ && /site="bench"/ { s += $NF } END { print s + 0 }'
        ;;
    *) grep -c "^$1 GET " "$TMP/origin-access.log" 2>/dev/null || echo 0 ;;
    esac
}
for s in "${SERVERS[@]}"; do
    for obj in 00000 00001 19999; do
        got=$("${CURL[@]}" "$(url "$s" "/ws/$obj.bin")" | sha256sum | cut -c1-64)
        [[ $got == "$(sha256sum <"$BUCKET/ws/$obj.bin" | cut -c1-64)" ]] || die "$s /ws/$obj.bin: body differs"
    done
done

declare -A RPS=() HIT=() WARM_HIT=() WARM_ORIGIN=() CPU=()
warm_up() { # SERVER: the first $WARMUP requests of the sequence
    local s=$1 pid i before after
    before=$(origin_requests "$s")
    rm -f "$TMP/warm-done-"*
    "${CLIENT[@]}" wrk -t2 -c64 -d600s --timeout 30s -s "$TMP/warmup.lua" "$(url "$s" /)" -- \
        "$TMP/paths.txt" $((WARMUP / 2)) "$TMP/warm-done-" >"$TMP/warmup-$s.txt" 2>&1 &
    pid=$!
    for i in $(seq 1200); do
        [[ -e $TMP/warm-done-0 && -e $TMP/warm-done-1 ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true
    sleep 1
    after=$(origin_requests "$s")
    # The same WARMUP requests for every cache: the fair hit ratio.
    WARM_HIT[$s]=$(python3 -c "print(f'{1 - ($after - $before) / $WARMUP:.4f}')")
    WARM_ORIGIN[$s]=$((after - before))
    log "  $s: $(grep -E 'requests in|Non-2xx|Socket errors' "$TMP/warmup-$s.txt" | tr -s ' ' | paste -sd';'); hit ratio ${WARM_HIT[$s]} ($((after - before)) origin requests)"
}
# HTTP/2: each h2load process gets its own sixteenth of the sequence, as
# whole URLs (h2load takes the scheme, host and port from the first).
h2_lists() { # SERVER
    awk -v n="$(wc -l <"$TMP/paths.txt")" -v c=$H2_CONNS -v base="$(url "$1" "")" -v out="$TMP/h2-$1-" \
        '{ print base $0 > (out int((NR - 1) * c / n) ".txt") }' "$TMP/paths.txt"
}
h2_replay() { # SERVER SECONDS: the h2load processes at once; sets RUN_RPS, RUN_REQUESTS
    local s=$1 secs=$2 k pids=()
    for ((k = 0; k < H2_CONNS; k++)); do
        timeout $((secs + 60)) "${CLIENT[@]}" h2load -D "$secs" -c 1 -m $H2_STREAMS -t 1 \
            -i "$TMP/h2-$s-$k.txt" >"$TMP/h2-out-$k.txt" 2>&1 &
        pids+=($!)
    done
    for k in "${!pids[@]}"; do
        wait "${pids[$k]}" || die "h2load $k against $s failed: $(cat "$TMP/h2-out-$k.txt")"
    done
    for ((k = 0; k < H2_CONNS; k++)); do
        h2load_checked "$k against $s" "$(cat "$TMP/h2-out-$k.txt")"
    done
    read -r RUN_RPS RUN_REQUESTS < <(awk '/^finished in/ { gsub(",", "", $4); r += $4 }
        /^requests:/ { n += $8 } END { printf "%.2f %d\n", r, n }' "$TMP"/h2-out-*.txt)
}
timed_run() { # SERVER SECONDS: a timed replay of the sequence, recorded
    local s=$1 secs=$2 before after out rps requests ratio cpu_before cpu_after cpu
    while :; do
        await_close_cores
        before=$(origin_requests "$s")
        cpu_before=$(cpu_ticks "${SERVER_PID[$s]}")
        if [[ $H2 == 1 ]]; then
            h2_replay "$s" "$secs"
            rps=$RUN_RPS requests=$RUN_REQUESTS
        else
            out=$(timeout $((secs + 60)) "${CLIENT[@]}" wrk -t2 -c64 -d"${secs}s" --timeout 30s -s "$TMP/zipf.lua" \
                "$(url "$s" /)" -- "$TMP/paths.txt" 2>&1) || die "wrk against $s failed: $out"
            if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then die "wrk against $s: errors: $out"; fi
            rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
            requests=$(awk '/requests in/ { print $1 }' <<<"$out")
        fi
        cpu_after=$(cpu_ticks "${SERVER_PID[$s]}")
        cpu=$(cpu_per_response "$cpu_before" "$cpu_after" "$requests")
        sleep 1
        after=$(origin_requests "$s")
        ratio=$(python3 -c "print(f'{1 - ($after - $before) / $requests:.4f}')")
        log "  $s: $rps req/s, hit ratio $ratio ($((after - before)) origin requests of $requests), CPU $cpu us user/system a response"
        after_measurement "$s round $r" && break
        log "  ($s: $rps req/s not kept)"
    done
    RPS[$s]="${RPS[$s]:-}${RPS[$s]:+ }$rps"
    HIT[$s]="${HIT[$s]:-}${HIT[$s]:+ }$ratio"
    CPU[$s]="${CPU[$s]:-}${CPU[$s]:+ }$cpu"
}
log "warm-up: the first $WARMUP requests of the sequence per cache"
for s in "${SERVERS[@]}"; do warm_up "$s"; done
if [[ $H2 == 1 ]]; then
    for s in "${SERVERS[@]}"; do h2_lists "$s"; done
    for s in "${SERVERS[@]}"; do
        proto=$("${CURL[@]}" --http2 -o /dev/null -w '%{http_version}' "$(url "$s" /ws/00000.bin)")
        [[ $proto == 2 ]] || die "$s answered HTTP/$proto, not HTTP/2"
    done
fi
log "rounds: $ROUNDS x ${SECS}s, A B C"
core_distance start
for ((r = 1; r <= ROUNDS; r++)); do
    order=("${SERVERS[@]}")
    # With a second s3edge, every other round measures it first: the side
    # measured second gained a few percent in session 21's A/B runs.
    if [[ -n $BIN_B ]] && ((r % 2 == 0)); then order=(s3edge-b s3edge "${SERVERS[@]:2}"); fi
    for s in "${order[@]}"; do timed_run "$s" "$SECS"; done
done
sleep 2
declare -A RSS_KB=() HWM_KB=() CACHE_METRICS=()
for s in "${!S3EDGE_PIDS[@]}"; do
    RSS_KB[$s]=$(awk '/^VmRSS:/ { print $2 }' "/proc/${S3EDGE_PIDS[$s]}/status")
    HWM_KB[$s]=$(awk '/^VmHWM:/ { print $2 }' "/proc/${S3EDGE_PIDS[$s]}/status")
    CACHE_METRICS[$s]=$(curl -sf "http://127.0.0.1:${ADMIN[$s]}/metrics" |
        grep -E '^s3edge_(cache_(bytes|entries|open_files)|allocator_bytes)' | paste -sd' ')
    log "  $s RSS $((RSS_KB[$s] >> 10)) MiB (peak $((HWM_KB[$s] >> 10)) MiB); ${CACHE_METRICS[$s]}"
done

# ---------------------------------------------------------------- report --
for s in "${SERVERS[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\n' "$s" "${RPS[$s]}" "${HIT[$s]}" "${WARM_ORIGIN[$s]}" "${CPU[$s]}"
done >"$TMP/results.tsv"
export B_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export B_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
export B_LOAD="$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
export B_GIT=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
export B_NGINX=$(nginx -v 2>&1 | sed 's/.*version: //') B_VARNISH=$(varnishd -V 2>&1 | head -1 | sed 's/varnishd (\(varnish-[^ ]*\).*/\1/')
export B_CMD=$INVOCATION B_SECS=$SECS B_ROUNDS=$ROUNDS B_WARMUP=$WARMUP B_OBJECTS=$(cat "$TMP/objects.txt")
export B_TLS=$TLS B_H2=$H2 B_CLIENT=$CLIENT_DESC B_CONNS=$CONNS_DESC B_RSS=${RSS_KB[s3edge]} B_HWM=${HWM_KB[s3edge]} B_MEMORY=$MEMORY_MIB B_CACHE=${CACHE_METRICS[s3edge]}
export B_RSS_B=${RSS_KB[s3edge-b]:-} B_HWM_B=${HWM_KB[s3edge-b]:-} B_CACHE_B=${CACHE_METRICS[s3edge-b]:-}
export B_BIN_A=$BIN B_BIN_B=$BIN_B B_ENV_A=${S3EDGE_ENV_A:-} B_ENV_B=${S3EDGE_ENV_B:-} B_CORES=$(cores_summary)
mkdir -p "$(dirname "$OUT")"
python3 - "$TMP/results.tsv" >"$OUT" <<'PY'
import os, statistics, sys
env = os.environ.get
rps, hit, warm, rounds, cpu, cpu_rounds = {}, {}, {}, {}, {}, {}
for line in open(sys.argv[1]):
    server, r, h, w, c = line.rstrip("\n").split("\t")
    # CPU per response, user/system microseconds per round: the round with
    # the median total, so user and system come from one round.
    cpu_rounds[server] = [tuple(map(float, v.split("/"))) for v in c.split()]
    cpu[server] = sorted(cpu_rounds[server], key=sum)[len(cpu_rounds[server]) // 2]
    # Origin requests over the warm-up: compared exactly, not as rounded ratios.
    warm[server] = int(w)
    rounds[server] = r.replace(" ", ", ")
    rps[server] = statistics.median(float(v) for v in r.split())
    hit[server] = statistics.median(float(v) for v in h.split())
s = "s3edge"
peers = [p for p in ("nginx", "varnish") if p in rps]
label = {"nginx": "nginx", "varnish": "varnish (file 4G)"}
tls, h2 = env("B_TLS") == "1", env("B_H2") == "1"
print(f"# Working set larger than memory{', over HTTP/2' if h2 else ', over HTTPS' if tls else ''}\n\nRun {env('B_DATE')} on {env('B_NPROC')} x {env('B_CPU')}, "
      f"TCP congestion control {env('B_TCP')}, pinned: {env('B_PIN')}, load {env('B_LOAD')}; commit {env('B_GIT')}; {', '.join(env('B_' + p.upper()) for p in peers)}. "
      f"Command: `{env('B_CMD')}`. {env('B_OBJECTS')}; warm-up: the first {env('B_WARMUP')} requests "
      f"of the sequence per cache, then "
      f"{env('B_ROUNDS')} rounds A B C of {env('B_SECS')} s, {env('B_CLIENT')}, medians. {env('B_CORES')}.\n")
if h2:
    print("Over HTTP/2: TLS 1.3 with ALPN h2, one self-signed P-256 certificate for `localhost`; "
          "each h2load process replays its own sixteenth of the sequence. Varnish does not "
          "terminate TLS and is not in this run.\n")
elif tls:
    print("Over HTTPS: TLS 1.3, HTTP/1.1, keep-alive, one self-signed P-256 certificate for "
          "`localhost`; Varnish does not terminate TLS and is not in this run.\n")
cols = lambda f: " | ".join(f(p) for p in peers)
dash = " | ".join("-" for _ in peers)
print(f"| scenario | s3edge | {cols(lambda p: label[p])} | {cols(lambda p: 's3edge/' + p)} | target | met? |")
print("|" + " --- |" * (4 + 2 * len(peers)))
ratios = [rps[s] / rps[p] for p in peers]
print(f"| Zipf(1.0) over 20,000 objects, {env('B_CONNS')} (req/s) | {rps[s]:,.0f} | {cols(lambda p: f'{rps[p]:,.0f}')} | "
      f"{' | '.join(f'{r:.2f}x' for r in ratios)} | >= 1.2x {' and '.join(p.replace('varnish', 'Varnish') for p in peers)} | "
      f"{'**yes**' if min(ratios) >= 1.2 else '**NO**'} |")
warmup = int(env("B_WARMUP"))
ratio = lambda n: f"{1 - n / warmup:.5f} ({n:,} origin requests)"
print(f"| hit ratio over the warm-up, the same {warmup:,} requests for each cache "
      f"(1 - origin requests / requests) | {ratio(warm[s])} | {cols(lambda p: ratio(warm[p]))} | {dash} | at least theirs | "
      f"{'**yes**' if warm[s] <= min(warm[p] for p in peers) else '**NO**'} |")
print(f"| hit ratio in the timed rounds (each cache gets as far into the sequence as its speed "
      f"takes it, so a slower one meets first-seen objects later: not comparable) | {hit[s]:.4f} | "
      f"{cols(lambda p: f'{hit[p]:.4f}')} | {dash} | - | - |")
us = lambda c: f"{sum(c):.1f} ({c[0]:.1f} + {c[1]:.1f})"
theirs = lambda p: f"{sum(cpu[p]) / sum(cpu[s]):.2f}x (theirs / s3edge's)"
print(f"| the server's CPU per response, microseconds (user + system; the round of median total) | "
      f"{us(cpu[s])} | {cols(lambda p: us(cpu[p]))} | {cols(theirs)} | - | - |")
rss, budget = int(env("B_RSS")) >> 10, int(env("B_MEMORY"))
print(f"| s3edge RSS after the run, MiB (peak {int(env('B_HWM')) >> 10}) | {rss} | {dash} | {dash} | "
      f"<= {budget} + 64 | {'**yes**' if rss <= budget + 64 else '**NO**'} |")
b = "s3edge-b"
if b in rps:
    rss_b = int(env("B_RSS_B")) >> 10
    def build(v):
        extra = env("B_ENV_" + v)
        return f"`{os.path.basename(env('B_BIN_' + v))}`" + (f" with `{extra}`" if extra else "")
    print(f"\nA/B: s3edge is {build('A')}, s3edge-b is {build('B')} (the same rounds: A then B in odd rounds, B then A in even ones).\n")
    print("| s3edge-b | A | B | B/A | per round B/A |")
    print("| --- | --- | --- | --- | --- |")
    per = ", ".join(f"{float(y) / float(x):.2f}x" for x, y in zip(rounds[s].split(", "), rounds[b].split(", ")))
    print(f"| req/s (medians) | {rps[s]:,.0f} | {rps[b]:,.0f} | {rps[b] / rps[s]:.2f}x | {per} |")
    per_cpu = ", ".join(f"{sum(y) / sum(x):.2f}x" for x, y in zip(cpu_rounds[s], cpu_rounds[b]))
    print(f"| CPU per response, microseconds (user + system) | {us(cpu[s])} | {us(cpu[b])} | "
          f"{sum(cpu[b]) / sum(cpu[s]):.2f}x | {per_cpu} |")
    print(f"| origin requests over the warm-up | {warm[s]:,} | {warm[b]:,} | - | - |")
    print(f"| RSS after the run, MiB (peak) | {rss} ({int(env('B_HWM')) >> 10}) | {rss_b} ({int(env('B_HWM_B')) >> 10}) | - | - |")
print("\nPer-round req/s: " + "; ".join(f"{k} {v}" for k, v in rounds.items()) + ".")
print("\nThe server's CPU per response (user/system microseconds, from /proc of the server's "
      "processes around each round: what it spent on each answer however much of the host it got): "
      + "; ".join(f"{k} {', '.join(f'{u:.1f}/{y:.1f}' for u, y in cpu_rounds[k])}" for k in cpu_rounds) + ".")
print(f"\ns3edge cache metrics at the end: {env('B_CACHE')}")
if b in rps:
    print(f"\ns3edge-b cache metrics at the end: {env('B_CACHE_B')}")
PY
cat "$OUT"
log "written to $OUT"
