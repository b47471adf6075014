#!/usr/bin/env python3
"""The measuring half of benches/cluster.sh (which starts the processes).

  cluster.py proxy PORT UPSTREAM_PORT     a counting HTTP proxy in front of the bucket
  cluster.py count PROXY_PORT             object GETs the bucket received so far
  cluster.py through N PREFIX EDGE...     every object through every edge
  cluster.py killrun N PREFIX PID AFTER EDGE...
                                          clients on EDGEs, kill -9 PID after AFTER s
  cluster.py purge N ADMIN                N purges through one node: p50, p99
  cluster.py hits N PREFIX EDGE...        owner-served hit vs local hit
Figures are printed as one JSON object on stdout.
"""
import http.client
import http.server
import json
import os
import signal
import socketserver
import statistics
import sys
import threading
import time
import urllib.parse

HOST = "bench.test"


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


# ------------------------------------------------------------------ proxy --
COUNTS = {"get": 0, "all": 0}
LOCK = threading.Lock()


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = 0

    def log_message(self, *args):
        pass

    def forward(self):
        if self.path == "/__count":
            with LOCK:
                body = json.dumps(COUNTS).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with LOCK:
            COUNTS["all"] += 1
            if self.command == "GET" and self.path.startswith("/bench/"):
                COUNTS["get"] += 1
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in ("connection", "keep-alive", "proxy-connection"):
                conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive"):
                self.send_header(name, value)
        if self.command != "HEAD" or data:
            self.send_header("content-length", str(len(data)))
        else:
            cl = response.getheader("content-length")
            if cl:
                self.send_header("content-length", cl)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward


def proxy(port, upstream):
    Proxy.upstream = upstream

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    Server(("127.0.0.1", port), Proxy).serve_forever()


def count(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/__count")
    return json.loads(conn.getresponse().read())


# ----------------------------------------------------------------- client --
class Client:
    """One keep-alive connection per edge."""

    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def get(self, path, timeout=30):
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
                self.conn.request("GET", path, headers={"Host": HOST})
                r = self.conn.getresponse()
                body = r.read()
                return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed between requests:
                # what every HTTP client retries once; not an error answer.
                self.conn = None
                if attempt:
                    raise


def object_path(prefix, i):
    return f"/{prefix}/{i}.txt"


def expected_body(prefix, i):
    return (f"{prefix} object {i} " * 40).encode()


def through(n, prefix, edges):
    """Every object through every edge, 4 clients."""
    errors = []
    lock = threading.Lock()

    def work(part):
        clients = [Client(e) for e in edges]
        for i in range(part, n, 4):
            for c in clients:
                status, _, body = c.get(object_path(prefix, i))
                if status != 200 or body != expected_body(prefix, i):
                    with lock:
                        errors.append((i, status))

    threads = [threading.Thread(target=work, args=(p,)) for p in range(4)]
    started = time.time()
    [t.start() for t in threads]
    [t.join() for t in threads]
    return {"requests": n * len(edges), "errors": len(errors), "seconds": round(time.time() - started, 1)}


def killrun(n, prefix, pid, after, edges):
    errors, latencies = [], []
    lock = threading.Lock()

    def work(part):
        clients = [Client(e) for e in edges]
        for i in range(part, n, 4):
            c = clients[i % len(clients)]
            t0 = time.perf_counter()
            try:
                status, _, body = c.get(object_path(prefix, i))
                ok = status == 200 and body == expected_body(prefix, i)
            except Exception as e:  # noqa: BLE001
                ok, status = False, repr(e)
            with lock:
                latencies.append(time.perf_counter() - t0)
                if not ok:
                    errors.append((i, status))

    def killer():
        time.sleep(after)
        os.kill(pid, signal.SIGKILL)

    threads = [threading.Thread(target=work, args=(p,)) for p in range(4)]
    k = threading.Thread(target=killer)
    [t.start() for t in threads]
    k.start()
    [t.join() for t in threads]
    k.join()
    return {
        "requests": n,
        "errors": len(errors),
        "first_errors": errors[:5],
        "max_latency_ms": round(max(latencies) * 1000, 1),
        "p99_latency_ms": round(percentile(latencies, 99) * 1000, 1),
    }


def purge(n, admin):
    u = urllib.parse.urlparse(admin)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    times, answer = [], None
    for i in range(n):
        body = json.dumps({"site": "bench", "paths": [f"/p/{i}.txt"]})
        t0 = time.perf_counter()
        conn.request("POST", "/purge", body=body, headers={"content-type": "application/json"})
        r = conn.getresponse()
        answer = json.loads(r.read())
        times.append(time.perf_counter() - t0)
        assert r.status == 200, answer
        assert not answer["nodes"]["failed"], answer
    return {
        "purges": n,
        "nodes_confirmed": len(answer["nodes"]["confirmed"]),
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p99_ms": round(percentile(times, 99) * 1000, 2),
    }


def node_ids(cache_status):
    return [m.split(";")[0].strip() for m in cache_status.split(",") if m.strip()]


def hits(n, prefix, edges):
    """EDGES are ID=URL. For each object: asked through one edge first (its
    owner then has it), then through an edge that is neither that one nor the
    owner (a miss there, a hit at the owner: an owner-served hit), then again
    there (a local hit)."""
    urls = dict(e.split("=", 1) for e in edges)
    clients = {i: Client(u) for i, u in urls.items()}
    order = sorted(urls)
    owner_served, local = [], []
    for i in range(n):
        path = object_path(prefix, i)
        first = order[i % len(order)]
        _, headers, _ = clients[first].get(path)
        chain = node_ids(headers.get("cache-status", ""))
        owner = chain[-2] if len(chain) >= 2 and chain[-2] in urls else first
        other = next(e for e in order if e not in (first, owner))
        t0 = time.perf_counter()
        _, headers, _ = clients[other].get(path)
        t1 = time.perf_counter()
        if headers.get("cache-status", "").startswith(f"{owner}; hit") or f", {owner}; hit" in headers.get("cache-status", ""):
            owner_served.append(t1 - t0)
        t0 = time.perf_counter()
        _, headers, _ = clients[other].get(path)
        t1 = time.perf_counter()
        if headers.get("cache-status", "").endswith(f"{other}; hit"):
            local.append(t1 - t0)
    return {
        "samples": [len(owner_served), len(local)],
        "owner_hit_p50_ms": round(statistics.median(owner_served) * 1000, 3),
        "local_hit_p50_ms": round(statistics.median(local) * 1000, 3),
        "difference_p50_ms": round((statistics.median(owner_served) - statistics.median(local)) * 1000, 3),
    }


def main(argv):
    cmd = argv[1]
    if cmd == "proxy":
        proxy(int(argv[2]), int(argv[3]))
    elif cmd == "count":
        print(json.dumps(count(int(argv[2]))))
    elif cmd == "through":
        print(json.dumps(through(int(argv[2]), argv[3], argv[4:])))
    elif cmd == "killrun":
        print(json.dumps(killrun(int(argv[2]), argv[3], int(argv[4]), float(argv[5]), argv[6:])))
    elif cmd == "purge":
        print(json.dumps(purge(int(argv[2]), argv[3])))
    elif cmd == "hits":
        print(json.dumps(hits(int(argv[2]), argv[3], argv[4:])))
    elif cmd == "objects":
        # cluster.py objects DIR PREFIX N: the files the bucket serves.
        root, prefix, n = argv[2], argv[3], int(argv[4])
        os.makedirs(os.path.join(root, prefix), exist_ok=True)
        for i in range(n):
            with open(os.path.join(root, prefix, f"{i}.txt"), "wb") as f:
                f.write(expected_body(prefix, i))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
