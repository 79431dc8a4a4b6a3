"""The asyncio cachesvc client: :func:`connect` (one multiplexed connection) and
:class:`Client` (a small pool with reconnect and backoff). Same codec, same errors and
the same operations as the sync client, as coroutines.

One AsyncConnection carries any number of concurrent requests: each call writes its frame
at once and awaits a future resolved when the reply with its request id arrives, so
``asyncio.gather(conn.get(...), conn.get(...))`` is pipelined and replies may complete out
of order.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from typing import Any, Optional, Sequence

from . import codec
from ._address import Address, parse_address
from .client import DEFAULT_CLIENT_NAME, _reload_timeout
from .codec import (
    Admin,
    DecodeOptions,
    Get,
    Hello,
    Invalidate,
    InvalidateQuery,
    MGet,
    Ping,
    Refresh,
    Request,
    ServerInfo,
    Show,
    Stats,
)
from .errors import (
    ClientTimeoutError,
    ConnectError,
    ConnectionClosedError,
    ProtocolError,
    ServerError,
    ShuttingDownError,
    _as_protocol_error,
)

__all__ = ["AsyncConnection", "Client", "connect"]

# Requests whose caller gave up (timeout, cancellation) keep their id reserved until the
# reply arrives; a connection with this many such ids is considered wedged and closed.
_MAX_ABANDONED = 1024


_RECV_SIZE = 256 * 1024


class _Protocol(asyncio.BufferedProtocol):
    """Reads into one preallocated buffer (a plain Protocol gets a fresh 256 KiB bytes object
    per read: an mmap, mremap and munmap per reply)."""

    def __init__(self, conn: "AsyncConnection"):
        self.conn = conn
        self.buf = memoryview(bytearray(_RECV_SIZE))

    def connection_made(self, transport):
        self.conn._transport = transport

    def get_buffer(self, sizehint: int):
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.conn._data(self.buf[:nbytes])

    def eof_received(self):
        self.conn._fail(ConnectionClosedError("the server closed the connection"))
        return False

    def connection_lost(self, exc):
        msg = f"connection lost: {exc}" if exc else "the server closed the connection"
        self.conn._fail(ConnectionClosedError(msg))

    def pause_writing(self):
        self.conn._paused = True

    def resume_writing(self):
        self.conn._paused = False
        for w in self.conn._drain_waiters:
            if not w.done():
                w.set_result(None)
        self.conn._drain_waiters.clear()


class AsyncConnection:
    """One connection; create it with ``await cachesvc.aio.connect(...)``. Requests may be
    issued concurrently from many tasks. A request error leaves the connection usable; a
    protocol error or a lost connection closes it and fails every request in flight.

    A request that times out (ClientTimeoutError) or is cancelled is abandoned: its id
    stays reserved and its reply is dropped when it comes. If nothing at all has arrived
    from the server since that request was sent, the connection is presumed dead and
    closed."""

    def __init__(self, *, address: Optional[Address] = None, timeout: float = 5.0,
                 max_reply_body: int = codec.MAX_REPLY_BODY, json: str = "parse",
                 max_cells: int = DecodeOptions.max_cells):
        self.address = address
        self.timeout = timeout
        self.server: Optional[ServerInfo] = None
        self._transport: Optional[asyncio.Transport] = None
        self._opts = DecodeOptions(json=json, max_cells=max_cells)
        self._reader = codec.FrameReader(max_reply_body)
        self._pending: dict = {}  # id -> (request, future)
        self._abandoned: set = set()
        self._next_id = 0
        self._max_frame = codec.MAX_REQUEST_BODY
        self._closed_exc: Optional[BaseException] = None
        self._paused = False
        self._drain_waiters: list = []
        self._rx_count = 0  # frames received, to tell a slow server from a dead one
        self._loop: Optional[asyncio.AbstractEventLoop] = None  # the loop it was opened on
        self._wbuf: list = []  # frames queued this turn of the loop
        self._flush_scheduled = False

    @property
    def closed(self) -> bool:
        return self._closed_exc is not None

    @property
    def in_flight(self) -> int:
        return len(self._pending) - len(self._abandoned)

    def close(self) -> None:
        if self._closed_exc is None:
            self._fail(ConnectionClosedError("connection closed by the client"))

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncConnection":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    def _fail(self, exc: BaseException) -> None:
        if self._closed_exc is not None:
            return
        if isinstance(exc, ConnectionClosedError):
            self._closed_exc = exc
        else:
            self._closed_exc = ConnectionClosedError(f"connection closed after: {exc}")
            self._closed_exc.__cause__ = exc
        pending, self._pending = self._pending, {}
        self._abandoned.clear()
        for _req, fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()
        if self._transport is not None:
            self._transport.abort()

    # ---- receiving ----------------------------------------------------------------------

    def _data(self, data) -> None:
        if self._closed_exc is not None:
            return
        try:
            self._reader.feed(data)
            while self._closed_exc is None:
                f = self._reader.next()
                if f is None:
                    break
                self._rx_count += 1
                self._dispatch(f)
        except Exception as e:  # noqa: BLE001 - a frame we cannot handle closes the connection
            self._fail(_as_protocol_error(e))

    def _dispatch(self, f: codec.Frame) -> None:
        entry = self._pending.pop(f.reqid, None)
        if entry is None:
            if f.opcode == codec.Op.ERROR:
                err = codec.decode_error(f.body)
                if f.reqid != 0 and not err.fatal:
                    raise ProtocolError(f"error reply for request id {f.reqid}, which is not in flight: {err}")
                self._fail(err)
                return
            raise ProtocolError(f"reply for request id {f.reqid}, which is not in flight")
        req, fut = entry
        self._abandoned.discard(f.reqid)  # an abandoned request's future is done: dropped below
        try:
            v = codec.decode_reply(req, f.opcode, f.body, self._opts)
        except Exception as e:  # noqa: BLE001 - no decoding failure may leave fut pending
            pe = _as_protocol_error(e)
            if not fut.done():
                fut.set_exception(pe)
            raise pe from (None if pe is e else e)
        if isinstance(v, ServerError):
            if not fut.done():
                fut.set_exception(v)
            if v.fatal:
                self._fail(v)
        elif not fut.done():
            fut.set_result(v)

    # ---- sending ------------------------------------------------------------------------

    def _alloc_id(self) -> int:
        while True:
            self._next_id = self._next_id % codec.UINT32_MAX + 1
            if self._next_id not in self._pending:
                return self._next_id

    async def execute(self, request: Request, timeout: Optional[float] = None) -> Any:
        """Sends one request and awaits its reply's value (raises its error)."""
        if self._closed_exc is not None:
            raise self._closed_exc
        reqid = self._alloc_id()
        frame = codec.encode_request(request, reqid, self._max_frame)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[reqid] = (request, fut)
        self._queue(frame)
        if timeout is None:
            timeout = self.timeout
        timer = loop.call_later(timeout, self._timed_out, reqid, fut, self._rx_count, timeout)
        try:
            if self._paused:
                await self._drain(fut)  # bounded by the request's timeout: fut ends then
            return await fut
        except asyncio.CancelledError:
            if reqid in self._pending:
                self._abandon(reqid)
            raise
        finally:
            timer.cancel()

    def _queue(self, frame: bytes) -> None:
        """Frames queued in one turn of the event loop leave in one write (requests issued
        together, e.g. by gather(), are pipelined in one segment, as cs_load -P does)."""
        self._wbuf.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed_exc is not None or not self._wbuf:
            self._wbuf.clear()
            return
        data = self._wbuf[0] if len(self._wbuf) == 1 else b"".join(self._wbuf)
        self._wbuf.clear()
        self._transport.write(data)

    def _timed_out(self, reqid: int, fut: asyncio.Future, rx_before: int, timeout: float) -> None:
        if fut.done() or self._pending.get(reqid, (None, None))[1] is not fut:
            return
        fut.set_exception(ClientTimeoutError(f"no reply within {timeout:g} s"))
        self._abandon(reqid)
        if self._rx_count == rx_before:
            # not one frame since the request went out: the server or the path is dead
            self._fail(ClientTimeoutError(f"no reply within {timeout:g} s: connection presumed dead"))

    def _abandon(self, reqid: int) -> None:
        """The caller gave up on reqid: its id stays reserved, its reply will be dropped."""
        self._abandoned.add(reqid)
        if len(self._abandoned) > _MAX_ABANDONED:
            self._fail(ConnectionClosedError(f"{len(self._abandoned)} requests never answered"))

    async def _drain(self, fut: Optional[asyncio.Future] = None) -> None:
        """Waits while the transport is paused (its buffer is full), until it resumes, the
        connection closes, or fut (the request's own future: its timeout ends it) is done."""
        while self._paused and self._closed_exc is None and not (fut is not None and fut.done()):
            w = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(w)

            def wake(_f, w=w):
                if not w.done():
                    w.set_result(None)

            if fut is not None:
                fut.add_done_callback(wake)
            try:
                await w
            finally:
                if fut is not None:
                    fut.remove_done_callback(wake)

    async def pipeline(self, requests: Sequence[Request], *, raise_on_error: bool = True) -> list:
        """Sends the requests at once and returns their values in request order; with
        raise_on_error=False request errors are returned in their place."""
        results = await asyncio.gather(*(self.execute(r) for r in requests), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and (
                raise_on_error or not isinstance(r, ServerError) or r.fatal
            ):
                raise r
        return list(results)

    # ---- the operations -----------------------------------------------------------------

    async def get(self, query: str, params: Sequence[Any] = (), *, tier: Optional[int] = None,
                  lsn: Any = None, bypass: bool = False) -> codec.Result:
        return await self.execute(Get(query, params, tier, lsn, bypass))

    async def refresh(self, query: str, params: Sequence[Any] = (), *, tier: Optional[int] = None,
                      lsn: Any = None, bypass: bool = False) -> codec.Result:
        return await self.execute(Refresh(query, params, tier, lsn, bypass))

    async def mget(self, items: Sequence[Any]) -> list:
        return await self.execute(MGet(list(items)))

    async def invalidate(self, query: str, params: Sequence[Any]) -> int:
        return await self.execute(Invalidate(query, params))

    async def invalidate_query(self, query: str) -> int:
        return await self.execute(InvalidateQuery(query))

    async def stats(self) -> dict:
        return await self.execute(Stats())

    async def ping(self) -> None:
        await self.execute(Ping())

    async def show(self, view: str) -> list:
        """SHOW a view (admin): a list of row dicts (see cachesvc.Connection.show)."""
        return await self.execute(Show(view))

    async def pause(self, query: str) -> dict:
        """ADMIN pause (see cachesvc.Connection.pause)."""
        return await self.execute(Admin("pause", query))

    async def resume(self, query: str) -> dict:
        """ADMIN resume (see cachesvc.Connection.resume)."""
        return await self.execute(Admin("resume", query))

    async def claim(self, query: str) -> dict:
        """ADMIN claim (see cachesvc.Connection.claim)."""
        return await self.execute(Admin("claim", query))

    async def reload(self, *, timeout: Optional[float] = None) -> dict:
        """ADMIN reload, answered when the reload has ended (see
        cachesvc.Connection.reload; the same default timeout)."""
        return await self.execute(Admin("reload"), _reload_timeout(timeout, self.timeout))

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.in_flight} in flight"
        return f"<cachesvc.aio.AsyncConnection {self.address} {state}>"


async def connect(
    address: Any = "127.0.0.1:6380",
    *,
    token: Optional[str] = None,
    client_name: str = DEFAULT_CLIENT_NAME,
    connect_timeout: float = 1.0,
    timeout: float = 5.0,
    max_reply_body: int = codec.MAX_REPLY_BODY,
    json: str = "parse",
    max_cells: int = DecodeOptions.max_cells,
) -> AsyncConnection:
    """Connects and says HELLO; arguments as cachesvc.connect. ``connect_timeout`` bounds
    name resolution, the connect and the HELLO exchange together."""
    addr = parse_address(address)
    conn = AsyncConnection(address=addr, timeout=timeout, max_reply_body=max_reply_body, json=json, max_cells=max_cells)
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + connect_timeout
    try:
        if addr.path is not None:
            coro = loop.create_unix_connection(lambda: _Protocol(conn), addr.path)
        else:
            coro = loop.create_connection(lambda: _Protocol(conn), addr.host, addr.port)
        transport, _ = await asyncio.wait_for(coro, connect_timeout)
    except asyncio.TimeoutError:
        raise ConnectError(f"cannot connect to {addr}: timed out after {connect_timeout:g} s") from None
    except OSError as e:
        raise ConnectError(f"cannot connect to {addr}: {e}") from None
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    try:
        info = await conn.execute(Hello(client_name, token), timeout=max(0.001, deadline - time.monotonic()))
    except ClientTimeoutError as e:
        conn.close()
        raise ConnectError(f"no HELLO reply from {addr} within {connect_timeout:g} s") from e
    except ConnectionClosedError as e:
        raise ConnectError(f"{addr} closed the connection during HELLO: {e}") from e
    except BaseException:
        conn.close()
        raise
    if info.version != codec.VERSION:
        conn.close()
        raise ProtocolError(f"the server speaks protocol version {info.version}, this client {codec.VERSION}")
    conn.server = info
    if info.max_frame > 0:
        conn._max_frame = info.max_frame
    return conn


class Client:
    """A pool of up to ``pool_size`` multiplexed connections with reconnect: each call goes
    to the open connection with the fewest requests in flight (a new one is opened while
    the pool is not full and every open one is busy). Retries and backoff as the sync
    cachesvc.Client: ConnectError, ConnectionClosedError and ShuttingDownError are retried
    up to ``retries`` times on a new connection after a capped exponential backoff with
    jitter; other errors are raised at once."""

    def __init__(self, address: Any = "127.0.0.1:6380", *, pool_size: int = 2, retries: int = 3,
                 backoff_base: float = 0.05, backoff_cap: float = 2.0, **connect_kwargs: Any):
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.address = parse_address(address)
        self.pool_size = pool_size
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._kwargs = connect_kwargs
        self._conns: list = []
        self._connecting = 0
        self._lock: Optional[asyncio.Lock] = None
        self._closed = False
        self._rand = random.Random()
        # connections lost and replaced, plus connects retried (for monitoring)
        self.reconnects = 0

    async def _acquire(self) -> AsyncConnection:
        if self._closed:
            raise ConnectionClosedError("the client is closed")
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._drop_closed()
        idle = [c for c in self._conns if c.in_flight == 0]
        if idle or len(self._conns) + self._connecting >= self.pool_size:
            if self._conns:
                return min(self._conns, key=lambda c: c.in_flight)
        # open one (serialised, so a burst of calls does not open pool_size at once for nothing)
        async with self._lock:
            self._drop_closed()
            if self._conns and (len(self._conns) >= self.pool_size or any(c.in_flight == 0 for c in self._conns)):
                return min(self._conns, key=lambda c: c.in_flight)
            self._connecting += 1
            try:
                conn = await connect(self.address, **self._kwargs)
            finally:
                self._connecting -= 1
            if self._closed:
                conn.close()
                raise ConnectionClosedError("the client is closed")
            self._conns.append(conn)
            return conn

    def _drop_closed(self) -> None:
        alive = [c for c in self._conns if not c.closed]
        self.reconnects += len(self._conns) - len(alive)  # lost: replaced on demand
        self._conns = alive

    async def _run(self, request: Request, timeout: Optional[float] = None) -> Any:
        attempt = 0
        while True:
            conn = None
            try:
                conn = await self._acquire()
                return await conn.execute(request, timeout)
            except (ConnectError, ConnectionClosedError, ShuttingDownError) as e:
                if self._closed:
                    raise
                if conn is not None and isinstance(e, ShuttingDownError):
                    conn.close()  # draining: the next try opens a new connection
                if attempt >= self.retries:
                    raise
                delay = codec.backoff_delay(attempt, self.backoff_base, self.backoff_cap, self._rand.random)
                attempt += 1
                if conn is None:
                    self.reconnects += 1  # a failed connect (a lost connection is counted when dropped)
                await asyncio.sleep(delay)

    async def execute(self, request: Request) -> Any:
        return await self._run(request)

    async def pipeline(self, requests: Sequence[Request], *, raise_on_error: bool = True) -> list:
        """Sends the requests concurrently (pipelined) and returns values in order."""
        results = await asyncio.gather(*(self._run(r) for r in requests), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and (
                raise_on_error or not isinstance(r, ServerError) or r.fatal
            ):
                raise r
        return list(results)

    async def get(self, query: str, params: Sequence[Any] = (), *, tier: Optional[int] = None,
                  lsn: Any = None, bypass: bool = False) -> codec.Result:
        return await self._run(Get(query, params, tier, lsn, bypass))

    async def refresh(self, query: str, params: Sequence[Any] = (), *, tier: Optional[int] = None,
                      lsn: Any = None, bypass: bool = False) -> codec.Result:
        return await self._run(Refresh(query, params, tier, lsn, bypass))

    async def mget(self, items: Sequence[Any]) -> list:
        return await self._run(MGet(list(items)))

    async def invalidate(self, query: str, params: Sequence[Any]) -> int:
        return await self._run(Invalidate(query, params))

    async def invalidate_query(self, query: str) -> int:
        return await self._run(InvalidateQuery(query))

    async def stats(self) -> dict:
        return await self._run(Stats())

    async def ping(self) -> None:
        await self._run(Ping())

    async def show(self, view: str) -> list:
        return await self._run(Show(view))

    async def pause(self, query: str) -> dict:
        return await self._run(Admin("pause", query))

    async def resume(self, query: str) -> dict:
        return await self._run(Admin("resume", query))

    async def claim(self, query: str) -> dict:
        return await self._run(Admin("claim", query))

    async def reload(self, *, timeout: Optional[float] = None) -> dict:
        return await self._run(Admin("reload"), _reload_timeout(timeout, self._kwargs.get("timeout", 5.0)))

    async def close(self) -> None:
        self._closed = True
        for c in self._conns:
            c.close()
        self._conns = []

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
