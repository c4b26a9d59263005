#!/usr/bin/env python3
"""The `make run` demo: a demo device is provisioned from a manifest, as on the
factory line, and pushes its headers and certificate to the local CDN API
simulator over verified HTTPS.

1. creates the throw-away test PKI (tools/cdnsim/mkcerts.sh) if needed: a test CA,
   the simulator's server certificate, and a certificate for the demo domain;
2. starts tools/cdnsim over HTTPS on a free loopback port;
3. writes the device manifest (endpoint, credentials, CA bundle, three headers, the
   certificate) and provisions a fresh device image from it with
   `cdnagent provision`; `cdnagent inspect` shows what the device holds, secrets
   redacted (they are sealed with the device key, which stays off the image);
4. runs `cdnagent sync`, which takes endpoint, credentials and trust from the image;
5. prints the simulator's state next to the agent's status, and stops the simulator.

The credentials are demo values that only the simulator knows: nothing leaves
this machine. Exit status: 0 when everything was delivered and the simulator
holds exactly what the device wanted.
"""
import json
import os
import shlex
import ssl
import subprocess
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
AGENT = os.path.join(BUILD, "cdnagent")
PKI = os.path.join(BUILD, "testpki")
DEMO = os.path.join(BUILD, "demo")
FLASH = os.path.join(DEMO, "device.flash")
DOMAIN = "cdn.example.com"
KEY_ID, SECRET = "LTAI-DEMO-DEVICE", "demo-secret-known-only-to-the-simulator"
HEADERS = [("X-Origin-Auth", "device-42"), ("Cache-Control", "max-age=3600, public"),
           ("X-Edge-Region", "eu-central")]


def step(title):
    print("\n== %s" % title, flush=True)


def agent(*args, check=True):
    # Everything comes from the provisioned image: no credentials in the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    cmd = [AGENT, "--flash", FLASH] + list(args)
    print("$ cdnagent --flash %s %s" % (os.path.relpath(FLASH, ROOT), shlex.join(args)), flush=True)
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    out = p.stdout.decode()
    sys.stdout.write(out)
    if check and p.returncode != 0:
        raise SystemExit("demo: cdnagent %s failed (exit %d)" % (args[0], p.returncode))
    return p.returncode, out


def main():
    if not os.access(AGENT, os.X_OK):
        raise SystemExit("demo: %s is not built (run make)" % AGENT)
    subprocess.run(["sh", os.path.join(ROOT, "tools", "cdnsim", "mkcerts.sh"), PKI], check=True,
                   stdout=subprocess.DEVNULL)
    os.makedirs(DEMO, exist_ok=True)
    for f in (FLASH, FLASH + ".deliver.lock", FLASH + ".key"):
        if os.path.exists(f):
            os.remove(f)

    step("start the CDN API simulator (HTTPS, test CA, demo credentials)")
    sim = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "cdnsim", "cdnsim.py"),
         "--listen", "127.0.0.1:0", "--tls-cert", os.path.join(PKI, "server.crt"),
         "--tls-key", os.path.join(PKI, "server.key"), "--credentials",
         "%s:%s" % (KEY_ID, SECRET), "--domains", DOMAIN],
        stdout=subprocess.PIPE, stderr=open(os.path.join(DEMO, "cdnsim.log"), "w"))
    try:
        line = sim.stdout.readline().decode().strip()
        if not line.startswith("cdnsim listening on "):
            raise SystemExit("demo: the simulator did not start: %r" % line)
        url = line.rsplit(" ", 1)[1]
        print(line)

        step("provision the demo device from its manifest (as the factory line does)")
        manifest = {
            "endpoint": url,
            "credentials": {"access_key_id": KEY_ID, "access_key_secret": SECRET},
            "signature": "v3",
            "ca_bundle": os.path.join(PKI, "ca.crt"),
            "flash": {"sector_size": 4096, "sector_count": 64, "write_size": 8},
            "domains": [{
                "name": DOMAIN,
                "headers": [{"key": k, "value": v} for k, v in HEADERS],
                "certificate": {"cert": os.path.join(PKI, DOMAIN + ".crt"),
                                "key": os.path.join(PKI, DOMAIN + ".key"), "name": "demo-cert"},
            }],
        }
        mpath = os.path.join(DEMO, "device.json")
        with open(mpath, "w") as f:
            json.dump(manifest, f, indent=2)
        agent("provision", mpath)
        agent("inspect")

        step("deliver: cdnagent sync over verified HTTPS")
        rc, _ = agent("sync", check=False)

        step("the simulator (the CDN) now holds")
        ctx = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
        with urllib.request.urlopen(url + "/_sim/state", context=ctx, timeout=10) as r:
            state = json.load(r)
        d = state["domains"][DOMAIN]
        for h in d["headers"]:
            print("  header %-16s = %-22s ConfigId %s" % (h["Key"], h["Value"], h["ConfigId"]))
        cert = d.get("certificate") or {}
        print("  certificate %s (%s), status %s, sha256 %s..., expires %s" % (
            cert.get("name"), cert.get("type"), cert.get("status"),
            (cert.get("fingerprint") or "")[:16], cert.get("notAfter")))
        print("  API calls: %s" % json.dumps(state["counters"]["by_action"], sort_keys=True))

        step("the agent's status (desired vs delivered)")
        agent("status")

        want = sorted(HEADERS)
        have = sorted((h["Key"], h["Value"]) for h in d["headers"])
        ok = rc == 0 and want == have and cert.get("status") == "on"
        print("\ndemo: %s" % ("OK: the CDN holds exactly what the device wanted" if ok else
                              "MISMATCH: the CDN does not hold what the device wanted"))
        return 0 if ok else 1
    finally:
        step("stop the simulator")
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
        print("stopped")


if __name__ == "__main__":
    sys.exit(main())
