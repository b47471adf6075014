#!/usr/bin/env python3
"""Soak driver for scripts/soak.sh (python3 standard library only).

Runs, in one process:
  - a flapping TCP proxy between s3edge and its embedded S3 store: every
    --flap-every seconds it injects one fault for --flap-length seconds, in turn
    `refuse` (listener closed), `stall` (request read, never answered), `cut`
    (the answer cut short, or the connection closed unanswered) and `slowdown`
    (503 with S3's SlowDown XML);
  - several client threads driving mixed traffic at the edge: hits, HEADs,
    misses on new keys, single ranges, If-None-Match conditionals, gzip and br,
    purges through the admin API, and whole large objects;
  - RSS and open file descriptors of the s3edge process, after a warm-up (with
    traffic paused) and at the end (again paused).

Every body is checked against known SHA-256s (ranges against the exact slice,
gzip after decompression). An error is *explained* when it is one the faults
cause (502, 504, a cut body or a dropped connection) and the request overlapped
a fault window (plus a grace period covering the origin timeout and retries);
anything else is *unexplained*. Exits 1 on any unexplained error, or when RSS
or the fd count grew beyond the tolerances.
"""

import argparse
import collections
import gzip
import hashlib
import http.client
import json
import os
import random
import socket
import threading
import time

SITE_HOST = "soak.test"
FAULT_KINDS = ["refuse", "stall", "cut", "slowdown"]
SLOWDOWN_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>SOAKFLAP</RequestId></Error>"
)
S3_LEAKS = [b"<Error>", b"<Code>", b"SlowDown", b"SOAKFLAP", b"<?xml"]


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ proxy --
class Flapper:
    """The flapping proxy and its fault schedule."""

    def __init__(self, port, upstream):
        self.port = port
        self.upstream = upstream
        self.mode = None
        self.lock = threading.Lock()
        self.windows = []  # (start, end, kind), time.monotonic()
        self.affected = collections.Counter()  # connections faulted, by kind
        self.forwarded = 0
        self.stopping = False

    def start(self):
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _bind(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(256)
        s.settimeout(0.05)
        return s

    def _accept_loop(self):
        listener = self._bind()
        while not self.stopping:
            if self.mode == "refuse":
                if listener is not None:
                    listener.close()
                    listener = None
                time.sleep(0.02)
                continue
            if listener is None:
                try:
                    listener = self._bind()
                except OSError:
                    time.sleep(0.05)
                    continue
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def flap(self, kind, length):
        start = time.monotonic()
        self.mode = kind
        time.sleep(length)
        self.mode = None
        with self.lock:
            self.windows.append((start, time.monotonic(), kind))

    def _count(self, kind):
        with self.lock:
            self.affected[kind] += 1

    def _serve(self, conn):
        up = None
        try:
            conn.settimeout(60)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, _, extra = head.partition(b"\r\n\r\n")
            mode = self.mode
            if mode == "refuse":
                self._count("refuse")
                return
            if mode == "stall":
                self._count("stall")
                while self.mode == "stall" and not self.stopping:
                    time.sleep(0.05)
                return
            if mode == "slowdown":
                self._count("slowdown")
                conn.sendall(
                    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                    b"x-amz-request-id: SOAKFLAP\r\nConnection: close\r\n"
                    + b"Content-Length: %d\r\n\r\n" % len(SLOWDOWN_XML)
                    + SLOWDOWN_XML
                )
                return
            lines = [
                l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")
            ]
            lines.append(b"Connection: close")
            up = socket.create_connection(self.upstream, timeout=60)
            up.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + extra)
            cut_at = None
            if mode == "cut":
                self._count("cut")
                # Half the time nothing at all, else a few head/body bytes.
                cut_at = 0 if random.random() < 0.5 else random.randint(1, 8192)
            else:
                with self.lock:
                    self.forwarded += 1
            sent = 0
            while True:
                data = up.recv(65536)
                if not data:
                    break
                if cut_at is not None:
                    data = data[: max(0, cut_at - sent)]
                    if not data:
                        break
                conn.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            if up is not None:
                up.close()
            try:
                conn.close()
            except OSError:
                pass


# ---------------------------------------------------------------- objects --
WORDS = (
    "edge cache bucket origin object range stale fresh purge vary encoding "
    "brotli gzip etag header site host request response latency bytes"
).split()


def text_body(rng, size):
    out = []
    n = 0
    while n < size:
        w = rng.choice(WORDS) + (" " if rng.random() < 0.9 else "\n")
        out.append(w)
        n += len(w)
    return "".join(out)[:size].encode()


class Objects:
    """What the bucket holds, and the SHA-256 each key must be served with."""

    def __init__(self, bucket_dir, tmp_dir, seed):
        self.bucket_dir = bucket_dir
        self.tmp_dir = tmp_dir
        self.rng = random.Random(seed)
        self.expect = {}  # key -> (sha, length)
        self.data = {}  # key -> bytes (for ranges and gzip checks)
        self.text_keys = []
        self.bin_keys = []
        self.big_keys = []
        self.new_keys = []
        self.lock = threading.Lock()
        self.counter = 0

    def write(self, key, data, keep=False):
        path = os.path.join(self.bucket_dir, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(self.tmp_dir, "w-%d-%d" % (os.getpid(), threading.get_ident()))
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
        with self.lock:
            self.expect[key] = (sha(data), len(data))
            if keep:
                self.data[key] = data

    def populate(self):
        rng = self.rng
        for i in range(40):
            key = "hot/page%d.html" % i
            self.write(key, text_body(rng, rng.randint(1_500, 60_000)), keep=True)
            self.text_keys.append(key)
        for i in range(10):
            key = "hot/app%d.js" % i
            self.write(key, text_body(rng, rng.randint(5_000, 200_000)), keep=True)
            self.text_keys.append(key)
        for i in range(30):
            key = "hot/img%d.bin" % i
            self.write(key, os.urandom(rng.randint(10_000, 1_000_000)), keep=True)
            self.bin_keys.append(key)
        for i in range(3):
            key = "big/mid%d.bin" % i
            self.write(key, os.urandom(6 << 20), keep=True)
            self.big_keys.append(key)
        # Cached on disk after its first range (within a quarter of the disk tier).
        self.write("big/blob.bin", os.urandom(12 << 20), keep=True)
        # Larger than any entry the disk tier takes: its ranges always go to the origin.
        self.write("big/huge.bin", os.urandom(20 << 20), keep=True)

    def new_key(self, thread_id):
        with self.lock:
            self.counter += 1
            n = self.counter
        key = "new/t%d-%d.html" % (thread_id, n)
        self.write(key, text_body(random.Random(n), random.randint(500, 20_000)))
        with self.lock:
            self.new_keys.append(key)
        return key


# ---------------------------------------------------------------- clients --
class Outcome(Exception):
    def __init__(self, kind, detail=""):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


FAULT_KINDS_EXPLAINED = {"status-502", "status-504", "truncated", "connection"}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = collections.Counter()  # by request kind
        self.statuses = collections.Counter()
        self.errors = []  # (start, end, request kind, error kind, detail)

    def add(self, rkind, status):
        with self.lock:
            self.requests[rkind] += 1
            self.statuses[status] += 1

    def error(self, start, end, rkind, ekind, detail):
        with self.lock:
            self.requests[rkind] += 1
            self.errors.append((start, end, rkind, ekind, detail))


class Client(threading.Thread):
    def __init__(self, tid, args, objects, stats, stop):
        super().__init__(daemon=True)
        self.tid = tid
        self.args = args
        self.objects = objects
        self.stats = stats
        self.stop = stop
        self.rng = random.Random(1000 + tid)
        self.conn = None
        self.admin = None
        self.etags = {}
        self.br_sha = {}
        self.br_differs = 0

    # -- transport
    def request(self, method, path, headers=None, admin=False, body=None):
        headers = dict(headers or {})
        headers.setdefault("Host", SITE_HOST)
        attr = "admin" if admin else "conn"
        if admin:
            # A fresh connection per admin call: the admin listener closes idle
            # keep-alive connections after a few seconds.
            self.drop(attr)
            headers["Connection"] = "close"
        host, port = (self.args.admin if admin else self.args.edge).split(":")
        if getattr(self, attr) is None:
            setattr(self, attr, http.client.HTTPConnection(host, int(port), timeout=30))
        conn = getattr(self, attr)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            try:
                data = resp.read()
            except http.client.IncompleteRead as e:
                self.drop(attr)
                raise Outcome("truncated", "%s %s: %d bytes" % (method, path, len(e.partial)))
            length = resp.getheader("content-length")
            if method != "HEAD" and length is not None and int(length) != len(data):
                self.drop(attr)
                raise Outcome("truncated", "%s %s" % (method, path))
            if resp.getheader("connection", "").lower() == "close":
                self.drop(attr)
            return resp, data
        except Outcome:
            raise
        except (OSError, http.client.HTTPException) as e:
            self.drop(attr)
            raise Outcome("connection", "%s %s: %r" % (method, path, e))

    def drop(self, attr):
        conn = getattr(self, attr)
        if conn is not None:
            conn.close()
        setattr(self, attr, None)

    def close(self):
        self.drop("conn")
        self.drop("admin")

    # -- checks
    def expect_status(self, resp, data, want):
        if resp.status in want:
            return
        for leak in S3_LEAKS:
            if leak in data:
                raise Outcome("s3-leak", "status %d body %r" % (resp.status, data[:200]))
        if any(h.lower().startswith("x-amz") for h, _ in resp.getheaders()):
            raise Outcome("s3-leak", "x-amz header")
        raise Outcome("status-%d" % resp.status, resp.getheader("cache-status", ""))

    def check_whole(self, key, data, what):
        want_sha, want_len = self.objects.expect[key]
        if len(data) != want_len or sha(data) != want_sha:
            raise Outcome("wrong-bytes", "%s %s: %d bytes" % (what, key, len(data)))

    # -- request kinds
    def hot_key(self):
        keys = self.objects.text_keys + self.objects.bin_keys
        # Skewed: a few keys get most requests.
        return keys[min(int(self.rng.paretovariate(1.2)) - 1, len(keys) - 1)]

    def do_hit(self):
        key = self.hot_key()
        resp, data = self.request("GET", "/" + key)
        self.expect_status(resp, data, (200,))
        self.check_whole(key, data, "GET")
        if resp.getheader("etag"):
            self.etags[key] = resp.getheader("etag")
        return resp.status

    def do_head(self):
        key = self.hot_key()
        resp, data = self.request("HEAD", "/" + key)
        self.expect_status(resp, data, (200,))
        if data or int(resp.getheader("content-length", "-1")) != self.objects.expect[key][1]:
            raise Outcome("wrong-bytes", "HEAD " + key)
        return resp.status

    def do_new(self):
        if self.objects.new_keys and self.rng.random() < 0.3:
            key = self.rng.choice(self.objects.new_keys)
        else:
            key = self.objects.new_key(self.tid)
        resp, data = self.request("GET", "/" + key)
        self.expect_status(resp, data, (200,))
        self.check_whole(key, data, "GET new")
        return resp.status

    def do_range(self):
        pick = self.rng.random()
        if pick < 0.6:
            key = "big/blob.bin"
        elif pick < 0.7:
            key = "big/huge.bin"
        else:
            key = self.rng.choice(self.objects.bin_keys + self.objects.big_keys)
        full = self.objects.data[key]
        total = len(full)
        if self.rng.random() < 0.15:
            n = self.rng.randint(1, 65536)
            spec, first, last = "bytes=-%d" % n, total - n, total - 1
        else:
            first = self.rng.randrange(total)
            last = min(total - 1, first + self.rng.randint(0, 256 * 1024))
            spec = "bytes=%d-%d" % (first, last)
        resp, data = self.request("GET", "/" + key, {"Range": spec})
        self.expect_status(resp, data, (206,))
        want_cr = "bytes %d-%d/%d" % (first, last, total)
        if resp.getheader("content-range") != want_cr:
            raise Outcome("bad-content-range", "%s %s: %s" % (key, spec, resp.getheader("content-range")))
        if data != full[first : last + 1]:
            raise Outcome("wrong-bytes", "%s %s" % (key, spec))
        return resp.status

    def do_conditional(self):
        key = self.hot_key()
        etag = self.etags.get(key)
        if etag is None:
            return self.do_hit()
        resp, data = self.request("GET", "/" + key, {"If-None-Match": etag})
        self.expect_status(resp, data, (200, 304))
        if resp.status == 304:
            if data:
                raise Outcome("wrong-bytes", "304 with a body")
        else:
            self.check_whole(key, data, "conditional")
        return resp.status

    def do_compressed(self):
        key = self.rng.choice(self.objects.text_keys)
        coding = self.rng.choice(["gzip", "br", "br, gzip", "gzip;q=1, br;q=0.5"])
        resp, data = self.request("GET", "/" + key, {"Accept-Encoding": coding})
        self.expect_status(resp, data, (200,))
        got = resp.getheader("content-encoding")
        if "accept-encoding" not in resp.getheader("vary", "").lower():
            raise Outcome("missing-vary", key)
        if got == "gzip":
            try:
                plain = gzip.decompress(data)
            except (OSError, EOFError) as e:
                raise Outcome("wrong-bytes", "gzip %s: %r" % (key, e))
            self.check_whole(key, plain, "gzip")
        elif got == "br":
            # No brotli decoder in the standard library: the body is complete
            # (Content-Length held) and its ETag is not the identity one.
            etag = resp.getheader("etag")
            if etag is not None and etag == self.etags.get(key):
                raise Outcome("br-identity-etag", key)
            seen = self.br_sha.setdefault(key, sha(data))
            if seen != sha(data):
                self.br_differs += 1
        elif got is None:
            self.check_whole(key, data, "identity")
        else:
            raise Outcome("bad-encoding", "%s: %s" % (key, got))
        return resp.status

    def do_purge(self):
        if self.rng.random() < 0.8:
            body = {"site": "soak", "paths": ["/" + self.hot_key()]}
        else:
            body = {"site": "soak", "prefixes": ["/new/"]}
        resp, data = self.request(
            "POST",
            "/purge",
            {"Content-Type": "application/json", "Authorization": "Bearer " + self.args.token},
            admin=True,
            body=json.dumps(body),
        )
        if resp.status != 200 or "purged" not in json.loads(data or b"{}"):
            raise Outcome("purge-%d" % resp.status, data[:200].decode(errors="replace"))
        return resp.status

    def do_big(self):
        key = self.rng.choice(self.objects.big_keys)
        resp, data = self.request("GET", "/" + key)
        self.expect_status(resp, data, (200,))
        self.check_whole(key, data, "GET big")
        return resp.status

    MIX = [
        ("hit", 36),
        ("head", 5),
        ("new", 12),
        ("range", 15),
        ("conditional", 14),
        ("compressed", 14),
        ("purge", 3),
        ("big", 1),
    ]

    def run(self):
        kinds = [k for k, w in self.MIX for _ in range(w)]
        while not self.stop.is_set():
            kind = self.rng.choice(kinds)
            start = time.monotonic()
            try:
                status = getattr(self, "do_" + kind)()
                self.stats.add(kind, status)
            except Outcome as o:
                self.stats.error(start, time.monotonic(), kind, o.kind, o.detail)
        self.close()


class HostStalls(threading.Thread):
    """Evidence that the whole machine stalled (the soak shares it with other
    jobs): Linux pressure-stall totals for I/O and memory ("full": every
    runnable task waiting), and this thread's own lateness (CPU starvation).
    Each 0.5 s tick with over 150 ms fully stalled, or 1 s late, is recorded."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stalls = []  # (start, end, why)
        self.done = threading.Event()

    @staticmethod
    def full_us():
        total = 0
        for what in ("io", "memory"):
            try:
                with open("/proc/pressure/" + what) as f:
                    for line in f:
                        if line.startswith("full"):
                            total += int(line.split("total=")[1])
            except OSError:
                pass
        return total

    def run(self):
        last_t, last_full = time.monotonic(), self.full_us()
        while not self.done.wait(0.5):
            now, full = time.monotonic(), self.full_us()
            why = []
            if full - last_full > 150_000:
                why.append("I/O or memory fully stalled %d ms" % ((full - last_full) // 1000))
            if now - last_t > 1.5:
                why.append("sampler %.1f s late" % (now - last_t - 0.5))
            if why:
                self.stalls.append((last_t, now, ", ".join(why)))
            last_t, last_full = now, full


# ---------------------------------------------------------------- process --
def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def run_phase(args, objects, stats, seconds, flapper=None):
    stop = threading.Event()
    clients = [Client(i, args, objects, stats, stop) for i in range(args.threads)]
    for c in clients:
        c.start()
    flaps = 0
    kinds = collections.Counter()
    started = time.monotonic()
    next_flap = started + args.flap_every if flapper else float("inf")
    while time.monotonic() - started < seconds:
        now = time.monotonic()
        if now >= next_flap and now - started + args.flap_length < seconds - 5:
            kind = FAULT_KINDS[flaps % len(FAULT_KINDS)]
            flapper.flap(kind, args.flap_length)
            flaps += 1
            kinds[kind] += 1
            next_flap += args.flap_every
        time.sleep(0.2)
    stop.set()
    for c in clients:
        c.join(60)
    br_differs = sum(c.br_differs for c in clients)
    return flaps, kinds, br_differs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--edge", required=True, help="host:port of the edge")
    p.add_argument("--admin", required=True, help="host:port of the admin listener")
    p.add_argument("--store", required=True, help="host:port of the embedded S3 store")
    p.add_argument("--proxy-port", type=int, required=True)
    p.add_argument("--bucket-dir", required=True)
    p.add_argument("--tmp-dir", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--warmup", type=float, default=30)
    p.add_argument("--threads", type=int, default=6)
    p.add_argument("--flap-every", type=float, default=20)
    p.add_argument("--flap-length", type=float, default=4)
    p.add_argument("--grace", type=float, default=8, help="seconds after a fault that still explain errors")
    p.add_argument("--rss-tolerance-mib", type=float, default=48)
    p.add_argument("--fd-tolerance", type=int, default=16)
    p.add_argument("--json", required=True)
    args = p.parse_args()

    host, port = args.store.split(":")
    flapper = Flapper(args.proxy_port, (host, int(port)))
    flapper.start()
    objects = Objects(args.bucket_dir, args.tmp_dir, seed=7)
    objects.populate()

    warm = Stats()
    run_phase(args, objects, warm, args.warmup)
    time.sleep(2)
    rss_start, fd_start = rss_kib(args.pid), fd_count(args.pid)
    print("warm-up: %d requests, %d errors; RSS %.1f MiB, %d fds"
          % (sum(warm.requests.values()), len(warm.errors), rss_start / 1024, fd_start), flush=True)

    stats = Stats()
    t0 = time.monotonic()
    samples = []

    def sample():
        while not sampling_done.is_set():
            samples.append((time.monotonic() - t0, rss_kib(args.pid), fd_count(args.pid)))
            sampling_done.wait(30)

    sampling_done = threading.Event()
    threading.Thread(target=sample, daemon=True).start()
    host = HostStalls()
    host.start()
    load_start = open("/proc/loadavg").read().split()[:3]
    flaps, kinds, br_differs = run_phase(args, objects, stats, args.duration, flapper)
    elapsed = time.monotonic() - t0
    sampling_done.set()
    host.done.set()
    load_end = open("/proc/loadavg").read().split()[:3]
    time.sleep(3)
    rss_end, fd_end = rss_kib(args.pid), fd_count(args.pid)

    windows = list(flapper.windows)

    def in_window(start, end):
        return any(start <= w_end + args.grace and end >= w_start for w_start, w_end, _ in windows)

    def in_host_stall(start, end):
        return any(start <= s_end + args.grace and end >= s_start for s_start, s_end, _ in host.stalls)

    explained = collections.Counter()
    host_stall = collections.Counter()
    unexplained = collections.Counter()
    examples = []
    for start, end, rkind, ekind, detail in stats.errors:
        if ekind in FAULT_KINDS_EXPLAINED and in_window(start, end):
            explained[ekind] += 1
        elif ekind in FAULT_KINDS_EXPLAINED and in_host_stall(start, end):
            host_stall[ekind] += 1
            examples.append("%.1fs %s %s %s (during a host stall)" % (start - t0, rkind, ekind, detail))
        else:
            unexplained[ekind] += 1
            if len(examples) < 30:
                examples.append("%.1fs %s %s %s" % (start - t0, rkind, ekind, detail))
    warm_unexplained = collections.Counter(e[3] for e in warm.errors)

    result = {
        "duration_s": round(elapsed, 1),
        "threads": args.threads,
        "requests": sum(stats.requests.values()),
        "requests_by_kind": dict(stats.requests),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "rate_per_s": round(sum(stats.requests.values()) / elapsed, 1),
        "faults_injected": flaps,
        "faults_by_kind": dict(kinds),
        "origin_connections_faulted": dict(flapper.affected),
        "origin_connections_forwarded": flapper.forwarded,
        "errors_explained": dict(explained),
        "errors_host_stall": dict(host_stall),
        "host_stalls": [("%.1f" % (a - t0), "%.1f" % (b - t0), why) for a, b, why in host.stalls],
        "load_start": " ".join(load_start),
        "load_end": " ".join(load_end),
        "errors_unexplained": dict(unexplained),
        "unexplained_examples": examples,
        "warmup_requests": sum(warm.requests.values()),
        "warmup_errors": dict(warm_unexplained),
        "br_bodies_differing": br_differs,
        "rss_start_mib": round(rss_start / 1024, 1),
        "rss_end_mib": round(rss_end / 1024, 1),
        "rss_max_mib": round(max([s[1] for s in samples] + [rss_end]) / 1024, 1),
        "fd_start": fd_start,
        "fd_end": fd_end,
        "samples": [(round(t), round(r / 1024, 1), f) for t, r, f in samples],
        "rss_tolerance_mib": args.rss_tolerance_mib,
        "fd_tolerance": args.fd_tolerance,
        "grace_s": args.grace,
    }
    failures = []
    if unexplained:
        failures.append("unexplained errors: %s" % dict(unexplained))
    if warm_unexplained:
        failures.append("errors during the warm-up (no faults): %s" % dict(warm_unexplained))
    if (rss_end - rss_start) / 1024 > args.rss_tolerance_mib:
        failures.append("RSS grew by %.1f MiB" % ((rss_end - rss_start) / 1024))
    if fd_end - fd_start > args.fd_tolerance:
        failures.append("open fds grew by %d" % (fd_end - fd_start))
    if flaps == 0:
        failures.append("no fault was injected")
    result["failures"] = failures
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
