#!/usr/bin/env python3
"""make size: the footprint of the linked Cortex-M image.

Flash and static RAM come from the linker map of the product image
(build/cm-fw/cdnagent.elf.map: arm-none-eabi-gcc -Os, newlib-nano,
--gc-sections, so only code that is really linked is counted), grouped by
component, port, application and third-party library. Peak heap and stack
come from the firmware scenario's log under QEMU (build/cm-tgt/scenario.log,
written by make test-target): for each API call, the heap in use at its peak
(port_malloc: the agent, mbedTLS and cJSON) and the stack watermark. The
networked image's RAM comes from the end-to-end run of the product's code on
lwIP (build/cm-fw/e2e.log, written by tests/integration/test_target_e2e):
the heap's high-water mark and the deepest stack over the whole run. The
largest -fstack-usage frames are listed beside the measured stack.
"""
import argparse
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def owners():
    """Object file basename -> group name, from the source tree."""
    own = {}
    for src in glob.glob(os.path.join(ROOT, "components", "*", "src", "*.c")):
        own[os.path.basename(src)[:-2] + ".o"] = os.path.basename(
            os.path.dirname(os.path.dirname(src)))
    for src in glob.glob(os.path.join(ROOT, "port", "cortex-m", "*.c")) + \
            glob.glob(os.path.join(ROOT, "port", "*.c")):
        own[os.path.basename(src)[:-2] + ".o"] = "port/cortex-m"
    for src in glob.glob(os.path.join(ROOT, "port", "lwip", "*.c")):
        own[os.path.basename(src)[:-2] + ".o"] = "port/lwip"
    for src in glob.glob(os.path.join(ROOT, "firmware", "cortex-m", "*.c")):
        own[os.path.basename(src)[:-2] + ".o"] = "app (firmware/cortex-m)"
    return own


LIBS = [("libmbedtls.a", "mbedTLS 2.28"), ("liblwip.a", "lwIP 2.1"), ("libcjson.a", "cJSON 1.7"),
        ("libhttp_parser.a", "http-parser 2.9"), ("libc_nano.a", "newlib-nano + libgcc"),
        ("libg_nano.a", "newlib-nano + libgcc"), ("libgcc.a", "newlib-nano + libgcc"),
        ("libnosys.a", "newlib-nano + libgcc")]


def group_of(path, own):
    base = os.path.basename(path)
    for lib, name in LIBS:
        if lib in path:
            return name
    m = re.search(r"\(([^)]+\.o)\)$", path)
    if m:
        base = m.group(1)
    if "fw_blobs" in base:
        return "built-in manifest + PEMs"
    if base in ("crt0.o", "crti.o", "crtn.o", "crtbegin.o", "crtend.o"):
        return "newlib-nano + libgcc"
    return own.get(base, "other: " + base)


def parse_map(path, own):
    """Return {group: [text, data, bss]} and the RAM-NOR stand-in size."""
    sizes = {}
    nor = 0
    out_sec = None
    pending = None
    line_re = re.compile(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$")
    in_map = False
    for raw in open(path):
        line = raw.rstrip("\n")
        if line.startswith("Linker script and memory map"):
            in_map = True
            continue
        if not in_map:
            continue
        m = re.match(r"^(\.[A-Za-z0-9_.]+)\s", line) or re.match(r"^(\.[A-Za-z0-9_.]+)$", line)
        if m and not line.startswith(" "):
            out_sec = m.group(1)
            pending = None
            continue
        sm = re.match(r"^ (\.[^\s]+|COMMON)\s*(.*)$", line)
        if sm:
            pending = sm.group(1)
            rest = sm.group(2)
            if not rest:
                continue
            line = "                " + rest
        lm = line_re.match(line)
        if not lm or pending is None:
            continue
        size = int(lm.group(1), 16)
        obj = lm.group(2).strip()
        in_sec = pending
        pending = None
        if size == 0 or out_sec in (".heap", ".stack") or obj.startswith("linker stubs"):
            continue
        if out_sec in (".text", ".ARM.exidx", ".rodata"):
            col = 0
        elif out_sec == ".data":
            col = 1
        elif out_sec == ".bss":
            col = 2
        else:
            continue
        if in_sec == ".bss.flash_mem":
            nor += size  # the NOR stand-in: a board keeps the store in flash
            continue
        g = group_of(obj, own)
        sizes.setdefault(g, [0, 0, 0])[col] += size
    return sizes, nor


def parse_scenario(path):
    calls, whole = [], {}
    if not path or not os.path.isfile(path):
        return calls, whole
    for line in open(path):
        m = re.match(r"# figure: call=(\S+) heap_peak=(\d+) stack_peak=(\d+) handshake=(\d)", line)
        if m:
            # (a step's calls joined by '+': a batch and its read-back)
            calls.append((m.group(1).replace("+", " + ") +
                          (" + TLS handshake" if m.group(4) == "1" else ""),
                          int(m.group(2)), int(m.group(3))))
        m = re.match(r"# figure: heap_arena=(\d+)", line)
        if m:
            whole = {"arena": int(m.group(1))}
    return calls, whole


def top_frames(objdir, n=6):
    frames = []
    for su in glob.glob(os.path.join(objdir, "**", "*.su"), recursive=True):
        for line in open(su):
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and parts[1].isdigit():
                where = parts[0].split(":")
                frames.append((int(parts[1]), where[-1], os.path.relpath(where[0], ROOT)
                               if os.path.isabs(where[0]) else where[0]))
    frames.sort(reverse=True)
    return frames[:n]


COMPONENT_ORDER = ["sign", "http", "cdnapi", "retry", "store", "queue", "vault", "agent"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="arm-none-eabi-size")
    ap.add_argument("--map", required=True)
    ap.add_argument("--scenario-log")
    ap.add_argument("--option-log", help="the scenario built with the 4 KB TLS record option")
    ap.add_argument("--objdir", default=None, help="where the .su files are")
    ap.add_argument("--e2e-log", help="the end-to-end run of the product's code on lwIP")
    args = ap.parse_args()
    if not os.path.isfile(args.map):
        print("size: %s missing (make firmware)" % args.map, file=sys.stderr)
        return 1
    own = owners()
    sizes, nor = parse_map(args.map, own)
    comps = [c for c in COMPONENT_ORDER if c in sizes] + sorted(
        c for c in set(own.values()) if c in sizes and c not in COMPONENT_ORDER
        and "/" not in c and not c.startswith("app"))
    rest = ["port/cortex-m", "port/lwip", "app (firmware/cortex-m)", "built-in manifest + PEMs"]
    libs = ["mbedTLS 2.28", "lwIP 2.1", "cJSON 1.7", "http-parser 2.9", "newlib-nano + libgcc"]
    others = sorted(g for g in sizes if g not in comps + rest + libs)

    def row(name, t, d, b):
        print("| %-26s | %8d | %6d | %7d | %9d |" % (name, t, d, b, t + d))

    print("Cortex-M4 image %s (arm-none-eabi-gcc -Os, newlib-nano, --gc-sections)"
          % os.path.relpath(args.map[:-4], ROOT))
    print()
    print("| %-26s | %8s | %6s | %7s | %9s |" % ("part", "text", "data", "bss", "flash"))
    print("|%s|%s|%s|%s|%s|" % ("-" * 28, "-" * 10, "-" * 8, "-" * 9, "-" * 11))
    tot = [0, 0, 0]
    own_tot = [0, 0, 0]
    for c in comps:
        t, d, b = sizes[c]
        row(c, t, d, b)
        for i in range(3):
            own_tot[i] += sizes[c][i]
    row("= agent's own code", *own_tot)
    for g in rest + libs + others:
        if g in sizes:
            row(g, *sizes[g])
    for g in sizes:
        for i in range(3):
            tot[i] += sizes[g][i]
    elf = args.map[:-4]
    try:
        import subprocess
        out = subprocess.run([args.size, "-B", elf], check=True, stdout=subprocess.PIPE,
                             text=True).stdout.splitlines()[1].split()
        et, ed = int(out[0]), int(out[1])
        # Identical strings of several objects are merged by the linker: the
        # rows above count each object's copy, the image holds one.
        if (et, ed) != (tot[0], tot[1]):
            row("merged by the linker", et - tot[0], ed - tot[1], 0)
            tot[0], tot[1] = et, ed
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        print("(could not run %s on %s: the total is the map's sum)" % (args.size, elf))
    row("= whole image", *tot)
    tp = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.map))), "third_party")
    vers = []
    for pkg in ("mbedtls", "lwip", "cjson", "http-parser"):
        link = os.path.join(tp, pkg)
        if os.path.islink(link):
            vers.append(os.path.basename(os.readlink(link)))
    if vers:
        print()
        print("Third-party sources (Debian bookworm source packages): " + ", ".join(vers))
    print()
    print("Not in the table: the store's NOR (%d KB of RAM standing in for flash under QEMU;"
          " a board keeps it in its flash), the heap and the stack (below)." % (nor // 1024))

    # one static figure for every sum below: the image's own .data + .bss
    # (the rows' sum leaves out what the linker merged)
    static_all = tot[1] + tot[2]
    calls, whole = parse_scenario(args.scenario_log)
    own_static = own_tot[1] + own_tot[2]
    app_static = sum(sizes.get(g, [0, 0, 0])[1] + sizes.get(g, [0, 0, 0])[2]
                     for g in ("app (firmware/cortex-m)", "port/cortex-m"))
    net_static = sum(sizes.get(g, [0, 0, 0])[1] + sizes.get(g, [0, 0, 0])[2]
                     for g in ("lwIP 2.1", "port/lwip"))
    lib_static = sum(sizes.get(g, [0, 0, 0])[1] + sizes.get(g, [0, 0, 0])[2]
                     for g in libs if g != "lwIP 2.1")
    print()
    if not calls:
        print("RAM: no scenario log at %s (make test-target writes it)" % args.scenario_log)
    else:
        print("RAM per API call in the firmware scenario (QEMU mps2-an386; heap = port_malloc"
              " in use at the peak, agent + mbedTLS + cJSON; stack = watermark):")
        print()
        print("| %-46s | %10s | %10s |" % ("call", "peak heap", "peak stack"))
        print("|%s|%s|%s|" % ("-" * 48, "-" * 12, "-" * 12))
        for i, (a, h, s) in enumerate(calls):
            print("| %-46s | %10d | %10d |" % ("%d. %s" % (i + 1, a), h, s))
        cert = [c for c in calls if c[0].startswith("SetDomainServerCertificate")]
        worst_stack = max(c[2] for c in calls)
        static = static_all
        print()
        print("Static RAM (.data + .bss): agent components %d B, app + port %d B, lwIP with its"
              " pools and the LAN9118's frame buffer %d B, other libraries %d B."
              % (own_static, app_static, net_static, lib_static))
        if cert:
            _, ch, cs = cert[0]
            print("Certificate push%s on its own: peak heap %d B + its stack %d B + static %d B"
                  " = %d B" % (" (with its TLS handshake)" if "handshake" in cert[0][0] else "",
                               ch, cs, static, ch + cs + static))
        if whole:
            arena = whole["arena"]
            print("In-image peer scenario, whole run: heap high-water %d B (allocator overhead"
                  " and fragmentation included; the peer has a heap of its own) +"
                  " deepest stack %d B + static %d B = %d B"
                  % (arena, worst_stack, static, arena + worst_stack + static))
    networked(args.e2e_log, tot, static_all=static_all)
    ocalls, owhole = parse_scenario(args.option_log)
    if ocalls and owhole and calls:
        ocert = [c for c in ocalls if c[0].startswith("SetDomainServerCertificate")]
        ostack = max(c[2] for c in ocalls)
        print()
        print("With the 4 KB incoming TLS record option (max_fragment_length; endpoints that"
              " honour it only): certificate push peak heap %d B; heap high-water %d B;"
              " reserved RAM %d B + %d B + %d B = %d B"
              % (ocert[0][1] if ocert else 0, owhole["arena"], owhole["arena"], ostack, static,
                 owhole["arena"] + ostack + static))
    index_line()
    objdir = args.objdir or os.path.join(os.path.dirname(args.map), "obj")
    frames = top_frames(objdir)
    if frames:
        print()
        print("Largest stack frames (-fstack-usage): " + ", ".join(
            "%s %d B" % (fn, sz) for sz, fn, _ in frames))
    return 0


FLASH_GOAL = 192 * 1024  # a 256 KB-flash part, room left for a boot loader and the store
RAM_GOAL = 64 * 1024


def networked(path, tot, static_all):
    """The product image's flash and the RAM its end-to-end run needed, against the goals."""
    fig = None
    readback = None
    if path and os.path.isfile(path):
        for line in open(path):
            m = re.match(r"# figure: heap_arena=(\d+) stack_peak=(\d+)", line)
            if m:
                fig = (int(m.group(1)), int(m.group(2)))
            m = re.match(r"# figure: cert_readback_heap_peak=(\d+)", line)
            if m:
                readback = int(m.group(1))
    print()
    flash = tot[0] + tot[1]
    print("Networked product image (lwIP, TLS with the 16 KB incoming record, the agent):"
          " flash %d B of the %d B goal (%s)." % (flash, FLASH_GOAL,
                                                  "met" if flash <= FLASH_GOAL else "MISSED"))
    if fig is None:
        print("RAM: no end-to-end log at %s (tests/integration/test_target_e2e writes it)"
              % path)
        return
    heap, stack = fig
    total = heap + stack + static_all
    print("RAM over its end-to-end run (provisioning, DHCP, 5 deliveries, an outage, two cut"
          " answers): heap high-water %d B + deepest stack %d B + static %d B = %d B of the %d B"
          " goal (%s)." % (heap, stack, static_all, total, RAM_GOAL,
                           "met" if total <= RAM_GOAL else "MISSED"))
    if readback is not None:
        print("Certificate push with a cut answer, settled by its read-back (the served PEM"
              " parsed, the desired PEM loaded): peak heap %d B." % readback)


def header_define(path, name):
    """The integer value of `#define name N` in a header, or None."""
    with open(path) as f:
        for line in f:
            m = re.match(r"#define\s+%s\s+(\d+)u?\b" % name, line)
            if m:
                return int(m.group(1))
    return None


def index_line():
    """The store's RAM index: its cost a key, for 256 keys, and what the image holds."""
    entry = header_define(os.path.join(ROOT, "components", "store", "include", "store.h"),
                          "STORE_INDEX_ENTRY_SIZE")
    keys = header_define(os.path.join(ROOT, "firmware", "cortex-m", "app.h"), "APP_INDEX_KEYS")
    if entry is None or keys is None:
        return
    print()
    print("Store RAM index: %d B a key, %d B for 256 keys; this image holds %d keys (%d B,"
          " in the app's static RAM above); past them the store scans." % (
              entry, 256 * entry, keys, keys * entry))


if __name__ == "__main__":
    sys.exit(main())
