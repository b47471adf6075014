#!/usr/bin/env bash
# Soak test: SECONDS (default 600) of mixed traffic while the origin flaps.
#
#   bash scripts/soak.sh [SECONDS]
#
# Starts `s3edge serve` with its embedded S3 store and one site in a temporary
# folder. The site's endpoint is a flapping TCP proxy (scripts/soak.py) in
# front of the store: every SOAK_FLAP_EVERY seconds it refuses, stalls, cuts or
# answers 503 SlowDown for SOAK_FLAP_LENGTH seconds, while SOAK_THREADS client
# threads send hits, HEADs, misses on new keys, ranges, If-None-Match
# conditionals, gzip and br, purges (POST /purge on the admin port, with the
# admin token) and whole large objects, each body checked against its SHA-256.
#
# At the end it prints and writes SOAK_OUT (default benches/results/soak.md):
# requests, faults injected, errors explained by the faults (502/504/cut
# bodies overlapping a fault window) and unexplained ones, RSS and open fds
# after the warm-up and at the end. Exits 1 on any unexplained error, on RSS
# or fd growth beyond the tolerances, or if s3edge died or panicked.
#
# Environment:
#   S3EDGE_BIN          the binary to run (else `cargo build` and target/debug/s3edge;
#                       CARGO_TARGET_DIR is honoured)
#   SOAK_THREADS        client threads (default 6)
#   SOAK_WARMUP         warm-up seconds without faults (default 30)
#   SOAK_FLAP_EVERY     seconds between faults (default 20)
#   SOAK_FLAP_LENGTH    seconds each fault lasts (default 4)
#   SOAK_RSS_TOLERANCE_MIB, SOAK_FD_TOLERANCE   allowed growth (default 48 MiB, 16)
#   SOAK_OUT            result file (default benches/results/soak.md)
#   SOAK_KEEP_TMP=1     keep the temporary folder (s3edge's log, the JSON)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DURATION=${1:-600}
OUT=${SOAK_OUT:-$REPO/benches/results/soak.md}
INVOCATION="bash scripts/soak.sh${1:+ $1}"
for v in SOAK_THREADS SOAK_WARMUP SOAK_FLAP_EVERY SOAK_FLAP_LENGTH; do
    [[ -z ${!v:-} ]] || INVOCATION="$v=${!v} $INVOCATION"
done
# The result file names no path of this machine.
[[ -z ${S3EDGE_BIN:-} ]] || INVOCATION="S3EDGE_BIN=<binary> $INVOCATION"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

PID=""
TMP=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    [[ -z $PID ]] || wait "$PID" 2>/dev/null || true
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ -n ${SOAK_KEEP_TMP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v python3 >/dev/null || die "python3 is required"
if [[ -n ${S3EDGE_BIN:-} ]]; then
    BIN=$S3EDGE_BIN
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
    [[ $CARGO_TARGET_DIR == /* ]] || CARGO_TARGET_DIR=$REPO/$CARGO_TARGET_DIR
    log "building s3edge (debug)"
    (cd "$REPO" && cargo build --quiet)
    BIN=$CARGO_TARGET_DIR/debug/s3edge
fi
[[ -x $BIN ]] || die "no s3edge binary at $BIN"

# The tree the run is about (the binary may be older: S3EDGE_BIN).
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
TMP=$(mktemp -d /tmp/s3edge-soak.XXXXXX)
mkdir -p "$TMP/sites" "$TMP/buckets/soak" "$TMP/cache" "$TMP/tmp"
read -r P_EDGE P_ADMIN P_S3 P_PROXY < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

cat >"$TMP/sites/soak.toml" <<EOF
hosts = ["soak.test"]
[origin]
bucket = "soak"
endpoint = "http://127.0.0.1:$P_PROXY"
access_key_id_env = "SOAK_S3_KEY"
secret_access_key_env = "SOAK_S3_SECRET"
timeout = "5s"

[cache]
default_ttl = "5s"
stale_while_revalidate = "2s"
stale_if_error = "10s"

[compression]
algorithms = ["br", "gzip"]
min_size = 1000
EOF

export S3EDGE_EMBEDDED_ACCESS_KEY=soak-access-key
export S3EDGE_EMBEDDED_SECRET_KEY=soak-secret-key-$RANDOM$RANDOM
export SOAK_S3_KEY=$S3EDGE_EMBEDDED_ACCESS_KEY SOAK_S3_SECRET=$S3EDGE_EMBEDDED_SECRET_KEY
export S3EDGE_ADMIN_TOKEN=soak-token-$RANDOM$RANDOM

log "s3edge: $BIN (edge :$P_EDGE, admin :$P_ADMIN, store :$P_S3, flapping proxy :$P_PROXY)"
"$BIN" serve --sites "$TMP/sites" \
    --listen "127.0.0.1:$P_EDGE" --admin-listen "127.0.0.1:$P_ADMIN" \
    --embedded-s3 "$TMP/buckets" --embedded-s3-listen "127.0.0.1:$P_S3" \
    --cache-dir "$TMP/cache" --disk-cache-size 64MiB \
    --memory-cache-size 16MiB --memory-object-max 4MiB \
    --access-log off --workers 2 >"$TMP/s3edge.out" 2>"$TMP/s3edge.err" &
PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$P_ADMIN") 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || die "s3edge exited: $(cat "$TMP/s3edge.err")"
    sleep 0.1
done

log "soak: ${SOAK_WARMUP:-30} s warm-up, then $DURATION s with the origin flapping"
set +e
python3 "$HERE/soak.py" \
    --edge "127.0.0.1:$P_EDGE" --admin "127.0.0.1:$P_ADMIN" --store "127.0.0.1:$P_S3" \
    --proxy-port "$P_PROXY" --bucket-dir "$TMP/buckets/soak" --tmp-dir "$TMP/tmp" \
    --pid "$PID" --token "$S3EDGE_ADMIN_TOKEN" --duration "$DURATION" \
    --warmup "${SOAK_WARMUP:-30}" --threads "${SOAK_THREADS:-6}" \
    --flap-every "${SOAK_FLAP_EVERY:-20}" --flap-length "${SOAK_FLAP_LENGTH:-4}" \
    --rss-tolerance-mib "${SOAK_RSS_TOLERANCE_MIB:-48}" --fd-tolerance "${SOAK_FD_TOLERANCE:-16}" \
    --json "$TMP/soak.json"
rc=$?
set -e

alive=yes
kill -0 "$PID" 2>/dev/null || alive=no
panics=$(grep -c "panicked" "$TMP/s3edge.err" || true)
metrics=$(python3 - "$P_ADMIN" "$S3EDGE_ADMIN_TOKEN" <<'PY' || true
import sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/metrics" % sys.argv[1],
                             headers={"Authorization": "Bearer " + sys.argv[2]})
text = urllib.request.urlopen(req, timeout=10).read().decode()
for line in text.splitlines():
    if line.startswith(("s3edge_requests_total", "s3edge_origin_requests_total")):
        print(line)
PY
)
[[ -f $TMP/soak.json ]] || die "the soak client wrote no result"

mkdir -p "$(dirname "$OUT")"
set +e
case $BIN in
    "$REPO"/*) BIN_LABEL=${BIN#"$REPO"/} ;;
    *) BIN_LABEL="$(basename "$BIN"), outside the repository" ;;
esac
python3 - "$TMP/soak.json" "$OUT" "$INVOCATION" "$BIN_LABEL" "$alive" "$panics" "$metrics" "$COMMIT" <<'PY'
import json, sys, time
data, out, invocation, binary, alive, panics, metrics, commit = sys.argv[1:]
r = json.load(open(data))
def kv(d):
    return ", ".join("%s %s" % (k, v) for k, v in sorted(d.items())) or "none"
lines = [
    "# Soak test",
    "",
    "`%s` on %s (binary `%s`), %s." % (invocation, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        binary, "repository at " + commit),
    "",
    "| | |",
    "|---|---|",
    "| duration (after %s requests of warm-up) | %s s, %s client threads |" % (r["warmup_requests"], r["duration_s"], r["threads"]),
    "| requests | %d (%.0f/s): %s |" % (r["requests"], r["rate_per_s"], kv(r["requests_by_kind"])),
    "| statuses | %s |" % kv(r["statuses"]),
    "| faults injected | %d windows (%s); origin connections faulted: %s; forwarded: %d |" % (
        r["faults_injected"], kv(r["faults_by_kind"]), kv(r["origin_connections_faulted"]),
        r["origin_connections_forwarded"]),
    "| errors explained by the faults | %d (%s) |" % (sum(r["errors_explained"].values()), kv(r["errors_explained"])),
    "| errors during a host stall (no fault injected) | %d (%s) |" % (sum(r["errors_host_stall"].values()), kv(r["errors_host_stall"])),
    "| errors unexplained | %d (%s) |" % (sum(r["errors_unexplained"].values()), kv(r["errors_unexplained"])),
    "| host stalls seen (I/O or memory fully stalled >150 ms in 0.5 s, or the sampler 1 s late) | %d; load average %s at the start, %s at the end |" % (
        len(r["host_stalls"]), r["load_start"], r["load_end"]),
    "| errors during the warm-up (no faults) | %d |" % sum(r["warmup_errors"].values()),
    "| RSS after warm-up, at the end, highest sample | %s MiB, %s MiB, %s MiB (tolerance +%s MiB) |" % (
        r["rss_start_mib"], r["rss_end_mib"], r["rss_max_mib"], r["rss_tolerance_mib"]),
    "| open fds after warm-up, at the end | %d, %d (tolerance +%d) |" % (r["fd_start"], r["fd_end"], r["fd_tolerance"]),
    "| s3edge alive at the end, panics logged | %s, %s |" % (alive, panics),
    "",
    "Explained: a 502, a 504, a cut body or a dropped connection on a request that",
    "overlapped a fault window or ended within %s s after one. The same kinds during a" % r["grace_s"],
    "host stall (the machine is shared) are counted apart and do not fail the run;",
    "anything else does. br bodies are checked",
    "for completeness only (no brotli decoder in Python's standard library); gzip",
    "bodies are decompressed and checked. br bodies that differed between requests: %d." % r["br_bodies_differing"],
    "",
    "RSS (MiB) and fds every 30 s: " + ", ".join("%ss %s/%s" % tuple(s) for s in r["samples"]),
    "",
]
if r["host_stalls"]:
    lines += ["Host stalls (seconds into the run): " + "; ".join("%s-%s %s" % tuple(h) for h in r["host_stalls"][:40]), ""]
if r["unexplained_examples"]:
    lines += ["Errors outside fault windows (first 30):", ""] + ["- " + e for e in r["unexplained_examples"]] + [""]
if metrics.strip():
    lines += ["s3edge's own counters at the end:", "", "```"] + metrics.strip().splitlines() + ["```", ""]
failures = list(r["failures"])
if alive != "yes":
    failures.append("s3edge died")
if panics not in ("", "0"):
    failures.append("s3edge logged %s panics" % panics)
lines.append("Result: **%s**" % ("FAIL: " + "; ".join(failures) if failures else "pass"))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(1 if failures else 0)
PY
report_rc=$?
set -e
log "written $OUT"
((rc == 0 && report_rc == 0)) || exit 1
