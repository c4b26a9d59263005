"""Start and stop tools/cdnsim from integration tests (Python stdlib only).

    import sys, os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from simctl import Sim

    with Sim(tls=True, qps=10, domains=["cdn.example.com"],
             credentials=[("testid", "testsecret")], faults=None) as sim:
        sim.url        # "https://127.0.0.1:PORT" (http:// when tls=False)
        sim.host_port  # "127.0.0.1:PORT"
        sim.port       # PORT (int)
        sim.ca_file    # test CA that signed the server certificate (None when tls=False)
        sim.pki_dir    # build/testpki: ca.crt, server*.crt/.key, other-ca.crt,
                       # cdn.example.com.crt/.key, cdn.example.com-mismatch.key
        sim.state()    # dict from GET /_sim/state: {"domains": {name: {"headers": [
                       #   {"ConfigId", "Key", "Value"}], "certificate": None|{name, type,
                       #   status, fingerprint, notAfter}}}, "counters": {"by_action": {},
                       #   "by_result": {}}, "faults": {...}}
        sim.set_faults({"next_503": 2})  # POST /_sim/faults; returns the active knobs
        sim.reset()    # POST /_sim/reset: empty domains, counters and faults
        sim.add_cas(id, pem, name, region)  # POST /_sim/cas: a certificate service's cert
        sim.log()      # everything the simulator wrote on stderr so far (one line a request)

Sim(...) also takes server_cert="server-expired" (or "server-wronghost": any name of a
cert/key pair in pki_dir), listen="::1" (an IPv6 loopback server), port=N (a fixed port:
a simulator started again where its clients look), state_file=PATH (--state persistence),
extra_args=[...].
sim.start() / sim.stop() work without `with`; stop() is idempotent.
The test PKI is created on first use by tools/cdnsim/mkcerts.sh into
$CDNAGENT_BUILD/testpki (default build/testpki), under a file lock.
"""
import fcntl
import json
import os
import ssl
import subprocess
import sys
import threading
import urllib.request

ROOT = os.environ.get("CDNAGENT_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("CDNAGENT_BUILD") or os.path.join(ROOT, "build")
SIM_PY = os.path.join(ROOT, "tools", "cdnsim", "cdnsim.py")
MKCERTS = os.path.join(ROOT, "tools", "cdnsim", "mkcerts.sh")


def ensure_pki(pki_dir=None):
    """Creates the test PKI once (safe when several tests race); returns its directory."""
    pki_dir = pki_dir or os.path.join(os.path.abspath(BUILD), "testpki")
    os.makedirs(os.path.dirname(pki_dir), exist_ok=True)
    with open(pki_dir + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(pki_dir, "done.v4")):
            subprocess.run(["sh", MKCERTS, pki_dir], check=True,
                           stdout=subprocess.DEVNULL)
    return pki_dir


class Sim:
    def __init__(self, tls=False, qps=10, domains=("cdn.example.com", "www.example.com"),
                 credentials=(("testid", "testsecret"),), faults=None, state_file=None,
                 server_cert="server", extra_args=(), listen="127.0.0.1", port=0):
        self.tls = tls
        self.listen = listen
        self.want_port = port
        self.qps = qps
        self.domains = list(domains)
        self.credentials = list(credentials)
        self.faults = faults
        self.state_file = state_file
        self.server_cert = server_cert
        self.extra_args = list(extra_args)
        self.proc = None
        self.url = self.host_port = self.port = None
        self.pki_dir = ensure_pki() if tls else None
        self.ca_file = os.path.join(self.pki_dir, "ca.crt") if tls else None
        self._log = []

    def start(self):
        args = [sys.executable, SIM_PY, "--listen",
                ("[%s]:%d" if ":" in self.listen else "%s:%d") % (self.listen, self.want_port),
                "--qps", str(self.qps),
                "--domains", ",".join(self.domains),
                "--credentials", ",".join("%s:%s" % c for c in self.credentials)]
        if self.tls:
            base = os.path.join(self.pki_dir, self.server_cert)
            args += ["--tls-cert", base + ".crt", "--tls-key", base + ".key"]
        if self.faults:
            args += ["--faults", json.dumps(self.faults)]
        if self.state_file:
            args += ["--state", self.state_file]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("cdnsim listening on "):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError("cdnsim did not start: %r %s" % (line, err))
        self.url = line.split()[-1]
        self.host_port = self.url.split("://", 1)[1]
        self.port = int(self.host_port.rsplit(":", 1)[1])
        t = threading.Thread(target=self._drain, daemon=True)
        t.start()
        return self

    def _drain(self):
        for line in self.proc.stderr:
            self._log.append(line)

    def log(self):
        return "".join(self._log)

    def _ctl(self, method, path, obj=None):
        data = json.dumps(obj).encode() if obj is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        # the control channel must work with the deliberately bad server certificates
        # (expired, wrong host) too, so it does not verify; API clients under test do
        ctx = ssl._create_unverified_context() if self.tls else None
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return json.loads(r.read())

    def state(self):
        return self._ctl("GET", "/_sim/state")

    def set_faults(self, faults):
        return self._ctl("POST", "/_sim/faults", faults)

    def reset(self):
        return self._ctl("POST", "/_sim/reset", {})

    def add_cas(self, cert_id, pem, name=None, region=None):
        """A certificate in the certificate service's catalogue (CertType cas)."""
        return self._ctl("POST", "/_sim/cas", {"id": str(cert_id), "pem": pem, "name": name,
                                               "region": region})

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
