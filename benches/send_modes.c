/*
 * send_modes PORT FILE MODE: the least HTTP/1.1 server that answers every
 * request on 127.0.0.1:PORT with the whole of FILE, in one of five ways, to
 * tell what the kernel does with each way of sending a body from what a
 * server (s3edge, nginx) adds on top. Two threads, each with its own
 * listening socket (SO_REUSEPORT) and an edge-triggered epoll loop over
 * non-blocking sockets with TCP_NODELAY, as s3edge's two workers and
 * nginx's have; the system's default congestion control.
 *
 *   0  the head with MSG_MORE, then the file with sendfile (s3edge's way
 *      for a body sent from its file)
 *   1  the head, then the file read 1 MiB at a time with pread and sent
 *   2  the head, then the file from memory (read once at start) with send
 *   3  the head and the file from memory in one writev (s3edge's way for a
 *      body from memory; benches/one_copy.py's too, protocols.sh's one-copy
 *      reference, which this does without Python's thread per connection)
 *   5  the head alone (no MSG_MORE), then the file with sendfile (nginx's
 *      way with tcp_nopush off, its default)
 *
 * Measure with wrk against it (docs/PERFORMANCE.md, session 23):
 *
 *   cc -O2 -pthread -o /tmp/send_modes benches/send_modes.c
 *   /tmp/send_modes 19502 /tmp/1m.bin 0 & wrk -t2 -c64 -d4s http://127.0.0.1:19502/
 *
 * Written in C because it is a probe of the kernel, not of a server: no
 * runtime between the loop and the syscalls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static int port, file, mode;
static off_t size;
static char *memory;

struct conn {
    int fd;
    off_t off; /* the next byte of the body to send; size when none is due */
    int have;
    char req[2048];
    char *buf;
};

/* Sends what is left of the body; -1 when the connection is done for. */
static int pump(struct conn *c) {
    while (c->off < size) {
        size_t n = size - c->off < CHUNK ? size - c->off : CHUNK;
        ssize_t k;
        if (mode == 0 || mode == 5) {
            off_t at = c->off;
            k = sendfile(c->fd, file, &at, n);
        } else if (mode == 1) {
            k = pread(file, c->buf, n, c->off);
            if (k > 0) k = send(c->fd, c->buf, k, 0); /* a short send re-reads the rest */
        } else {
            k = send(c->fd, memory + c->off, n, 0);
        }
        if (k < 0) return errno == EAGAIN ? 0 : -1;
        if (k == 0) return -1;
        c->off += k;
    }
    return 0;
}

/* Answers the requests `c` has sent; -1 when the connection is done for. */
static int serve(struct conn *c) {
    if (c->off < size && pump(c) < 0) return -1;
    while (c->off >= size) {
        ssize_t r = recv(c->fd, c->req + c->have, sizeof c->req - c->have - 1, 0);
        if (r < 0 && errno == EAGAIN) return 0;
        if (r <= 0) return -1;
        c->have += r;
        c->req[c->have] = 0;
        if (!strstr(c->req, "\r\n\r\n")) {
            if (c->have == sizeof c->req - 1) return -1;
            continue;
        }
        c->have = 0;
        char head[160];
        int len = snprintf(head, sizeof head,
                           "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n"
                           "Content-Type: application/octet-stream\r\n\r\n",
                           (long long)size);
        c->off = 0;
        ssize_t k;
        if (mode == 3) {
            struct iovec iov[2] = {{head, len}, {memory, size}};
            k = writev(c->fd, iov, 2);
            if (k >= len) c->off = k - len;
        } else {
            k = send(c->fd, head, len, mode == 0 ? MSG_MORE : 0);
        }
        if (k < len) return -1; /* a head always fits an empty socket buffer */
        if (pump(c) < 0) return -1;
    }
    return 0;
}

static void *loop(void *unused) {
    (void)unused;
    int one = 1;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1024)) {
        perror("bind");
        exit(1);
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(s, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *d = calloc(1, sizeof *d);
                    d->fd = fd;
                    d->off = size;
                    d->buf = mode == 1 ? malloc(CHUNK) : NULL;
                    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
                                            .data.ptr = d};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
            } else if (serve(c) < 0) {
                close(c->fd);
                free(c->buf);
                free(c);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: send_modes PORT FILE MODE (0, 1, 2, 3 or 5)\n");
        return 2;
    }
    port = atoi(argv[1]);
    mode = atoi(argv[3]);
    file = open(argv[2], O_RDONLY);
    struct stat st;
    if (file < 0 || fstat(file, &st) || (mode != 0 && mode != 1 && mode != 2 && mode != 3 && mode != 5)) {
        fprintf(stderr, "send_modes: cannot open %s, or no mode %s\n", argv[2], argv[3]);
        return 2;
    }
    size = st.st_size;
    if (mode == 2 || mode == 3) {
        memory = malloc(size);
        if (pread(file, memory, size, 0) != size) {
            perror("read");
            return 1;
        }
    }
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, loop, NULL);
    pthread_join(threads[0], NULL);
    return 0;
}
