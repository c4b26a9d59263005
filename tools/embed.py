#!/usr/bin/env python3
"""Write a C file that builds files into a Cortex-M image.

    embed.py OUT.c NAME=PATH...

Defines app_blobs[] / app_blob_count (firmware/cortex-m/app.h): each file's
bytes as a NUL-terminated string, under NAME. Refuses a file with a NUL byte
(everything built in is text: JSON and PEM).
"""
import sys


def main(argv):
    if len(argv) < 2:
        print("usage: embed.py OUT.c NAME=PATH...", file=sys.stderr)
        return 2
    out, pairs = argv[0], argv[1:]
    lines = ['#include "app.h"', ""]
    names = []
    for i, pair in enumerate(pairs):
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            print("embed.py: %r is not NAME=PATH" % pair, file=sys.stderr)
            return 2
        try:
            data = open(path, "rb").read()
        except OSError as e:
            print("embed.py: %s: %s" % (path, e.strerror), file=sys.stderr)
            return 1
        if b"\0" in data:
            print("embed.py: %s: contains a NUL byte, not text" % path, file=sys.stderr)
            return 1
        body = ",".join(str(b) for b in data + b"\0")
        lines.append("static const char blob_%d[%d] = {%s};" % (i, len(data) + 1, body))
        names.append((name, i, len(data)))
    lines.append("const app_blob_t app_blobs[] = {")
    for name, i, n in names:
        lines.append('    {"%s", blob_%d, %du},' % (name.replace('"', ""), i, n))
    if not names:
        lines.append('    {"", "", 0u},')
    lines.append("};")
    lines.append("const size_t app_blob_count = %d;" % len(names))
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    import os
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
