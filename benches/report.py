#!/usr/bin/env python3
"""Turns the raw results of benches/compare.sh (stdin, TYPE<TAB>KEY<TAB>VALUE
lines; metadata in B_* environment variables) into the markdown report."""

import json
import os
import statistics
import sys

res, problem, cold, cold_client = {}, {}, {}, {}
ttfb, rss_kb, hwm_kb, rss_before_kb, rss_scraped_kb, rss_idle_kb = None, 0, 0, 0, None, None
for line in sys.stdin:
    kind, key, value = line.rstrip("\n").split("\t", 2)
    if kind == "RES":
        res[key] = [float(v) for v in value.split()]
    elif kind == "PROBLEM":
        problem[key] = value
    elif kind == "COLD":
        cold[key] = [int(v) for v in value.split(", ")]
    elif kind == "COLDCLIENT":
        cold_client[key] = value
    elif kind == "TTFB":
        ttfb = json.loads(value)
    elif kind == "RSS":
        rss_kb, hwm_kb, rss_before_kb, *rest = (int(v) for v in value.split())
        rss_scraped_kb = rest[0] if rest else None
        rss_idle_kb = rest[1] if len(rest) > 1 else None

env = os.environ.get
BUDGET_MIB = 256


def med(scenario, server):
    values = res.get(f"{scenario},{server}")
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def yes(ok):
    return "**yes**" if ok else "**NO**"


rows = []

# 4 KiB hit
s, n, v, c = (med("hit4k", x) for x in ("s3edge", "nginx", "varnish", "ceiling"))
rn, rv = ratio(s, n), ratio(s, v)
rows.append(["4 KiB hit, 64 conns (req/s)", fmt(s), fmt(n), fmt(v), fmt(c) + f" (s3edge {ratio(s, c):.0%})" if c else "-",
             fmt_ratio(rn), fmt_ratio(rv), ">= 1.25x nginx and Varnish",
             yes(rn is not None and rv is not None and rn >= 1.25 and rv >= 1.25)])

# 64 MiB hit: requests/s x 64 MiB. With default flags s3edge serves it from
# its disk tier (above --memory-object-max 8 MiB); the tuned row keeps it in
# memory, like Varnish -s malloc.
s, n, v, t = (None if med("hit64m", x) is None else med("hit64m", x) * 64
              for x in ("s3edge", "nginx", "varnish", "s3edge-tuned"))
rn, rv = ratio(s, n), ratio(s, v)
rows.append(["64 MiB hit, 4 conns, s3edge default flags: from its disk tier (MiB/s)", fmt(s), fmt(n), fmt(v), "-",
             fmt_ratio(rn), fmt_ratio(rv), ">= 1.2x nginx (Varnish -s file: benches/protocols.sh)",
             yes(rn is not None and rn >= 1.2)])
rt = ratio(t, v)
rows.append(["64 MiB hit, 4 conns, s3edge tuned `--memory-object-max 128MiB`: from its memory tier (MiB/s)",
             fmt(t), fmt(n), fmt(v), "-", fmt_ratio(ratio(t, n)), fmt_ratio(rt), ">= 1.2x Varnish (malloc)",
             yes(rt is not None and rt >= 1.2)])

# JS identity and br
s, n, v = (med("js", x) for x in ("s3edge", "nginx", "varnish"))
rows.append([f"{int(env('B_JS', '0')) // 1024} KiB JS hit, identity, 64 conns (req/s)", fmt(s), fmt(n), fmt(v), "-",
             fmt_ratio(ratio(s, n)), fmt_ratio(ratio(s, v)), "(reference for the br row)", "-"])
br = med("jsbr", "s3edge")
rb = ratio(br, s)
rows.append([f"same JS hit, `Accept-Encoding: br` ({int(env('B_JSBR', '0')) // 1024} KiB on the wire) (req/s)",
             fmt(br), "-", "-", "-", "-", "-", f">= 0.90x identity: {fmt_ratio(rb)}", yes(rb is not None and rb >= 0.90)])

# coalescing
def cold_cell(server):
    return ", ".join(str(x) for x in cold.get(server, [])) or "-"


s_cold = cold.get("s3edge", [])
rows.append([f"100 concurrent cold GETs of one {int(env('B_COLDSIZE', '0')) >> 20} MiB key (origin requests, per round)",
             cold_cell("s3edge"), cold_cell("nginx"), cold_cell("varnish"), "-", "-", "-", "exactly 1",
             yes(bool(s_cold) and all(x == 1 for x in s_cold))])

# miss TTFB
if ttfb:
    e50, o50 = ttfb["edge"]["p50_ms"], ttfb["origin"]["p50_ms"]
    e99, o99 = ttfb["edge"]["p99_ms"], ttfb["origin"]["p99_ms"]
    rows.append([f"miss TTFB p50, ms ({ttfb['n']} fresh 4 KiB keys; s3edge vs its S3 origin direct)",
                 f"{e50:.3f}", "-", "-", f"{o50:.3f}", "-", "-", f"overhead <= 0.5 ms: {e50 - o50:+.3f} ms",
                 yes(e50 - o50 <= 0.5 and ttfb["error_count"] == 0)])
    rows.append(["miss TTFB p99, ms (same samples)", f"{e99:.3f}", "-", "-", f"{o99:.3f}", "-", "-",
                 f"overhead <= 1 ms: {e99 - o99:+.3f} ms", yes(e99 - o99 <= 1.0 and ttfb["error_count"] == 0)])

# RSS
rss_mib, hwm_mib, before_mib = rss_kb / 1024, hwm_kb / 1024, rss_before_kb / 1024
fill_mib = int(env("B_FILL", "0")) * 4
rows.append([f"s3edge RSS at the end, MiB, after {fill_mib} MiB of distinct objects went through it "
             f"(before that fill: {before_mib:.0f}; peak {hwm_mib:.0f}; default `--memory-cache-size 256MiB`)", f"{rss_mib:.0f}",
             "-", "-", "-", "-", "-", f"<= {BUDGET_MIB} + 64", yes(rss_mib <= BUDGET_MIB + 64)])

header = ["scenario", "s3edge", "nginx", "varnish", "ceiling / origin", "s3edge/nginx", "s3edge/varnish", "target", "met?"]
table = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
table += ["| " + " | ".join(r) + " |" for r in rows]

out = []
out.append("# s3edge benchmark: latest run\n")
out.append(f"- date: {env('B_DATE')}")
out.append(f"- machine: {env('B_NPROC')} cores, {env('B_CPU')}, Linux {env('B_KERNEL')}, TCP congestion control {env('B_TCP')}; pinned: {env('B_PIN')}; load average {env('B_LOAD')} (shared and noisy: compare ratios, not absolute numbers)")
out.append(f"- {env('B_CORES')}")
out.append(f"- command: `{env('B_CMD')}` (repository at {env('B_GIT')}, s3edge binary built {env('B_BUILT')}; nginx {env('B_NGINX')}, {env('B_VARNISH')}, wrk {env('B_WRK')})")
where = ("the servers and the origin share their cores; wrk and the clients have their own"
         if os.environ.get("BENCH_PIN") == "1"
         else "every server, the client and the origin share the same cores")
out.append(f"- wrk runs: `wrk -t2 -d{env('B_SECS')}s`, rounds A B C x{env('B_ROUNDS')}, medians; {where}")
out.append("")
out.extend(table)
out.append("")
out.append("Notes:")
out.append("")
out.append(f"- Origin requests during all the hit runs (each cache must stay at 0): {env('B_HITORIGIN')}.")
if problem:
    for k, v in sorted(problem.items()):
        out.append(f"- wrk reported errors for {k}: {v}")
else:
    out.append("- wrk reported no non-2xx answer and no socket error.")
if ttfb and ttfb["error_count"]:
    out.append(f"- TTFB errors ({ttfb['error_count']}): {'; '.join(ttfb['errors'])}")
out.append(f"- s3edge cache metrics at the end: {env('B_CACHE')}")
if rss_scraped_kb is not None:
    out.append(f"- s3edge RSS 2 s after that /metrics scrape, which runs the memory tier's pending evictions: "
               f"{rss_scraped_kb / 1024:.0f} MiB"
               + (f"; 15 s later, idle: {rss_idle_kb / 1024:.0f} MiB" if rss_idle_kb is not None else "")
               + " (the RSS row is the reading before the scrape).")
if env("B_ALLOCATOR"):
    out.append(f"- jemalloc's figures after the scrape: {env('B_ALLOCATOR')}")
out.append("- Per-round values (req/s):")
for scenario in ("hit4k", "hit64m", "js", "jsbr"):
    parts = [f"{server} {', '.join(fmt(x) for x in res[f'{scenario},{server}'])}"
             for server in ("s3edge", "nginx", "varnish", "ceiling", "s3edge-tuned") if f"{scenario},{server}" in res]
    out.append(f"  - {scenario}: " + "; ".join(parts))
out.append("- Coalescing clients (per round): " + "; ".join(f"{k}: {v}" for k, v in sorted(cold_client.items())))
if ttfb:
    out.append(f"- TTFB means: s3edge {ttfb['edge']['mean_ms']} ms, origin {ttfb['origin']['mean_ms']} ms")
print("\n".join(out))
