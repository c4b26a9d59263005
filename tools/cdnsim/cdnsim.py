#!/usr/bin/env python3
"""cdnsim: a local stand-in for the Alibaba Cloud CDN OpenAPI (2018-05-10).

Python 3 standard library only. See tools/cdnsim/README.md for actions, error
codes, fault knobs, the state format and what is not simulated.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import unquote, unquote_plus

MAX_BODY_BYTES = 1024 * 1024          # larger request bodies are refused (413)
MAX_SKEW_S = 15 * 60                  # allowed clock skew, and nonce replay window
HUGE_BODY_BYTES = 5 * 1024 * 1024     # size of the "huge" fault's answer
MAX_KEY_LEN = 64
MAX_VALUE_LEN = 1024
HOST_ID = "cdn.aliyuncs.com"

# Names refused by SetReqHeaderConfig: hop-by-hop / framing headers the CDN owns,
# plus vendor-internal prefixes. Compared case-insensitively.
RESERVED_NAMES = {"host", "content-length", "connection", "transfer-encoding", "upgrade",
                  "keep-alive", "te", "trailer", "expect", "via", "x-forwarded-for",
                  "x-real-ip", "authorization"}
ORIGIN_OPERATIONS = ("add", "delete", "modify", "rewrite")
ORIGIN_ARGS = {"header_operation_type", "header_name", "header_value", "duplicate",
               "header_source", "header_destination", "match_all"}
RESERVED_PREFIXES = ("proxy-", "ali-", "eagleeye-", "x-cdn-", "x-oss-", "x-acs-")
TOKEN_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

ERRORS = {  # code -> (HTTP status, message)
    "MissingParameter": (400, "The input parameter \"%s\" that is mandatory for processing this request is not supplied."),
    "InvalidParameter": (400, "The specified parameter \"%s\" is not valid."),
    "InvalidKey.Malformed": (400, "The specified Key is malformed."),
    "InvalidValue.Malformed": (400, "The specified Value is malformed."),
    "InvalidHeaderKey.ValueNotSupported": (400, "The header \"%s\" is reserved and cannot be set."),
    "InvalidConfigId.NotFound": (400, "The specified ConfigId \"%s\" does not exist."),
    "InvalidDomain.NotFound": (404, "The domain provided does not belong to you."),
    "InvalidFunctions.Malformed": (400, "The specified Functions is malformed: %s"),
    "Certificate.FormatError": (400, "The certificate format is invalid: %s"),
    "Certificate.MissMatch": (400, "The certificate does not match the private key."),
    "Certificate.NotFind": (400, "The certificate was not found."),
    "InvalidSSLProtocol.ValueNotSupported": (400, "The specified SSLProtocol is invalid."),
    "SSLPub.MissingParameter": (400, "The SSLPub parameter is required."),
    "SSLPri.MissingParameter": (400, "The SSLPri parameter is required."),
    "InvalidCertName.TooLong": (400, "The CertName exceeds the maximum length of 128 characters."),
    "Abs.CertRegion.ValueNotSupported": (400, "The specified CertRegion is not supported."),
    "InvalidAction.NotFound": (404, "Specified api \"%s\" is not found, please check your url and method."),
    "InvalidVersion": (400, "Specified parameter Version \"%s\" is not valid."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards: %s"),
    "SignatureDoesNotMatch": (403, "Specified signature is not matched with our calculation. server string to sign is:%s"),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired: %s"),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted: %s"),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "ServiceUnAvailable": (503, "The request has failed due to a temporary failure of the server."),
}

FAULT_DEFAULTS = {
    "error_fraction": 0.0,      # fraction of API requests answered 500/503 (not applied)
    "error_status": 503,        # status used by error_fraction
    "next_500": 0,              # the next N API requests get InternalError 500
    "next_503": 0,              # the next N API requests get ServiceUnAvailable 503
    "delay_ms": 0,              # every API answer is delayed this long
    "close_before_apply": 0,    # next N: connection closed, request NOT applied
    "close_after_apply": 0,     # next N: request applied, then connection closed
    "truncate": 0,              # next N: applied, body cut in half, connection closed
    "garbage": 0,               # next N: applied, 200 with a non-JSON body
    "huge": 0,                  # next N: applied, 200 with a 5 MB body
    "chunked": False,           # answers use Transfer-Encoding: chunked
    "retire_legacy_cert": False,  # SetDomainServerCertificate answers 404 InvalidAction.NotFound
    "action_qps": {},           # {"Action": calls/s}: per-action limits per AccessKeyId, on top
                                # of --qps (e.g. SetCdnDomainSSLCertificate 30)
}


def check_faults(upd):
    """Returns a list of problems with a fault update (unknown knobs, wrong types), so that
    a bad knob is refused with 400 instead of breaking every later request."""
    if not isinstance(upd, dict):
        return ["<not a JSON object>"]
    bad = []
    for k, v in upd.items():
        if k in ("reset", "chunked", "retire_legacy_cert"):
            ok = isinstance(v, bool)
        elif k == "action_qps":
            ok = isinstance(v, dict) and all(
                isinstance(a, str) and isinstance(q, (int, float)) and not isinstance(q, bool)
                and q > 0 for a, q in v.items())
        elif k == "error_fraction":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
        elif k == "error_status":
            ok = v in (500, 503) and not isinstance(v, bool)
        elif k in FAULT_DEFAULTS:
            ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
        else:
            bad.append("unknown knob %s" % k)
            continue
        if not ok:
            bad.append("bad value for %s: %r" % (k, v))
    return bad


def same_signature(want, got):
    """Constant-time comparison that also accepts non-ASCII input (which then never
    matches) instead of raising TypeError."""
    return hmac.compare_digest(want.encode("utf-8", "surrogatepass"),
                               got.encode("utf-8", "surrogatepass"))


def enc(s):
    """RFC 3986 percent-encoding used by both signature versions."""
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-_.~"):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def parse_pairs(raw, plus_is_space):
    pairs = []
    unq = unquote_plus if plus_is_space else unquote
    for part in raw.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((unq(k), unq(v)))
    return pairs


def v1_string_to_sign(method, params):
    canon = "&".join("%s=%s" % (enc(k), enc(v))
                     for k, v in sorted(params.items(), key=lambda kv: kv[0].encode())
                     if k != "Signature")
    return method + "&" + enc("/") + "&" + enc(canon)


def v1_sign(secret, sts):
    mac = hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def v3_canonical_request(method, path, query_pairs, headers, signed_names, payload_hash):
    cq = "&".join("%s=%s" % (enc(k), enc(v))
                  for k, v in sorted(query_pairs, key=lambda kv: (kv[0].encode(), kv[1].encode())))
    ch = "".join("%s:%s\n" % (n, (headers.get(n) or "").strip()) for n in signed_names)
    return "\n".join([method, path or "/", cq, ch, ";".join(signed_names), payload_hash])


def v3_sign(secret, canonical_request):
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    return sts, hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()


def changes_of(action, params):
    """The configs a call sets (a batch: its functions on each of its domains), for the
    call log; 0 for calls that set none."""
    if action == "BatchSetCdnDomainConfig":
        try:
            funcs = json.loads(params.get("Functions", "[]"))
        except ValueError:
            return 0
        doms = [n for n in params.get("DomainNames", "").split(",") if n.strip()]
        return len(funcs) * len(doms) if isinstance(funcs, list) else 0
    return 1 if action in ("SetReqHeaderConfig", "DeleteSpecificConfig") else 0


class ApiError(Exception):
    def __init__(self, code, arg=""):
        status, msg = ERRORS[code]
        super().__init__(code)
        self.code = code
        self.status = status
        self.message = msg % arg if "%s" in msg else msg


def parse_time(s):
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(s, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    raise ApiError("InvalidTimeStamp.Format", s)


def first_pem_cert(pem):
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
    return m.group(0) if m else None


def inspect_certificate(cert_pem, key_pem):
    """Runs _inspect_certificate in a throw-away thread: a failed OpenSSL parse can leave
    errors on the calling thread's OpenSSL error queue, which would then break the next
    TLS read on this connection (seen as an SSLError on a keep-alive connection)."""
    box = {}

    def work():
        try:
            box["ok"] = _inspect_certificate(cert_pem, key_pem)
        except ApiError as e:
            box["err"] = e
        except Exception as e:  # unexpected parser failure: still the caller's input
            box["err"] = ApiError("Certificate.FormatError", type(e).__name__)

    th = threading.Thread(target=work)
    th.start()
    th.join()
    if "err" in box:
        raise box["err"]
    return box["ok"]


def iso_time(openssl_time):
    """OpenSSL's "Jun  3 22:03:39 2026 GMT" as the service writes times, ISO 8601 UTC."""
    if not openssl_time:
        return ""
    t = datetime.strptime(openssl_time, "%b %d %H:%M:%S %Y %Z")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _inspect_certificate(cert_pem, key_pem):
    """Returns (fingerprint, notBefore, notAfter, subjectCN), times as the service writes
    them; raises ApiError on bad input."""
    first = first_pem_cert(cert_pem or "")
    if not first:
        raise ApiError("Certificate.FormatError", "no PEM certificate")
    try:
        der = ssl.PEM_cert_to_DER_cert(first)
    except ValueError as e:
        raise ApiError("Certificate.FormatError", str(e))
    with tempfile.TemporaryDirectory() as d:
        cf, kf = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        with open(cf, "w") as f:
            f.write(cert_pem)
        try:
            info = ssl._ssl._test_decode_cert(cf)
        except Exception as e:  # any parse failure is the caller's format error
            raise ApiError("Certificate.FormatError", str(e).split("\n")[0])
        if key_pem is not None:
            fd = os.open(kf, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key_pem)
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cf, kf)
            except ssl.SSLError as e:
                if "MISMATCH" in str(e).upper():
                    raise ApiError("Certificate.MissMatch")
                raise ApiError("Certificate.FormatError", "private key: " + (e.reason or "invalid"))
    cn = ""
    for rdn in info.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
    return (hashlib.sha256(der).hexdigest(), iso_time(info.get("notBefore", "")),
            iso_time(info.get("notAfter", "")), cn)


class Sim:
    """All mutable state, guarded by one lock."""

    def __init__(self, credentials, domains, qps, state_file, faults):
        self.lock = threading.Lock()
        self.credentials = credentials
        self.qps = qps
        self.state_file = state_file
        self.faults = dict(FAULT_DEFAULTS)
        self.faults.update(faults or {})
        self.nonces = {}
        self.buckets = {}
        self.state = {"next_config_id": 1000, "domains": {},
                      "counters": {"by_action": {}, "by_result": {}}}
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                self.state = json.load(f)
        for d in domains:
            self.state["domains"].setdefault(d, {"headers": [], "certificate": None, "rules": []})

    def save(self):
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)

    def count(self, action, result):
        c = self.state["counters"]
        c["by_action"][action] = c["by_action"].get(action, 0) + 1
        c["by_result"][result] = c["by_result"].get(result, 0) + 1

    def take_fault(self, name):
        if self.faults.get(name, 0) > 0:
            self.faults[name] -= 1
            return True
        return False

    def throttle(self, ak, action=None):
        """At most qps accepted calls per AccessKeyId in any sliding 1-second window
        (a token bucket whose refill is exact per second), so "the 11th call within one
        second" is refused deterministically; with the action_qps knob, also at most that
        many of one action. Refused calls do not count."""
        now = time.monotonic()
        limits = [(ak, self.qps)]
        per_action = self.faults.get("action_qps") or {}
        if action in per_action:
            limits.append(((ak, action), per_action[action]))
        recents = []
        for key, limit in limits:
            recent = [t for t in self.buckets.get(key, []) if now - t < 1.0]
            self.buckets[key] = recent
            if len(recent) >= limit:
                raise ApiError("Throttling.User")
            recents.append(recent)
        for recent in recents:
            recent.append(now)

    def check_nonce(self, ak, nonce):
        now = time.time()
        if len(self.nonces) > 100000 or random.random() < 0.01:
            for k in [k for k, t in self.nonces.items() if now - t > MAX_SKEW_S]:
                del self.nonces[k]
        key = (ak, nonce)
        if key in self.nonces and now - self.nonces[key] <= MAX_SKEW_S:
            raise ApiError("SignatureNonceUsed")
        self.nonces[key] = now

    # ---- actions ------------------------------------------------------
    def domain(self, p, name="DomainName"):
        d = p.get(name, "")
        if not d:
            raise ApiError("MissingParameter", name)
        if d not in self.state["domains"]:
            raise ApiError("InvalidDomain.NotFound")
        return self.state["domains"][d]

    @staticmethod
    def validate_header(key, value):
        if not key:
            raise ApiError("MissingParameter", "Key")
        if value is None or value == "":
            raise ApiError("MissingParameter", "Value")
        if len(key) > MAX_KEY_LEN or not TOKEN_RE.match(key):
            raise ApiError("InvalidKey.Malformed")
        if len(value.encode()) > MAX_VALUE_LEN or any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7f for c in value):
            raise ApiError("InvalidValue.Malformed")
        low = key.lower()
        if low in RESERVED_NAMES or low.startswith(RESERVED_PREFIXES):
            raise ApiError("InvalidHeaderKey.ValueNotSupported", key)

    @staticmethod
    def validate_origin_rule(args):
        """origin_request_header ("Custom Request Headers (New)"): the operation, a header
        name of 1..100 characters starting with a letter (an HTTP token, not reserved),
        values of up to 1,000 bytes (several, comma-separated), the duplicate switch, and
        for rewrite its source pattern and destination."""
        op = args.get("header_operation_type")
        if not op:
            raise ApiError("MissingParameter", "header_operation_type")
        if op not in ORIGIN_OPERATIONS:
            raise ApiError("InvalidParameter", "header_operation_type")
        name = args.get("header_name", "")
        if not name:
            raise ApiError("MissingParameter", "header_name")
        if len(name) > 100 or not name[0].isalpha() or not TOKEN_RE.match(name):
            raise ApiError("InvalidParameter", "header_name")
        low = name.lower()
        if low in RESERVED_NAMES or low.startswith(RESERVED_PREFIXES):
            raise ApiError("InvalidHeaderKey.ValueNotSupported", name)
        value = args.get("header_value")
        if op in ("add", "modify") and not value:
            raise ApiError("MissingParameter", "header_value")
        if value is not None and (len(value.encode()) > 1000 or any(
                ord(c) < 0x20 and c != "\t" or ord(c) == 0x7f for c in value)):
            raise ApiError("InvalidParameter", "header_value")
        for switch in ("duplicate", "match_all"):
            if args.get(switch) not in (None, "on", "off"):
                raise ApiError("InvalidParameter", switch)
        if op == "rewrite" and not (args.get("header_source") and args.get("header_destination")):
            raise ApiError("MissingParameter", "header_source")
        unknown = set(args) - ORIGIN_ARGS
        if unknown:
            raise ApiError("InvalidParameter", sorted(unknown)[0])

    def set_rule(self, dom, args, config_id):
        """An origin_request_header rule: added (a new ConfigId even for a name that has
        one, as set_req_header), or modified by ConfigId."""
        rules = dom.setdefault("rules", [])
        if config_id not in (None, ""):
            for r in rules:
                if str(r["ConfigId"]) == str(config_id):
                    r["Args"] = dict(args)
                    return r["ConfigId"]
            raise ApiError("InvalidConfigId.NotFound", str(config_id))
        self.state["next_config_id"] += 1
        cid = self.state["next_config_id"]
        rules.append({"ConfigId": cid, "Args": dict(args)})
        return cid

    def set_header(self, dom, key, value, config_id):
        """Returns the ConfigId. Modify by ConfigId. Without a ConfigId the call
        adds a configuration, as the reference says, even when one with the
        same Key exists: a client that retries an add blindly gets duplicates,
        exactly what the agent's read-back-before-retry must prevent."""
        hs = dom["headers"]
        if config_id not in (None, ""):
            for h in hs:
                if str(h["ConfigId"]) == str(config_id):
                    h["Key"], h["Value"] = key, value
                    return h["ConfigId"]
            raise ApiError("InvalidConfigId.NotFound", str(config_id))
        self.state["next_config_id"] += 1
        cid = self.state["next_config_id"]
        hs.append({"ConfigId": cid, "Key": key, "Value": value})
        return cid

    def a_SetReqHeaderConfig(self, p):
        dom = self.domain(p)
        self.validate_header(p.get("Key", ""), p.get("Value"))
        self.set_header(dom, p["Key"], p["Value"], p.get("ConfigId"))
        return {}

    def a_DeleteSpecificConfig(self, p):
        dom = self.domain(p)
        ids = [i.strip() for i in p.get("ConfigId", "").split(",") if i.strip()]
        if not ids:
            raise ApiError("MissingParameter", "ConfigId")
        rules = dom.setdefault("rules", [])
        # With FunctionName, only that function's configs are found (a client that names
        # the wrong one deletes nothing: its tests see the config left behind).
        fname = p.get("FunctionName", "")
        pools = {"set_req_header": dom["headers"], "origin_request_header": rules}
        have = {str(h["ConfigId"]) for h in pools.get(fname, dom["headers"] + rules)}
        for i in ids:
            if i not in have:
                raise ApiError("InvalidConfigId.NotFound", i)
        dom["headers"] = [h for h in dom["headers"] if str(h["ConfigId"]) not in ids]
        dom["rules"] = [r for r in rules if str(r["ConfigId"]) not in ids]
        return {}

    def a_DescribeCdnDomainConfigs(self, p):
        dom = self.domain(p)
        names = [n.strip() for n in p.get("FunctionNames", "set_req_header").split(",")]
        want_id = p.get("ConfigId", "")
        out = []
        if "set_req_header" in names:
            for h in dom["headers"]:
                if want_id and str(h["ConfigId"]) != want_id:
                    continue
                out.append({"ConfigId": str(h["ConfigId"]), "FunctionName": "set_req_header",
                            "Status": "success", "ParentId": "",
                            "FunctionArgs": {"FunctionArg": [
                                {"ArgName": "key", "ArgValue": h["Key"]},
                                {"ArgName": "value", "ArgValue": h["Value"]}]}})
        if "origin_request_header" in names:
            for r in dom.setdefault("rules", []):
                if want_id and str(r["ConfigId"]) != want_id:
                    continue
                out.append({"ConfigId": str(r["ConfigId"]), "FunctionName":
                            "origin_request_header", "Status": "success", "ParentId": "",
                            "FunctionArgs": {"FunctionArg": [
                                {"ArgName": k, "ArgValue": v} for k, v in r["Args"].items()]}})
        return {"DomainConfigs": {"DomainConfig": out}}

    def a_BatchSetCdnDomainConfig(self, p):
        names = [n.strip() for n in p.get("DomainNames", "").split(",") if n.strip()]
        if not names:
            raise ApiError("MissingParameter", "DomainNames")
        if len(names) > 50:
            raise ApiError("InvalidParameter", "DomainNames")
        if not p.get("Functions"):
            raise ApiError("MissingParameter", "Functions")
        try:
            funcs = json.loads(p["Functions"])
            assert isinstance(funcs, list) and funcs
            plan = []
            for f in funcs:
                fname = f.get("functionName")
                if fname not in ("set_req_header", "origin_request_header"):
                    raise ApiError("InvalidFunctions.Malformed",
                                   "only set_req_header and origin_request_header are simulated")
                args = {a["argName"]: a["argValue"] for a in f.get("functionArgs", [])}
                plan.append((fname, args, f.get("configId")))
        except ApiError:
            raise
        except Exception as e:
            raise ApiError("InvalidFunctions.Malformed", type(e).__name__)
        doms = [self.domain({"DomainName": n}) for n in names]
        for fname, args, cid in plan:  # all checked before anything is applied
            if fname == "set_req_header":
                self.validate_header(args.get("key", ""), args.get("value"))
            else:
                self.validate_origin_rule(args)
            if cid not in (None, ""):
                for dom in doms:
                    pool = dom["headers"] if fname == "set_req_header" else dom.get("rules", [])
                    if not any(str(h["ConfigId"]) == str(cid) for h in pool):
                        raise ApiError("InvalidConfigId.NotFound", str(cid))
        models = []
        for n, dom in zip(names, doms):
            for fname, args, cid in plan:
                got = (self.set_header(dom, args.get("key", ""), args.get("value"), cid)
                       if fname == "set_req_header" else self.set_rule(dom, args, cid))
                models.append({"DomainName": n, "ConfigId": got, "FunctionName": fname})
        return {"DomainConfigList": {"DomainConfigModel": models}}

    def set_cert(self, dom, status, name, ctype, pub, pri, cas=None):
        if status not in ("on", "off"):
            raise ApiError("InvalidParameter", "ServerCertificateStatus")
        if status == "off":
            if dom["certificate"]:
                dom["certificate"]["Status"] = "off"
            else:
                dom["certificate"] = {"Name": "", "Type": "", "Status": "off",
                                      "Fingerprint": "", "NotAfter": "", "Subject": ""}
            return {}
        if len(name) > 128:
            raise ApiError("InvalidCertName.TooLong")
        ctype = ctype or "upload"
        extra = {}
        if ctype == "upload":
            if not pub:
                raise ApiError("MissingParameter", "ServerCertificate")
            if not pri:
                raise ApiError("MissingParameter", "PrivateKey")
            fp, not_before, not_after, cn = inspect_certificate(pub, pri)
            extra["Pem"] = first_pem_cert(pub)
        elif ctype == "cas" and cas is not None:
            name = name or cas["name"]
            fp, not_before, not_after, cn = inspect_certificate(cas["pem"], None)
            extra = {"Pem": first_pem_cert(cas["pem"]), "CertId": cas["id"],
                     "CertRegion": cas["region"]}
        elif ctype in ("cas", "free"):
            if not name:
                raise ApiError("Certificate.NotFind")
            fp, not_before, not_after, cn = "", "", "", ""
        else:
            raise ApiError("InvalidParameter", "CertType")
        dom["certificate"] = dict({"Name": name or ("cert-" + fp[:12]), "Type": ctype,
                                   "Status": "on", "Fingerprint": fp, "NotAfter": not_after,
                                   "NotBefore": not_before, "Subject": cn}, **extra)
        return {}

    def a_SetDomainServerCertificate(self, p):
        if self.faults.get("retire_legacy_cert"):
            raise ApiError("InvalidAction.NotFound", "SetDomainServerCertificate")
        dom = self.domain(p)
        if not p.get("ServerCertificateStatus"):
            raise ApiError("MissingParameter", "ServerCertificateStatus")
        return self.set_cert(dom, p["ServerCertificateStatus"], p.get("CertName", ""),
                             p.get("CertType", ""), p.get("ServerCertificate", ""),
                             p.get("PrivateKey", ""))

    def cas_cert(self, p):
        """The certificate service's certificate CertId names, in CertRegion (default
        cn-hangzhou), from the catalogue POST /_sim/cas fills."""
        cid = p.get("CertId", "")
        region = p.get("CertRegion") or "cn-hangzhou"
        if region not in ("cn-hangzhou", "ap-southeast-1"):
            raise ApiError("Abs.CertRegion.ValueNotSupported")
        if not cid:
            raise ApiError("MissingParameter", "CertId")
        if not cid.isdigit():
            raise ApiError("InvalidParameter", "CertId")
        cas = self.state.get("cas", {}).get(cid)
        if not cas or cas["region"] != region:
            raise ApiError("Certificate.NotFind")
        return cas

    def a_SetCdnDomainSSLCertificate(self, p):
        dom = self.domain(p)
        proto = p.get("SSLProtocol")
        if not proto:
            raise ApiError("MissingParameter", "SSLProtocol")
        if proto not in ("on", "off"):
            raise ApiError("InvalidSSLProtocol.ValueNotSupported")
        # (Env: "staging" is a canary release; any other value a normal one, as documented)
        ctype = p.get("CertType") or "upload"
        if proto == "on" and ctype == "upload":
            if not p.get("SSLPub"):
                raise ApiError("SSLPub.MissingParameter")
            if not p.get("SSLPri"):
                raise ApiError("SSLPri.MissingParameter")
        cas = self.cas_cert(p) if proto == "on" and ctype == "cas" else None
        return self.set_cert(dom, proto, p.get("CertName", ""), ctype, p.get("SSLPub", ""),
                             p.get("SSLPri", ""), cas)

    def a_DescribeDomainCertificateInfo(self, p):
        name = p.get("DomainName", "")
        dom = self.domain(p)
        c = dom["certificate"]
        infos = []
        if c:
            info = {"DomainName": name, "CertName": c["Name"], "CertType": c["Type"],
                    "CertDomainName": c.get("Subject", ""),
                    "CertStartTime": c.get("NotBefore", ""), "CertExpireTime": c["NotAfter"],
                    "ServerCertificateStatus": c["Status"], "Status": "success"}
            if c.get("Pem"):
                info["ServerCertificate"] = c["Pem"]
            if c.get("CertId"):
                info.update(CertId=c["CertId"], CertRegion=c["CertRegion"])
            infos.append(info)
        return {"CertInfos": {"CertInfo": infos}}

    def public_state(self):
        out = {"domains": {}, "counters": self.state["counters"], "faults": self.faults}
        for name, d in self.state["domains"].items():
            c = d["certificate"]
            out["domains"][name] = {
                "headers": [dict(h) for h in d["headers"]],
                "rules": [{"ConfigId": r["ConfigId"], "Args": dict(r["Args"])}
                          for r in d.get("rules", [])],
                "certificate": None if not c else {
                    "name": c["Name"], "type": c["Type"], "status": c["Status"],
                    "fingerprint": c["Fingerprint"], "notAfter": c["NotAfter"]}}
        return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server_version = "cdnsim/1.0"
    # headers and body leave in two writes: with Nagle on, the body waits for
    # the client's delayed ACK of the headers (40 ms a call on Linux loopback)
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # one line per request, on stderr
        sys.stderr.write("cdnsim %s %s\n" % (self.address_string(), fmt % args))

    def log_request(self, code="-", size="-"):
        pass  # logged by us with the action and the result code

    def log_line(self, status, action, result):
        sys.stderr.write("cdnsim %s %s %s action=%s status=%s result=%s\n" % (
            # the query is left out: it may carry a SecurityToken
            self.client_address[0], self.command, self.path.partition("?")[0][:80], action,
            status, result))
        sys.stderr.flush()

    def send_body(self, status, body, ctype="application/json;charset=utf-8", chunked=False,
                  truncate=False):
        hdrs = [("Server", self.server_version), ("Date", formatdate(usegmt=True)),
                ("Content-Type", ctype), ("x-acs-request-id", getattr(self, "request_id", ""))]
        if chunked:
            hdrs.append(("Transfer-Encoding", "chunked"))
        else:
            hdrs.append(("Content-Length", str(len(body))))
        if truncate:
            hdrs.append(("Connection", "close"))
            self.close_connection = True
        # --record: written (and flushed) before the answer leaves, so a client that has
        # its answer always finds it in the file
        rec = getattr(self, "record", None)
        if rec is not None:
            self.record = None
            self.server.recorder.write(dict(rec, status=status, headers=[list(h) for h in hdrs],
                                            body=(body[:len(body) // 2] if truncate else body)
                                            .decode("utf-8", "replace")))
        self.send_response_only(status)
        for name, value in hdrs:
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            return
        if chunked:
            step = 7  # small chunks so clients meet chunk boundaries everywhere
            for i in range(0, len(body), step):
                part = body[i:i + step]
                self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status, obj, **kw):
        self.send_body(status, json.dumps(obj).encode(), **kw)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding"):
            raise ApiError("InvalidParameter", "Transfer-Encoding")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError("InvalidParameter", "Content-Length")
        if n < 0 or n > MAX_BODY_BYTES:
            raise ApiError("InvalidParameter", "Content-Length")
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def record_start(self, path, query, body):
        """--record: what the answer's line says about the request (None when off)."""
        if self.server.recorder is None or path.startswith("/_sim/"):
            return None
        params = {}
        try:
            params.update(parse_pairs(query, False))
            if body and "x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
                params.update(parse_pairs(body.decode("utf-8", "replace"), True))
        except Exception:
            pass
        # the action the client asked for: x-acs-action (V3) or the Action parameter (V1)
        action = self.headers.get("x-acs-action") or params.get("Action", "")
        return {"action": action, "params": params, "method": self.command}

    def dispatch(self):
        sim = self.server.sim
        self.request_id = str(uuid.uuid4()).upper()
        self.record = None
        path, _, query = self.path.partition("?")
        try:
            body = self.read_body()
        except ApiError as e:
            self.record = self.record_start(path, query, b"")
            self.close_connection = True
            too_big = (self.headers.get("Content-Length") or "0").isdigit() and \
                int(self.headers.get("Content-Length")) > MAX_BODY_BYTES
            self.send_json(413 if too_big else 400, self.err_obj(e))
            self.log_line(413 if too_big else 400, "-", e.code)
            return
        if path.startswith("/_sim/"):
            return self.control(path, body)
        self.record = self.record_start(path, query, body)
        self.api(path, query, body)

    def control(self, path, body):
        sim = self.server.sim
        with sim.lock:
            if path == "/_sim/state" and self.command == "GET":
                out = sim.public_state()
            elif path == "/_sim/faults" and self.command == "POST":
                try:
                    upd = json.loads(body or b"{}")
                    bad = check_faults(upd)
                except Exception:
                    bad = ["<not a JSON object>"]
                if bad:
                    self.send_json(400, {"error": "bad fault knobs: %s" % bad})
                    self.log_line(400, "_sim", "bad-faults")
                    return
                if upd.pop("reset", False):
                    sim.faults = dict(FAULT_DEFAULTS)
                sim.faults.update(upd)
                out = sim.faults
            elif path == "/_sim/cas" and self.command == "POST":
                try:  # {"id": digits, "pem": chain, "name": ..., "region": ...}
                    c = json.loads(body or b"{}")
                    cid = str(c["id"])
                    inspect_certificate(c["pem"], None)
                    assert cid.isdigit()
                    entry = {"id": cid, "pem": c["pem"], "name": c.get("name") or "cas-" + cid,
                             "region": c.get("region") or "cn-hangzhou"}
                except Exception:
                    self.send_json(400, {"error": "want {id: digits, pem: certificate, name?, "
                                                  "region?}"})
                    self.log_line(400, "_sim", "bad-cas")
                    return
                sim.state.setdefault("cas", {})[cid] = entry
                sim.save()
                out = {"cas": sorted(sim.state["cas"])}
            elif path == "/_sim/reset" and self.command == "POST":
                for d in sim.state["domains"].values():
                    d["headers"], d["certificate"], d["rules"] = [], None, []
                sim.state["counters"] = {"by_action": {}, "by_result": {}}
                sim.faults = dict(FAULT_DEFAULTS)
                sim.nonces.clear()
                sim.buckets.clear()
                sim.save()
                out = {"reset": True}
            else:
                self.send_json(404, {"error": "no such control endpoint"})
                self.log_line(404, "_sim", "not-found")
                return
            data = json.dumps(out).encode()
        self.send_body(200, data)
        self.log_line(200, "_sim", path)

    def err_obj(self, e):
        return {"RequestId": self.request_id, "HostId": HOST_ID, "Code": e.code,
                "Message": e.message,
                "Recommend": "https://api.aliyun.com/troubleshoot?q=%s" % e.code}

    def authenticate(self, path, query, body, params):
        """Verifies V1 or V3; returns (action, AccessKeyId)."""
        sim = self.server.sim
        auth = self.headers.get("Authorization", "")
        if auth.startswith("ACS3-HMAC-SHA256"):
            fields = {}
            for part in auth[len("ACS3-HMAC-SHA256"):].split(","):
                k, _, v = part.strip().partition("=")
                fields[k] = v
            ak, signed, sig = fields.get("Credential"), fields.get("SignedHeaders"), fields.get("Signature")
            if not ak or not signed or not sig:
                raise ApiError("IncompleteSignature", "Authorization lacks Credential, SignedHeaders or Signature")
            if ak not in sim.credentials:
                raise ApiError("InvalidAccessKeyId.NotFound")
            hdrs = {k.lower(): v for k, v in self.headers.items()}
            names = signed.split(";")
            for need in ("host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce",
                         "x-acs-content-sha256"):
                if need not in names or need not in hdrs:
                    raise ApiError("IncompleteSignature", "header %s must be sent and signed" % need)
            if hdrs["x-acs-content-sha256"] != hashlib.sha256(body).hexdigest():
                raise ApiError("IncompleteSignature", "x-acs-content-sha256 does not match the body")
            cr = v3_canonical_request(self.command, path, parse_pairs(query, False), hdrs,
                                      sorted(names), hdrs["x-acs-content-sha256"])
            sts, want = v3_sign(sim.credentials[ak], cr)
            if not same_signature(want, sig.lower()):
                raise ApiError("SignatureDoesNotMatch", sts.replace("\n", "\\n"))
            ts, nonce, action = hdrs["x-acs-date"], hdrs["x-acs-signature-nonce"], hdrs["x-acs-action"]
            version = hdrs.get("x-acs-version", "")
        else:
            if "Signature" not in params:
                raise ApiError("MissingParameter", "Signature")
            for need in ("AccessKeyId", "SignatureNonce", "Timestamp"):
                if not params.get(need):
                    raise ApiError("MissingParameter", need)
            if params.get("SignatureMethod", "HMAC-SHA1") != "HMAC-SHA1":
                raise ApiError("IncompleteSignature", "SignatureMethod must be HMAC-SHA1")
            ak = params["AccessKeyId"]
            if ak not in sim.credentials:
                raise ApiError("InvalidAccessKeyId.NotFound")
            sts = v1_string_to_sign(self.command, params)
            if not same_signature(v1_sign(sim.credentials[ak], sts), params["Signature"]):
                raise ApiError("SignatureDoesNotMatch", sts)
            ts, nonce, action = params["Timestamp"], params["SignatureNonce"], params.get("Action", "")
            version = params.get("Version", "")
        skew = abs(time.time() - parse_time(ts))
        if skew > MAX_SKEW_S:
            raise ApiError("InvalidTimeStamp.Expired", "%s (server time %s)" % (
                ts, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")))
        with sim.lock:
            sim.check_nonce(ak, nonce)
        if version and version != "2018-05-10":
            raise ApiError("InvalidVersion", version)
        if not action:
            raise ApiError("MissingParameter", "Action")
        return action, ak

    def api(self, path, query, body):
        sim = self.server.sim
        with sim.lock:
            f = dict(sim.faults)
            if f["delay_ms"]:
                pass
            fault = None
            for name in ("next_500", "next_503", "close_before_apply"):
                if sim.take_fault(name):
                    fault = name
                    break
            if not fault and f["error_fraction"] and random.random() < f["error_fraction"]:
                fault = "next_503" if int(f["error_status"]) == 503 else "next_500"
        if f["delay_ms"]:
            time.sleep(f["delay_ms"] / 1000.0)
        if fault == "close_before_apply":
            self.log_line("-", "-", "fault:close_before_apply")
            return self.drop()
        if fault:
            e = ApiError("InternalError" if fault == "next_500" else "ServiceUnAvailable")
            self.send_json(e.status, self.err_obj(e), chunked=f["chunked"])
            self.log_line(e.status, "-", "fault:" + e.code)
            return
        action = "-"
        params = {}
        try:
            params = dict(parse_pairs(query, False))
            ctype = self.headers.get("Content-Type", "")
            if body and "x-www-form-urlencoded" in ctype:
                params.update(parse_pairs(body.decode("utf-8", "replace"), True))
            action, ak = self.authenticate(path, query, body, params)
            handler = getattr(sim, "a_" + action, None)
            if handler is None:
                raise ApiError("InvalidAction.NotFound", action)
            with sim.lock:
                sim.throttle(ak, action)
                result = handler(params)
                sim.count(action, "Success")
                sim.save()
                post = None
                for name in ("close_after_apply", "truncate", "garbage", "huge"):
                    if sim.take_fault(name):
                        post = name
                        break
            status, out = 200, dict(result, RequestId=self.request_id)
            code = "Success"
        except ApiError as e:
            status, out, code, post = e.status, self.err_obj(e), e.code, None
            with sim.lock:
                sim.count(action, e.code)
                sim.save()  # --state keeps the error counters too
        except Exception as e:  # a bug here must never take the server down
            sys.stderr.write("cdnsim internal error: %r\n" % (e,))
            err = ApiError("InternalError")
            status, out, code, post = 500, self.err_obj(err), err.code, None
        if self.server.call_log is not None:  # --call-log: one line per API call
            with sim.lock:
                self.server.call_log.write(json.dumps({
                    "t": round(time.time(), 4), "action": action, "status": status,
                    "code": code, "domain": params.get("DomainName") or
                    params.get("DomainNames", ""), "changes": changes_of(action, params)}) + "\n")
                self.server.call_log.flush()
        if post == "close_after_apply":
            self.log_line("-", action, "applied;fault:close_after_apply")
            return self.drop()
        if post == "garbage":
            self.send_body(200, b"<html>\x00\xff not json {{{", ctype="application/json",
                           chunked=f["chunked"])
        elif post == "huge":
            pad = b" " * (HUGE_BODY_BYTES - 64)
            self.send_body(200, b'{"RequestId":"' + self.request_id.encode() + b'","Pad":"' +
                           pad + b'"}', chunked=f["chunked"])
        else:
            self.send_json(status, out, chunked=f["chunked"] and post != "truncate",
                           truncate=(post == "truncate"))
        self.log_line(status, action, code + (";fault:" + post if post else ""))


class Recorder:
    """--record FILE: one JSON line per answered API request, appended and flushed."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", encoding="utf-8")

    def write(self, obj):
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()


class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a fleet connects at once (tools/fleet)
    recorder = None
    call_log = None

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        sys.stderr.write("cdnsim %s connection error: %s\n" % (client_address[0], type(e).__name__))


class Server6(Server):
    address_family = socket.AF_INET6


def parse_credentials(s):
    out = {}
    for item in s.split(","):
        if item:
            ak, _, secret = item.partition(":")
            out[ak] = secret
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="local Alibaba Cloud CDN OpenAPI simulator")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--credentials", default="testid:testsecret")
    ap.add_argument("--domains", default="cdn.example.com,www.example.com")
    ap.add_argument("--qps", type=float, default=10)
    ap.add_argument("--state")
    ap.add_argument("--faults", default="{}", help="JSON object of fault knobs")
    ap.add_argument("--call-log", metavar="FILE",
                    help="one JSON line per API call: t (Unix time), action, status, code, "
                         "domain (tools/fleet reads it)")
    ap.add_argument("--record", metavar="FILE",
                    help="append one JSON line per answered API request (request and answer)")
    a = ap.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    v6 = host.startswith("[") and host.endswith("]")
    if v6:  # --listen [::1]:0
        host = host[1:-1]
    try:
        faults = json.loads(a.faults)
    except ValueError as e:
        ap.error("--faults: not JSON: %s" % e)
    bad = check_faults(faults)
    if bad:
        ap.error("--faults: %s" % "; ".join(bad))
    faults.pop("reset", None)
    sim = Sim(parse_credentials(a.credentials), [d for d in a.domains.split(",") if d],
              a.qps, a.state, faults)
    srv = (Server6 if v6 else Server)((host, int(port)), Handler)
    srv.sim = sim
    if a.record:
        srv.recorder = Recorder(a.record)
    if a.call_log:
        srv.call_log = open(a.call_log, "a")
    scheme = "http"
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        # handshake lazily in the handler thread, so one bad client cannot block accept()
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"
    print("cdnsim listening on %s://%s:%d" % (scheme, "[%s]" % host if v6 else host,
                                              srv.server_address[1]), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
