#!/usr/bin/env python3
"""Print text/data/bss per component from the Cortex-M4 -Os object files.

Figures are sums over each component's object files (compiled with
-ffunction-sections); the linker's --gc-sections can only make a linked
image smaller than this, so the table is an upper bound.
"""
import argparse
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="arm-none-eabi-size")
    ap.add_argument("objdir", help="build/cm4/obj/components")
    args = ap.parse_args()
    if not os.path.isdir(args.objdir):
        print("size: no objects under %s (build them with make cross-check)" % args.objdir,
              file=sys.stderr)
        return 1
    rows = []
    for comp in sorted(os.listdir(args.objdir)):
        objs = []
        for dirpath, _, files in os.walk(os.path.join(args.objdir, comp)):
            objs += [os.path.join(dirpath, f) for f in files if f.endswith(".o")]
        if not objs:
            continue
        out = subprocess.run([args.size, "-B"] + sorted(objs), check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        text = data = bss = 0
        for line in out.splitlines()[1:]:
            parts = line.split()
            text += int(parts[0]); data += int(parts[1]); bss += int(parts[2])
        rows.append((comp, text, data, bss))
    print("Cortex-M4, arm-none-eabi-gcc -mthumb -Os -ffunction-sections (object sums)")
    print("%-12s %8s %8s %8s %10s" % ("component", "text", "data", "bss", "flash"))
    tt = td = tb = 0
    for comp, t, d, b in rows:
        print("%-12s %8d %8d %8d %10d" % (comp, t, d, b, t + d))
        tt += t; td += d; tb += b
    print("%-12s %8d %8d %8d %10d" % ("total", tt, td, tb, tt + td))
    return 0


if __name__ == "__main__":
    sys.exit(main())
