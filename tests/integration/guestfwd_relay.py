#!/usr/bin/env python3
"""QEMU user networking's guestfwd "cmd:" end: QEMU starts this once per
guest connection with the connection on stdin/stdout; it relays the bytes
to 127.0.0.1:PORT (loopback only) and back, and closes each side when the
other does.

    guestfwd=tcp:10.0.2.100:443-cmd:python3 guestfwd_relay.py PORT
    guestfwd=tcp:10.0.2.100:443-cmd:python3 guestfwd_relay.py @FILE

With @FILE the port is read from FILE at each connection, so a test can
restart its server on another port while QEMU runs.

QEMU hands this process the guest's connection as stdin, stdout and stderr
alike: nothing may ever be written to stderr (a traceback would reach the
guest as bytes of its TLS stream).
"""
import os
import selectors
import socket
import sys


def main():
    sys.stderr = open(os.devnull, "w")  # see above: a traceback must not reach the guest
    arg = sys.argv[1]
    try:
        if arg.startswith("@"):
            with open(arg[1:]) as f:
                arg = f.read().strip()
        port = int(arg)
    except (OSError, ValueError):
        return 1
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return 1  # the guest sees its connection closed: as if refused
    s.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "guest")
    sel.register(s, selectors.EVENT_READ, "host")
    open_sides = 2
    while open_sides:
        for key, _ in sel.select():
            if key.data == "guest":
                data = os.read(0, 65536)
                if not data:
                    sel.unregister(0)
                    s.shutdown(socket.SHUT_WR)
                    open_sides -= 1
                else:
                    s.sendall(data)
            else:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    open_sides -= 1
                    os.close(1)
                    open_sides = 0  # the host closed: the guest's connection ends
                else:
                    os.write(1, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
