#!/usr/bin/env python3
"""A fleet of real `cdnagent run` daemons sharing one account's API rate (issue 20).

    python3 tools/fleet/fleet.py --devices 200 --changes 5 --qps 10 --out build/fleet
    python3 tools/fleet/fleet.py --devices 20 --check          # exactness only (make test)

Each device is a real `cdnagent run` process with its own flash image and its own domain
(d0000.fleet.example.com, ...), all under one AccessKeyId, against tools/cdnsim with a
per-account limit (--qps, cdnsim's sliding one-second window). Real processes, not agent
instances in one process: 200 daemons are 200 small processes and one simulator thread
each, which this 2-core machine runs, and every timing the
fleet shows is the product's own (its poll loop, back-off, token bucket, restarts).

Scenarios, one after the other on the same fleet and images:
  burst    every device gets --changes header edits at t=0 and all daemons start at once;
  outage   the simulator stops; every device gets --changes more edits while it is down
           (the daemons keep running and retry); after --outage-s the simulator comes back
           on the same port with the same state, at once for all;
  restart  (--scenarios ...,restart) every daemon stops (power off), every device gets
           --changes more edits, and all start again at once, with their kept call rate
           and their --splay.

For each: cdnsim's call log (one line per API call: time, action, status, code, domain)
gives the figures, printed and written to OUT/fleet.json, plotted into OUT/fleet.png when
matplotlib is installed (Debian's python3-matplotlib):
  - fleet converged (the last desired header on the CDN) against the ideal (one call per
    change at the account's limit: an agent that batches a domain's changes needs fewer
    calls and may beat it), as a time and a ratio; and when the last device settled (its
    read-backs done too);
  - share of calls refused by throttling (Throttling.User);
  - the slowest device's finish against the ideal;
  - calls per second over time (accepted, throttled).
Exactness: at the end of each scenario every domain holds exactly its desired headers,
each once (no change lost or duplicated), checked on the simulator's state.
Exit status: 0 when every scenario converged exactly (with --check that is all it asks);
1 otherwise.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from simctl import Sim  # noqa: E402

AK_ID, AK_SECRET = "LTAI-FLEET-LINE-7", "fleet-secret-known-only-to-the-simulator"
HEADER = "X-Fleet-%d"


def domain_of(i):
    return "d%04d.fleet.example.com" % i


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    def __init__(self, args):
        self.a = args
        self.cli = os.path.abspath(args.cdnagent)
        self.dir = os.path.abspath(args.out)
        self.env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=AK_ID,
                        ALIBABA_CLOUD_ACCESS_KEY_SECRET=AK_SECRET,
                        ALIBABA_CLOUD_IGNORE_PROFILE="TRUE", HOME=self.dir)
        self.env.pop("ALIBABA_CLOUD_SECURITY_TOKEN", None)
        self.port = free_port()
        self.state_file = os.path.join(self.dir, "sim-state.json")
        self.call_log = os.path.join(self.dir, "calls.jsonl")
        self.sim = None
        self.procs = []
        self.want = {}  # domain -> {key: value}

    def image(self, i):
        return os.path.join(self.dir, "dev%04d.flash" % i)

    def run_cli(self, *args):
        return subprocess.run([self.cli] + list(args), capture_output=True, text=True,
                              env=self.env, timeout=60)

    def start_sim(self):
        self.sim = Sim(tls=False, qps=self.a.qps, port=self.port,
                       domains=[domain_of(i) for i in range(self.a.devices)],
                       credentials=[(AK_ID, AK_SECRET)], state_file=self.state_file,
                       extra_args=["--call-log", self.call_log]).start()

    def edit(self, round_no):
        """--changes header edits on every device (queued offline, as an operator would)."""
        def one(i):
            bad = []
            for k in range(self.a.changes):
                key, value = HEADER % k, "r%d-%d-%d" % (round_no, i, k)
                self.want.setdefault(domain_of(i), {})[key] = value
                r = self.run_cli("--flash", self.image(i), "header", "set", domain_of(i), key,
                                 value)
                if r.returncode != 0:
                    bad.append(r.stderr)
            return bad
        with ThreadPoolExecutor(4) as ex:
            errors = [e for bad in ex.map(one, range(self.a.devices)) for e in bad]
        if errors:
            raise RuntimeError("header set failed: %s" % errors[0])

    def start_daemons(self):
        url = "http://127.0.0.1:%d" % self.port
        for i in range(self.a.devices):
            log = open(os.path.join(self.dir, "dev%04d.log" % i), "a")
            cmd = [self.cli, "--flash", self.image(i), "run", "--endpoint", url,
                   "--rate", str(self.a.rate), "--backoff-cap-ms", str(self.a.backoff_cap_ms)]
            if self.a.splay:
                cmd += ["--splay", str(self.a.splay)]
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               env=self.env))
            log.close()

    def stop_daemons(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    def converged(self):
        """Every domain holds exactly its desired headers, each once: (bool, first diff)."""
        st = self.sim.state()["domains"]
        for d, want in self.want.items():
            hs = st.get(d, {}).get("headers", [])
            got = {}
            for h in hs:
                got.setdefault(h["Key"], []).append(h["Value"])
            if set(got) != set(want):
                return False, "%s: keys %s, desired %s" % (d, sorted(got), sorted(want))
            for k, vals in got.items():
                if vals != [want[k]]:
                    return False, "%s %s: CDN %r, desired %r once" % (d, k, vals, want[k])
        return True, ""

    def wait_converged(self, timeout_s):
        end = time.monotonic() + timeout_s
        why = "never looked"
        while time.monotonic() < end:
            ok, why = self.converged()
            if ok:
                return True, ""
            time.sleep(0.5)
        return False, why

    def calls_since(self, t0):
        out = []
        if os.path.exists(self.call_log):
            with open(self.call_log) as f:
                for line in f:
                    c = json.loads(line)
                    if c["t"] >= t0:
                        out.append(c)
        return out


def figures(name, calls, t0, devices, changes, qps):
    """The scenario's figures from its calls (t0: when the fleet could first call)."""
    # Unsigned requests (an agent's probe for the service after an outage, or for its
    # Date) are no API calls: no account's rate counts them.
    probes = sum(1 for c in calls if c["action"] == "-")
    calls = [c for c in calls if c["action"] != "-"]
    # The ideal is the issue's: one call per change at the account's limit. An agent
    # that batches needs fewer calls, and may beat it.
    needed = devices * changes
    ideal = needed / float(qps)
    ok = [c for c in calls if c["status"] == 200 and c["action"] == "BatchSetCdnDomainConfig"]
    accepted = sum(c.get("changes", 1) for c in ok)
    throttled = [c for c in calls if c["code"] == "Throttling.User"]
    finish = {}
    for c in ok:
        finish[c["domain"]] = max(finish.get(c["domain"], 0), c["t"] - t0)
    # settled: a device's last answered call of any kind (a batch's read-back of its
    # ConfigIds comes after the changes are on the CDN)
    settle = {}
    for c in calls:
        if c["status"] == 200:
            settle[c["domain"]] = max(settle.get(c["domain"], 0), c["t"] - t0)
    converge = max(finish.values()) if finish else float("nan")
    slowest = max(finish.values()) if finish else float("nan")
    fastest = min(finish.values()) if finish else float("nan")
    per_s = {}
    for c in calls:
        b = int(c["t"] - t0)
        acc, thr = per_s.get(b, (0, 0))
        per_s[b] = (acc + (c["code"] != "Throttling.User"), thr + (c["code"] == "Throttling.User"))
    return {
        "scenario": name, "devices": devices, "changes": changes, "account_qps": qps,
        "needed_calls": needed, "ideal_s": round(ideal, 1),
        "calls": len(calls), "accepted_changes": accepted, "accepted_batches": len(ok),
        "calls_by_action": {a: sum(1 for c in calls if c["action"] == a)
                            for a in sorted({c["action"] for c in calls})},
        "throttled": len(throttled), "unsigned_probes": probes,
        "throttled_share": round(len(throttled) / float(len(calls)), 3) if calls else 0.0,
        "converged_s": round(converge, 1), "converged_vs_ideal": round(converge / ideal, 2),
        "slowest_device_s": round(slowest, 1), "slowest_vs_ideal": round(slowest / ideal, 2),
        "settled_s": round(max(settle.values()), 1) if settle else float("nan"),
        "fastest_device_s": round(fastest, 1), "devices_done": len(finish),
        "per_second": [[b, per_s[b][0], per_s[b][1]] for b in sorted(per_s)],
    }


def say(fig):
    print("%s: %d devices x %d changes, account limit %g calls/s: ideal %.1f s" % (
        fig["scenario"], fig["devices"], fig["changes"], fig["account_qps"], fig["ideal_s"]))
    print("  converged after %.1f s (%.2f x ideal); slowest device %.1f s (%.2f x ideal), "
          "fastest %.1f s" % (fig["converged_s"], fig["converged_vs_ideal"],
                              fig["slowest_device_s"], fig["slowest_vs_ideal"],
                              fig["fastest_device_s"]))
    print("  %d calls, %d refused by throttling (%.1f%%), %d changes accepted in %d calls; "
          "last device settled (read-backs done) after %.1f s" % (
              fig["calls"], fig["throttled"], 100.0 * fig["throttled_share"],
              fig["accepted_changes"], fig["accepted_batches"], fig["settled_s"]))
    print("  calls by action: %s" % ", ".join("%s %d" % kv
                                                for kv in sorted(fig["calls_by_action"].items())))
    sys.stdout.flush()


def plot(figs, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no plot: python3-matplotlib is not installed)")
        return
    fig, axes = plt.subplots(len(figs), 1, figsize=(9, 3.2 * len(figs)), squeeze=False)
    for ax, f in zip(axes[:, 0], figs):
        xs = [p[0] for p in f["per_second"]]
        ax.bar(xs, [p[1] for p in f["per_second"]], width=1.0, label="accepted", color="#4477aa")
        ax.bar(xs, [p[2] for p in f["per_second"]], width=1.0,
               bottom=[p[1] for p in f["per_second"]], label="throttled", color="#ee6677")
        ax.axhline(f["account_qps"], color="k", lw=0.8, ls="--", label="account limit")
        ax.axvline(f["ideal_s"], color="#228833", lw=1, label="ideal end")
        ax.axvline(f["converged_s"], color="#aa3377", lw=1, label="converged")
        ax.set_title("%s: %d devices x %d changes, %g calls/s: converged %.2f x ideal, "
                     "throttled %.1f%%" % (f["scenario"], f["devices"], f["changes"],
                                           f["account_qps"], f["converged_vs_ideal"],
                                           100 * f["throttled_share"]), fontsize=9)
        ax.set_xlabel("seconds")
        ax.set_ylabel("calls per second")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print("plot: %s" % path)


def started_together(fl, a, name, round_no):
    """Edits on every stopped device, then every daemon started at once."""
    fl.edit(round_no)
    t0 = time.time()
    fl.start_daemons()
    ok, why = fl.wait_converged(a.timeout_s)
    fig = figures(name, fl.calls_since(t0), t0, a.devices, a.changes, a.qps)
    fig["exact"], fig["why"] = ok, why
    return fig


def scenario_burst(fl, a):
    return started_together(fl, a, "burst", 1)


def scenario_outage(fl, a):
    fl.sim.stop()
    fl.edit(2)  # queued while the simulator is down; the daemons retry meanwhile
    time.sleep(a.outage_s)
    t0 = time.time()
    fl.start_sim()  # the same port and state: back at once for every device
    ok, why = fl.wait_converged(a.timeout_s)
    fig = figures("outage", fl.calls_since(t0), t0, a.devices, a.changes, a.qps)
    fig["exact"], fig["why"] = ok, why
    fig["outage_s"] = a.outage_s
    return fig


def scenario_restart(fl, a):
    """Every device powered off, edited offline, and started at once (a rollout, or the
    power back): the case --splay and the kept learnt rate are for."""
    fl.stop_daemons()
    return started_together(fl, a, "restart", 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--changes", type=int, default=5)
    ap.add_argument("--qps", type=float, default=10, help="the account's limit (calls/s)")
    ap.add_argument("--rate", type=float, default=10,
                    help="each device's own cap (run --rate; the manifest's retry.rate_per_s)")
    ap.add_argument("--backoff-cap-ms", type=int, default=30000,
                    help="each device's longest retry delay (run --backoff-cap-ms)")
    ap.add_argument("--splay", type=int, default=0,
                    help="the daemons' --splay (s): their first calls spread over it")
    ap.add_argument("--outage-s", type=float, default=600)
    ap.add_argument("--scenarios", default="burst,outage",
                    help="comma-separated, in order: burst, outage, restart")
    ap.add_argument("--timeout-s", type=float, default=900)
    ap.add_argument("--cdnagent", default=os.path.join(ROOT, "build", "cdnagent"),
                    help="the cdnagent binary every device runs")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "fleet"))
    ap.add_argument("--check", action="store_true",
                    help="exactness only: exit 0 when every scenario converged exactly")
    a = ap.parse_args()
    if a.devices < 1 or a.changes < 1 or a.qps <= 0:
        ap.error("--devices, --changes and --qps must be positive")
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    fl = Fleet(a)
    figs = []
    try:
        fl.start_sim()
        for name in a.scenarios.split(","):
            fig = {"burst": scenario_burst, "outage": scenario_outage,
                   "restart": scenario_restart}[name](fl, a)
            fig["splay_s"] = a.splay
            figs.append(fig)
            say(fig)
            if not fig["exact"]:
                print("  NOT EXACT: %s" % fig["why"])
    finally:
        fl.stop_daemons()
        if fl.sim:
            fl.sim.stop()
    with open(os.path.join(a.out, "fleet.json"), "w") as f:
        json.dump(figs, f, indent=1)
    if not a.check:
        plot(figs, os.path.join(a.out, "fleet.png"))
    return 0 if figs and all(f["exact"] for f in figs) else 1


if __name__ == "__main__":
    sys.exit(main())
