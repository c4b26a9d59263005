#!/usr/bin/env python3
"""cdnagent beside the official SDK as the number of header rules grows (issue 15).

For each N (default 100, 1000, 5000), in one run, on loopback only:
  1. a fresh image sized for N (`cdnagent format --sectors S`: 256 KB at 100,
     2 MB at 5,000), N `cdnagent header set`
     over 50 domains; the CPU of one `header set` is sampled when the image holds
     10, 1,000 and 5,000 records (whichever N reaches; the median of 5 sets each);
  2. `cdnagent sync` of those N changes to a fresh cdnsim (plain HTTP, --qps 100000);
  3. node tests/bench/popcore_calls.js: @alicloud/pop-core (build/npm) making the
     same N SetReqHeaderConfig calls to another fresh cdnsim.
Both deliveries are checked against the simulator's state (N headers, each once).
CPU is user+system of the measured process alone, peak RSS its ru_maxrss,
both from tests/bench/rusage_of (built by `make bench`), which starts it from
a small process: Linux carries a peak RSS across fork and exec, so a command
forked from this Python process would report Python's. pop-core is given the benefit of the doubt: its CPU per call counts
the calls only (process.cpuUsage around them), not Node's start; cdnagent's
counts the whole `sync` process (start, mount, every read-back and write).

    python3 tests/bench/scale.py [--cdnagent BIN ...] [N ...]
    make bench-scale            (the default Ns; needs `make npm-deps`)

Several --cdnagent binaries (an older build beside the current one) are measured
one after the other in the same run.
"""
import argparse
import json
import os
import statistics
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
DOMAINS = ["d%02d.example.com" % i for i in range(50)]
CURRENT = os.path.join(os.environ.get("CDNAGENT_BUILD", os.path.join(ROOT, "build")), "cdnagent")
SAMPLES = (10, 1000, 5000)   # records in the image when `header set` is timed
SAMPLE_SETS = 5


RUSAGE_OF = os.path.join(os.environ.get("CDNAGENT_BUILD", os.path.join(ROOT, "build")),
                         "host", "bench", "rusage_of")


class Usage:
    def __init__(self, user_us, sys_us, maxrss_kb):
        self.ru_utime, self.ru_stime, self.ru_maxrss = user_us / 1e6, sys_us / 1e6, maxrss_kb


def run(argv):
    """Runs argv to completion under rusage_of: (returncode, stdout, stderr, its own usage)."""
    p = subprocess.run([RUSAGE_OF] + argv, env=ENV, capture_output=True, text=True)
    err, _, last = p.stderr.rstrip("\n").rpartition("\n")
    if not last.startswith("rusage "):
        raise SystemExit("rusage_of gave no figures for %s: %s" % (argv[0], p.stderr[-300:]))
    f = dict(kv.split("=") for kv in last.split()[1:])
    return p.returncode, p.stdout, err, Usage(int(f["user_us"]), int(f["sys_us"]),
                                              int(f["maxrss_kb"]))


def cpu_of(ru):
    return ru.ru_utime + ru.ru_stime


def header_set(binary, flash, i):
    rc, _, err, ru = run([binary, "--flash", flash, "header", "set",
                          DOMAINS[i % len(DOMAINS)], "X-H%d" % i, "v%d" % i])
    if rc != 0:
        raise SystemExit("header set %d failed: %s" % (i, err.strip()))
    return cpu_of(ru)


def check_state(sim, n):
    state = sim.state()
    have = {}
    for name, d in state["domains"].items():
        for h in d["headers"]:
            have[(name, h["Key"])] = have.get((name, h["Key"]), 0) + 1
    want = {(DOMAINS[i % len(DOMAINS)], "X-H%d" % i) for i in range(n)}
    return set(have) == want and all(c == 1 for c in have.values())


def fill(binary, flash, n):
    """N header sets; the CPU of one at each sample point the image reaches."""
    sets = {}
    for i in range(n):
        c = header_set(binary, flash, i)
        for s in SAMPLES:
            if s <= n and s - SAMPLE_SETS <= i < s:
                sets.setdefault(s, []).append(c)
    return {s: statistics.median(v) * 1000 for s, v in sets.items()}


def sectors_for(n):
    """4 KB sectors for N queued changes: about 160 B of live records each
    (the desired header and its queue entry) and room for GC to work in."""
    return max(64, n * 400 // 4096 + 32)


def measure_agent(binary, n, tmp):
    flash = os.path.join(tmp, "%s.%d.flash" % (os.path.basename(binary), n))
    for f in (flash, flash + ".key"):
        if os.path.exists(f):
            os.unlink(f)
    # the image is made by the current build (older ones have no `format`;
    # the on-flash format is the same)
    rc, _, err, _ = run([CURRENT, "--flash", flash, "format", "--sectors", str(sectors_for(n))])
    if rc != 0:
        raise SystemExit("format failed: " + err.strip())
    sets = fill(binary, flash, n)
    with Sim(tls=False, qps=100000, domains=DOMAINS) as sim:
        t0 = time.monotonic()
        rc, out, err, ru = run([binary, "--flash", flash, "sync", "--endpoint", sim.url,
                                "--rate", "100000", "--max-wait", "600"])
        wall = time.monotonic() - t0
        ok = rc == 0 and check_state(sim, n)
    return {"sets": sets, "cpu_ms": cpu_of(ru) * 1000 / n, "rss_kb": ru.ru_maxrss,
            "wall": wall, "ok": ok}


def measure_popcore(n):
    script = os.path.join(HERE, "popcore_calls.js")
    with Sim(tls=False, qps=100000, domains=DOMAINS) as sim:
        t0 = time.monotonic()
        rc, out, err, ru = run(["node", script, sim.url, str(n), ",".join(DOMAINS)])
        wall = time.monotonic() - t0
        if rc != 0:
            raise SystemExit("pop-core run failed: " + err.strip())
        r = json.loads(out.strip().splitlines()[-1])
        ok = r["ok"] == n and check_state(sim, n)
    return {"cpu_ms": r["cpu_calls_ms"] / n, "cpu_total_ms": cpu_of(ru) * 1000 / n,
            "rss_kb": ru.ru_maxrss, "wall": wall, "ok": ok}


def measure_floor(n):
    """System CPU per exchange of the simplest client (floor_client.py), over
    at least 5,000 exchanges so the interpreter's own start does not count."""
    n = max(n, 5000)
    with Sim(tls=False, qps=100000, domains=DOMAINS) as sim:
        rc, _, err, ru = run([sys.executable, os.path.join(HERE, "floor_client.py"), "127.0.0.1",
                              str(sim.port), str(n)])
        if rc != 0:
            raise SystemExit("floor client failed: " + err.strip())
    return ru.ru_stime * 1000 / n


def label(b):
    return os.path.relpath(b, ROOT) if b.startswith(ROOT) else b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cdnagent", action="append",
                    help="binary to measure (repeatable; default build/cdnagent)")
    ap.add_argument("n", nargs="*", type=int, default=[100, 1000, 5000])
    args = ap.parse_args()
    binaries = [os.path.abspath(b) for b in args.cdnagent or
                [os.path.join(ROOT, "build", "cdnagent")]]
    rows, first = [], {}
    with tempfile.TemporaryDirectory(prefix="scale.") as tmp:
        for n in args.n:
            floor = measure_floor(n)
            print("N=%-5d floor: %.3f ms system CPU per exchange for the simplest client "
                  "(floor_client.py); no client can use less" % (n, floor), flush=True)
            peer = measure_popcore(n)
            print("N=%-5d pop-core 1.8.0: %.3f ms CPU per call (calls only; %.3f with Node's "
                  "start), peak RSS %.1f MB, %.1f s, delivered exactly: %s" % (
                      n, peer["cpu_ms"], peer["cpu_total_ms"], peer["rss_kb"] / 1024,
                      peer["wall"], "yes" if peer["ok"] else "NO"), flush=True)
            for b in binaries:
                m = measure_agent(b, n, tmp)
                first.setdefault(b, m["cpu_ms"])
                sets = ", ".join("%d rec %.2f ms" % (s, v) for s, v in sorted(m["sets"].items()))
                print("N=%-5d %s: sync %.3f ms CPU per call (1/%.0f of pop-core; %.2fx its "
                      "N=%d figure), peak RSS %.1f MB (1/%.0f), %.1f s, delivered exactly: %s; "
                      "header set CPU: %s" % (
                          n, label(b), m["cpu_ms"], peer["cpu_ms"] / m["cpu_ms"],
                          m["cpu_ms"] / first[b], args.n[0], m["rss_kb"] / 1024,
                          peer["rss_kb"] / m["rss_kb"], m["wall"], "yes" if m["ok"] else "NO",
                          sets), flush=True)
                rows.append((n, b, m, peer))
    return 0 if all(m["ok"] and p["ok"] for _, _, m, p in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
