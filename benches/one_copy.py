"""A reference for large bodies sent from memory (benches/protocols.sh).

    python3 benches/one_copy.py FOLDER PORT

A keep-alive HTTP/1.1 server that reads every file of FOLDER into memory at
start and answers `GET /NAME` with its bytes: one `sendmsg` of the head and the
body, then `sendall` of whatever the socket did not take, so each body byte is
copied once, by the kernel, into the socket. No server that sends from its own
memory copies less per byte: for a body of tens of MiB, where per-request work
no longer counts, what wrk measures here is what the kernel's loopback and wrk
allow such a server. A thread per connection (the GIL is released while the
kernel copies). Not a bound for smaller bodies: at 1 MiB and 64 connections
its threads and Python's per-request work show, and a server can beat it.
"""

import os
import socket
import sys
import threading


def load(folder):
    bodies = {}
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(data)
        )
        bodies["/" + name] = (head, memoryview(data))
    return bodies


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def serve(conn, bodies):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    with conn:
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                request, buf = buf.split(b"\r\n\r\n", 1)
                parts = request.split(b" ", 2)
                found = bodies.get(parts[1].decode("latin-1")) if len(parts) == 3 else None
                if found is None:
                    conn.sendall(NOT_FOUND)
                    continue
                head, body = found
                sent = conn.sendmsg([head, body])
                if sent < len(head):
                    conn.sendall(head[sent:])
                    conn.sendall(body)
                else:
                    conn.sendall(body[sent - len(head):])
        except OSError:
            return


def main():
    folder, port = sys.argv[1], int(sys.argv[2])
    bodies = load(folder)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, bodies), daemon=True).start()


if __name__ == "__main__":
    main()
