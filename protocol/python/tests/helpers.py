"""Shared helpers of the unit tests: the import path, reply builders and a scripted fake
server (a thread on one end of a socket) that speaks just enough of the protocol."""

import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import msgpack  # noqa: E402

HDR = struct.Struct(">IBBHI")


def frame(opcode, reqid, body_obj=None, *, raw=None, version=1, flags=0, length=None):
    body = raw if raw is not None else msgpack.packb(body_obj, use_bin_type=True)
    return HDR.pack(len(body) if length is None else length, version, opcode, flags, reqid) + body


def meta(src=0, lsn=0x16B374D848, age=1500, stale=False, **extra):
    m = {"src": src, "lsn": lsn, "age": age, "stale": stale}
    m.update(extra)
    return m


def result(cols, rows):
    return [[list(c) for c in cols], [list(r) for r in rows]]


def get_reply(reqid, cols=(("id", 2), ("name", 4)), rows=((42, "ann"),), m=None, op=0x83):
    return frame(op, reqid, [m or meta(), result(cols, rows)])


def error_reply(reqid, code, msg="boom"):
    return frame(0xFF, reqid, {"code": code, "msg": msg})


def hello_reply(reqid, max_frame=1 << 20):
    return frame(0x81, reqid, {"v": 1, "server": "fake/1", "max_frame": max_frame})


def read_request(sock):
    """Reads one request frame: (opcode, reqid, body object), or None at EOF."""
    hdr = _read_exact(sock, 12)
    if hdr is None:
        return None
    length, _v, op, _f, reqid = HDR.unpack(hdr)
    body = _read_exact(sock, length)
    if body is None:
        return None
    return op, reqid, msgpack.unpackb(body, raw=False, timestamp=0)


def _read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


class FakeServer:
    """Runs ``script(sock)`` in a thread on the server end of a socketpair; ``client_sock``
    is the other end. The script's exceptions are re-raised by join()."""

    def __init__(self, script):
        self.client_sock, self.server_sock = socket.socketpair()
        self.error = None
        self._script = script
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self._script(self.server_sock)
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.error = e

    def join(self, timeout=10):
        self.thread.join(timeout)
        try:
            self.server_sock.close()
        except OSError:
            pass
        if self.thread.is_alive():
            raise AssertionError("fake server script did not finish")
        if self.error is not None:
            raise self.error


class FakeTCPServer:
    """A listening loopback socket; ``handler(sock, n)`` runs in a thread for the n-th
    accepted connection (n from 0) until ``close()``."""

    def __init__(self, handler):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        self.errors = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self._stop:
            try:
                s, _ = self.listener.accept()
            except OSError:
                return
            n = self.accepted
            self.accepted += 1
            threading.Thread(target=self._serve, args=(s, n), daemon=True).start()

    def _serve(self, s, n):
        try:
            self.handler(s, n)
        except BaseException as e:  # noqa: BLE001
            self.errors.append(e)
        finally:
            s.close()

    def close(self):
        self._stop = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
