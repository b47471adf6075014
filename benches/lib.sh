# Shared by the scripts in benches/ (sourced, not run):
# logging, the exit trap that stops every process started and removes the
# temporary folder, installing missing tools, finding the release binary, and
# waiting for a port. The caller sets REPO, and KEEP_TMP to keep the folder.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# The host's TCP congestion control, printed with every result: with BBR
# (which paces every connection with a timer) the large-body rows on loopback
# come out very differently than with the kernel's default, CUBIC (README,
# Performance).
B_TCP=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)
export B_TCP
die() { log "error: $*"; exit 1; }

PIDS=()
TMP=""
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ -n ${KEEP_TMP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo

# install_missing COMMAND=PACKAGE...: apt-get installs the packages whose
# command is not on PATH.
install_missing() {
    local pair need=()
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null || need+=("${pair#*=}")
    done
    ((${#need[@]})) || return 0
    log "installing ${need[*]}"
    $SUDO apt-get install -y "${need[@]}" ||
        { $SUDO apt-get update && $SUDO apt-get install -y "${need[@]}"; }
}

# The CPUs this script may use, before BENCH_PIN narrows them.
mapfile -t CPUS < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)), sep="\n")')
B_NPROC=${#CPUS[@]}
export B_NPROC

# BENCH_PIN=1 keeps the load generator off the servers' cores: this script
# and every server it starts run on all the CPUs it may use but the last, and
# wrk, h2load and the Python clients (run through "${CLIENT[@]}") on the last.
# Unpinned, the servers' workers and wrk's threads share every core as the
# scheduler places them, and on a 2-core machine the same binary's 100 KiB
# hits ran at about 25,000 or about 36,000 req/s from one run to the next;
# pinned, the spread narrowed, and each server is measured by the CPU it
# spends (docs/PERFORMANCE.md, "The client on a core of its own"). Unpinned
# stays the default: it is what the results before 2026-11-29 used.
CLIENT=()
B_PIN="no (servers and clients share every CPU)"
if [[ ${BENCH_PIN:-} == 1 ]]; then
    ((${#CPUS[@]} >= 2)) || die "BENCH_PIN=1 needs at least 2 CPUs; this process may use ${#CPUS[@]}"
    SERVER_CPUS=$(IFS=,; echo "${CPUS[*]:0:${#CPUS[@]}-1}")
    taskset -pc "$SERVER_CPUS" $$ >/dev/null || die "taskset could not pin this script to CPUs $SERVER_CPUS"
    CLIENT=(taskset -c "${CPUS[-1]}")
    B_PIN="servers on CPU $SERVER_CPUS, clients on CPU ${CPUS[-1]} (BENCH_PIN=1)"
fi
export B_PIN

# core_distance LABEL: after a measurement, how long a cache line takes to go
# from the first CPU this script may use to the last and back
# (benches/core_distance.c, built here with `cc` on first use), logged with
# LABEL. On a virtual machine that is not fixed: on the 2-core machine of the
# README's figures it was about 52 ns or about 318 ns, switching in the middle
# of a run, and a hit copied into the socket on one core and out on the other
# ran at half the rate or less while it was 318 (docs/PERFORMANCE.md, "Two
# cores that move apart"). A result's header says what it was (cores_summary).
CORES_LOG=""
CORES_LEAST=""
core_distance() {
    probe_cores || return 0
    printf '%s\t%s\n' "$PROBE_NS" "$1" >>"$CORES_LOG"
}

# probe_cores: runs the probe once; its reading in PROBE_NS (ns), the least
# reading of this run in CORES_LEAST. Fails when there is no probe.
probe_cores() {
    [[ -n ${TMP:-} && -d $TMP && ${#CPUS[@]} -ge 2 ]] || return 1
    if [[ -z $CORES_LOG ]]; then
        CORES_LOG=$TMP/cores.log
        : >"$CORES_LOG"
        cc -O2 -pthread -o "$TMP/core_distance" "$HERE/core_distance.c" 2>"$TMP/core_distance.err" ||
            log "no core-distance probe (cc failed: $(head -c 200 "$TMP/core_distance.err"))"
    fi
    [[ -x $TMP/core_distance ]] || return 1
    PROBE_NS=$("$TMP/core_distance" "${CPUS[0]}" "${CPUS[-1]}" 5 2>/dev/null) || return 1
    if [[ -z $CORES_LEAST ]] || ((PROBE_NS < CORES_LEAST)); then CORES_LEAST=$PROBE_NS; fi
}

# probed_apart: whether the last reading (PROBE_NS) was more than twice the
# least: the yardstick of "apart" here and in cores_summary.
probed_apart() { ((PROBE_NS > 2 * CORES_LEAST)); }

# await_close_cores: with BENCH_CLOSE=1, before a measurement, probes every
# 2 s until a reading is at most twice the least of this run, for up to
# BENCH_CLOSE_WAIT seconds (default 120; then it measures anyway and says
# so); after_measurement then makes a measurement again when the cores were
# apart just after it. Off by default: the issue's method is medians over
# every round. The first call takes five readings a second apart to find the
# least; were they all apart, apart would pass for close until a closer
# reading came.
await_close_cores() {
    [[ ${BENCH_CLOSE:-} == 1 ]] || return 0
    local waited=0 limit=${BENCH_CLOSE_WAIT:-120} i
    if [[ -z ${CORES_SEEDED:-} ]]; then
        # the least reading is the yardstick: a few seconds of readings first
        CORES_SEEDED=1
        for i in 1 2 3 4 5; do probe_cores || return 0; sleep 1; done
    fi
    PROBE_NS=""
    while probe_cores; do
        probed_apart || break
        if ((waited >= limit)); then
            log "  the cores are still apart (${PROBE_NS} ns) after ${waited}s; measuring anyway"
            break
        fi
        sleep 2
        waited=$((waited + 2))
    done
    ((waited == 0)) || log "  waited ${waited}s for the cores to be close"
    # the reading just before the measurement, for cores_summary
    [[ -z ${PROBE_NS:-} ]] || printf '%s\t~\n' "$PROBE_NS" >>"$CORES_LOG"
    return 0
}

# after_measurement LABEL: the probe after the measurement LABEL
# (core_distance). With BENCH_CLOSE=1, when that probe reads more than twice
# the least, the cores moved apart during the measurement or just after it:
# then it fails, and the caller measures again (after await_close_cores), at
# most BENCH_CLOSE_REPEAT times for one LABEL (default 2; then the last
# measurement is kept, and the header names it as measured apart). The
# header counts the measurements made again.
declare -A CLOSE_REPEATS=()
after_measurement() {
    if [[ ${BENCH_CLOSE:-} != 1 ]]; then
        core_distance "$1"
        return 0
    fi
    probe_cores || return 0
    local label=$1 done=${CLOSE_REPEATS[$1]:-0}
    if probed_apart && ((done < ${BENCH_CLOSE_REPEAT:-2})); then
        CLOSE_REPEATS[$label]=$((done + 1))
        printf '%s\tagain: %s\n' "$PROBE_NS" "$label" >>"$CORES_LOG"
        log "  the cores were apart after $label (${PROBE_NS} ns): measuring it again"
        return 1
    fi
    printf '%s\t%s\n' "$PROBE_NS" "$label" >>"$CORES_LOG"
}

# cores_summary: one sentence on the probes core_distance logged, for a
# result's header: their range, the measurements with a probe of more than
# twice the least one just before or just after them (measured, at least in
# part, while the cores were apart), and those made again (after_measurement).
cores_summary() {
    [[ -n $CORES_LOG && -s $CORES_LOG ]] || { echo "core distance: not measured"; return; }
    python3 "$HERE/cores.py" "$CORES_LOG" "${CPUS[0]}" "${CPUS[-1]}" "${BENCH_CLOSE:-}" "$CORES_LEAST"
}

# cpu_ticks PID...: "USER SYSTEM" clock ticks (CLK_TCK a second) used so far
# by these processes, every thread of theirs and every process under them
# (nginx's workers under its master, Varnish's child under its manager).
# Counted around a measurement, it gives a server's CPU per response: the
# servers share the host's cores with the client, so req/s alone mixes a
# server's own cost with the client's and the host's share; this tells
# them apart (it still moves with the host: caches, steal, core distance).
cpu_ticks() {
    python3 - "$@" <<'PY'
import os, sys
procs = {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        stat = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    f = stat[stat.rindex(")") + 2:].split()
    procs[int(d)] = (int(f[1]), int(f[11]), int(f[12]))
todo, seen = [int(a) for a in sys.argv[1:]], set()
while todo:
    pid = todo.pop()
    if pid in seen or pid not in procs:
        continue
    seen.add(pid)
    todo += [p for p, (ppid, _, _) in procs.items() if ppid == pid]
print(sum(procs[p][1] for p in seen), sum(procs[p][2] for p in seen))
PY
}

# cpu_per_response BEFORE AFTER RESPONSES: "USER/SYSTEM" microseconds of CPU
# per response from two cpu_ticks readings.
cpu_per_response() {
    local u0 s0 u1 s1 hz
    read -r u0 s0 <<<"$1"
    read -r u1 s1 <<<"$2"
    hz=$(getconf CLK_TCK)
    python3 -c "print(f'{($u1 - $u0) * 1e6 / $hz / $3:.1f}/{($s1 - $s0) * 1e6 / $hz / $3:.1f}')"
}

# refuse_busy_ports PORT...: dies when something already listens on one.
refuse_busy_ports() {
    local p
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            die "127.0.0.1:$p is already in use; stop what listens there"
        fi
    done
}

# release_binary: $S3EDGE_BIN, or a release build into $CARGO_TARGET_DIR.
release_binary() {
    local bin
    if [[ -n ${S3EDGE_BIN:-} ]]; then
        bin=$S3EDGE_BIN
    else
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
        [[ $CARGO_TARGET_DIR == /* ]] || CARGO_TARGET_DIR=$REPO/$CARGO_TARGET_DIR
        log "building s3edge (release, LTO: several minutes the first time)"
        (cd "$REPO" && cargo build --release --quiet)
        bin=$CARGO_TARGET_DIR/release/s3edge
    fi
    [[ -x $bin ]] || die "no s3edge binary at $bin"
    echo "$bin"
}

# require_localhost: dies unless `localhost` resolves to 127.0.0.1 first:
# the HTTPS rows name it (the certificate's name, sent as SNI).
require_localhost() {
    [[ $(getent ahosts localhost | awk 'NR == 1 { print $1 }') == 127.0.0.1 ]] ||
        die "localhost must resolve to 127.0.0.1 first (the HTTPS rows use it as the certificate's name)"
}

# bench_certificate: a self-signed P-256 certificate for `localhost`, valid
# two days, in $TMP/bench.pem with its key in $TMP/bench.key.
bench_certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -keyout "$TMP/bench.key" -out "$TMP/bench.pem" 2>/dev/null
}

# nginx_tls_conf: the http block's TLS settings, for that certificate.
nginx_tls_conf() {
    cat <<EOF
    ssl_certificate $TMP/bench.pem;
    ssl_certificate_key $TMP/bench.key;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:10m;
EOF
}

# h2load_checked WHAT OUTPUT: dies unless h2load's OUTPUT reports no failed,
# errored or timed-out request and only 2xx statuses (a 404 or 5xx counts as
# "succeeded" in h2load's own tally).
h2load_checked() {
    grep -q ' 0 failed, 0 errored, 0 timeout' <<<"$2" &&
        grep -qE 'status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' <<<"$2" ||
        die "h2load $1: failures: $2"
}

wait_port() { # PORT NAME
    local i
    for i in $(seq 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    die "$2 did not listen on 127.0.0.1:$1 (logs in $TMP; BENCH_KEEP_TMP=1 keeps them)"
}

# nginx_conf_head: the start of a benchmark's nginx.conf under $TMP/nginx, up
# to and including the settings every http block here shares (the worker
# user when run as root, keep-alive, sendfile, TCP_NODELAY, temporary paths).
# tcp_nopush stays off (nginx's default): with sendfile it cut nginx's 100 KiB
# cache hits from ~11,000 to ~1,800 req/s on a loopback once.
nginx_conf_head() {
    local user=""
    if [[ $(id -u) -eq 0 ]]; then
        if id www-data >/dev/null 2>&1; then user="user www-data;"; else user="user nobody;"; fi
    fi
    cat <<CONF
$user
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy_temp;
    fastcgi_temp_path $TMP/nginx/fastcgi_temp;
    uwsgi_temp_path $TMP/nginx/uwsgi_temp;
    scgi_temp_path $TMP/nginx/scgi_temp;
CONF
}
