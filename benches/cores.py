#!/usr/bin/env python3
"""The core-distance probes a benchmark logged (benches/lib.sh: core_distance,
await_close_cores, after_measurement), read once for every script: each
probe is "NS<TAB>LABEL", logged after the measurement LABEL. "start" is the
first probe, "~" a reading await_close_cores took just before a measurement,
and "again: LABEL" a measurement after_measurement threw away and made again.

    python3 benches/cores.py CORES_LOG CPU_A CPU_B BENCH_CLOSE LEAST

prints the sentence a result's header gives (lib.sh: cores_summary).
"""

import sys


def read(path, least):
    """The probes (ns, label) and the yardstick of "apart": more than twice
    the least reading (`least`: the least await_close_cores saw, whose first
    readings are not logged)."""
    probes = [line.rstrip("\n").split("\t", 1) for line in open(path) if "\t" in line]
    probes = [(float(ns), label) for ns, label in probes]
    return probes, 2 * min(float(least), min(ns for ns, _ in probes))


def measurements(probes):
    """(label, before, after) for each kept measurement: the probes just
    before and just after it."""
    return [(label, before, ns) for (before, _), (ns, label) in zip(probes, probes[1:])
            if label != "~" and not label.startswith("again: ")]


def state(before, after, yardstick):
    """close when both probes read at most the yardstick, apart when both
    read more, mixed otherwise."""
    if max(before, after) <= yardstick:
        return "close"
    return "apart" if min(before, after) > yardstick else "mixed"


def summary(path, cpu_a, cpu_b, close, least):
    probes, yardstick = read(path, least)
    kept = measurements(probes)
    again = [label.removeprefix("again: ") for _, label in probes if label.startswith("again: ")]
    far = [f"{label} ({max(before, after):.0f})" for label, before, after in kept
           if state(before, after, yardstick) != "close"]
    text = (f"core distance (benches/core_distance.c: a cache line's round trip between CPUs {cpu_a} "
            f"and {cpu_b}, probed before the first measurement and after each"
            f"{'; BENCH_CLOSE=1: each measurement waited for a close reading' if close == '1' else ''}): "
            f"{yardstick / 2:.0f} to {max(ns for ns, _ in probes):.0f} ns in {len(probes)} probes")
    if far:
        text += (f"; more than twice the least just before or after {len(far)} of {len(kept)} measurements,"
                 " measured at least in part while the cores were apart: " + ", ".join(far))
    else:
        text += "; the cores stayed close"
    if again:
        text += (f"; {len(again)} measurements were made again because the probe after them read apart"
                 f" (BENCH_CLOSE=1): " + ", ".join(again))
    return text


if __name__ == "__main__":
    print(summary(*sys.argv[1:6]))
