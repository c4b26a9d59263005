#!/usr/bin/env python3
"""Write the committed seed corpora tests/fuzz/corpus/NAME/ (see README.md).

    tests/fuzz/make_seeds.py RECORD.jsonl PKI_DIR CDNAGENT STORE_IMAGE

RECORD.jsonl: a cdnsim --record file (the replies seeded into http and
cdnapi); PKI_DIR: the test PKI (build/testpki: ca.crt and the
cdn.example.com certificate and key of tests/target/manifest.json);
CDNAGENT and STORE_IMAGE: the host CLI and build/host/tools/store_image,
which write the store images seeded into store. Seeds are named after what
they hold; rerunning replaces them."""
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           500: "Internal Server Error", 503: "Service Unavailable"}


def write(name, fname, data):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data)


def raw_reply(rec, close=False):
    """The reply as cdnsim sent it on the wire (chunked when it said so)."""
    body = rec["body"].encode()
    head = "HTTP/1.1 %d %s\r\n" % (rec["status"], REASONS.get(rec["status"], "X"))
    chunked = False
    for k, v in rec["headers"]:
        chunked |= k.lower() == "transfer-encoding" and v == "chunked"
        head += "%s: %s\r\n" % (k, v)
    if close:
        head += "Connection: close\r\n"
    out = (head + "\r\n").encode()
    if chunked:
        half = len(body) // 2
        for part in (body[:half], body[half:]):
            out += b"%x\r\n" % len(part) + part + b"\r\n"
        out += b"0\r\n\r\n"
    else:
        out += body
    return out


def http_and_cdnapi(records):
    seen = {}
    for rec in records:
        key = "%s-%d%s" % (rec["action"], rec["status"],
                           "-chunked" if any(k == "Transfer-Encoding" for k, _ in rec["headers"]) else "")
        seen.setdefault(key, rec)
    for i, (key, rec) in enumerate(sorted(seen.items())):
        # http: chunking seed, flags (see fuzz_http.c), the stream
        write("http", key, bytes([0x20 * (i % 8) + 3, 0]) + raw_reply(rec))
        # cdnapi: status as 200 + u16 % 400, the body
        write("cdnapi", key, struct.pack("<H", rec["status"] - 200) + rec["body"].encode())
    recs = list(seen.values())
    # two replies on one kept-alive connection, the second one closing it
    write("http", "two-replies-keepalive", bytes([0xc5, 0x01]) + raw_reply(recs[0]) +
          raw_reply(recs[-1], close=True))
    # a read-until-close body (no length), in one-byte chunks
    write("http", "until-close", bytes([0x01, 0x00]) +
          b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + recs[0]["body"].encode())
    write("http", "small-body-limit", bytes([0x60, 0x02]) + raw_reply(recs[0]))


def manifest(pki):
    text = open(os.path.join(ROOT, "tests", "target", "manifest.json"), "rb").read()
    ca = open(os.path.join(pki, "ca.crt"), "rb").read()
    crt = open(os.path.join(pki, "cdn.example.com.crt"), "rb").read()
    key = open(os.path.join(pki, "cdn.example.com.key"), "rb").read()
    write("manifest", "target-manifest", text + b"\0" + ca + b"\0" + crt + b"\0" + key)
    m = json.loads(text)
    del m["domains"][0]["certificate"]
    m["signature"] = "v1"
    m["credentials"]["security_token"] = "sts-token-demo"
    m["domains"].append({"name": "*.img.example.com", "headers": [{"key": "X-B", "value": "2"}]})
    m["flash"] = {"sector_size": 1024, "sector_count": 8, "write_size": 4}
    write("manifest", "two-domains-v1-sts", json.dumps(m).encode() + b"\0" + ca)
    bad = dict(m, endpoint="http://x", retry={"base_ms": 5, "cap_ms": 1}, extra=1)
    write("manifest", "refused", json.dumps(bad).encode() + b"\0" + ca)


def settings(pki):
    ca = open(os.path.join(pki, "ca.crt"), "rb").read()
    gset = bytes([1, 0]) + struct.pack("<HIII", 20, 1000, 300000, 10000)
    recs = [b"https://127.0.0.1:8443", b"LTAI-DEMO-DEVICE", gset, ca,
            b"demo-secret-known-only-to-the-simulator", b"sts-token-demo"]

    def seed(flags, present, values=recs):
        out = bytes([flags, present])
        for v in values:
            out += struct.pack("<H", len(v)) + v
        return out
    write("settings", "valid-sts", seed(0x03, 0x3f))
    write("settings", "valid-no-sts-no-ca", seed(0x01, 0x17))
    write("settings", "raw-secrets", seed(0x00, 0x3f))
    write("settings", "swapped-secrets", seed(0x0f, 0x3f))
    write("settings", "wrong-key-id", seed(0x13, 0x3f))
    write("settings", "bad-gset", seed(0x01, 0x17, recs[:2] + [b"\x02" + gset[1:]] + recs[3:]))


def sign():
    def field(s):
        return bytes([len(s)]) + s

    def params(ps):
        return b"".join(field(n) + struct.pack("<H", len(v)) + v for n, v in ps)
    head = field(b"cdn.aliyuncs.com") + field(b"SetReqHeaderConfig") + field(b"testid") + \
        field(b"testsecret")
    ps = params([(b"DomainName", b"cdn.example.com"), (b"Key", b"X-Origin-Auth"),
                 (b"Value", b"v 1 *+~/\xe4\xb8\xad"), (b"ConfigId", b"1001")])
    write("sign", "v3-post", bytes([0x02]) + head + ps)
    write("sign", "v3-get", bytes([0x00]) + head + ps)
    write("sign", "v1-get", bytes([0x01]) + head + ps)
    write("sign", "v1-post-sts", bytes([0x07]) + head + bytes([3]) + field(b"sts-token/+=") + ps)
    write("sign", "v3-post-sts-provider-version", bytes([0x1e]) + head + bytes([2]) +
          field(b"sts-token") + field(b"static_sts") + field(b"2018-05-10") + ps)
    fn = json.dumps([{"functionArgs": [{"argName": "key", "argValue": "X-A"},
                                       {"argName": "value", "argValue": "v \"1\""}],
                      "functionName": "set_req_header"}]).encode()
    write("sign", "v3-batch", bytes([0x02]) + field(b"cdn.aliyuncs.com") +
          field(b"BatchSetCdnDomainConfig") + field(b"testid") + field(b"testsecret") +
          params([(b"DomainNames", b"a.example.com,b.example.com"), (b"Functions", fn)]))
    write("sign", "v3-big-value", bytes([0x22]) + head + params([(b"ServerCertificate", b"-----BEGIN")]))


# Store scripts (fuzz_store.c): op byte % 8, then the op's bytes.
SCRIPT = bytes([
    0, 6, 20, 7,            # put k0, 20 bytes
    1, 0, 200, 33, 9,       # put (first key), 40*90+33 bytes: chunked across sectors
    5, 6,                   # get
    2, 1,                   # delete
    3, 0x02, 6, 1, 10, 1, 7, 0, 8, 3, 5, 2,  # transaction of 3 ops, committed
    4,                      # remount
    3, 0x81, 9, 1, 10, 1,   # transaction of 2 ops, aborted
    6, 7,                   # fsck, iterate
    2, 3, 0, 4, 30, 2, 4])  # delete, put, remount


def store(cdnagent, store_image):
    tmp = tempfile.mkdtemp()
    try:
        def image_seed(name, sel, path):
            img = open(path, "rb").read().rstrip(b"\xff")
            write("store", name, bytes(sel) + struct.pack("<H", len(img)) + img + SCRIPT)
        for ss, n, ws, recs, sel in ((512, 8, 4, 12, (0, 4, 1)), (1024, 6, 1, 30, (1, 2, 0)),
                                     (512, 4, 8, 3, (0, 0, 2))):
            path = os.path.join(tmp, "img")
            subprocess.run([store_image, path, str(ss), str(n), str(ws), str(recs)], check=True,
                           stdout=subprocess.DEVNULL)
            image_seed("store-image-%dx%d-w%d" % (ss, n, ws), sel, path)
            os.unlink(path)
        path = os.path.join(tmp, "dev.flash")
        subprocess.run([cdnagent, "--flash", path, "--device-key", os.path.join(tmp, "k"),
                        "provision", os.path.join(ROOT, "tests", "target", "manifest.json"),
                        "--base-dir", sys.argv[2]], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        image_seed("provisioned-4096x16-w8", (3, 12, 2), path)
        write("store", "erased-device", bytes([0, 0, 0, 0, 0]) + SCRIPT)
    finally:
        subprocess.run(["rm", "-rf", tmp])


def main():
    records = [json.loads(line) for line in open(sys.argv[1])]
    http_and_cdnapi(records)
    manifest(sys.argv[2])
    settings(sys.argv[2])
    sign()
    store(sys.argv[3], sys.argv[4])


if __name__ == "__main__":
    main()
