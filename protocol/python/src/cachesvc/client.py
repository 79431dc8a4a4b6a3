"""The synchronous cachesvc client: :func:`connect` (one connection, with pipelining) and
:class:`Client` (a small thread-safe pool with reconnect and backoff).

Every call blocks the calling thread at most its timeout: sockets are non-blocking and
every wait is a poll() with a deadline. A Connection is used by one thread at a time.
"""

from __future__ import annotations

import os
import random
import select
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from . import codec
from ._address import Address, parse_address
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

__all__ = ["Connection", "Pending", "Client", "connect", "DEFAULT_CLIENT_NAME", "RELOAD_TIMEOUT"]

DEFAULT_CLIENT_NAME = "cachesvc-python"
# The least time reload() waits for its answer by default: the server answers when its
# checked reload has ended (it prepares every new query on a replica, bounded by the
# server's request_timeout), which may take longer than an ordinary request.
RELOAD_TIMEOUT = 30.0
_RECV_SIZE = 256 * 1024
_POLLIN = select.POLLIN | select.POLLPRI
_POLLOUT = select.POLLOUT
_POLLERR = select.POLLERR | select.POLLHUP | select.POLLNVAL


class Pending:
    """A request sent (or queued to be sent) on a Connection, whose reply may come later
    and in any order. ``result()`` waits for it (reading and dispatching every reply that
    arrives meanwhile) and returns the value or raises the error."""

    __slots__ = ("request", "id", "_conn", "_done", "_value", "_exc", "_seq")

    def __init__(self, conn: "Connection", request: Request, reqid: int):
        self.request = request
        self.id = reqid
        self._conn = conn
        self._done = False
        self._value: Any = None
        self._exc: Optional[BaseException] = None
        self._seq = 0  # completion order on the connection

    def done(self) -> bool:
        return self._done

    def result(self, timeout: Optional[float] = None) -> Any:
        """The reply's value; raises its ServerError, or the connection's failure.
        ``timeout`` (seconds) defaults to the connection's; running out of it closes the
        connection (ClientTimeoutError), since the reply's place in the stream is lost."""
        if not self._done:
            self._conn._pump(self.done, timeout)
        if self._exc is not None:
            raise self._exc
        return self._value

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if not self._done:
            self._conn._pump(self.done, timeout)
        return self._exc

    def _set(self, value: Any) -> None:
        self._value, self._done = value, True
        self._seq = self._conn._completion()

    def _fail(self, exc: BaseException) -> None:
        self._exc, self._done = exc, True
        self._seq = self._conn._completion()

    def __repr__(self) -> str:
        state = "done" if self._done else "pending"
        return f"<Pending id={self.id} {type(self.request).__name__} {state}>"


class Connection:
    """One connection to a cachesvc daemon. Create it with :func:`connect`.

    Simple calls (``get``, ``mget``, ``refresh``, ``invalidate``, ``invalidate_query``,
    ``stats``, ``ping``, and the admin ``show``, ``pause``, ``resume``, ``reload``) send
    one request and wait for its reply. For pipelining,
    ``send(request)`` queues a request and returns a Pending at once; queued frames go out
    together when something waits (or on ``flush()``), and replies are matched by request
    id in whatever order the server sends them (``as_completed`` yields them in that
    order). A request error (a ServerError other than ServerProtocolError) leaves the
    connection usable; a protocol error, a timeout or an I/O error closes it and fails
    every request in flight."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        address: Optional[Address] = None,
        timeout: float = 5.0,
        max_reply_body: int = codec.MAX_REPLY_BODY,
        json: str = "parse",
        max_cells: int = DecodeOptions.max_cells,
    ):
        self.address = address
        self.timeout = timeout
        self.server: Optional[ServerInfo] = None
        self._sock = sock
        sock.setblocking(False)
        self._fd = sock.fileno()
        self._poll = select.poll()
        self._poll.register(self._fd, _POLLIN)
        self._pollmask = _POLLIN
        self._opts = DecodeOptions(json=json, max_cells=max_cells)
        self._reader = codec.FrameReader(max_reply_body)
        self._rbuf = bytearray(_RECV_SIZE)
        self._rview = memoryview(self._rbuf)
        self._out = bytearray()
        self._pending: dict = {}
        self._next_id = 0
        self._max_frame = codec.MAX_REQUEST_BODY
        self._closed_exc: Optional[BaseException] = None
        self._completed = 0

    def _completion(self) -> int:
        self._completed += 1
        return self._completed

    # ---- state ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed_exc is not None

    @property
    def in_flight(self) -> int:
        """Requests sent or queued whose reply has not been dispatched yet."""
        return len(self._pending)

    def close(self) -> None:
        """Closes the connection; requests in flight fail with ConnectionClosedError."""
        if self._closed_exc is None:
            self._fail(ConnectionClosedError("connection closed by the client"))

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, exc: BaseException) -> None:
        """Closes the connection for good: every request in flight fails with exc."""
        if self._closed_exc is not None:
            return
        if isinstance(exc, ConnectionClosedError):
            self._closed_exc = exc
        else:
            self._closed_exc = ConnectionClosedError(f"connection closed after: {exc}")
            self._closed_exc.__cause__ = exc
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p._fail(exc)
        self._out.clear()
        try:
            self._poll.unregister(self._fd)
        except (KeyError, ValueError, OSError):
            pass
        try:
            self._sock.close()
        except OSError:
            pass

    # ---- sending ------------------------------------------------------------------------

    def _alloc_id(self) -> int:
        while True:
            self._next_id = self._next_id % codec.UINT32_MAX + 1  # 1..2^32-1; 0 is never used
            if self._next_id not in self._pending:
                return self._next_id

    def send(self, request: Request) -> Pending:
        """Queues a request (encoded now; bytes leave on the next wait or flush) and
        returns its Pending. Raises InvalidRequestError/TooLargeError (nothing queued) or
        ConnectionClosedError."""
        if self._closed_exc is not None:
            raise self._closed_exc
        reqid = self._alloc_id()
        frame = codec.encode_request(request, reqid, self._max_frame)
        p = Pending(self, request, reqid)
        self._pending[reqid] = p
        self._out += frame
        return p

    def flush(self, timeout: Optional[float] = None) -> None:
        """Writes every queued frame (dispatching replies that arrive meanwhile, so a
        server that stops reading until we read cannot deadlock us)."""
        self._pump(lambda: not self._out, timeout)
        if self._closed_exc is not None:
            raise self._closed_exc

    # ---- the I/O loop -------------------------------------------------------------------

    def _pump(self, done: Callable[[], bool], timeout: Optional[float]) -> None:
        """Sends and receives until done() or the deadline; dispatches every reply."""
        if timeout is None:
            timeout = self.timeout
        deadline = time.monotonic() + timeout
        while not done():
            if self._closed_exc is not None:
                raise self._closed_exc
            if self._out:
                self._write()  # optimistic: the socket buffer usually has room
                if self._closed_exc is not None:
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                exc = ClientTimeoutError(f"no reply within {timeout:g} s")
                self._fail(exc)
                raise exc
            mask = _POLLIN | _POLLOUT if self._out else _POLLIN
            if mask != self._pollmask:
                self._poll.modify(self._fd, mask)
                self._pollmask = mask
            try:
                events = self._poll.poll(max(1, int(remaining * 1000 + 0.999)))
            except InterruptedError:
                continue
            for _fd, ev in events:
                if ev & _POLLOUT and self._out:
                    self._write()
                if ev & (_POLLIN | _POLLERR) and self._closed_exc is None:
                    self._read()

    def _write(self) -> None:
        try:
            n = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._fail(ConnectionClosedError(f"write failed: {e}"))
            return
        del self._out[:n]

    def _read(self) -> None:
        try:
            n = self._sock.recv_into(self._rbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._fail(ConnectionClosedError(f"read failed: {e}"))
            return
        if n == 0:
            self._fail(ConnectionClosedError("the server closed the connection"))
            return
        try:
            self._reader.feed(self._rview[:n])
            while self._closed_exc is None:
                f = self._reader.next()
                if f is None:
                    break
                self._dispatch(f)
        except Exception as e:  # noqa: BLE001 - a frame we cannot handle closes the connection
            self._fail(_as_protocol_error(e))

    def _dispatch(self, f: codec.Frame) -> None:
        p = self._pending.pop(f.reqid, None)
        if p is None:
            if f.opcode == codec.Op.ERROR:
                err = codec.decode_error(f.body)
                if f.reqid != 0 and not err.fatal:
                    raise ProtocolError(f"error reply for request id {f.reqid}, which is not in flight: {err}")
                # a connection-level error (id 0, or a protocol error): the server closes
                self._fail(err)
                return
            raise ProtocolError(f"reply for request id {f.reqid}, which is not in flight")
        try:
            v = codec.decode_reply(p.request, f.opcode, f.body, self._opts)
        except Exception as e:  # noqa: BLE001 - no decoding failure may leave p pending
            pe = _as_protocol_error(e)
            p._fail(pe)
            raise pe from (None if pe is e else e)
        if isinstance(v, ServerError):
            p._fail(v)
            if v.fatal:
                self._fail(v)
        else:
            p._set(v)

    # ---- waiting --------------------------------------------------------------------------

    def as_completed(self, pendings: Iterable[Pending], timeout: Optional[float] = None) -> Iterator[Pending]:
        """Yields the given Pendings in the order their replies arrive (replies read in
        one go keep their order in the stream)."""
        left = list(pendings)
        while left:
            ready = sorted((p for p in left if p._done), key=lambda p: p._seq)
            if not ready:
                self._pump(lambda: any(p._done for p in left), timeout)
                continue
            for p in ready:
                left.remove(p)
                yield p

    def execute(self, request: Request, timeout: Optional[float] = None) -> Any:
        """Sends one request and returns its reply's value (raises its error)."""
        return self.send(request).result(timeout)

    def pipeline(self, requests: Sequence[Request], *, raise_on_error: bool = True) -> list:
        """Sends every request in one write and returns their values in request order.
        With raise_on_error=False, a request error is returned in its place instead of
        raised (connection failures are always raised)."""
        pendings = [self.send(r) for r in requests]
        out = []
        for p in pendings:
            exc = p.exception()
            if exc is None:
                out.append(p._value)
            elif raise_on_error or not isinstance(exc, ServerError) or exc.fatal:
                raise exc
            else:
                out.append(exc)
        return out

    # ---- the operations -----------------------------------------------------------------

    def get(self, query: str, params: Sequence[Any] = (), *, tier: Optional[int] = None,
            lsn: Any = None, bypass: bool = False) -> codec.Result:
        """Runs a configured query through the cache: a Result (rows, columns, meta)."""
        return self.execute(Get(query, params, tier, lsn, bypass))

    def refresh(self, query: str, params: Sequence[Any] = (), *, tier: Optional[int] = None,
                lsn: Any = None, bypass: bool = False) -> codec.Result:
        """Re-runs the query and refills its cache entry (cache warming)."""
        return self.execute(Refresh(query, params, tier, lsn, bypass))

    def mget(self, items: Sequence[Any]) -> list:
        """Several GETs in one frame: a list with a Result or a ServerError per item."""
        return self.execute(MGet(list(items)))

    def invalidate(self, query: str, params: Sequence[Any]) -> int:
        """Deletes the cache key of (query, params); returns how many were deleted (0/1)."""
        return self.execute(Invalidate(query, params))

    def invalidate_query(self, query: str) -> int:
        """Invalidates every key of a query; returns its new generation number."""
        return self.execute(InvalidateQuery(query))

    def stats(self) -> dict:
        """The server's counters and gauges: name -> int or float."""
        return self.execute(Stats())

    def ping(self) -> None:
        self.execute(Ping())

    # admin requests (PROTOCOL.md 3.8, 3.9): they need the admin token when the server has
    # one (AuthError otherwise; the connection stays usable)

    def show(self, view: str) -> list:
        """SHOW a view ("queries", "servers", "clients", "invalidator", "config", "slots"): a list
        of rows, each a dict column -> None/bool/int/float/str. Rows may differ in their
        columns (unknown ones are kept); ``codec.row_columns(rows)`` gives their union in
        first-seen order. An unknown view raises BadParamsError naming the views."""
        return self.execute(Show(view))

    def pause(self, query: str) -> dict:
        """Makes this server answer ``query`` from PostgreSQL, bypassing the cache, until
        resume (kept across reloads; this server only). Returns its row:
        {"query": name, "paused": True, "changed": bool (it was not paused)}."""
        return self.execute(Admin("pause", query))

    def resume(self, query: str) -> dict:
        """Serves ``query`` from the cache again: {"query", "paused": False, "changed"}."""
        return self.execute(Admin("resume", query))

    def claim(self, query: str) -> dict:
        """Makes this server's definition of ``query`` own its cache again where another
        server's definition took it over (a rolling deploy whose other side is gone), with
        a new generation: {"query", "claimed": bool (another definition owned it)}."""
        return self.execute(Admin("claim", query))

    def reload(self, *, timeout: Optional[float] = None) -> dict:
        """Reloads the server's configuration file, checked as on SIGHUP, and returns when
        the reload has ended: {"reload": "applied", "queries": n} or {"reload":
        "refused", "error": why} (a refusal is a reply, not an exception). ``timeout``
        (seconds) defaults to the longer of the connection's timeout and RELOAD_TIMEOUT.
        OverloadedError while another reload is being checked (retry)."""
        return self.execute(Admin("reload"), _reload_timeout(timeout, self.timeout))

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._pending)} in flight"
        return f"<cachesvc.Connection {self.address} {state}>"


def _reload_timeout(timeout: Optional[float], default: float) -> float:
    return max(default, RELOAD_TIMEOUT) if timeout is None else timeout


def _open_socket(addr: Address, timeout: float) -> socket.socket:
    if addr.path is not None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(addr.path)
        except OSError as e:
            s.close()
            raise ConnectError(f"cannot connect to {addr}: {e}") from None
        return s
    deadline = time.monotonic() + timeout
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise ConnectError(f"cannot resolve {addr.host!r}: {e}") from None
    last: Optional[OSError] = None
    for family, stype, proto, _name, sockaddr in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        s = socket.socket(family, stype, proto)
        try:
            s.settimeout(remaining)
            s.connect(sockaddr)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError as e:
            s.close()
            last = e
    if last is None:
        last = TimeoutError("timed out")
    raise ConnectError(f"cannot connect to {addr}: {last}") from None


def connect(
    address: Any = "127.0.0.1:6380",
    *,
    token: Optional[str] = None,
    client_name: str = DEFAULT_CLIENT_NAME,
    connect_timeout: float = 1.0,
    timeout: float = 5.0,
    max_reply_body: int = codec.MAX_REPLY_BODY,
    json: str = "parse",
    max_cells: int = DecodeOptions.max_cells,
) -> Connection:
    """Connects and says HELLO (protocol version 1, the client name and the token).

    ``address``: "host:port", "[v6]:port", "unix:/path" or "/path", or (host, port).
    ``connect_timeout`` bounds the connect and the HELLO exchange (name resolution of a
    host name is the system resolver's and is not bounded by it: use numeric addresses
    where that matters); ``timeout`` bounds each later wait for a reply.
    ``max_reply_body`` is the largest reply body accepted (a larger header is refused
    before its body is read); ``json`` is "parse" (json/jsonb cells as Python objects) or
    "raw" (their text). Raises ConnectError, AuthError (wrong or missing token),
    ProtocolError."""
    addr = parse_address(address)
    DecodeOptions(json=json, max_cells=max_cells)  # validate before connecting
    sock = _open_socket(addr, connect_timeout)
    conn = Connection(sock, address=addr, timeout=timeout, max_reply_body=max_reply_body, json=json, max_cells=max_cells)
    try:
        info = conn.execute(Hello(client_name, token), timeout=connect_timeout)
    except ClientTimeoutError as e:
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
    """A thread-safe pool of up to ``pool_size`` connections to one daemon, opened on
    demand, with reconnect.

    A call takes an idle connection (or opens one), runs, and gives it back. When the
    connection turns out dead (the daemon restarted: ConnectionClosedError), cannot be
    opened (ConnectError), or the server is draining (ShuttingDownError), the call is
    retried on a new connection up to ``retries`` times, sleeping a capped exponential
    backoff with jitter (``backoff_base`` doubling up to ``backoff_cap`` seconds) between
    tries. Every cachesvc operation is safe to retry (reads; INVALIDATE is idempotent).
    Request errors, protocol errors and timeouts are raised at once.

    After fork(), a child process does not reuse the parent's connections: it opens its own.

    Other keyword arguments go to :func:`connect` (token, client_name, connect_timeout,
    timeout, max_reply_body, json, max_cells)."""

    def __init__(
        self,
        address: Any = "127.0.0.1:6380",
        *,
        pool_size: int = 4,
        retries: int = 3,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
        pool_timeout: Optional[float] = None,
        **connect_kwargs: Any,
    ):
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.address = parse_address(address)
        self.pool_size = pool_size
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._kwargs = connect_kwargs
        self.pool_timeout = pool_timeout if pool_timeout is not None else connect_kwargs.get("timeout", 5.0)
        self._idle: list = []
        self._total = 0
        self._cond = threading.Condition()
        self._closed = False
        self._rand = random.Random()
        self._pid = os.getpid()
        self.reconnects = 0  # retries after a lost connection or a failed connect (monitoring)

    # ---- the pool -----------------------------------------------------------------------

    def _after_fork(self) -> None:
        # A pool inherited through fork() (pre-forking servers): the parent's connections
        # are not ours to use; forget them (not closed: that would not touch the parent's
        # socket anyway, but their state is the parent's) and start over.
        self._pid = os.getpid()
        self._idle = []
        self._total = 0
        self._cond = threading.Condition()

    def _acquire(self) -> Connection:
        if self._pid != os.getpid():
            self._after_fork()
        deadline = time.monotonic() + self.pool_timeout
        with self._cond:
            while True:
                if self._closed:
                    raise ConnectionClosedError("the client is closed")
                while self._idle:
                    c = self._idle.pop()
                    if not c.closed:
                        return c
                    self._total -= 1
                if self._total < self.pool_size:
                    self._total += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ClientTimeoutError(f"no pooled connection free within {self.pool_timeout:g} s")
                self._cond.wait(remaining)
        try:
            return connect(self.address, **self._kwargs)
        except BaseException:
            with self._cond:
                self._total -= 1
                self._cond.notify()
            raise

    def _release(self, conn: Connection) -> None:
        if self._pid != os.getpid():  # released in a child that inherited it mid-call
            return
        if not conn.closed and (conn.in_flight or conn._out):
            conn.close()  # left with requests in flight: their replies would confuse the next user
        with self._cond:
            if conn.closed or self._closed:
                conn.close()
                self._total -= 1
            else:
                self._idle.append(conn)
            self._cond.notify()

    def _backoff(self, attempt: int) -> None:
        time.sleep(codec.backoff_delay(attempt, self.backoff_base, self.backoff_cap, self._rand.random))

    def _run(self, fn: Callable[[Connection], Any]) -> Any:
        attempt = 0
        while True:
            try:
                conn = self._acquire()
            except (ConnectError, ShuttingDownError):  # (a draining server answers HELLO so)
                if attempt >= self.retries:
                    raise
                self._backoff(attempt)
                attempt += 1
                self.reconnects += 1
                continue
            try:
                return fn(conn)
            except (ConnectionClosedError, ShuttingDownError):
                conn.close()
                if attempt >= self.retries:
                    raise
                self._backoff(attempt)
                attempt += 1
                self.reconnects += 1
            finally:
                self._release(conn)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection of one's own for a while (for send/as_completed
        pipelining). No retry: a failure is raised."""
        attempt = 0
        while True:
            try:
                conn = self._acquire()
                break
            except (ConnectError, ShuttingDownError):
                if attempt >= self.retries:
                    raise
                self._backoff(attempt)
                attempt += 1
        try:
            yield conn
        finally:
            self._release(conn)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._total -= len(idle)
            self._cond.notify_all()
        for c in idle:
            c.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the operations -----------------------------------------------------------------

    def execute(self, request: Request) -> Any:
        return self._run(lambda c: c.execute(request))

    def pipeline(self, requests: Sequence[Request], *, raise_on_error: bool = True) -> list:
        """Sends the requests pipelined on one connection; values in request order."""
        reqs = list(requests)
        return self._run(lambda c: c.pipeline(reqs, raise_on_error=raise_on_error))

    def get(self, query: str, params: Sequence[Any] = (), *, tier: Optional[int] = None,
            lsn: Any = None, bypass: bool = False) -> codec.Result:
        return self.execute(Get(query, params, tier, lsn, bypass))

    def refresh(self, query: str, params: Sequence[Any] = (), *, tier: Optional[int] = None,
                lsn: Any = None, bypass: bool = False) -> codec.Result:
        return self.execute(Refresh(query, params, tier, lsn, bypass))

    def mget(self, items: Sequence[Any]) -> list:
        return self.execute(MGet(list(items)))

    def invalidate(self, query: str, params: Sequence[Any]) -> int:
        return self.execute(Invalidate(query, params))

    def invalidate_query(self, query: str) -> int:
        return self.execute(InvalidateQuery(query))

    def stats(self) -> dict:
        return self.execute(Stats())

    def ping(self) -> None:
        self.execute(Ping())

    def show(self, view: str) -> list:
        """SHOW a view: a list of row dicts (see Connection.show)."""
        return self.execute(Show(view))

    def pause(self, query: str) -> dict:
        """Pauses the cache for a query on this server (see Connection.pause)."""
        return self.execute(Admin("pause", query))

    def resume(self, query: str) -> dict:
        """Serves a paused query from the cache again (see Connection.resume)."""
        return self.execute(Admin("resume", query))

    def claim(self, query: str) -> dict:
        """Takes a query's cache back from another definition (see Connection.claim)."""
        return self.execute(Admin("claim", query))

    def reload(self, *, timeout: Optional[float] = None) -> dict:
        """Reloads the server's configuration (see Connection.reload)."""
        t = _reload_timeout(timeout, self._kwargs.get("timeout", 5.0))
        return self._run(lambda c: c.execute(Admin("reload"), t))
