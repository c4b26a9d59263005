#!/usr/bin/env python3
"""Records the Cortex-M scenario's API traffic against tools/cdnsim (stdlib only).

    python3 tests/target/record.py --build build --out tests/target/recorded.json

The scenario, run on the host with the host CLI (BUILD/cdnagent) against cdnsim over
verified HTTPS (test PKI BUILD/testpki, made if missing), with `cdnsim --record`:

  (a) cdnagent provision  tests/target/manifest.json (endpoint port = the simulator's,
                          files from the test PKI via --base-dir, a fresh device key)
  (b) cdnagent sync       until the queue is empty
  (c) cdnagent header set cdn.example.com X-Edge-Region ap-southeast
  (d) cdnagent header rm  cdn.example.com Cache-Control
  (e) cdnagent sync       until the queue is empty

The simulator's record (one line per answered API request) is normalised (normalise())
and written as {"comment", "steps": [{action, method, params, status, headers, body}]}.
tests/integration/test_target_recording re-records with record() and compares with
compare(). Format: tests/target/README.md.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("CDNAGENT_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import simctl  # noqa: E402

MANIFEST = os.path.join(HERE, "manifest.json")
DOMAIN = "cdn.example.com"
MAX_SYNCS = 5  # "sync until the queue is empty" gives up after this many runs

# Request parameters that differ on every run: dropped.
VOLATILE_PARAMS = ("Signature", "SignatureNonce", "Timestamp")
# PEM parameters: the test PKI is regenerated per machine, so they become placeholders
# naming the manifest's file (the scenario's image embeds the same files).
PEM_PARAMS = {"ServerCertificate": "cert", "SSLPub": "cert",
              "PrivateKey": "key", "SSLPri": "key"}

COMMENT = ("Recorded cdnsim answers for the Cortex-M scenario (tests/target/README.md): "
           "provision tests/target/manifest.json, sync, header set %s X-Edge-Region "
           "ap-southeast, header rm %s Cache-Control, sync. Made by tests/target/record.py "
           "(do not edit by hand); checked by tests/integration/test_target_recording. "
           "params: request parameters after URL-decoding without Signature, SignatureNonce "
           "and Timestamp; PEM values replaced by <cert:FILE>/<key:FILE>. headers and body: "
           "the response exactly as cdnsim sent it." % (DOMAIN, DOMAIN))


def _manifest_files():
    with open(MANIFEST) as f:
        m = json.load(f)
    for d in m["domains"]:
        if d["name"] == DOMAIN and d.get("certificate"):
            return d["certificate"]["cert"], d["certificate"]["key"]
    raise SystemExit("record: %s has no certificate for %s" % (MANIFEST, DOMAIN))


def normalise(raw_line):
    """One `cdnsim --record` line -> one step (key order: action, method, params, status,
    headers, body)."""
    cert_file, key_file = _manifest_files()
    params = {}
    for k in sorted(raw_line["params"]):
        v = raw_line["params"][k]
        if k in VOLATILE_PARAMS or k.lower().startswith("x-acs-"):
            continue
        if k in PEM_PARAMS:
            v = "<%s:%s>" % (PEM_PARAMS[k], cert_file if PEM_PARAMS[k] == "cert" else key_file)
        params[k] = v
    return {"action": raw_line["action"], "method": raw_line["method"], "params": params,
            "status": raw_line["status"], "headers": raw_line["headers"],
            "body": raw_line["body"]}


def _agent_env():
    # Everything comes from the provisioned image, never from the environment.
    return {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}


def record(build, log=print):
    """Runs the scenario once; returns (steps, raw record lines). Starts and stops its own
    simulator; leaves nothing behind but the test PKI."""
    build = os.path.abspath(build)
    agent_bin = os.path.join(build, "cdnagent")
    if not os.access(agent_bin, os.X_OK):
        raise SystemExit("record: %s is not built (run make)" % agent_bin)
    simctl.BUILD = build  # the test PKI goes to BUILD/testpki
    pki = simctl.ensure_pki(os.path.join(build, "testpki"))
    with open(MANIFEST) as f:
        manifest = json.load(f)
    ak = manifest["credentials"]["access_key_id"]
    secret = manifest["credentials"]["access_key_secret"]
    cert_file, key_file = _manifest_files()
    tmp = tempfile.mkdtemp(prefix="cdnagent-target-")
    rec_path = os.path.join(tmp, "record.jsonl")
    flash = os.path.join(tmp, "device.flash")
    dkey = os.path.join(tmp, "device.key")

    def agent(*args):
        cmd = [agent_bin, "--flash", flash, "--device-key", dkey] + list(args)
        log("$ cdnagent %s" % " ".join(args))
        p = subprocess.run(cmd, env=_agent_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=180)
        for line in p.stdout.splitlines():
            log("  " + line)
        return p.returncode, p.stdout

    def must(*args):
        rc, out = agent(*args)
        if rc != 0:
            raise RuntimeError("cdnagent %s failed (exit %d):\n%s" % (" ".join(args), rc, out))

    def sync_until_empty():
        for _ in range(MAX_SYNCS):
            agent("sync")  # exit status non-zero while something is left: looked at below
            rc, out = agent("queue", "--json")
            if rc != 0:
                raise RuntimeError("cdnagent queue --json failed (exit %d):\n%s" % (rc, out))
            if json.loads(out) == []:
                return
        raise RuntimeError("the queue is not empty after %d syncs" % MAX_SYNCS)

    sim = simctl.Sim(tls=True, domains=[DOMAIN], credentials=[(ak, secret)],
                     extra_args=["--record", rec_path])
    try:
        sim.start()
        log("cdnsim listening on %s (recording to %s)" % (sim.url, rec_path))
        manifest["endpoint"] = re.sub(r":\d+$", ":%d" % sim.port, manifest["endpoint"])
        mpath = os.path.join(tmp, "manifest.json")
        with open(mpath, "w") as f:
            json.dump(manifest, f, indent=2)
        must("provision", mpath, "--base-dir", pki)                              # (a)
        sync_until_empty()                                                       # (b)
        must("header", "set", DOMAIN, "X-Edge-Region", "ap-southeast")           # (c)
        must("header", "rm", DOMAIN, "Cache-Control")                            # (d)
        sync_until_empty()                                                       # (e)
    except BaseException:
        sys.stderr.write(sim.log())
        raise
    finally:
        sim.stop()
        log("cdnsim stopped")
        try:
            with open(rec_path, encoding="utf-8") as f:
                raw = [json.loads(line) for line in f if line.strip()]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    # The placeholders stand for exactly the manifest's files: check that they do.
    with open(os.path.join(pki, cert_file)) as f:
        cert_pem = f.read()
    with open(os.path.join(pki, key_file)) as f:
        key_pem = f.read()
    for r in raw:
        for k, kind in PEM_PARAMS.items():
            if k in r["params"]:
                want = cert_pem if kind == "cert" else key_pem
                if r["params"][k].strip() != want.strip():
                    raise RuntimeError("%s %s: the %s sent is not %s" % (
                        r["action"], k, kind, cert_file if kind == "cert" else key_file))
    return [normalise(r) for r in raw], raw


def _strip_request_ids(body):
    try:
        obj = json.loads(body)
    except ValueError:
        return re.sub(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}",
                      "<RequestId>", body)

    def walk(o):
        if isinstance(o, dict):
            return {k: ("<RequestId>" if k == "RequestId" else walk(v)) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o
    return walk(obj)


def compare(want, got):
    """Differences between two step lists, as {aspect: [messages]} for the aspects
    "actions", "params", "statuses", "bodies" (RequestId values ignored)."""
    out = {"actions": [], "params": [], "statuses": [], "bodies": []}
    wa = [(s["action"], s["method"]) for s in want]
    ga = [(s["action"], s["method"]) for s in got]
    if wa != ga:
        out["actions"].append("want %s\ngot  %s" % (wa, ga))
    for i, (w, g) in enumerate(zip(want, got)):
        tag = "step %d (%s)" % (i, w["action"])
        if w["params"] != g["params"]:
            out["params"].append("%s: want %s\n  got %s" % (tag, w["params"], g["params"]))
        if w["status"] != g["status"]:
            out["statuses"].append("%s: want %s got %s" % (tag, w["status"], g["status"]))
        if _strip_request_ids(w["body"]) != _strip_request_ids(g["body"]):
            out["bodies"].append("%s: want %s\n  got %s" % (tag, w["body"], g["body"]))
    if len(want) != len(got):
        for k in ("params", "statuses", "bodies"):
            out[k].append("want %d steps, got %d" % (len(want), len(got)))
    return out


def dumps(steps):
    """The recorded.json text: one line per field of a step, one per response header."""
    def j(v):
        return json.dumps(v, ensure_ascii=False)
    out = ['{', '  "comment": %s,' % j(COMMENT), '  "steps": [']
    for i, s in enumerate(steps):
        out.append('    {')
        out.append('      "action": %s,' % j(s["action"]))
        out.append('      "method": %s,' % j(s["method"]))
        out.append('      "params": {')
        items = list(s["params"].items())
        for n, (k, v) in enumerate(items):
            out.append('        %s: %s%s' % (j(k), j(v), "," if n + 1 < len(items) else ""))
        out.append('      },')
        out.append('      "status": %d,' % s["status"])
        out.append('      "headers": [')
        for n, h in enumerate(s["headers"]):
            out.append('        %s%s' % (j(h), "," if n + 1 < len(s["headers"]) else ""))
        out.append('      ],')
        out.append('      "body": %s' % j(s["body"]))
        out.append('    }%s' % ("," if i + 1 < len(steps) else ""))
    out += ['  ]', '}', '']
    text = "\n".join(out)
    assert json.loads(text) == {"comment": COMMENT, "steps": steps}
    return text


def write(steps, path):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(steps))
    os.replace(tmp, path)


def load(path):
    """recorded.json -> its steps."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)["steps"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(HERE, "recorded.json"))
    a = ap.parse_args()
    steps, _ = record(a.build)
    write(steps, a.out)
    print("recorded %d API calls into %s:" % (len(steps), a.out))
    for i, s in enumerate(steps):
        print("  %2d %-4s %-32s %d" % (i, s["method"], s["action"], s["status"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
