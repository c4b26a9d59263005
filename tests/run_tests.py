#!/usr/bin/env python3
"""Run every test and print one closing line: "N passed, N failed".

Unit test binaries (cmocka) are run with TAP output; integration tests are
executables under tests/integration/ named test_* that print TAP lines
("ok N - name" / "not ok N - name") themselves. A program that crashes,
times out or exits non-zero without reporting a failure counts as one
failed test, so a silent crash can never pass.

Environment passed to integration tests:
  CDNAGENT_BUILD  the build directory (absolute)
  CDNAGENT        the host CLI binary (absolute)
  CDNAGENT_ROOT   the repository root (absolute)
  CDNAGENT_HELPERS  the directory whose bench/ and tools/ hold the helper
                  programs (BUILD/host, or the instrumented BUILD/cov)

With --asan-cli the --asan-test integration tests run again with the CLI
built under ASan and UBSan (the CLI's own memory errors, which the plain
build would survive). With --cov-dir the integration tests run a second time with the
instrumented CLI and helpers, and a last job checks the coverage floor of
components/ (tests/coverage_floor.py).
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAP_LINE = re.compile(r"^(not ok|ok)\b(.*)$")


def run_one(label, argv, env, timeout):
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
        out = proc.stdout.decode("utf-8", "replace")
        rc = proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")
        out += "\n[runner] timed out after %ds\n" % timeout
        rc = -1
    passed = failed = 0
    failures = []
    for line in out.splitlines():
        m = TAP_LINE.match(line.strip())
        if not m:
            continue
        if m.group(1) == "ok":
            if "# SKIP" in m.group(2):
                # A skipped check is not a pass.
                failed += 1
                failures.append(line.strip())
            else:
                passed += 1
        else:
            failed += 1
            failures.append(line.strip())
    if rc != 0 and failed == 0:
        failed = 1
        failures.append("%s exited with status %d" % (label, rc))
    if passed == 0 and failed == 0:
        failed = 1
        failures.append("%s ran no test" % label)
    secs = time.monotonic() - start
    status = "ok  " if failed == 0 else "FAIL"
    print("%s %-48s %4d passed %3d failed  %6.1fs" % (status, label, passed, failed, secs),
          flush=True)
    if failed:
        for f in failures:
            print("       " + f)
        tail = out.strip().splitlines()[-40:]
        print("       --- last output ---")
        for t in tail:
            print("       | " + t)
    return passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", help="run only tests whose label contains this")
    ap.add_argument("--skip", action="append", default=[],
                    help="leave out tests whose label contains this (repeatable)")
    ap.add_argument("--cdnagent", help="the CLI binary the integration tests run "
                    "(default BUILD/cdnagent; make coverage passes an instrumented one)")
    ap.add_argument("--helpers", help="directory whose bench/ and tools/ hold the helper "
                    "programs the integration tests run (default BUILD/host)")
    ap.add_argument("--cov-dir", help="an instrumented build (BUILD/cov): run the integration "
                    "tests again with its CLI and helpers, then check the coverage floor")
    ap.add_argument("--cov-skip", action="append", default=[],
                    help="integration tests left out of the instrumented pass (repeatable)")
    ap.add_argument("--asan-cli", help="the CLI built with ASan and UBSan: the --asan-test "
                    "integration tests run again with it")
    ap.add_argument("--asan-test", action="append", default=[],
                    help="an integration test to run with --asan-cli (repeatable)")
    ap.add_argument("--cov-only", action="store_true",
                    help="only the instrumented pass (make coverage)")
    ap.add_argument("--cov-floor", default="98,95", help="LINES,BRANCHES percent (default 98,95)")
    ap.add_argument("unit", nargs="*", help="unit test binaries")
    args = ap.parse_args()
    build = os.path.abspath(args.build)

    env = dict(os.environ)
    env["CMOCKA_MESSAGE_OUTPUT"] = "TAP"
    env["CDNAGENT_BUILD"] = build
    env["CDNAGENT"] = os.path.abspath(args.cdnagent) if args.cdnagent else \
        os.path.join(build, "cdnagent")
    env["CDNAGENT_ROOT"] = ROOT
    env["CDNAGENT_HELPERS"] = os.path.abspath(args.helpers) if args.helpers else \
        os.path.join(build, "host")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")

    jobs = []
    for b in args.unit:
        variant = os.path.basename(os.path.dirname(os.path.dirname(b)))
        jobs.append(("unit[%s] %s" % (variant, os.path.basename(b)), [os.path.abspath(b)], 300,
                     env))
    idir = os.path.join(ROOT, "tests", "integration")
    scripts = [n for n in sorted(os.listdir(idir)) if n.startswith("test_") and
               os.access(os.path.join(idir, n), os.X_OK) and
               os.path.isfile(os.path.join(idir, n))] if os.path.isdir(idir) else []
    if not args.cov_only:
        jobs += [("integration " + n, [os.path.join(idir, n)], 900, env) for n in scripts]
    if args.asan_cli and not args.cov_only:
        aenv = dict(env, CDNAGENT=os.path.abspath(args.asan_cli))
        jobs += [("integration[asan] " + n, [os.path.join(idir, n)], 900, aenv)
                 for n in scripts if n in args.asan_test]
    if args.cov_dir:
        cov = os.path.abspath(args.cov_dir)
        # Counts start from zero: only this run's tests make the figure.
        for top, _, files in os.walk(cov):
            for f in files:
                if f.endswith(".gcda"):
                    os.unlink(os.path.join(top, f))
        cenv = dict(env, CDNAGENT=os.path.join(cov, "cdnagent"), CDNAGENT_HELPERS=cov)
        jobs += [("integration[cov] " + n, [os.path.join(idir, n)], 900, cenv)
                 for n in scripts if n not in args.cov_skip]
        lines, branches = args.cov_floor.split(",")
        jobs.append(("coverage floor of components/",
                     [sys.executable, os.path.join(ROOT, "tests", "coverage_floor.py"),
                      "--cov-dir", cov, "--lines", lines, "--branches", branches], 300, env))

    total_pass = total_fail = 0
    for label, argv, timeout, job_env in jobs:
        if args.only and args.only not in label:
            continue
        if any(s in label for s in args.skip):
            continue
        p, f = run_one(label, argv, job_env, timeout)
        total_pass += p
        total_fail += f
    print("%d passed, %d failed" % (total_pass, total_fail))
    return 0 if total_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
