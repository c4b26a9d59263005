#!/usr/bin/env python3
"""CPU cost of the agent as the number of header rules grows (issue 15).

For each N: N `cdnagent header set` over 10 domains into a fresh image (the
CPU of the last 20 of them is reported, each), then one `cdnagent sync`
against cdnsim on loopback over plain HTTP (--qps 100000), whose CPU is
divided by N. CPU is the children's user + system time from getrusage.

    python3 tests/bench/sync_cost.py [--cdnagent BIN ...] N [N ...]

Several --cdnagent binaries (an older build beside the current one) are
measured one after the other in the same run. Only loopback is used.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from simctl import Sim  # noqa: E402

ENV = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID="testid",
           ALIBABA_CLOUD_ACCESS_KEY_SECRET="testsecret")
ENV.pop("ALIBABA_CLOUD_SECURITY_TOKEN", None)
DOMAINS = ["d%d.example.com" % i for i in range(10)]


def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def header_set(binary, flash, i):
    subprocess.run([binary, "--flash", flash, "header", "set", DOMAINS[i % len(DOMAINS)],
                    "X-H%d" % i, "v%d" % i], env=ENV, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)


def measure(binary, n, tmp):
    flash = os.path.join(tmp, "n%d.flash" % n)
    last = min(20, n)
    for i in range(n - last):
        header_set(binary, flash, i)
    c0 = cpu()
    for i in range(n - last, n):
        header_set(binary, flash, i)
    set_ms = (cpu() - c0) / last * 1000
    with Sim(tls=False, qps=100000, domains=DOMAINS) as sim:
        c0, t0 = cpu(), time.monotonic()
        p = subprocess.run([binary, "--flash", flash, "sync", "--endpoint", sim.url,
                            "--max-wait", "300"], env=ENV, capture_output=True, text=True)
        sync_ms = (cpu() - c0) / n * 1000
        wall = time.monotonic() - t0
    done = "everything delivered" in p.stdout
    return set_ms, sync_ms, wall, p.returncode == 0 and done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cdnagent", action="append",
                    help="binary to measure (repeatable; default build/cdnagent)")
    ap.add_argument("n", nargs="+", type=int)
    args = ap.parse_args()
    binaries = args.cdnagent or [os.path.join(ROOT, "build", "cdnagent")]
    print("%-28s %7s %22s %22s %9s %s" % ("binary", "N", "header set CPU (each)",
                                           "sync CPU per change", "sync wall", "delivered"))
    with tempfile.TemporaryDirectory(prefix="sync_cost.") as tmp:
        for n in args.n:
            for b in binaries:
                set_ms, sync_ms, wall, ok = measure(b, n, tmp)
                print("%-28s %7d %19.2f ms %19.2f ms %7.1f s %s" % (
                    os.path.relpath(b, ROOT) if b.startswith(ROOT) else b, n, set_ms, sync_ms,
                    wall, "yes" if ok else "NO"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
