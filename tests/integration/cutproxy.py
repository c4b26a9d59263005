"""A TCP proxy on loopback that cuts connections after the request went up.

It reads the TLS record headers of what the server sends back: when a record of
application data arrives (an answer: the request was received and acted on), it
drops the connection instead of forwarding it, with the given probability. The
client then sees a reset after a fully sent request: an unknown outcome that
only a read-back can resolve. Handshake records always pass.

    with CutProxy(upstream_port, cut_fraction=0.35, seed=1) as p:
        p.port        # where clients connect (127.0.0.1)
        p.cuts        # connections cut so far
        p.answers     # answers seen so far (cut or forwarded)
"""
import random
import socket
import threading

TLS_APPLICATION_DATA = 23
TLS_HEADER = 5


class CutProxy:
    def __init__(self, upstream_port, cut_fraction, seed=None):
        self.upstream_port = upstream_port
        self.cut_fraction = cut_fraction
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.cuts = self.answers = self.connections = 0
        self.sock = None
        self.port = None
        self.stopping = False

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client),
                             daemon=True).start()

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _pump_up(self, client, upstream):
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                upstream.sendall(data)
        except OSError:
            pass
        self._close(client, upstream)

    def _cut_now(self):
        with self.lock:
            self.answers += 1
            if self.rnd.random() < self.cut_fraction:
                self.cuts += 1
                return True
        return False

    def _pump_down(self, upstream, client):
        """Forwards whole TLS records; an answer's first record may be cut."""
        buf = b""
        answering = False  # inside an answer already let through
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                buf += data
                out = b""
                while len(buf) >= TLS_HEADER:
                    n = TLS_HEADER + int.from_bytes(buf[3:5], "big")
                    if len(buf) < n:
                        break
                    if buf[0] == TLS_APPLICATION_DATA and not answering:
                        if self._cut_now():
                            if out:
                                client.sendall(out)
                            self._close(client, upstream)
                            return
                        answering = True
                    out += buf[:n]
                    buf = buf[n:]
                if out:
                    client.sendall(out)
                    # a keep-alive connection carries the next answer after this one
                    answering = False if not buf else answering
        except OSError:
            pass
        self._close(client, upstream)
