#!/usr/bin/env python3
"""Check that every component keeps to what it declares.

Each components/NAME/component.mk sets NAME_REQUIRES (components whose
public headers and functions NAME may use) and NAME_LIBS (third-party
libraries: mbedtls, cjson, http_parser). This tool fails when:

  declare   a component has no component.mk, requires a component that does
            not exist, or the requirements form a cycle;
  includes  a file of the component includes a header that is neither its
            own, nor port.h, nor the public header of a component it
            requires, nor a header of a library it declares, nor one of the
            C library headers of ALLOWED_STD_HEADERS; a public header
            includes a library header (the contract would then need it);
  calls     (with --objdir) an object of the component calls a function
            that is neither its own, nor the port's (port.h), nor one of a
            component it requires, nor one of a library it declares, nor one
            of the C library functions of ALLOWED_LIBC (memory and string
            functions: no I/O, no allocation, no clock, no environment).

Prints TAP lines ("ok N - component check"), one per component and check,
and exits 1 when any fails.

  tools/check_layering.py [--root DIR] [--objdir BUILD/host/obj]
"""
import argparse
import os
import re
import subprocess
import sys

# Headers of the C library a component may include. stdio.h is for
# snprintf (the calls check keeps I/O out); stdlib.h for strtoul.
ALLOWED_STD_HEADERS = {
    "limits.h", "stdarg.h", "stdbool.h", "stddef.h", "stdint.h", "stdio.h",
    "stdlib.h", "string.h",
}

# C library functions a component may call: memory and string functions.
ALLOWED_LIBC = {
    "memchr", "memcmp", "memcpy", "memmove", "memset",
    "strchr", "strcmp", "strcpy", "strcspn", "strlen", "strncmp", "strncpy",
    "strnlen", "strrchr", "strspn", "strstr",
    "strtol", "strtoul", "strtoull",
    "snprintf", "vsnprintf",
}

# Symbols a compiler or linker may reference on its own.
TOOLCHAIN = re.compile(r"^(_GLOBAL_OFFSET_TABLE_|__stack_chk_fail|__aeabi_\w+|"
                       r"__(u|)(div|mod|mul)\w+|__asan_\w+|__ubsan_\w+|__sanitizer_\w+|"
                       r"__gcov_\w+|__llvm_\w+)$")

LIBS = {
    "mbedtls": {"headers": re.compile(r"^mbedtls/"),
                "symbols": re.compile(r"^mbedtls_")},
    "cjson": {"headers": re.compile(r"^cjson/"),
              "symbols": re.compile(r"^cJSON_")},
    "http_parser": {"headers": re.compile(r"^http_parser\.h$"),
                    "symbols": re.compile(r"^(http_parser_\w+|http_should_keep_alive|"
                                          r"http_errno_\w+|http_method_str|"
                                          r"http_status_str|http_body_is_final)$")},
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
MK_VAR = re.compile(r"^(\w+?)_(REQUIRES|LIBS)[ \t]*:?=[ \t]*(.*)$", re.M)


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def result(self, ok, name, problems=()):
        self.n += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, name))
        for p in problems:
            print("#   " + p)
        if not ok:
            self.failed += 1


def read_declarations(root):
    comps, problems = {}, {}
    cdir = os.path.join(root, "components")
    for name in sorted(os.listdir(cdir)):
        if not os.path.isdir(os.path.join(cdir, name)):
            continue
        mk = os.path.join(cdir, name, "component.mk")
        comps[name] = {"requires": set(), "libs": set()}
        problems[name] = []
        if not os.path.exists(mk):
            problems[name].append("no component.mk: declare %s_REQUIRES and %s_LIBS"
                                  % (name, name))
            continue
        with open(mk) as f:
            text = f.read()
        for owner, kind, value in MK_VAR.findall(text):
            if owner != name:
                problems[name].append("component.mk sets %s_%s: a component declares "
                                      "only its own (%s_%s)" % (owner, kind, name, kind))
                continue
            comps[name]["requires" if kind == "REQUIRES" else "libs"] = set(value.split())
    for name, c in comps.items():
        for r in sorted(c["requires"]):
            if r not in comps:
                problems[name].append("requires %s, which is not a component" % r)
            elif r == name:
                problems[name].append("requires itself")
        for lib in sorted(c["libs"]):
            if lib not in LIBS:
                problems[name].append("declares library %s; known: %s"
                                      % (lib, " ".join(sorted(LIBS))))
    for name in comps:
        cycle = find_cycle(comps, name, [name])
        if cycle:
            problems[name].append("requirement cycle: " + " -> ".join(cycle))
    return comps, problems


def find_cycle(comps, start, path):
    for r in sorted(comps[path[-1]]["requires"]):
        if r == start:
            return path + [r]
        if r in comps and r not in path:
            found = find_cycle(comps, start, path + [r])
            if found:
                return found
    return None


def component_files(root, name):
    out = []
    for sub in ("include", "src"):
        d = os.path.join(root, "components", name, sub)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.endswith((".c", ".h")):
                    out.append((sub, os.path.join(d, f)))
    return out


def check_includes(root, comps, name):
    problems = []
    own = {os.path.basename(p) for _, p in component_files(root, name)}
    public = {}
    for r in comps[name]["requires"]:
        d = os.path.join(root, "components", r, "include")
        if os.path.isdir(d):
            for f in os.listdir(d):
                public[f] = r
    for sub, path in component_files(root, name):
        rel = os.path.relpath(path, root)
        with open(path, errors="replace") as f:
            text = f.read()
        for kind, header in INCLUDE.findall(text):
            is_lib = any(l["headers"].match(header) for l in LIBS.values())
            if kind == '"' and not is_lib:
                if header == "port.h" or header in own or header in public:
                    if sub == "include" and header in own and not os.path.exists(
                            os.path.join(root, "components", name, "include", header)):
                        problems.append("%s: public header includes private %s"
                                        % (rel, header))
                    continue
                problems.append('%s: #include "%s": not %s\'s own, not port.h, and not the '
                                "public header of a component it requires: add the owner "
                                "to %s_REQUIRES in components/%s/component.mk"
                                % (rel, header, name, name, name))
                continue
            if header in ALLOWED_STD_HEADERS:
                continue
            lib = next((n for n, l in LIBS.items() if l["headers"].match(header)), None)
            if lib and lib in comps[name]["libs"]:
                if sub == "include":
                    problems.append("%s: public header includes <%s>: keep the library "
                                    "behind the component's own types" % (rel, header))
                continue
            if lib:
                problems.append("%s: #include <%s> of library %s, which %s does not "
                                "declare (%s_LIBS)" % (rel, header, lib, name, name))
            else:
                problems.append("%s: #include <%s>: not a header a component may use "
                                "(C library: %s; everything else through port.h)"
                                % (rel, header, " ".join(sorted(ALLOWED_STD_HEADERS))))
    return problems


def nm(path, undefined):
    args = ["nm", "-P", "-u" if undefined else "--defined-only", path]
    out = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         check=True).stdout.decode()
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and (undefined or parts[1] in "TtDdBbRrCcVvWw"):
            syms.add(parts[0])
    return syms


def objects_of(objdir, name):
    d = os.path.join(objdir, "components", name, "src")
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".o"))


def port_functions(root):
    with open(os.path.join(root, "port", "port.h")) as f:
        return set(re.findall(r"\b(port_\w+)\s*\(", f.read()))


def check_calls(root, objdir, comps, name, defined, port_api):
    objs = objects_of(objdir, name)
    if not objs:
        return ["no objects under %s: build first (make all)"
                % os.path.join(objdir, "components", name, "src")]
    problems = []
    allowed = set(defined[name]) | port_api | ALLOWED_LIBC
    for r in comps[name]["requires"]:
        allowed |= defined.get(r, set())
    libs = [LIBS[l]["symbols"] for l in comps[name]["libs"] if l in LIBS]
    for obj in objs:
        for sym in sorted(nm(obj, True)):
            if sym in allowed or TOOLCHAIN.match(sym) or any(l.match(sym) for l in libs):
                continue
            owner = next((c for c, d in defined.items() if sym in d), None)
            rel = os.path.relpath(obj, objdir)
            if owner:
                problems.append("%s calls %s of component %s, which %s does not require"
                                % (rel, sym, owner, name))
            else:
                lib = next((n for n, l in LIBS.items() if l["symbols"].match(sym)), None)
                if lib:
                    problems.append("%s calls %s of library %s, undeclared in %s_LIBS"
                                    % (rel, sym, lib, name))
                else:
                    problems.append("%s calls %s: not a memory or string function of the "
                                    "C library; reach the platform through port.h" % (rel, sym))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--objdir", help="object tree of a build (BUILD/host/obj)")
    a = ap.parse_args()
    comps, decl_problems = read_declarations(a.root)
    tap = Tap()
    defined = {}
    if a.objdir:
        for name in comps:
            defined[name] = set()
            for obj in objects_of(a.objdir, name):
                defined[name] |= nm(obj, False)
    port_api = port_functions(a.root)
    for name in sorted(comps):
        tap.result(not decl_problems[name], "%s declares its requirements" % name,
                   decl_problems[name])
        p = check_includes(a.root, comps, name)
        tap.result(not p, "%s includes only what it declares" % name, p)
        if a.objdir:
            p = check_calls(a.root, a.objdir, comps, name, defined, port_api)
            tap.result(not p, "%s calls only what it declares" % name, p)
    print("1..%d" % tap.n)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
