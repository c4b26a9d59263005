#!/usr/bin/env python3
"""mkman.py CDNAGENT IN OUT: the man page cdnagent(1) from its source (IN) with the
COMMANDS section made from each command's --help (the list from `cdnagent --help`), so
the page and the program cannot disagree. No network, no tools beyond Python."""
import datetime
import re
import subprocess
import sys


def run(binary, *args):
    return subprocess.run([binary] + list(args), capture_output=True, text=True,
                          check=True, env={"PATH": "/usr/bin:/bin"}).stdout


def esc(s):
    return s.replace("\\", "\\\\").replace("-", "\\-")


def command_section(binary, name):
    text = run(binary, "help", name)
    usage, _, rest = text.partition("\n\n")
    summary, _, opts = rest.partition("\n\noptions:\n")
    opts = opts.split("\n\nglobal options")[0]
    out = [".SS %s" % esc(name), ".nf", esc(usage.replace("usage: ", "")), ".fi",
           esc(summary.strip())]
    lines = opts.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s+((?:-\w, )?--[\w-]+(?: \S+)?)(?:\s{2,}(.*))?$", line)
        if m and "--help" not in m.group(1):
            help_text = m.group(2) or (lines[i + 1].strip() if i + 1 < len(lines) else "")
            out += [".TP", ".B %s" % esc(m.group(1)), esc(help_text)]
    return "\n".join(out)


def main():
    binary, src, dst = sys.argv[1:4]
    names = []
    listing = run(binary, "--help").split("commands:\n", 1)[1].split("\n\n", 1)[0]
    for line in listing.splitlines():
        if line.strip() and line.split()[0] != "help":
            names.append(line.split()[0])
    version = run(binary, "--version").split()[-1]
    page = open(src).read()
    page = page.replace("@COMMANDS@", "\n".join(command_section(binary, n) for n in names))
    page = page.replace("@VERSION@", version).replace(
        "@DATE@", datetime.date.fromtimestamp(int(
            subprocess.run(["git", "log", "-1", "--format=%ct"], capture_output=True,
                           text=True).stdout.strip() or 0)).isoformat())
    with open(dst, "w") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
