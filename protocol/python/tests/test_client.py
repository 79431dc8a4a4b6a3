"""The sync and asyncio clients against scripted fake servers (no daemon needed):
out-of-order replies, request errors vs protocol errors, the reply limit checked on the
header, timeouts, connection-level errors, and the pools' reconnect with backoff."""

import asyncio
import os
import socket
import threading
import unittest

from helpers import (
    FakeServer,
    FakeTCPServer,
    HDR,
    error_reply,
    frame,
    get_reply,
    hello_reply,
    read_request,
)

from unittest import mock

import cachesvc
from cachesvc import aio, codec
from cachesvc.client import Connection


def conn_over(server, **kw):
    kw.setdefault("timeout", 5.0)
    return Connection(server.client_sock, **kw)


def answer(sock, reqid, text):
    sock.sendall(get_reply(reqid, cols=[("v", 4)], rows=[[text]]))


class SyncConnection(unittest.TestCase):
    def test_out_of_order_replies_matched_by_id(self):
        def script(s):
            reqs = [read_request(s) for _ in range(3)]
            self.assertEqual([r[0] for r in reqs], [3, 3, 2])
            self.assertEqual(len({r[1] for r in reqs}), 3)  # ids unique in flight
            self.assertEqual(reqs[0][2], {"q": "slow", "p": [1]})
            s.sendall(frame(0x82, reqs[2][1], None))  # the last first
            answer(s, reqs[1][1], "fast")
            answer(s, reqs[0][1], "slow")

        srv = FakeServer(script)
        c = conn_over(srv)
        p_slow = c.send(codec.Get("slow", [1]))
        p_fast = c.send(codec.Get("fast", [2]))
        p_ping = c.send(codec.Ping())
        order = [p for p in c.as_completed([p_slow, p_fast, p_ping])]
        self.assertEqual(order, [p_ping, p_fast, p_slow])
        self.assertEqual(p_slow.result().rows, [("slow",)])
        self.assertEqual(p_fast.result().rows, [("fast",)])
        self.assertIsNone(p_ping.result())
        srv.join()
        c.close()

    def test_request_error_keeps_the_connection(self):
        def script(s):
            _, rid, _ = read_request(s)
            s.sendall(error_reply(rid, 1, "no query"))
            _, rid, _ = read_request(s)
            s.sendall(frame(0x82, rid, None))

        srv = FakeServer(script)
        c = conn_over(srv)
        with self.assertRaises(cachesvc.UnknownQueryError) as cm:
            c.get("nope")
        self.assertEqual((cm.exception.code, cm.exception.name), (1, "unknown_query"))
        self.assertFalse(c.closed)
        c.ping()
        srv.join()
        c.close()

    def test_malformed_reply_closes_and_fails_everything(self):
        def script(s):
            a = read_request(s)
            read_request(s)
            s.sendall(frame(0x83, a[1], [1, 2]))  # not [meta, result]
            s.recv(1)  # wait for the client to close

        srv = FakeServer(script)
        c = conn_over(srv)
        p1 = c.send(codec.Get("a"))
        p2 = c.send(codec.Get("b"))
        with self.assertRaises(cachesvc.ProtocolError) as cm:
            p1.result()
        self.assertEqual(cm.exception.code, 7)
        self.assertTrue(c.closed)
        with self.assertRaises(cachesvc.ProtocolError):
            p2.result()  # in flight on the same connection: failed too
        with self.assertRaises(cachesvc.ConnectionClosedError):
            c.ping()
        srv.join()

    def test_decoding_failure_of_any_kind_fails_the_request_and_closes(self):
        def script(s):
            a = read_request(s)
            b = read_request(s)
            reply = lambda rid, t: get_reply(rid, cols=[("v", 4)], rows=[[t]])  # noqa: E731
            try:  # one write: the client closes after the first reply
                s.sendall(reply(a[1], "x") + reply(b[1], "y"))
                s.recv(1)
            except OSError:
                pass

        srv = FakeServer(script)
        c = conn_over(srv)
        with mock.patch.object(codec, "decode_reply", side_effect=RecursionError("deep")):
            p1 = c.send(codec.Get("a"))
            p2 = c.send(codec.Get("b"))
            with self.assertRaises(cachesvc.ProtocolError) as cm:
                p1.result()
        self.assertIsInstance(cm.exception.__cause__, RecursionError)
        self.assertTrue(c.closed)
        with self.assertRaises(cachesvc.ProtocolError):
            p2.result()
        srv.join()

    def test_deep_json_is_raw_text(self):
        deep = "[" * 5000 + "]" * 5000

        def script(s):
            _, rid, _ = read_request(s)
            s.sendall(get_reply(rid, cols=[("j", 9)], rows=[[deep]]))
            _, rid, _ = read_request(s)
            s.sendall(frame(0x82, rid, None))

        srv = FakeServer(script)
        c = conn_over(srv)
        self.assertEqual(c.get("j").rows, [(deep,)])
        c.ping()
        srv.join()
        c.close()

    def test_server_protocol_error_with_id_zero_closes(self):
        def script(s):
            read_request(s)
            s.sendall(error_reply(0, 7, "malformed frame"))
            s.close()

        srv = FakeServer(script)
        c = conn_over(srv)
        with self.assertRaises(cachesvc.ServerProtocolError) as cm:
            c.ping()
        self.assertIsInstance(cm.exception, cachesvc.ProtocolError)
        self.assertTrue(c.closed)
        srv.join()

    def test_reply_limit_checked_on_the_header(self):
        def script(s):
            _, rid, _ = read_request(s)
            s.sendall(HDR.pack(100 << 20, 1, 0x83, 0, rid))  # 100 MiB announced, no body sent
            s.recv(1)

        srv = FakeServer(script)
        c = conn_over(srv, max_reply_body=1 << 20, timeout=30)
        with self.assertRaises(cachesvc.ProtocolError) as cm:
            c.get("q")  # refused from the 12 header bytes: no wait for 100 MiB
        self.assertIn("limit", str(cm.exception))
        self.assertTrue(c.closed)
        srv.join()

    def test_unknown_reply_id_is_a_protocol_error(self):
        def script(s):
            _, rid, _ = read_request(s)
            s.sendall(frame(0x82, rid + 1000, None))
            s.recv(1)

        srv = FakeServer(script)
        c = conn_over(srv)
        with self.assertRaises(cachesvc.ProtocolError):
            c.ping()
        srv.join()

    def test_timeout_closes(self):
        def script(s):
            read_request(s)
            s.recv(1)  # never answers; returns when the client closes

        srv = FakeServer(script)
        c = conn_over(srv, timeout=0.2)
        with self.assertRaises(cachesvc.ClientTimeoutError) as cm:
            c.ping()
        self.assertIsInstance(cm.exception, TimeoutError)
        self.assertTrue(c.closed)
        srv.join()

    def test_server_close_fails_in_flight(self):
        def script(s):
            read_request(s)
            s.close()

        srv = FakeServer(script)
        c = conn_over(srv)
        with self.assertRaises(cachesvc.ConnectionClosedError):
            c.get("q")
        srv.join()

    def test_shutting_down_notice(self):
        def script(s):
            read_request(s)
            s.sendall(error_reply(0, 10, "draining"))
            s.close()

        srv = FakeServer(script)
        c = conn_over(srv)
        with self.assertRaises(cachesvc.ShuttingDownError):
            c.get("q")
        self.assertTrue(c.closed)
        srv.join()

    def test_pipeline_and_mget(self):
        def script(s):
            reqs = [read_request(s) for _ in range(3)]
            for op, rid, body in reversed(reqs):
                if op == 4:
                    s.sendall(frame(0x84, rid, [{"code": 2, "msg": "bad"}, [
                        {"src": 1, "lsn": 5, "age": 0, "stale": False, "stored": True},
                        [[["a", 2]], [[1]]]]]))
                elif body["q"] == "missing":
                    s.sendall(error_reply(rid, 1, "no"))
                else:
                    answer(s, rid, body["q"])

        srv = FakeServer(script)
        c = conn_over(srv)
        out = c.pipeline([codec.Get("x"), codec.Get("missing"), codec.MGet([("a", [1]), ("b", [2])])],
                         raise_on_error=False)
        self.assertEqual(out[0].rows, [("x",)])
        self.assertIsInstance(out[1], cachesvc.UnknownQueryError)
        self.assertIsInstance(out[2][0], cachesvc.BadParamsError)
        self.assertEqual(out[2][1].meta.stored, True)
        self.assertEqual(str(out[2][1].meta.lsn), "0/5")
        srv.join()
        c.close()

    def test_big_pipeline_does_not_deadlock(self):
        # the server answers each request before reading the next: the client must read
        # while it writes, or both ends block once the socket buffers fill.
        n = 3000

        def script(s):
            for _ in range(n):
                _, rid, body = read_request(s)
                answer(s, rid, "y" * 200)

        srv = FakeServer(script)
        c = conn_over(srv, timeout=30)
        out = c.pipeline([codec.Get("q", ["x" * 200])] * n)
        self.assertEqual(len(out), n)
        srv.join(30)
        c.close()

    def test_admin_requests(self):
        """show/pause/resume/reload: their frames and replies; an auth error keeps the
        connection; reload waits past the connection's timeout by default."""
        rows = [{"name": "q1", "hits": 2, "x_new": None}, {"name": "q2"}]

        def script(s):
            op, rid, body = read_request(s)
            self.assertEqual((op, body), (8, {"what": "queries"}))
            s.sendall(frame(0x88, rid, rows))
            op, rid, body = read_request(s)
            self.assertEqual((op, body), (9, {"op": "pause", "q": "q1"}))
            s.sendall(error_reply(rid, 6, "admin requests need the admin token"))
            op, rid, body = read_request(s)
            self.assertEqual((op, body), (9, {"op": "resume", "q": "q1"}))
            s.sendall(frame(0x89, rid, [{"query": "q1", "paused": False, "changed": False}]))
            op, rid, body = read_request(s)
            self.assertEqual((op, body), (9, {"op": "reload"}))
            threading.Event().wait(0.5)  # longer than the connection's timeout
            s.sendall(frame(0x89, rid, [{"reload": "applied", "queries": 2}]))
            read_request(s)
            s.recv(1)  # the second reload is never answered

        srv = FakeServer(script)
        c = conn_over(srv, timeout=0.2)
        self.assertEqual(c.show("queries"), rows)
        with self.assertRaises(cachesvc.AuthError):
            c.pause("q1")
        self.assertFalse(c.closed)
        self.assertEqual(c.resume("q1"), {"query": "q1", "paused": False, "changed": False})
        self.assertEqual(c.reload(), {"reload": "applied", "queries": 2})
        with self.assertRaises(cachesvc.ClientTimeoutError):
            c.reload(timeout=0.1)
        srv.join()


def hello_then(handler):
    """A TCP handler answering HELLO, then running handler(sock, n)."""

    def run(s, n):
        op, rid, body = read_request(s)
        assert op == 1 and body["v"] == 1, body
        if body.get("token") != "tok":
            s.sendall(error_reply(rid, 6, "wrong token"))
            read_request(s)
            return
        s.sendall(hello_reply(rid, max_frame=4096))
        handler(s, n)

    return run


def serve_pings(s, n):
    while (r := read_request(s)) is not None:
        if r[0] == 2:
            s.sendall(frame(0x82, r[1], None))
        else:
            answer(s, r[1], f"conn{n}")


class SyncPool(unittest.TestCase):
    def test_hello_token_and_max_frame(self):
        srv = FakeTCPServer(hello_then(serve_pings))
        try:
            with cachesvc.connect(("127.0.0.1", srv.port), token="tok") as c:
                self.assertEqual(c.server, cachesvc.ServerInfo(1, "fake/1", 4096))
                with self.assertRaises(cachesvc.TooLargeError):
                    c.get("q", ["x" * 5000])  # over the announced max_frame: not sent
                self.assertFalse(c.closed)
                with self.assertRaises(cachesvc.InvalidRequestError):
                    c.get("q", "42")  # a bare string is not a parameter list
                with self.assertRaises(ValueError):  # InvalidRequestError is a ValueError
                    c.get("q", [1] * 17)
                c.ping()
                self.assertEqual(c.in_flight, 0)
            with self.assertRaises(cachesvc.AuthError):
                cachesvc.connect(("127.0.0.1", srv.port), token="wrong")
        finally:
            srv.close()

    def test_reconnects_after_the_server_drops_the_connection(self):
        def handler(s, n):
            if n == 0:
                read_request(s)  # first connection: dies with a request in flight
                return
            serve_pings(s, n)

        srv = FakeTCPServer(hello_then(handler))
        try:
            with cachesvc.Client(f"127.0.0.1:{srv.port}", token="tok", pool_size=1, backoff_base=0.01) as cs:
                self.assertEqual(cs.get("q").rows, [("conn1",)])
                self.assertEqual(cs.reconnects, 1)
                self.assertEqual(cs.get("q").rows, [("conn1",)])  # pooled, reused
        finally:
            srv.close()

    def test_draining_server_is_retried(self):
        def handler(s, n):
            n %= 3  # the sync client's connections are 0..2, the asyncio client's 3..5
            if n == 0:  # draining: refuses HELLO
                _, rid, _ = read_request(s)
                s.sendall(error_reply(rid, 10, "shutting down"))
                return
            if n == 1:  # draining after HELLO: refuses the request
                _, rid, _ = read_request(s)
                s.sendall(hello_reply(rid))
                _, rid, _ = read_request(s)
                s.sendall(error_reply(rid, 10, "shutting down"))
                read_request(s)
                return
            hello_then(serve_pings)(s, n)

        srv = FakeTCPServer(handler)
        try:
            with cachesvc.Client(f"127.0.0.1:{srv.port}", token="tok", backoff_base=0.001) as cs:
                cs.ping()
                self.assertEqual(cs.reconnects, 2)
                self.assertEqual(srv.accepted, 3)

            async def main():
                async with aio.Client(f"127.0.0.1:{srv.port}", token="tok", backoff_base=0.001) as acs:
                    await acs.ping()
                    self.assertEqual(acs.reconnects, 2)
                    self.assertEqual(srv.accepted, 6)

            asyncio.run(asyncio.wait_for(main(), 30))
        finally:
            srv.close()

    def test_a_forked_child_opens_its_own_connections(self):
        srv = FakeTCPServer(hello_then(serve_pings))
        try:
            cs = cachesvc.Client(f"127.0.0.1:{srv.port}", token="tok", pool_size=1)
            self.assertEqual(cs.get("q").rows, [("conn0",)])
            pid = os.fork()
            if pid == 0:  # the child: must not use the parent's connection 0
                code = 1
                try:
                    code = 0 if cs.get("q").rows == [("conn1",)] else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
            self.assertEqual(cs.get("q").rows, [("conn0",)])  # the parent's is intact
            cs.close()
        finally:
            srv.close()

    def test_connect_errors_retry_then_raise(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there
        cs = cachesvc.Client(f"127.0.0.1:{port}", retries=2, backoff_base=0.001)
        with self.assertRaises(cachesvc.ConnectError):
            cs.ping()
        self.assertEqual(cs.reconnects, 2)
        cs.close()

    def test_pool_is_shared_by_threads(self):
        srv = FakeTCPServer(hello_then(serve_pings))
        errors = []
        try:
            cs = cachesvc.Client(f"127.0.0.1:{srv.port}", token="tok", pool_size=3)

            def work():
                try:
                    for _ in range(50):
                        cs.ping()
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=work) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            self.assertEqual(errors, [])
            self.assertLessEqual(srv.accepted, 3)
            cs.close()
        finally:
            srv.close()


class Async(unittest.TestCase):
    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 30))

    async def conn_over(self, srv, **kw):
        conn = aio.AsyncConnection(**kw)
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: aio._Protocol(conn), sock=srv.client_sock)
        return conn

    def test_out_of_order(self):
        def script(s):
            a = read_request(s)
            b = read_request(s)
            answer(s, b[1], "second")
            answer(s, a[1], "first")

        srv = FakeServer(script)

        async def main():
            c = await self.conn_over(srv)
            done = []

            async def one(name):
                r = await c.get(name)
                done.append(r.rows[0][0])

            await asyncio.gather(one("a"), one("b"))
            self.assertEqual(done, ["second", "first"])
            c.close()

        self.run_async(main())
        srv.join()

    def test_admin_requests(self):
        def script(s):
            op, rid, body = read_request(s)
            self.assertEqual((op, body), (8, {"what": "nosuch"}))
            s.sendall(error_reply(rid, 2, "unknown view; views: queries"))
            op, rid, body = read_request(s)
            self.assertEqual((op, body), (9, {"op": "pause", "q": "q1"}))
            s.sendall(frame(0x89, rid, [{"query": "q1", "paused": True, "changed": True}]))
            op, rid, body = read_request(s)
            self.assertEqual((op, body), (9, {"op": "reload"}))
            threading.Event().wait(0.5)
            s.sendall(frame(0x89, rid, [{"reload": "refused", "error": "bad sql"}]))
            op, rid, body = read_request(s)
            self.assertEqual(op, 8)
            s.sendall(frame(0x88, rid, [{"a": [1]}]))  # not a scalar: a protocol error
            s.recv(1)

        srv = FakeServer(script)

        async def main():
            c = await self.conn_over(srv, timeout=0.2)
            with self.assertRaises(cachesvc.BadParamsError):
                await c.show("nosuch")
            self.assertEqual(await c.pause("q1"), {"query": "q1", "paused": True, "changed": True})
            self.assertEqual(await c.reload(), {"reload": "refused", "error": "bad sql"})
            with self.assertRaises(cachesvc.ProtocolError):
                await c.show("queries")
            self.assertTrue(c.closed)

        self.run_async(main())
        srv.join()

    def test_request_error_then_protocol_error(self):
        def script(s):
            _, rid, _ = read_request(s)
            s.sendall(error_reply(rid, 3, "busy"))
            a = read_request(s)
            read_request(s)
            s.sendall(frame(0x82, a[1], None, version=2))
            s.recv(1)

        srv = FakeServer(script)

        async def main():
            c = await self.conn_over(srv)
            with self.assertRaises(cachesvc.OverloadedError):
                await c.ping()
            self.assertFalse(c.closed)
            res = await asyncio.gather(c.ping(), c.ping(), return_exceptions=True)
            self.assertTrue(all(isinstance(r, cachesvc.ProtocolError) for r in res), res)
            self.assertTrue(c.closed)
            with self.assertRaises(cachesvc.ConnectionClosedError):
                await c.ping()

        self.run_async(main())
        srv.join()

    def test_decoding_failure_of_any_kind_fails_the_request(self):
        def script(s):
            a = read_request(s)
            answer(s, a[1], "x")
            s.recv(1)

        srv = FakeServer(script)

        async def main():
            c = await self.conn_over(srv, timeout=60)
            with mock.patch.object(codec, "decode_reply", side_effect=RecursionError("deep")):
                with self.assertRaises(cachesvc.ProtocolError) as cm:
                    await asyncio.wait_for(c.get("a"), 10)  # no hang
            self.assertIsInstance(cm.exception.__cause__, RecursionError)
            self.assertTrue(c.closed)

        self.run_async(main())
        srv.join()

    def test_timeout_bounds_a_wait_for_a_paused_transport(self):
        def script(s):
            b = read_request(s)
            read_request(s)  # the PING, sent while the transport is paused
            answer(s, b[1], "b")  # a frame after the PING went out: the server is alive
            s.recv(1)

        srv = FakeServer(script)

        async def main():
            c = await self.conn_over(srv, timeout=30)
            tb = asyncio.ensure_future(c.get("b"))
            await asyncio.sleep(0)
            c._paused = True  # as pause_writing() does when the socket buffer is full
            with self.assertRaises(cachesvc.ClientTimeoutError):
                await asyncio.wait_for(c.execute(codec.Ping(), timeout=0.3), 20)
            self.assertEqual((await tb).rows, [("b",)])
            c.close()

        self.run_async(main())
        srv.join()

    def test_timeout_of_a_dead_server_closes(self):
        def script(s):
            read_request(s)
            s.recv(1)

        srv = FakeServer(script)

        async def main():
            c = await self.conn_over(srv, timeout=0.2)
            with self.assertRaises(cachesvc.ClientTimeoutError):
                await c.ping()
            self.assertTrue(c.closed)

        self.run_async(main())
        srv.join()

    def test_timeout_of_one_slow_request_keeps_the_connection(self):
        def script(s):
            slow = read_request(s)
            fast = read_request(s)
            answer(s, fast[1], "fast")
            nxt = read_request(s)  # sent after the slow one timed out
            answer(s, slow[1], "late")  # dropped: nobody waits for it
            s.sendall(frame(0x82, nxt[1], None))

        srv = FakeServer(script)

        async def main():
            c = await self.conn_over(srv, timeout=5)

            async def slow():
                with self.assertRaises(cachesvc.ClientTimeoutError):
                    await c.execute(codec.Get("slow"), timeout=0.3)

            async def fast():
                await asyncio.sleep(0.05)
                return await c.get("fast")

            _, r = await asyncio.gather(slow(), fast())
            self.assertEqual(r.rows, [("fast",)])
            self.assertFalse(c.closed)
            await c.ping()
            self.assertEqual(c.in_flight, 0)
            c.close()

        self.run_async(main())
        srv.join()

    def test_pool_reconnects(self):
        def handler(s, n):
            if n == 0:
                read_request(s)
                return
            serve_pings(s, n)

        srv = FakeTCPServer(hello_then(handler))

        async def main():
            async with aio.Client(f"127.0.0.1:{srv.port}", token="tok", backoff_base=0.01) as cs:
                r = await cs.get("q")
                self.assertEqual(r.rows, [("conn1",)])
                self.assertEqual(cs.reconnects, 1)
                rs = await cs.pipeline([codec.Get("q")] * 20)
                self.assertEqual(len(rs), 20)
            with self.assertRaises(cachesvc.AuthError):
                await aio.connect(("127.0.0.1", srv.port), token="bad")

        try:
            self.run_async(main())
        finally:
            srv.close()


if __name__ == "__main__":
    unittest.main()
