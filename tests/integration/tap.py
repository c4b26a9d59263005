"""Tiny TAP reporter for the Python integration tests (stdlib only).

    from tap import Tap
    t = Tap()
    t.ok(cond, "name", detail="shown when the check fails")
    sys.exit(t.done())
"""
import sys


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, detail=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, name), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name), flush=True)
            if detail:
                for line in str(detail).splitlines():
                    print("#   " + line, flush=True)
        return bool(cond)

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def done(self):
        print("1..%d" % self.n, flush=True)
        return 1 if self.failed else 0
