/*
 * core_distance CPU_A CPU_B [SAMPLES]: how long a cache line takes to go from
 * one CPU to another and back, in nanoseconds (the median of SAMPLES samples
 * of 50 ms each, default 5).
 *
 * Two threads, one pinned to each CPU, hand a counter back and forth. On a
 * virtual machine the answer is not fixed: on the 2-core machine the README's
 * figures come from, it was about 52 ns (the two virtual CPUs on cores that
 * share a cache) or about 318 ns (they do not), and it changed from one to
 * the other in the middle of a run, without any load of ours. A hit that is
 * copied into the socket on one core and out of it on the other (s3edge's
 * from memory, Varnish's) runs at half the rate or less in the second case;
 * nginx's sendfile much less so. benches/lib.sh's `core_distance` runs this
 * around every measurement so a result says which case it was measured in.
 *
 * Built by benches/lib.sh with the C compiler the Rust toolchain links with
 * (`cc`): pinning a thread needs sched_setaffinity, which std does not offer,
 * and the project's Rust forbids `unsafe`.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Atomic long ball __attribute__((aligned(64)));
static _Atomic int done __attribute__((aligned(64)));

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* The other side: sends every odd value back as the next even one. */
static void *answer(void *cpu) {
    if (pin(*(int *)cpu) != 0) {
        atomic_store(&done, 2);
        return NULL;
    }
    for (;;) {
        long seen = atomic_load_explicit(&ball, memory_order_acquire);
        if (atomic_load_explicit(&done, memory_order_relaxed)) return NULL;
        if (seen & 1) atomic_store_explicit(&ball, seen + 1, memory_order_release);
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: core_distance CPU_A CPU_B [SAMPLES]\n");
        return 2;
    }
    int here = atoi(argv[1]), there = atoi(argv[2]);
    int samples = argc > 3 ? atoi(argv[3]) : 5;
    if (samples < 1 || samples > 1000) samples = 5;
    double *ns = calloc(samples, sizeof *ns);
    pthread_t other;
    if (!ns || pin(here) != 0 || pthread_create(&other, NULL, answer, &there) != 0) {
        fprintf(stderr, "core_distance: cannot run on CPUs %d and %d\n", here, there);
        return 1;
    }
    long value = 0;
    for (int s = 0; s < samples && atomic_load(&done) == 0; s++) {
        double start = now();
        long trips = 0;
        while (now() - start < 0.05 && atomic_load(&done) == 0) {
            for (int i = 0; i < 256; i++) {
                atomic_store_explicit(&ball, value + 1, memory_order_release);
                while (atomic_load_explicit(&ball, memory_order_acquire) != value + 2)
                    if (atomic_load_explicit(&done, memory_order_relaxed)) break;
                value += 2;
            }
            trips += 256;
        }
        ns[s] = (now() - start) / trips * 1e9;
    }
    int failed = atomic_exchange(&done, 1) == 2;
    pthread_join(other, NULL);
    if (failed) {
        fprintf(stderr, "core_distance: cannot run on CPU %d\n", there);
        return 1;
    }
    qsort(ns, samples, sizeof *ns, by_value);
    printf("%.0f\n", ns[samples / 2]);
    return 0;
}
