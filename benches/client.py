#!/usr/bin/env python3
"""Measurement clients for benches/compare.sh (standard library + botocore).

  client.py coalesce HOST:PORT PATH N SIZE
      N connections are opened first, then all send `GET PATH` at once (a
      barrier); every answer must be 200 with SIZE body bytes. Prints JSON.

  client.py ttfb EDGE ORIGIN BUCKET KEYFMT N WARMUP
      Time to first byte of a GET for a key nobody has asked for yet, through
      the edge (EDGE, plain GET) and straight from its S3 origin (ORIGIN, a
      SigV4-signed path-style GET, signed *before* the clock starts so that
      Python's signing cost is not counted against the origin). Both use one
      keep-alive connection each, raw sockets, the same request shape; the
      order alternates every sample. KEYFMT % i names sample i's key (the
      first WARMUP keys warm the connections and are not counted). Prints JSON.

Credentials for the origin: S3EDGE_EMBEDDED_ACCESS_KEY / _SECRET_KEY.
"""

import json
import os
import socket
import statistics
import sys
import threading
import time


class Conn:
    """One HTTP/1.1 keep-alive connection on a raw socket."""

    def __init__(self, hostport):
        host, port = hostport.rsplit(":", 1)
        self.hostport = hostport
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by peer")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, request_bytes):
        """Sends a request; returns the time to the first response byte (s)."""
        assert not self.buf
        t0 = time.perf_counter()
        self.sock.sendall(request_bytes)
        self._fill()
        return time.perf_counter() - t0

    def read_response(self, head=False):
        """Reads the response whose first bytes `send` saw: (status, headers, body length)."""
        status_line = self._line()
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0
        if head or status in (204, 304):
            pass
        elif "content-length" in headers:
            length = int(headers["content-length"])
            have = min(len(self.buf), length)
            self.buf = self.buf[have:]
            remaining = length - have
            while remaining:
                chunk = self.sock.recv(min(1 << 20, remaining))
                if not chunk:
                    raise ConnectionError("body cut short")
                remaining -= len(chunk)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                self._take(size)
                self._line()
                length += size
        else:
            raise ValueError("response without a length: %r" % headers)
        return status, headers, length

    def close(self):
        self.sock.close()


def get_request(hostport, path, extra=None):
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % hostport]
    for name, value in (extra or {}).items():
        lines.append("%s: %s" % (name, value))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def coalesce(hostport, path, n, size):
    n, size = int(n), int(size)
    barrier = threading.Barrier(n)
    results = [None] * n
    request = get_request(hostport, path)

    def one(i):
        try:
            conn = Conn(hostport)
            barrier.wait(timeout=30)
            conn.send(request)
            status, _headers, length = conn.read_response()
            conn.close()
            results[i] = "ok" if status == 200 and length == size else "status %d, %d bytes" % (status, length)
        except Exception as e:  # reported, never hidden
            results[i] = "error: %s" % e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - t0
    counts = {}
    for r in results:
        counts[str(r)] = counts.get(str(r), 0) + 1
    print(json.dumps({"ok": counts.get("ok", 0), "n": n, "results": counts, "seconds": round(elapsed, 3)}))


def signed_get(origin, bucket, key, access_key, secret_key):
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = "http://%s/%s/%s" % (origin, bucket, key)
    req = AWSRequest(method="GET", url=url)
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", "us-east-1").add_auth(req)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "host"}
    return get_request(origin, "/%s/%s" % (bucket, key), headers)


def pct(samples, p):
    s = sorted(samples)
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ttfb(edge, origin, bucket, keyfmt, n, warmup):
    n, warmup = int(n), int(warmup)
    ak = os.environ.get("S3EDGE_EMBEDDED_ACCESS_KEY", "s3edge-dev")
    sk = os.environ.get("S3EDGE_EMBEDDED_SECRET_KEY", "s3edge-dev-secret")
    edge_conn, origin_conn = Conn(edge), Conn(origin)
    samples = {"edge": [], "origin": []}
    bad = []
    for i in range(warmup + n):
        key = keyfmt % i
        edge_req = get_request(edge, "/" + key)
        origin_req = signed_get(origin, bucket, key, ak, sk)
        order = [("edge", edge_conn, edge_req), ("origin", origin_conn, origin_req)]
        if i % 2:
            order.reverse()
        for name, conn, req in order:
            t = conn.send(req)
            status, headers, _length = conn.read_response()
            if status != 200:
                bad.append("%s %s: %d" % (name, key, status))
            if name == "edge" and "fwd=miss" not in headers.get("cache-status", ""):
                bad.append("edge %s was not a miss: %s" % (key, headers.get("cache-status")))
            if i >= warmup:
                samples[name].append(t * 1000.0)
    out = {"n": n, "errors": bad[:5], "error_count": len(bad)}
    for name, s in samples.items():
        out[name] = {
            "p50_ms": round(pct(s, 50), 3),
            "p99_ms": round(pct(s, 99), 3),
            "mean_ms": round(statistics.mean(s), 3),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    commands = {"coalesce": coalesce, "ttfb": ttfb}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
