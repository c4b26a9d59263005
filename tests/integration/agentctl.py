"""What the agent's integration tests share: the CLI as a subprocess, the daemon,
the queue and status as JSON, and comparing the simulator's state with a model.

    from agentctl import agent, endpoint, status, queue, Daemon, compare, ...

Credentials of the simulator's test account are in ENV; NOCRED_ENV has none.
"""
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("CDNAGENT_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
CDNAGENT = os.environ.get("CDNAGENT") or os.path.join(ROOT, "build", "cdnagent")
ENV = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID="testid",
           ALIBABA_CLOUD_ACCESS_KEY_SECRET="testsecret")
for _k in ("ALIBABA_CLOUD_SECURITY_TOKEN",):
    ENV.pop(_k, None)
# (and no aliyun CLI profile: HOME where no ~/.aliyun/config.json can be)
NOCRED_ENV = {k: v for k, v in ENV.items() if not k.startswith("ALIBABA_CLOUD_")}
NOCRED_ENV["HOME"] = "/nonexistent"



def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


class Res:
    def __init__(self, rc, out, err):
        self.returncode, self.stdout, self.stderr = rc, out, err

    @property
    def both(self):
        """stdout then stderr, for a failure's detail."""
        return (self.stdout or "") + (self.stderr or "")


def agent(flash, *args, env=None, timeout=60):
    """Runs cdnagent --flash FLASH ARGS; a timeout is a result (rc None), never a hang."""
    cmd = [CDNAGENT, "--flash", flash] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=timeout)
        return Res(p.returncode, p.stdout, p.stderr)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return Res(None, out, "TIMEOUT after %ss: %s" % (timeout, " ".join(cmd)))


def endpoint(sim):
    return ["--endpoint", sim.url, "--ca-file", sim.ca_file]


def status(flash):
    r = agent(flash, "status", "--json", timeout=20)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"items": [], "error": r.stderr + r.stdout}


def queue(flash):
    r = agent(flash, "queue", "--json", timeout=20)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def sim_view(state, domains):
    """{domain: {key: [values...]}} of the simulator's set_req_header configs."""
    out = {}
    for d in domains:
        m = {}
        for h in state["domains"].get(d, {}).get("headers", []):
            m.setdefault(h["Key"], []).append(h["Value"])
        out[d] = m
    return out


def compare(state, model, domains):
    """model: {(domain, key): value or None}. Returns a list of differences ([] = equal)."""
    view = sim_view(state, domains)
    diffs = []
    for d in domains:
        want = {k: v for (dd, k), v in model.items() if dd == d and v is not None}
        got = view[d]
        for k, vals in sorted(got.items()):
            if len(vals) > 1:
                diffs.append("%s %s duplicated on the CDN: %r" % (d, k, vals))
            if k not in want:
                diffs.append("%s %s on the CDN (%r) but not desired" % (d, k, vals))
            elif vals[-1] != want[k] or len(vals) != 1:
                diffs.append("%s %s: CDN %r, desired %r" % (d, k, vals, want[k]))
        for k in sorted(set(want) - set(got)):
            diffs.append("%s %s desired %r, missing on the CDN" % (d, k, want[k]))
    return diffs


def api_lines(sim):
    """The simulator's log lines of API requests (control requests left out), in order."""
    return [ln for ln in sim.log().splitlines()
            if ln.startswith("cdnsim ") and " action=" in ln and " action=_sim " not in ln]


def result_of(line):
    return line.rsplit(" result=", 1)[-1].strip() if " result=" in line else ""


def der_sha256(pem_path):
    with open(pem_path) as f:
        pem = f.read()
    b64 = pem.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
    return hashlib.sha256(base64.b64decode("".join(b64.split()))).hexdigest()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """`cdnagent run` as a subprocess; output goes to files (never a full pipe)."""

    def __init__(self, flash, args, logdir, env=None):
        self.flash, self.args, self.logdir, self.env = flash, list(args), logdir, env or ENV
        self.proc = None
        self.n = 0

    def start(self):
        self.n += 1
        self.out = open(os.path.join(self.logdir, "run%d.out" % self.n), "w")
        self.err = open(os.path.join(self.logdir, "run%d.err" % self.n), "w")
        self.proc = subprocess.Popen([CDNAGENT, "--flash", self.flash, "run"] + self.args,
                                     stdout=self.out, stderr=self.err, env=self.env)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        was_alive = self.alive()
        if self.proc:
            if was_alive:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._close()
        return was_alive

    def term(self, timeout=15):
        """SIGTERM; returns the exit code (None when it had to be killed)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._close()
        return rc

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self):
        for f in (getattr(self, "out", None), getattr(self, "err", None)):
            if f and not f.closed:
                f.close()

    def stderr_text(self):
        try:
            with open(os.path.join(self.logdir, "run%d.err" % self.n)) as f:
                return f.read()
        except OSError:
            return ""


def wait_queue_empty(flash, timeout):
    end = time.monotonic() + timeout
    q = None
    while time.monotonic() < end:
        q = queue(flash)
        if q == []:
            return True, q
        time.sleep(0.2)
    return False, q


