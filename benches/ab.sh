#!/usr/bin/env bash
# Two s3edge binaries side by side on the same objects, in one run: did a
# change make hits slower? Each round runs the client against A, then B, for
# every row (4 KiB, 100 KiB, 1 MiB and 64 MiB hits over HTTP/1.1 with wrk; 4 KiB over
# HTTPS with wrk and over HTTP/2 with h2load, 16 connections x 10 streams, as
# in protocols.sh; default cache flags as in compare.sh's headline, so the
# 64 MiB hit comes from the disk tier), and the table gives the medians and
# B/A, then B/A again over only the rounds measured while the two cores were
# close, and over only those measured while they were apart (lib.sh): a
# change can help one state and not the other.
#
#   bash benches/ab.sh OLD_BINARY NEW_BINARY
#
# Everything listens on 127.0.0.1; every process started here is stopped on
# exit. Environment: BENCH_SECONDS (default 8), BENCH_ROUNDS (default 3),
# BENCH_ROWS (the rows to run, e.g. "100k"; default "4k 100k 1m 64m https4k
# h2_4k"; "32k", "64k", "256k", "512k", "2m" and "4m" are there too, for the
# size limits of hits sent from their files),
# BENCH_S3EDGE_FLAGS (extra flags for both binaries, e.g.
# "--memory-object-max 128MiB" to serve the 64 MiB hit from memory),
# BENCH_KEEP_TMP=1, BENCH_PIN=1 (both binaries on every CPU but the last, wrk
# and h2load on the last: benches/lib.sh), BENCH_CLOSE=1 (each measurement
# waits for the two cores to be close, and is made again when they were apart
# just after it: benches/lib.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SECS=${BENCH_SECONDS:-8}
read -r -a EXTRA_FLAGS <<<"${BENCH_S3EDGE_FLAGS:-}"
ROUNDS=${BENCH_ROUNDS:-3}
KEEP_TMP=${BENCH_KEEP_TMP:-}
export S3EDGE_EMBEDDED_ACCESS_KEY=${S3EDGE_EMBEDDED_ACCESS_KEY:-s3edge-dev}
export S3EDGE_EMBEDDED_SECRET_KEY=${S3EDGE_EMBEDDED_SECRET_KEY:-s3edge-dev-secret}
# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"

[[ $# -eq 2 && -x $1 && -x $2 ]] || die "usage: bash benches/ab.sh OLD_BINARY NEW_BINARY"
# The objects (the row of the same name fetches one over plain HTTP/1.1),
# and the rows BENCH_ROWS may name.
OBJECTS=(4k 32k 64k 100k 256k 512k 1m 2m 4m 64m)
declare -A SIZE=([4k]=4096 [32k]=$((32 << 10)) [64k]=$((64 << 10)) [100k]=$((100 << 10))
    [256k]=$((256 << 10)) [512k]=$((512 << 10)) [1m]=$((1 << 20)) [2m]=$((2 << 20)) [4m]=$((4 << 20)) [64m]=$((64 << 20)))
read -r -a ROWS <<<"${BENCH_ROWS:-4k 100k 1m 64m https4k h2_4k}"
for row in "${ROWS[@]}"; do
    [[ $row == https4k || $row == h2_4k || -v SIZE[$row] ]] ||
        die "BENCH_ROWS: no row '$row' (rows: ${OBJECTS[*]} https4k h2_4k)"
done
declare -A SERVER_PID=()
declare -A BIN=([A]=$1 [B]=$2) PORT=([A]=18680 [B]=18681) TLS=([A]=18682 [B]=18683) ADMIN=([A]=19680 [B]=19681) S3=([A]=19600 [B]=19601)
install_missing wrk=wrk curl=curl h2load=nghttp2-client openssl=openssl
refuse_busy_ports "${PORT[@]}" "${TLS[@]}" "${ADMIN[@]}" "${S3[@]}"
require_localhost
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

TMP=$(mktemp -d /tmp/s3edge-ab.XXXXXX)
bench_certificate
for side in A B; do
    bucket=$TMP/$side/sites/buckets/bench
    mkdir -p "$bucket" "$TMP/$side/cache"
    cat >"$TMP/$side/sites/bench.toml" <<EOF
default = true
hosts = ["localhost"]

[origin]
bucket = "bench"
endpoint = "embedded"

[tls]
cert = "$TMP/bench.pem"
key = "$TMP/bench.key"
EOF
done
for obj in "${OBJECTS[@]}"; do head -c "${SIZE[$obj]}" /dev/urandom >"$TMP/$obj.bin"; done
for side in A B; do
    for obj in "${OBJECTS[@]}"; do cp "$TMP/$obj.bin" "$TMP/$side/sites/buckets/bench/"; done
    "${BIN[$side]}" serve --sites "$TMP/$side/sites" --listen 127.0.0.1:${PORT[$side]} \
        --tls-listen 127.0.0.1:${TLS[$side]} --admin-listen 127.0.0.1:${ADMIN[$side]} --embedded-s3-listen 127.0.0.1:${S3[$side]} \
        --access-log off "${EXTRA_FLAGS[@]}" \
        --cache-dir "$TMP/$side/cache" >"$TMP/$side.log" 2>&1 &
    PIDS+=($!)
    SERVER_PID[$side]=$!
    wait_port "${PORT[$side]}" "s3edge $side"
done
for side in A B; do
    for obj in "${OBJECTS[@]/%/.bin}"; do
        for _ in 1 2; do curl -sf -o /dev/null "http://127.0.0.1:${PORT[$side]}/$obj"; done
        got=$(curl -sf "http://127.0.0.1:${PORT[$side]}/$obj" | sha256sum | cut -c1-64)
        [[ $got == "$(sha256sum <"$TMP/$obj" | cut -c1-64)" ]] || die "$side /$obj: body differs"
    done
    proto=$(curl -sfk --http2 -o /dev/null -w '%{http_version}' "https://localhost:${TLS[$side]}/4k.bin")
    [[ $proto == 2 ]] || die "$side: HTTP/2 not negotiated over TLS (got $proto)"
done

declare -A RES=() CPU=()
run() { # ROW SIDE URL CONNS [wrk args]
    local row=$1 side=$2 url=$3 conns=$4 out value before
    shift 4
    while :; do
        await_close_cores
        before=$(cpu_ticks "${SERVER_PID[$side]}")
        out=$(timeout $((SECS + 60)) "${CLIENT[@]}" wrk -t2 -c"$conns" -d"${SECS}s" "$@" "$url" 2>&1) ||
            die "wrk $row $side: $out"
        if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then die "wrk $row $side: errors: $out"; fi
        value=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
        kept "$row" "$side" "$value" && break
    done
    record "$row" "$side" "$value" "$before" "$(awk '/requests in/ { print $1 }' <<<"$out")"
}
h2_run() { # ROW SIDE URL: requests/s from h2load, 16 connections x 10 streams
    local row=$1 side=$2 url=$3 out value before
    while :; do
        await_close_cores
        before=$(cpu_ticks "${SERVER_PID[$side]}")
        out=$(timeout $((SECS + 60)) "${CLIENT[@]}" h2load -D "$SECS" -c 16 -m 10 -t 2 "$url" 2>&1) || die "h2load $row $side: $out"
        h2load_checked "$row $side" "$out"
        value=$(awk '/^finished in/ { print $4 }' <<<"$out")
        kept "$row" "$side" "$value" && break
    done
    record "$row" "$side" "$value" "$before" "$(awk '/^requests:/ { print $8 }' <<<"$out")"
}
kept() { # ROW SIDE VALUE: the probe after a measurement; fails when it is to be made again
    after_measurement "$1 $2 round $r" && return 0
    log "  ($1 $2: $3 req/s not kept)"
    return 1
}
record() { # ROW SIDE VALUE CPU_BEFORE RESPONSES: the round's req/s, and the
    # server's CPU per response over the round (benches/lib.sh cpu_per_response;
    # the server is idle during the core-distance probe between the two readings)
    local row=$1 side=$2 value=$3 cpu
    cpu=$(cpu_per_response "$4" "$(cpu_ticks "${SERVER_PID[$side]}")" "$5")
    RES[$row,$side]="${RES[$row,$side]:-}${RES[$row,$side]:+ }$value"
    CPU[$row,$side]="${CPU[$row,$side]:-}${CPU[$row,$side]:+ }$cpu"
    log "  $row $side: $value req/s, $cpu us CPU per response (user/system)"
    sleep 1
}
log "rounds: $ROUNDS, ${SECS}s each, A then B"
core_distance start
for ((r = 1; r <= ROUNDS; r++)); do
    for row in "${ROWS[@]}"; do
        for side in A B; do
            case $row in
                64m) run 64m "$side" "http://127.0.0.1:${PORT[$side]}/64m.bin" 4 --timeout 30s ;;
                # wrk and h2load resolve localhost (the certificate's name) to 127.0.0.1.
                https4k) run https4k "$side" "https://localhost:${TLS[$side]}/4k.bin" 64 ;;
                h2_4k) h2_run h2_4k "$side" "https://localhost:${TLS[$side]}/4k.bin" ;;
                *) run "$row" "$side" "http://127.0.0.1:${PORT[$side]}/$row.bin" 64 ;;
            esac
        done
    done
done

for k in "${!RES[@]}"; do printf '%s\t%s\n' "$k" "${RES[$k]}"; done >"$TMP/results.tsv"
for k in "${!CPU[@]}"; do printf '%s\t%s\n' "$k" "${CPU[$k]}"; done >"$TMP/cpu.tsv"
echo "A/B run $(date -u '+%Y-%m-%d %H:%M UTC'), $B_NPROC cores, TCP congestion control $B_TCP, pinned: $B_PIN, load $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; $ROUNDS rounds of ${SECS}s, medians (req/s); s3edge flags: ${BENCH_S3EDGE_FLAGS:-defaults}."
echo "A: $1 (built $(date -u -r "$1" '+%Y-%m-%d %H:%M UTC'))"
echo "B: $2 (built $(date -u -r "$2" '+%Y-%m-%d %H:%M UTC'))"
echo
echo "$(cores_summary)."
python3 - "$HERE" "$TMP/results.tsv" "$TMP/cpu.tsv" "${CORES_LOG:-}" "${CORES_LEAST:-}" "${ROWS[@]}" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv.pop(1))
import cores
res, cpu = {}, {}
for line in open(sys.argv[1]):
    key, values = line.rstrip("\n").split("\t")
    res[key] = [float(v) for v in values.split()]
for line in open(sys.argv.pop(2)):
    key, values = line.rstrip("\n").split("\t")
    cpu[key] = [tuple(float(x) for x in v.split("/")) for v in values.split()]
# Each measurement's state from the probes just before and just after it.
state = {}
if sys.argv[2] and sys.argv[3]:
    probes, yardstick = cores.read(sys.argv[2], sys.argv[3])
    for label, before, after in cores.measurements(probes):
        state[label] = cores.state(before, after, yardstick)
def rounds(row, side):
    return [(v, state.get(f"{row} {side} round {i}", "?")) for i, v in enumerate(res[f"{row},{side}"], 1)]
def ratio(a, b, want):
    a = [v for v, s in a if s == want]
    b = [v for v, s in b if s == want]
    if not a or not b:
        return "-"
    return f"{statistics.median(b) / statistics.median(a):.2f}x ({len(a)}, {len(b)})"
print()
print("| hit | A | B | B/A | B/A, cores close (rounds A, B) | B/A, cores apart (rounds A, B) | rounds A | rounds B |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
mark = {"close": "", "apart": " (apart)", "mixed": " (mixed)", "?": ""}
for row in sys.argv[4:]:
    a, b = rounds(row, "A"), rounds(row, "B")
    ma, mb = statistics.median(v for v, _ in a), statistics.median(v for v, _ in b)
    fmt = lambda vs: ", ".join(f"{v:,.0f}{mark[s]}" for v, s in vs)
    print(f"| {row} | {ma:,.0f} | {mb:,.0f} | {mb / ma:.2f}x | {ratio(a, b, 'close')} | {ratio(a, b, 'apart')} "
          f"| {fmt(a)} | {fmt(b)} |")
# CPU per response: the medians of user, of system and of their sum over the
# rounds, each on its own (B/A < 1 is B cheaper).
print()
print("The server's CPU per response, microseconds (user + system; medians over the rounds; B/A below 1 is B cheaper):")
print()
print("| hit | A user | B user | B/A user | A total | B total | B/A total | rounds A (user/system) | rounds B (user/system) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for row in sys.argv[4:]:
    a, b = cpu[f"{row},A"], cpu[f"{row},B"]
    ua, ub = statistics.median(u for u, _ in a), statistics.median(u for u, _ in b)
    ta, tb = statistics.median(u + s for u, s in a), statistics.median(u + s for u, s in b)
    fmt = lambda vs: ", ".join(f"{u:.1f}/{s:.1f}" for u, s in vs)
    print(f"| {row} | {ua:.1f} | {ub:.1f} | {ub / ua:.2f}x | {ta:.1f} | {tb:.1f} | {tb / ta:.2f}x | {fmt(a)} | {fmt(b)} |")
PY
