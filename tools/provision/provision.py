#!/usr/bin/env python3
"""Batch provisioning: N device images from a manifest template and a CSV.

    provision.py --template T.json --csv devices.csv --out DIR
                 [--cdnagent build/cdnagent] [--base-dir D] [--jobs N] [--json]

The CSV's first line names the columns; `serial` is required (it names the
image DIR/<serial>.flash and the device key DIR/<serial>.key). Every
"{{column}}" inside a string of the template is replaced by that column of
the row, on the parsed JSON, so no value can break the manifest. Each
manifest goes to `cdnagent provision -` on standard input: secrets never
touch the disk in plaintext. Devices run in parallel (default: one job per
core). Prints one report line per device and a summary; exit status 0 only
when every device was provisioned.
"""
import argparse
import concurrent.futures
import csv
import json
import os
import re
import subprocess
import sys
import time

PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")
SERIAL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def fill(node, row, missing):
    if isinstance(node, str):
        def sub(m):
            if m.group(1) not in row:
                missing.add(m.group(1))
                return m.group(0)
            return row[m.group(1)]
        return PLACEHOLDER.sub(sub, node)
    if isinstance(node, list):
        return [fill(x, row, missing) for x in node]
    if isinstance(node, dict):
        return {k: (v if k == "comment" else fill(v, row, missing)) for k, v in node.items()}
    return node


def provision_one(args, template, row, line_no):
    serial = row.get("serial", "")
    if not SERIAL_RE.match(serial):
        return serial or "line %d" % line_no, 2, "serial: missing or not [A-Za-z0-9._-]{1,64}"
    missing = set()
    manifest = fill(template, row, missing)
    if missing:
        return serial, 2, "template needs columns the CSV lacks: %s" % ", ".join(sorted(missing))
    out = os.path.join(args.out, serial + ".flash")
    cmd = [args.cdnagent, "--flash", out, "--device-key", os.path.join(args.out, serial + ".key"),
           "provision", "-", "--base-dir", args.base_dir]
    if args.force:
        cmd.append("--force")
    p = subprocess.run(cmd, input=json.dumps(manifest).encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    # "-:" prefixes the manifest errors of stdin: name the device instead.
    err = p.stderr.decode(errors="replace").replace("-: ", "")
    return serial, p.returncode, (p.stdout.decode().strip() if p.returncode == 0 else err.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--template", required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cdnagent", default=os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "build", "cdnagent"))
    ap.add_argument("--base-dir", help="where relative paths of the template point "
                    "(default: the template's directory)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--force", action="store_true", help="replace existing images")
    ap.add_argument("--json", action="store_true", help="report as JSON lines")
    args = ap.parse_args()
    args.base_dir = args.base_dir or os.path.dirname(os.path.abspath(args.template))
    try:
        with open(args.template) as f:
            template = json.load(f)
    except (OSError, ValueError) as e:
        print("provision: template %s: %s" % (args.template, e), file=sys.stderr)
        return 2
    try:
        with open(args.csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error) as e:
        print("provision: csv %s: %s" % (args.csv, e), file=sys.stderr)
        return 2
    if not rows:
        print("provision: %s has no device rows" % args.csv, file=sys.stderr)
        return 2
    serials = [r.get("serial") for r in rows]
    dup = sorted({s for s in serials if s and serials.count(s) > 1})
    if dup:
        print("provision: duplicate serials in %s: %s" % (args.csv, ", ".join(dup[:10])),
              file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    start = time.monotonic()
    ok = failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = [pool.submit(provision_one, args, template, r, i + 2) for i, r in enumerate(rows)]
        for fut in futs:
            serial, rc, msg = fut.result()
            if rc == 0:
                ok += 1
            else:
                failed += 1
            if args.json:
                print(json.dumps({"serial": serial, "ok": rc == 0, "detail": msg}))
            else:
                print("%-4s %s: %s" % ("ok" if rc == 0 else "FAIL", serial,
                                       msg.replace("\n", "\n       ")))
    secs = time.monotonic() - start
    print("provision: %d device%s provisioned, %d failed, in %.1f s (%d jobs)" % (
        ok, "" if ok == 1 else "s", failed, secs, args.jobs), file=sys.stderr)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
