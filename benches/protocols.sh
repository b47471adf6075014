#!/usr/bin/env bash
# s3edge with DEFAULT flags against nginx (and Varnish where it speaks the
# protocol) over HTTPS and HTTP/2, and large objects from the disk tier, in
# one run on one machine (issue 19's rows that benches/compare.sh does not
# cover):
#
#   bash benches/protocols.sh
#
#   - 4 KiB hit over HTTPS (TLS 1.3, keep-alive, same certificate), wrk: s3edge
#     vs nginx (Varnish has no TLS);
#   - 1 MiB hit over HTTPS, wrk: s3edge vs nginx;
#   - 4 KiB hit over HTTP/2 (h2load, 16 connections x 10 streams): s3edge vs
#     nginx http2; and 100 KiB and 1 MiB the same way, for information (the
#     issue sets no target there; browsers fetch most assets over HTTP/2);
#   - 64 MiB hit on plain HTTP with default flags, so from s3edge's disk tier
#     (objects above --memory-object-max 8 MiB live on disk only): s3edge vs
#     nginx (proxy_cache on disk, sendfile) and Varnish (-s file);
#   - 100 KiB and 1 MiB binary hits on plain HTTP: s3edge vs nginx and
#     Varnish (-s malloc).
#   - for the 64 MiB and 1 MiB rows, a reference: benches/one_copy.py, a
#     minimal server that copies each body once from its memory into the
#     socket and does nothing else. A server that sends from its own memory
#     cannot copy less per byte, so at 64 MiB (4 connections, where per-request
#     work does not count) it marks what this machine's loopback and wrk allow
#     such a server. At 1 MiB its thread per connection costs it, and a server
#     may beat it.
#
# Rounds A B C (BENCH_ROUNDS, default 3), medians, ratios in one run: the
# machine is shared and noisy, read the ratios. Everything listens on
# 127.0.0.1 and every process started here is stopped on exit.
#
# Environment: S3EDGE_BIN (else `cargo build --release` into CARGO_TARGET_DIR),
# BENCH_SECONDS (default 8), BENCH_ROUNDS (default 3),
# BENCH_OUT (default benches/results/protocols.md), BENCH_KEEP_TMP=1,
# BENCH_PIN=1 (servers on every CPU but the last, wrk and h2load on the last:
# benches/lib.sh), BENCH_CLOSE=1 (each measurement waits for the two cores to
# be close, and is made again when they were apart just after it:
# benches/lib.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SECS=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=${BENCH_OUT:-$HERE/results/protocols.md}
export PATH="$PATH:/usr/sbin:/sbin"
export S3EDGE_EMBEDDED_ACCESS_KEY=${S3EDGE_EMBEDDED_ACCESS_KEY:-s3edge-dev}
export S3EDGE_EMBEDDED_SECRET_KEY=${S3EDGE_EMBEDDED_SECRET_KEY:-s3edge-dev-secret}

# s3edge: plain, TLS, admin, embedded S3; nginx: plain, TLS, origin;
# varnish: malloc, file.
P_S3EDGE=18580 P_S3EDGE_TLS=18581 P_ADMIN=19580 P_S3=19500
P_NGINX=18582 P_NGINX_TLS=18583 P_ORIGIN=18590
P_VARNISH=18584 P_VARNISH_FILE=18585 P_ONE_COPY=18586

KEEP_TMP=${BENCH_KEEP_TMP:-}
# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"

install_missing nginx=nginx varnishd=varnish wrk=wrk h2load=nghttp2-client curl=curl openssl=openssl
refuse_busy_ports $P_S3EDGE $P_S3EDGE_TLS $P_ADMIN $P_S3 $P_NGINX $P_NGINX_TLS $P_ORIGIN $P_VARNISH $P_VARNISH_FILE $P_ONE_COPY
require_localhost
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

BIN=$(release_binary)

# ---------------------------------------------------- objects, certificate --
TMP=$(mktemp -d /tmp/s3edge-protocols.XXXXXX)
chmod 755 "$TMP"
BUCKET=$TMP/sites/buckets/bench
mkdir -p "$BUCKET" "$TMP/nginx" "$TMP/cache" "$TMP/varnish-file"
head -c 4096 /dev/urandom >"$BUCKET/4k.bin"
head -c $((100 << 10)) /dev/urandom >"$BUCKET/100k.bin"
head -c $((1 << 20)) /dev/urandom >"$BUCKET/1m.bin"
head -c $((64 << 20)) /dev/urandom >"$BUCKET/64m.bin"
bench_certificate
chmod -R a+rX "$TMP"

# ---------------------------------------------------------------- servers --
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
log "starting s3edge with default cache flags"
"$BIN" serve --sites "$TMP/sites" --listen 127.0.0.1:$P_S3EDGE \
    --tls-listen 127.0.0.1:$P_S3EDGE_TLS --admin-listen 127.0.0.1:$P_ADMIN \
    --embedded-s3-listen 127.0.0.1:$P_S3 --access-log off \
    --cache-dir "$TMP/cache" >"$TMP/s3edge.log" 2>&1 &
PIDS+=($!)

{
    nginx_conf_head
    cat <<EOF
    http2_max_concurrent_streams 128;
    proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=bench:16m max_size=2g inactive=1h use_temp_path=off;
EOF
    nginx_tls_conf
    cat <<EOF

    upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 32; }
    server { listen 127.0.0.1:$P_ORIGIN; root $BUCKET; }
    server {
        listen 127.0.0.1:$P_NGINX;
        listen 127.0.0.1:$P_NGINX_TLS ssl http2;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
cat >"$TMP/varnish.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$P_ORIGIN"; }
EOF
varnishd -F -n "$TMP/varnish-malloc" -a 127.0.0.1:$P_VARNISH -T 127.0.0.1:0 \
    -f "$TMP/varnish.vcl" -s malloc,256m -t 3600 >"$TMP/varnish.log" 2>&1 &
PIDS+=($!)
varnishd -F -n "$TMP/varnish-file" -a 127.0.0.1:$P_VARNISH_FILE -T 127.0.0.1:0 \
    -f "$TMP/varnish.vcl" -s file,"$TMP/varnish-file/storage.bin",1G -t 3600 >"$TMP/varnish-file.log" 2>&1 &
PIDS+=($!)
python3 "$HERE/one_copy.py" "$BUCKET" $P_ONE_COPY >"$TMP/one-copy.log" 2>&1 &
PIDS+=($!)
for p in $P_S3EDGE $P_S3EDGE_TLS $P_NGINX $P_NGINX_TLS $P_ORIGIN $P_VARNISH $P_VARNISH_FILE $P_ONE_COPY; do
    wait_port "$p" "port $p"
done

# ------------------------------------------------------------ warm, check --
declare -A URL=(
    [s3edge]=http://127.0.0.1:$P_S3EDGE [nginx]=http://127.0.0.1:$P_NGINX
    [varnish]=http://127.0.0.1:$P_VARNISH [varnishfile]=http://127.0.0.1:$P_VARNISH_FILE
    [s3edge-tls]=https://localhost:$P_S3EDGE_TLS [nginx-tls]=https://localhost:$P_NGINX_TLS
    [onecopy]=http://127.0.0.1:$P_ONE_COPY
)
CURL_TLS=(--cacert "$TMP/bench.pem")
log "warming every cache and checking every body"
for s in "${!URL[@]}"; do
    for obj in 4k.bin 100k.bin 1m.bin 64m.bin; do
        for _ in 1 2; do curl -sf "${CURL_TLS[@]}" -o /dev/null "${URL[$s]}/$obj"; done
        got=$(curl -sf "${CURL_TLS[@]}" "${URL[$s]}/$obj" | sha256sum | cut -c1-64)
        want=$(sha256sum <"$BUCKET/$obj" | cut -c1-64)
        [[ $got == "$want" ]] || die "$s /$obj: body differs from the object"
    done
done
status=$(curl -sf "${CURL_TLS[@]}" -o /dev/null -D - "${URL[s3edge]}/64m.bin" | tr -d '\r' | grep -i '^cache-status:')
[[ ${status,,} == *"s3edge; hit"* ]] || die "s3edge /64m.bin is not a hit: $status"
proto=$(curl -sf "${CURL_TLS[@]}" --http2 -o /dev/null -w '%{http_version}' "${URL[s3edge-tls]}/4k.bin")
[[ $proto == 2 ]] || die "s3edge did not negotiate HTTP/2 (got $proto)"

# --------------------------------------------------------------- measure --
declare -A RES=()
note() { RES[$1]="${RES[$1]:-}${RES[$1]:+ }$2"; log "  $1: $2"; }
wrk_run() { # KEY URL CONNS [wrk args]: requests/s (MiB/s for 64m)
    local key=$1 url=$2 conns=$3 out value
    shift 3
    while :; do
        await_close_cores
        out=$(timeout $((SECS + 60)) "${CLIENT[@]}" wrk -t2 -c"$conns" -d"${SECS}s" "$@" "$url" 2>&1) || die "wrk $key: $out"
        if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then die "wrk $key: errors: $out"; fi
        if [[ $key == hit64m* ]]; then
            value=$(awk '/^Transfer\/sec:/ { v = $2; u = $2; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+/, "", v);
                if (u == "GB") v *= 1024; if (u == "KB") v /= 1024; print v }' <<<"$out")
        else
            value=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
        fi
        after_measurement "$key round $r" && break
        log "  ($key: $value not kept)"
    done
    note "$key" "$value"
    sleep 1
}
h2_run() { # KEY URL: requests/s from h2load, 16 connections x 10 streams
    local out value
    while :; do
        await_close_cores
        out=$(timeout $((SECS + 60)) "${CLIENT[@]}" h2load -D "$SECS" -c 16 -m 10 -t 2 "$2" 2>&1) || die "h2load $1: $out"
        h2load_checked "$1" "$out"
        value=$(awk '/^finished in/ { gsub(",", "", $4); print $4 }' <<<"$out")
        after_measurement "$1 round $r" && break
        log "  ($1: $value not kept)"
    done
    note "$1" "$value"
    sleep 1
}
# The HTTPS rows name `localhost` (the certificate's name, sent as SNI);
# wrk and h2load resolve it to 127.0.0.1.
log "rounds: $ROUNDS, ${SECS}s each"
core_distance start
for ((r = 1; r <= ROUNDS; r++)); do
    wrk_run https4k,s3edge "${URL[s3edge-tls]}/4k.bin" 64
    wrk_run https4k,nginx "${URL[nginx-tls]}/4k.bin" 64
    wrk_run https1m,s3edge "${URL[s3edge-tls]}/1m.bin" 16
    wrk_run https1m,nginx "${URL[nginx-tls]}/1m.bin" 16
    for obj in 4k 100k 1m; do
        h2_run "h2_$obj,s3edge" "${URL[s3edge-tls]}/$obj.bin"
        h2_run "h2_$obj,nginx" "${URL[nginx-tls]}/$obj.bin"
    done
    wrk_run hit64m,s3edge "${URL[s3edge]}/64m.bin" 4 --timeout 30s
    wrk_run hit64m,nginx "${URL[nginx]}/64m.bin" 4 --timeout 30s
    wrk_run hit64m,varnishfile "${URL[varnishfile]}/64m.bin" 4 --timeout 30s
    wrk_run hit64m,onecopy "${URL[onecopy]}/64m.bin" 4 --timeout 30s
    for obj in 100k 1m; do
        for s in s3edge nginx varnish; do wrk_run "hit$obj,$s" "${URL[$s]}/$obj.bin" 64; done
    done
    wrk_run hit1m,onecopy "${URL[onecopy]}/1m.bin" 64
done

# ---------------------------------------------------------------- report --
export B_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export B_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
export B_LOAD="$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
export B_GIT=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
export B_NGINX=$(nginx -v 2>&1 | sed 's/.*version: //') B_VARNISH=$(varnishd -V 2>&1 | head -1)
export B_SECS=$SECS B_ROUNDS=$ROUNDS B_CORES=$(cores_summary)
mkdir -p "$(dirname "$OUT")"
for k in "${!RES[@]}"; do printf '%s\t%s\n' "$k" "${RES[$k]}"; done >"$TMP/results.tsv"
python3 - "$TMP/results.tsv" >"$OUT" <<'PY'
import os, statistics, sys
res = {}
for line in open(sys.argv[1]):
    key, values = line.rstrip("\n").split("\t")
    res[key] = statistics.median(float(v) for v in values.split())
env = os.environ.get
def row(label, key, unit, peers, target):
    s = res.get(f"{key},s3edge")
    cells, ratios = [], []
    for peer in ("nginx", "varnish", "varnishfile", "onecopy"):
        v = res.get(f"{key},{peer}")
        cells.append("-" if v is None else f"{v:,.0f}")
        ratios.append("-" if v is None or peer not in peers + ["onecopy"] else f"{s / v:.2f}x")
    met = all(s / res[f"{key},{p}"] >= t for p, t in target)
    goal = ", ".join(f">= {t}x {p}" for p, t in target) or "none (for information)"
    verdict = ("**yes**" if met else "**NO**") if target else "-"
    return (f"| {label} ({unit}) | {s:,.0f} | " + " | ".join(cells) + " | " + " | ".join(ratios)
            + f" | {goal} | {verdict} |")
print(f"Run {env('B_DATE')} on {env('B_NPROC')} x {env('B_CPU')}, TCP congestion control {env('B_TCP')}, pinned: {env('B_PIN')}, load {env('B_LOAD')}; commit {env('B_GIT')}; "
      f"{env('B_NGINX')}, {env('B_VARNISH')}; {env('B_ROUNDS')} rounds of {env('B_SECS')} s, medians. "
      f"s3edge runs with default cache flags. {env('B_CORES')}.\n")
print("| scenario | s3edge | nginx | varnish (malloc) | varnish (file) | one-copy sender | s3edge/nginx | s3edge/varnish | s3edge/varnish file | s3edge/one-copy | target | met? |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
print(row("4 KiB hit, HTTPS TLS 1.3, 64 conns", "https4k", "req/s", ["nginx"], [("nginx", 1.25)]))
print(row("1 MiB hit, HTTPS TLS 1.3, 16 conns", "https1m", "req/s", ["nginx"], [("nginx", 1.0)]))
print(row("4 KiB hit, HTTP/2, h2load 16 conns x 10 streams", "h2_4k", "req/s", ["nginx"], [("nginx", 1.25)]))
print(row("100 KiB hit, HTTP/2, h2load 16 conns x 10 streams", "h2_100k", "req/s", ["nginx"], []))
print(row("1 MiB hit, HTTP/2, h2load 16 conns x 10 streams", "h2_1m", "req/s", ["nginx"], []))
print(row("64 MiB hit from the disk tier, 4 conns", "hit64m", "MiB/s", ["nginx", "varnishfile"],
          [("nginx", 1.2), ("varnishfile", 1.2)]))
print(row("100 KiB hit, 64 conns", "hit100k", "req/s", ["nginx", "varnish"], [("nginx", 1.2), ("varnish", 1.2)]))
print(row("1 MiB hit, 64 conns", "hit1m", "req/s", ["nginx", "varnish"], [("nginx", 1.2), ("varnish", 1.2)]))
print("\nThe one-copy sender (benches/one_copy.py) copies each body once from its memory into the socket")
print("and does nothing else. Each server's rate as a share of its rate:")
for key, label, peers in (("hit64m", "64 MiB", ("s3edge", "nginx", "varnishfile")),
                          ("hit1m", "1 MiB", ("s3edge", "nginx", "varnish"))):
    c = res.get(f"{key},onecopy")
    if c:
        print(f"- {label}: " + ", ".join(f"{p} {res[f'{key},{p}'] / c:.2f}x" for p in peers) + ".")
PY
cat "$OUT"
log "written to $OUT"
