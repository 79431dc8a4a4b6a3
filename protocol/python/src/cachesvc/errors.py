"""Exceptions of the cachesvc client.

Every exception the client raises on purpose derives from :class:`CachesvcError`, which
carries the protocol's stable error ``code`` (PROTOCOL.md section 6) and its ``name`` when
there is one, so callers can branch on codes instead of messages::

    CachesvcError
    ├── ServerError                 an error frame from the server (code 1..255)
    │   ├── UnknownQueryError       1  unknown_query
    │   ├── BadParamsError          2  bad_params
    │   ├── OverloadedError         3  overloaded      (retry with backoff)
    │   ├── UnavailableError        4  unavailable
    │   ├── TooLargeError           5  too_large       (also raised before sending a request
    │   │                                               over the server's max_frame)
    │   ├── AuthError               6  auth
    │   ├── ServerProtocolError     7  protocol        (also a ProtocolError: closes)
    │   ├── InternalError           8  internal        (and every code the client does not know)
    │   ├── ServerTimeoutError      9  timeout         (the server gave up on the database)
    │   ├── ShuttingDownError      10  shutting_down   (reconnect)
    │   ├── FutureLsnError         11  future_lsn      (a read-your-writes token beyond the
    │   │                                               primary's position: not retryable)
    │   └── NoShardError           12  no_shard        (a sharded origin: the shard key maps
    │                                                   to no shard; not retryable)
    ├── ProtocolError               7  protocol: a malformed frame or a broken hard limit; the
    │                                  connection is closed
    ├── InvalidRequestError            a request the client refuses to send (ValueError too)
    └── ClientConnectionError          the connection failed; it is closed
        ├── ConnectError               could not connect (refused, timed out, bad address)
        ├── ConnectionClosedError      the server closed it, or it was closed after an error
        └── ClientTimeoutError         no reply within the timeout (TimeoutError too)

A request error (any ServerError but ServerProtocolError) leaves the connection usable; a
protocol error and every ClientConnectionError close it.
"""

from __future__ import annotations

__all__ = [
    "ERROR_NAMES",
    "CachesvcError",
    "ServerError",
    "UnknownQueryError",
    "BadParamsError",
    "OverloadedError",
    "UnavailableError",
    "TooLargeError",
    "AuthError",
    "ServerProtocolError",
    "InternalError",
    "ServerTimeoutError",
    "ShuttingDownError",
    "FutureLsnError",
    "NoShardError",
    "ProtocolError",
    "InvalidRequestError",
    "ClientConnectionError",
    "ConnectError",
    "ConnectionClosedError",
    "ClientTimeoutError",
    "server_error",
]

#: Stable names of the protocol's error codes (PROTOCOL.md section 6).
ERROR_NAMES = {
    1: "unknown_query",
    2: "bad_params",
    3: "overloaded",
    4: "unavailable",
    5: "too_large",
    6: "auth",
    7: "protocol",
    8: "internal",
    9: "timeout",
    10: "shutting_down",
    11: "future_lsn",
    12: "no_shard",
}

CODE_PROTOCOL = 7
CODE_INTERNAL = 8


class CachesvcError(Exception):
    """Base class. ``code`` is the protocol's error code (int) or None for errors that have
    no wire code (connection failures, refused requests); ``name`` its stable name."""

    code: int | None = None
    name: str = "error"

    def __init__(self, message: str = "", *, code: int | None = None, name: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if name is not None:
            self.name = name

    def __str__(self) -> str:
        if self.code is not None:
            return f"{self.name} ({self.code}): {self.message}"
        return f"{self.name}: {self.message}"


class ServerError(CachesvcError):
    """An error reply (opcode 0xFF) from the server. ``code`` is the code as received (a
    code the client does not know is raised as InternalError with its own code kept)."""

    fatal = False


class UnknownQueryError(ServerError):
    code, name = 1, "unknown_query"


class BadParamsError(ServerError):
    code, name = 2, "bad_params"


class OverloadedError(ServerError):
    code, name = 3, "overloaded"


class UnavailableError(ServerError):
    code, name = 4, "unavailable"


class TooLargeError(ServerError):
    code, name = 5, "too_large"


class AuthError(ServerError):
    code, name = 6, "auth"


class InternalError(ServerError):
    code, name = 8, "internal"


class ServerTimeoutError(ServerError):
    code, name = 9, "timeout"


class ShuttingDownError(ServerError):
    code, name = 10, "shutting_down"


class FutureLsnError(ServerError):
    """The read-your-writes ``lsn`` is beyond the primary's current position: not an LSN the
    primary wrote (forged, corrupted, or from another cluster)."""

    code, name = 11, "future_lsn"


class NoShardError(ServerError):
    """The request's shard key maps to no shard (a sharded origin: a key in no range of
    ``shard_ranges``). Not retryable; the connection stays usable."""

    code, name = 12, "no_shard"


class ProtocolError(CachesvcError):
    """A malformed frame or body, or a broken hard limit (PROTOCOL.md section 7), detected
    by the client or reported by the server. The connection is closed."""

    code, name = CODE_PROTOCOL, "protocol"


class ServerProtocolError(ServerError, ProtocolError):
    """The server refused one of our frames as malformed (code 7); it closes the
    connection after sending this."""

    code, name = CODE_PROTOCOL, "protocol"
    fatal = True


class InvalidRequestError(CachesvcError, ValueError):
    """The client refuses to send a request that breaks the protocol's limits or carries a
    value the protocol cannot express. Nothing was sent; the connection is unaffected."""

    name = "invalid_request"


class ClientConnectionError(CachesvcError, ConnectionError):
    """The connection failed and is closed."""

    name = "connection"


class ConnectError(ClientConnectionError):
    name = "connect"


class ConnectionClosedError(ClientConnectionError):
    name = "closed"


class ClientTimeoutError(ClientConnectionError, TimeoutError):
    name = "client_timeout"


_BY_CODE = {
    1: UnknownQueryError,
    2: BadParamsError,
    3: OverloadedError,
    4: UnavailableError,
    5: TooLargeError,
    6: AuthError,
    7: ServerProtocolError,
    8: InternalError,
    9: ServerTimeoutError,
    10: ShuttingDownError,
    11: FutureLsnError,
    12: NoShardError,
}


def server_error(code: int, message: str) -> ServerError:
    """Returns the exception for an error code sent by the server. Codes the client does not
    know are treated like ``internal`` (PROTOCOL.md section 6) but keep their own code."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return InternalError(message, code=code, name="internal")
    return cls(message)


def _as_protocol_error(exc: BaseException) -> "ProtocolError":
    """exc when it is a ProtocolError, else a ProtocolError describing it: any failure to
    decode a received frame (RecursionError, MemoryError, a bug) fails the request and
    closes the connection like a malformed frame, never leaving a caller waiting."""
    if isinstance(exc, ProtocolError):
        return exc
    pe = ProtocolError(f"undecodable frame: {type(exc).__name__}: {exc}"[:300])
    pe.__cause__ = exc
    return pe
