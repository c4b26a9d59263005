#!/usr/bin/env python3
"""The floor under any client's CPU per call: one prebuilt HTTP request written
and its reply read, N times over one kept-alive loopback connection, nothing
else (no signing, no parsing beyond Content-Length). Run by tests/bench/scale.py
under rusage_of: its *system* CPU per call is what the kernel charges a client
for one exchange with a server in another process (send, wake-up, receive),
which no client can go below.

    python3 floor_client.py HOST PORT N
"""
import socket
import sys


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    body = b"Action=DescribeCdnDomainConfigs&DomainName=d00.example.com&Format=JSON"
    req = (b"POST / HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/x-www-form-urlencoded"
           b"\r\nContent-Length: %d\r\n\r\n" % (host.encode(), port, len(body))) + body
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    for _ in range(n):
        s.sendall(req)
        length = 0
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        f.read(length)
    s.close()


if __name__ == "__main__":
    main()
