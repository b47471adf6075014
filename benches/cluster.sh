#!/usr/bin/env bash
# The cluster's targets (issue 15), measured with real processes on loopback:
# 3 edges in one ring and 1 parent (a shield), their sites reading one bucket
# (the embedded store of a separate s3edge process) through a proxy that
# counts every request to it (benches/cluster.py).
#
#   bash benches/cluster.sh
#
#   1. 2,000 distinct objects, each requested through every edge: the bucket's
#      object GETs (target 2,000), then the same with 3 independent nodes.
#   2. kill -9 of an edge, then of the parent, in the middle of 2,000
#      requests spread over the surviving edges: client errors (target 0)
#      and the slowest answer (target: origin timeout 5 s + 1 s).
#   3. 200 purges through one node of 4: fan-out p50 (< 100 ms), p99 (< 1 s).
#   4. A hit served by the owner for another edge vs a local hit: p50s.
#
# Environment: S3EDGE_BIN (else `cargo build --release` into CARGO_TARGET_DIR),
# BENCH_BUILD (how that binary was built, for the report's title),
# BENCH_OBJECTS (default 2000), BENCH_KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
N=${BENCH_OBJECTS:-2000}
KEEP_TMP=${BENCH_KEEP_TMP:-}
export S3EDGE_EMBEDDED_ACCESS_KEY=${S3EDGE_EMBEDDED_ACCESS_KEY:-s3edge-dev}
export S3EDGE_EMBEDDED_SECRET_KEY=${S3EDGE_EMBEDDED_SECRET_KEY:-s3edge-dev-secret}
export S3EDGE_BENCH_KEY=$S3EDGE_EMBEDDED_ACCESS_KEY S3EDGE_BENCH_SECRET=$S3EDGE_EMBEDDED_SECRET_KEY
export S3EDGE_CLUSTER_TOKEN=bench-cluster-token

# store (S3, plain, admin), proxy, parent, edges (plain, admin, cluster).
P_S3=19700 P_STORE=18700 P_STORE_ADMIN=18701 P_PROXY=19701
P_PARENT=17700 P_PARENT_HTTP=18711 P_PARENT_ADMIN=18710
P_EDGE=(18721 18722 18723) P_EDGE_ADMIN=(18731 18732 18733) P_EDGE_CLUSTER=(17701 17702 17703)

# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"
refuse_busy_ports $P_S3 $P_STORE $P_STORE_ADMIN $P_PROXY $P_PARENT $P_PARENT_HTTP $P_PARENT_ADMIN \
    "${P_EDGE[@]}" "${P_EDGE_ADMIN[@]}" "${P_EDGE_CLUSTER[@]}"
BIN=$(release_binary)
PY="python3 $HERE/cluster.py"

TMP=$(mktemp -d /tmp/s3edge-cluster.XXXXXX)
mkdir -p "$TMP/store/sites" "$TMP/store/buckets/bench"
log "objects: $N for each phase"
for prefix in a b k p h; do $PY objects "$TMP/store/buckets/bench" "$prefix" "$N"; done

site() { # DIR
    mkdir -p "$1/sites"
    cat > "$1/sites/bench.toml" <<SITE
hosts = ["bench.test"]
[origin]
bucket = "bench"
endpoint = "http://127.0.0.1:$P_PROXY"
access_key_id_env = "S3EDGE_BENCH_KEY"
secret_access_key_env = "S3EDGE_BENCH_SECRET"
timeout = "5s"
[cache]
default_ttl = "1h"
SITE
}

# PIDS (lib.sh) are stopped on exit; NODE_PID names the ones killed here.
declare -A NODE_PID
start() { # NAME PORT ADMIN [ARGS...]
    local name=$1 port=$2 admin=$3
    shift 3
    mkdir -p "$TMP/$name"
    [[ -f $TMP/$name/sites/bench.toml ]] || site "$TMP/$name"
    (cd "$TMP/$name" && exec "$BIN" serve --sites sites --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$admin" --cache-dir cache --access-log off --workers 2 "$@" \
        >"$TMP/$name.log" 2>&1) &
    PIDS+=($!)
    NODE_PID[$name]=$!
    wait_port "$admin" "$name"
}

ring_args() { # I
    local peers
    peers=$(printf '127.0.0.1:%s,' "${P_EDGE_CLUSTER[@]}")
    echo --node-id "edge-$(($1 + 1))" --cluster-listen "127.0.0.1:${P_EDGE_CLUSTER[$1]}" \
        --peers "${peers%,}" --parent "127.0.0.1:$P_PARENT"
}
edges() { for i in 0 1 2; do echo "http://127.0.0.1:${P_EDGE[$i]}"; done; }
gets() { $PY count $P_PROXY | python3 -c 'import json,sys; print(json.load(sys.stdin)["get"])'; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

(cd "$TMP/store" && exec "$BIN" serve --sites sites --embedded-s3 buckets --embedded-s3-listen "127.0.0.1:$P_S3" \
    --listen "127.0.0.1:$P_STORE" --admin-listen "127.0.0.1:$P_STORE_ADMIN" --disk-cache-size 0 \
    --access-log off >"$TMP/store.log" 2>&1) &
PIDS+=($!)
wait_port $P_S3 "embedded store"
$PY proxy $P_PROXY $P_S3 2>"$TMP/proxy.log" &
PIDS+=($!)
wait_port $P_PROXY "counting proxy"

start_cluster() {
    start parent $P_PARENT_HTTP $P_PARENT_ADMIN --node-id shield-1 \
        --cluster-listen "127.0.0.1:$P_PARENT" --peers "127.0.0.1:$P_PARENT"
    for i in 0 1 2; do
        # shellcheck disable=SC2046
        start "edge-$((i + 1))" "${P_EDGE[$i]}" "${P_EDGE_ADMIN[$i]}" $(ring_args $i)
    done
}

# ------------------------------------------- 1. one bucket GET per object --
log "1. $N objects through 3 independent nodes"
for i in 0 1 2; do start "solo-$((i + 1))" "${P_EDGE[$i]}" "${P_EDGE_ADMIN[$i]}"; done
before=$(gets)
# shellcheck disable=SC2046
SOLO=$($PY through "$N" a $(edges))
SOLO_GETS=$(($(gets) - before))
for i in 1 2 3; do kill -TERM "${NODE_PID[solo-$i]}"; wait "${NODE_PID[solo-$i]}" || true; done
log "   $SOLO, bucket GETs $SOLO_GETS"

log "1. $N objects through the cluster (3 edges + 1 parent)"
start_cluster
before=$(gets)
# shellcheck disable=SC2046
THROUGH=$($PY through "$N" b $(edges))
CLUSTER_GETS=$(($(gets) - before))
log "   $THROUGH, bucket GETs $CLUSTER_GETS"

# ------------------------------------------------------------- 4. latency --
log "4. owner-served hit vs local hit"
HITS=$($PY hits 600 h "edge-1=http://127.0.0.1:${P_EDGE[0]}" "edge-2=http://127.0.0.1:${P_EDGE[1]}" "edge-3=http://127.0.0.1:${P_EDGE[2]}")
log "   $HITS"

# ---------------------------------------------------------------- 3. purge --
log "3. purge fan-out, 4 nodes"
PURGE=$($PY purge 200 "http://127.0.0.1:${P_EDGE_ADMIN[0]}")
log "   $PURGE"

# ---------------------------------------------------------- 2. kill -9 ------
log "2. kill -9 of edge-3 during $N requests on edge-1 and edge-2"
KILL_EDGE=$($PY killrun "$N" k "${NODE_PID[edge-3]}" 1.0 "http://127.0.0.1:${P_EDGE[0]}" "http://127.0.0.1:${P_EDGE[1]}")
log "   $KILL_EDGE"
# shellcheck disable=SC2046
start edge-3 "${P_EDGE[2]}" "${P_EDGE_ADMIN[2]}" $(ring_args 2)
log "2. kill -9 of the parent during $N requests on the 3 edges"
# shellcheck disable=SC2046
KILL_PARENT=$($PY killrun "$N" p "${NODE_PID[parent]}" 1.0 $(edges))
log "   $KILL_PARENT"
# The returning edge takes its keys back once its peers stop skipping it (10 s).
sleep 11
before=$(curl -s "http://127.0.0.1:${P_EDGE_ADMIN[0]}/metrics" | awk -v p="127.0.0.1:${P_EDGE_CLUSTER[2]}" 'index($0, "s3edge_peer_requests_total{peer=\"" p "\",outcome=\"ok\"}") == 1 { print $2 }')
# shellcheck disable=SC2046
$PY through 300 a "http://127.0.0.1:${P_EDGE[0]}" >/dev/null
after=$(curl -s "http://127.0.0.1:${P_EDGE_ADMIN[0]}/metrics" | awk -v p="127.0.0.1:${P_EDGE_CLUSTER[2]}" 'index($0, "s3edge_peer_requests_total{peer=\"" p "\",outcome=\"ok\"}") == 1 { print $2 }')
TAKEN_BACK=$(( ${after:-0} - ${before:-0} ))
log "   after its return, edge-1 asked edge-3 for $TAKEN_BACK of 300 keys"

cat <<REPORT
## Cluster figures ($(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), ${BENCH_BUILD:-binary $BIN})

| measure | target | result |
| --- | --- | --- |
| bucket GETs, $N objects x 3 edges, independent nodes | (6,000 for 2,000) | $SOLO_GETS |
| bucket GETs, $N objects x 3 edges, ring of 3 + parent | = objects | $CLUSTER_GETS |
| client errors, kill -9 of an edge mid-run | 0 | $(echo "$KILL_EDGE" | field '["errors"]') of $N (slowest $(echo "$KILL_EDGE" | field '["max_latency_ms"]') ms) |
| client errors, kill -9 of the parent mid-run | 0 | $(echo "$KILL_PARENT" | field '["errors"]') of $N (slowest $(echo "$KILL_PARENT" | field '["max_latency_ms"]') ms) |
| keys the returned edge serves again for edge-1 (of 300) | about 1/3 | $TAKEN_BACK |
| purge fan-out p50, 4 nodes | < 100 ms | $(echo "$PURGE" | field '["p50_ms"]') ms |
| purge fan-out p99, 4 nodes | < 1 s | $(echo "$PURGE" | field '["p99_ms"]') ms |
| hit served by the owner, p50 | | $(echo "$HITS" | field '["owner_hit_p50_ms"]') ms |
| local hit, p50 | | $(echo "$HITS" | field '["local_hit_p50_ms"]') ms |
| owner-served minus local, p50 | <= 1 ms | $(echo "$HITS" | field '["difference_p50_ms"]') ms |
REPORT
