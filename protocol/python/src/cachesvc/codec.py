"""The cachesvc wire codec (PROTOCOL.md, version 1): pure, no I/O.

Frames are a 12-byte header (body length u32 BE, version 1, opcode, flags u16 = 0, request
id u32 BE) and a body of exactly one MessagePack object. This module encodes requests,
splits a byte stream into frames (:class:`FrameReader`), checks every hard limit of
PROTOCOL.md section 7 before anything is allocated for it, and turns reply bodies into
typed Python values. The sync client (:mod:`cachesvc.client`) and the asyncio client
(:mod:`cachesvc.aio`) share it; neither decodes anything itself.

Every decoding failure raises :class:`~cachesvc.errors.ProtocolError` (code 7), and only
that: hostile input never escapes as a KeyError, a MemoryError from a huge count, or a
RecursionError.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import json as _json
import re
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple, Union

import msgpack

from .errors import (
    ERROR_NAMES,
    InvalidRequestError,
    ProtocolError,
    ServerError,
    TooLargeError,
    server_error,
)

# ---- constants (PROTOCOL.md sections 1, 3, 7) -------------------------------------------------

VERSION = 1
HEADER_SIZE = 12
MAX_REQUEST_BODY = 1 << 20  # the server's default; HELLO announces the real one (max_frame)
MAX_REPLY_BODY = 64 << 20  # the default limit on a reply body this client accepts
MAX_DEPTH = 8  # the body itself is depth 1
MAX_PARAMS = 16
MAX_QUERY_NAME = 64
MAX_CLIENT_NAME = 64
MAX_TOKEN = 256
MAX_MGET = 256
MAX_MESSAGE = 1024
MAX_COLUMNS = 1664
MAX_COLUMN_NAME = 64
MAX_SERVER_NAME = 64
MAX_STAT_NAME = 128
MAX_ADMIN_NAME = 64  # a SHOW view name, an ADMIN op name
MAX_ROW_KEY = 128  # a SHOW/ADMIN row's column name
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
UINT32_MAX = (1 << 32) - 1

_HEADER = struct.Struct(">IBBHI")


class Op(enum.IntEnum):
    """Request opcodes; a successful reply is ``0x80 | op``, an error reply ERROR."""

    HELLO = 0x01
    PING = 0x02
    GET = 0x03
    MGET = 0x04
    REFRESH = 0x05
    INVALIDATE = 0x06
    STATS = 0x07
    SHOW = 0x08
    ADMIN = 0x09
    ERROR = 0xFF


REPLY_FLAG = 0x80
_REPLY_OPCODES = frozenset({0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0xFF})


class Source(enum.IntEnum):
    """Where an answer came from (meta ``src``)."""

    CACHE = 0
    REPLICA = 1
    PRIMARY = 2


class Tier(enum.IntEnum):
    """Priority tiers of a GET (``tier``)."""

    CRITICAL = 0
    DEFAULT = 1
    BATCH = 2


class ColumnType(enum.IntEnum):
    """Column type codes of a result (PROTOCOL.md section 4). Codes 11..255 are unknown to
    this version and are read as OTHER."""

    BOOL = 1
    INT = 2
    FLOAT = 3
    TEXT = 4
    BYTEA = 5
    TIMESTAMP = 6
    TIMESTAMPTZ = 7
    NUMERIC = 8
    JSON = 9
    OTHER = 10


# ---- LSNs --------------------------------------------------------------------------------------


class LSN(int):
    """A PostgreSQL WAL position: an unsigned 64-bit int that prints as PostgreSQL does
    (``16/B374D848``, the hex halves). Compares and hashes as its integer value."""

    __slots__ = ()

    def __new__(cls, value: Union[int, str, "LSN"] = 0) -> "LSN":
        if isinstance(value, str):
            return int.__new__(cls, parse_lsn(value))
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(f"an LSN is an int or 'X/Y' text, not {type(value).__name__}")
        if not 0 <= value <= UINT64_MAX:
            raise InvalidRequestError(f"LSN {value} out of range 0..2^64-1")
        return int.__new__(cls, value)

    def __str__(self) -> str:
        return format_lsn(self)

    def __repr__(self) -> str:
        return f"LSN('{format_lsn(self)}')"


_HEX = frozenset("0123456789abcdefABCDEF")


def parse_lsn(text: str) -> int:
    """Parses PostgreSQL's ``X/Y`` LSN text (1-8 hex digits each side) into an int.
    Raises InvalidRequestError on anything else."""
    hi, sep, lo = text.partition("/")
    if (
        not sep
        or not 1 <= len(hi) <= 8
        or not 1 <= len(lo) <= 8
        or not _HEX.issuperset(hi)
        or not _HEX.issuperset(lo)
    ):
        raise InvalidRequestError(f"not an LSN (want X/Y in hex, as PostgreSQL prints it): {text!r}")
    return (int(hi, 16) << 32) | int(lo, 16)


def format_lsn(lsn: int) -> str:
    """Formats an LSN as PostgreSQL does: upper-case hex halves without padding."""
    lsn = int(lsn)
    if not 0 <= lsn <= UINT64_MAX:
        raise InvalidRequestError(f"LSN {lsn} out of range 0..2^64-1")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


#: Longest shard name a token may carry (PROTOCOL.md 3.3; the configuration's limit).
MAX_SHARD = 64
_SHARD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _check_shard(shard: Any) -> str:
    if not isinstance(shard, str):
        raise InvalidRequestError(f"a token's shard is a str, not {type(shard).__name__}")
    if not 1 <= len(shard) <= MAX_SHARD or not _SHARD_CHARS.issuperset(shard):
        raise InvalidRequestError(
            f"a token's shard is 1..{MAX_SHARD} characters of A-Z a-z 0-9 _ . -, not {shard!r}")
    return shard


@dataclass(frozen=True)
class Token:
    """A read-your-writes token: an LSN and, with a sharded origin, the shard whose WAL it is
    a position in (``s1:0/16B3748``; ``shard`` None for a bare ``X/Y``). ``str()`` gives the
    text form; :func:`parse_token` reads it. A token that names a shard needs a nonzero LSN.
    Pass it (or its text) as a request's ``lsn``."""

    lsn: LSN
    shard: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lsn", LSN(self.lsn))
        if self.shard is not None:
            _check_shard(self.shard)
            if self.lsn == 0:
                raise InvalidRequestError("a token that names a shard needs a nonzero LSN, not 0/0")

    def __str__(self) -> str:
        return format_token(self)


def parse_token(text: str) -> Token:
    """Parses a read-your-writes token: ``X/Y`` (shard None) or ``SHARD:X/Y``, SHARD 1..64
    characters of A-Z a-z 0-9 _ . - and the LSN not 0/0. Raises InvalidRequestError on
    anything else (an empty or too long shard, a bad LSN, a second ``:``)."""
    if not isinstance(text, str):
        raise InvalidRequestError(f"a token is 'X/Y' or 'SHARD:X/Y' text, not {type(text).__name__}")
    shard, sep, rest = text.partition(":")
    if not sep:
        return Token(LSN(parse_lsn(text)))
    return Token(LSN(parse_lsn(rest)), _check_shard(shard))


def format_token(token: "Token") -> str:
    """The text form of a token: ``X/Y`` or ``SHARD:X/Y``."""
    lsn = format_lsn(token.lsn)
    return lsn if token.shard is None else f"{token.shard}:{lsn}"


def _lsn_token(value: Union[None, int, str, Token]) -> Tuple[int, Optional[str]]:
    """A request's ``lsn`` (None, an int or LSN, "X/Y" or "SHARD:X/Y" text, or a Token) as
    (lsn, shard)."""
    if value is None:
        return 0, None
    if isinstance(value, Token):
        return int(value.lsn), value.shard
    if isinstance(value, str):
        t = parse_token(value)
        return int(t.lsn), t.shard
    return int(LSN(value)), None


# ---- requests ------------------------------------------------------------------------------------

Params = Sequence[Any]


@dataclass(frozen=True)
class Get:
    """A GET: query name, parameters ($1..$n, any scalar), tier, read-your-writes token
    (an int or LSN, "X/Y", "SHARD:X/Y" or a Token; one naming a shard sends "shard"), bypass
    (read from the database, do not fill)."""

    query: str
    params: Params = ()
    tier: Optional[int] = None
    lsn: Union[None, int, str, Token] = None
    bypass: bool = False
    op = Op.GET


@dataclass(frozen=True)
class Refresh(Get):
    """Like GET, but the server always re-runs the query and refills the cache."""

    op = Op.REFRESH


@dataclass(frozen=True)
class MGet:
    """Several GETs in one frame; the reply has one item (a Result or a ServerError) per
    GET, in order. Items may be Get objects or (query, params) tuples."""

    items: Sequence[Any]
    op = Op.MGET


@dataclass(frozen=True)
class Invalidate:
    """Deletes the one cache key of (query, params); the reply is the number deleted."""

    query: str
    params: Params
    op = Op.INVALIDATE


@dataclass(frozen=True)
class InvalidateQuery:
    """Invalidates every key of a query (O(1) generation bump); the reply is the new
    generation number."""

    query: str
    op = Op.INVALIDATE


@dataclass(frozen=True)
class Stats:
    op = Op.STATS


@dataclass(frozen=True)
class Ping:
    op = Op.PING


@dataclass(frozen=True)
class Show:
    """SHOW a view (admin; PROTOCOL.md 3.8): "queries", "servers", "clients",
    "invalidator", "config", "slots". The reply is a list of rows, each a dict column -> scalar."""

    view: str
    op = Op.SHOW


@dataclass(frozen=True)
class Admin:
    """ADMIN (PROTOCOL.md 3.9): ``action`` "pause", "resume" or "claim" with a query name,
    or "reload" with none. The reply is its one row, a dict (e.g. {"query": ..., "paused":
    True, "changed": True}, or {"reload": "applied", "queries": 3})."""

    action: str
    query: Optional[str] = None
    op = Op.ADMIN


@dataclass(frozen=True)
class Hello:
    client: str = "cachesvc-python"
    token: Optional[str] = field(default=None, repr=False)  # a secret: kept out of repr()
    version: int = VERSION
    op = Op.HELLO


Request = Union[Get, Refresh, MGet, Invalidate, InvalidateQuery, Stats, Ping, Show, Admin, Hello]

_UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_NAIVE = _dt.datetime(1970, 1, 1)


def _timestamp_of(d: _dt.datetime) -> msgpack.Timestamp:
    # naive: a UTC wall clock (PostgreSQL timestamp); aware: an instant.
    delta = (d - _EPOCH) if d.tzinfo is not None else (d - _EPOCH_NAIVE)
    sec = delta.days * 86400 + delta.seconds
    return msgpack.Timestamp(sec, delta.microseconds * 1000)


def encode_value(v: Any) -> Any:
    """Turns a parameter into a value msgpack packs as the protocol's scalar. Text is
    always accepted (the server converts it to the declared type); int must fit int64;
    bytes become bin; datetime a timestamp ext (naive = UTC wall clock); date, Decimal and
    UUID their text. Raises InvalidRequestError for anything else."""
    if v is None or v is True or v is False or isinstance(v, (str, float)):
        return v
    if isinstance(v, int):
        if not INT64_MIN <= v <= INT64_MAX:
            raise InvalidRequestError(f"integer parameter {v} does not fit int64 (pass it as text)")
        return int(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, _dt.datetime):
        return _timestamp_of(v)
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, uuid.UUID)):
        return str(v)
    if isinstance(v, msgpack.Timestamp):
        return v
    raise InvalidRequestError(
        f"parameter of type {type(v).__name__} is not a scalar the protocol carries "
        "(None, bool, int, float, str, bytes, datetime, date, Decimal, UUID)"
    )


def _check_name(query: Any) -> str:
    if not isinstance(query, str):
        raise InvalidRequestError(f"query name must be str, not {type(query).__name__}")
    n = len(query.encode("utf-8", "surrogatepass"))
    if not 1 <= n <= MAX_QUERY_NAME:
        raise InvalidRequestError(f"query name must be 1..{MAX_QUERY_NAME} bytes, not {n}")
    return query


def _check_admin_name(name: Any, what: str) -> str:
    if not isinstance(name, str):
        raise InvalidRequestError(f"{what} must be str, not {type(name).__name__}")
    n = len(name.encode("utf-8", "surrogatepass"))
    if not 1 <= n <= MAX_ADMIN_NAME:
        raise InvalidRequestError(f"{what} must be 1..{MAX_ADMIN_NAME} bytes, not {n}")
    return name


def _params(params: Any) -> list:
    if isinstance(params, (str, bytes, bytearray, dict)) or not isinstance(params, (list, tuple)):
        # a bare string would silently become its characters
        raise InvalidRequestError(f"params must be a list or tuple, not {type(params).__name__}")
    if len(params) > MAX_PARAMS:
        raise InvalidRequestError(f"{len(params)} parameters, the limit is {MAX_PARAMS}")
    return [encode_value(p) for p in params]


def _get_map(g: Any) -> dict:
    if isinstance(g, Get):
        query, params, tier, lsn, bypass = g.query, g.params, g.tier, g.lsn, g.bypass
    elif isinstance(g, (tuple, list)) and 1 <= len(g) <= 2:
        query, params, tier, lsn, bypass = g[0], g[1] if len(g) > 1 else (), None, None, False
    else:
        raise InvalidRequestError(f"an MGET item is a Get or a (query, params) tuple, not {g!r}")
    m: dict = {"q": _check_name(query)}
    if params:
        m["p"] = _params(params)
    else:
        _params(params)  # type check
    if tier is not None:
        if isinstance(tier, bool) or not isinstance(tier, int) or not 0 <= tier <= 2:
            raise InvalidRequestError(f"tier must be 0 (critical), 1 (default) or 2 (batch), not {tier!r}")
        m["tier"] = int(tier)
    token, shard = _lsn_token(lsn)
    if token:
        m["lsn"] = token
    if shard is not None:
        m["shard"] = shard
    if bypass:
        m["bypass"] = True
    return m


def _body_of(req: Request) -> Any:
    if isinstance(req, Get):  # and Refresh
        return _get_map(req)
    if isinstance(req, MGet):
        items = list(req.items)
        if len(items) > MAX_MGET:
            raise InvalidRequestError(f"{len(items)} MGET items, the limit is {MAX_MGET}")
        if any(isinstance(g, Refresh) for g in items):
            raise InvalidRequestError("MGET items are GETs; a Refresh cannot be one")
        return [_get_map(g) for g in items]
    if isinstance(req, Invalidate):
        if req.params is None:
            raise InvalidRequestError("Invalidate needs params (use InvalidateQuery for the whole query)")
        return {"q": _check_name(req.query), "p": _params(req.params)}
    if isinstance(req, InvalidateQuery):
        return {"q": _check_name(req.query)}
    if isinstance(req, (Stats, Ping)):
        return None
    if isinstance(req, Show):
        return {"what": _check_admin_name(req.view, "view name")}
    if isinstance(req, Admin):
        m = {"op": _check_admin_name(req.action, "ADMIN op")}
        if req.query is not None:
            m["q"] = _check_name(req.query)
        return m
    if isinstance(req, Hello):
        if not isinstance(req.client, str) or len(req.client.encode()) > MAX_CLIENT_NAME:
            raise InvalidRequestError(f"client name must be a str of at most {MAX_CLIENT_NAME} bytes")
        if not 0 <= req.version <= UINT32_MAX:
            raise InvalidRequestError("version out of range")
        m = {"v": req.version, "client": req.client}
        if req.token is not None:
            if not isinstance(req.token, str) or len(req.token.encode()) > MAX_TOKEN:
                raise InvalidRequestError(f"token must be a str of at most {MAX_TOKEN} bytes")
            m["token"] = req.token
        return m
    raise InvalidRequestError(f"not a request: {req!r}")


_packer = msgpack.Packer(use_bin_type=True)


def encode_frame(opcode: int, reqid: int, body: bytes, flags: int = 0, version: int = VERSION) -> bytes:
    """A whole frame: header + body bytes (no checks: for tests and the encoder)."""
    return _HEADER.pack(len(body), version, opcode, flags, reqid) + body


def encode_request(req: Request, reqid: int, max_body: int = MAX_REQUEST_BODY) -> bytes:
    """Encodes a request frame. Raises InvalidRequestError for a request that breaks a
    limit of the protocol, TooLargeError (code 5) when the body exceeds ``max_body`` (the
    server's max_frame). Nothing is sent by this function."""
    if not 0 <= reqid <= UINT32_MAX:
        raise InvalidRequestError(f"request id {reqid} out of range")
    try:
        body = _packer.pack(_body_of(req))
    except (ValueError, TypeError, OverflowError) as e:  # e.g. a str with lone surrogates
        raise InvalidRequestError(f"cannot encode the request: {e}") from None
    if len(body) > max_body:
        raise TooLargeError(f"request body of {len(body)} bytes exceeds the server's limit of {max_body}")
    return _HEADER.pack(len(body), VERSION, int(req.op), 0, reqid) + body


# ---- frames ----------------------------------------------------------------------------------------


class Frame(NamedTuple):
    opcode: int
    reqid: int
    body: bytes


def parse_header(header: bytes, max_body: int = MAX_REPLY_BODY) -> tuple:
    """Checks a 12-byte reply header; returns (body_len, opcode, reqid). Raises
    ProtocolError for a bad version, nonzero flags, an empty or oversized body or an opcode
    that is not a reply, before anything is read or allocated for the body."""
    length, version, opcode, flags, reqid = _HEADER.unpack(header)
    if version != VERSION:
        raise ProtocolError(f"frame version {version}, this client speaks {VERSION}")
    if flags != 0:
        raise ProtocolError(f"frame flags 0x{flags:04x}, must be 0")
    if length == 0:
        raise ProtocolError("empty frame body")
    if length > max_body:
        raise ProtocolError(f"reply body of {length} bytes exceeds the client's limit of {max_body}")
    if opcode not in _REPLY_OPCODES:
        raise ProtocolError(f"opcode 0x{opcode:02x} is not a reply")
    return length, opcode, reqid


class FrameReader:
    """Splits a byte stream into reply frames. ``feed`` bytes as they arrive, then call
    ``next`` until it returns None. A bad header raises ProtocolError as soon as its 12
    bytes are in, whatever follows; the error is sticky (the stream cannot be resynced)."""

    __slots__ = ("_buf", "_max_body", "_need", "_error")

    def __init__(self, max_body: int = MAX_REPLY_BODY):
        self._buf = bytearray()
        self._max_body = max_body
        self._need = None  # (body_len, opcode, reqid) of a checked header
        self._error: Optional[ProtocolError] = None

    def feed(self, data) -> None:
        if self._error is not None:
            raise self._error
        self._buf += data

    def pending(self) -> int:
        """Bytes buffered but not yet returned as frames."""
        return len(self._buf)

    def next(self) -> Optional[Frame]:
        if self._error is not None:
            raise self._error
        buf = self._buf
        if self._need is None:
            if len(buf) < HEADER_SIZE:
                return None
            try:
                self._need = parse_header(bytes(buf[:HEADER_SIZE]), self._max_body)
            except ProtocolError as e:
                self._error = e
                raise
        length, opcode, reqid = self._need
        end = HEADER_SIZE + length
        if len(buf) < end:
            return None
        with memoryview(buf) as view:  # one copy, and the view is gone before the del
            body = bytes(view[HEADER_SIZE:end])
        del buf[:end]
        self._need = None
        return Frame(opcode, reqid, body)


# ---- the limit walker --------------------------------------------------------------------------------

# For first bytes 0xc0..0xdf: (kind, n, extra). kind 0: n fixed argument bytes follow.
# kind 1: str/bin/ext with an n-byte length (+extra type byte). kind 2/3: array/map with
# an n-byte count. kind 4: invalid (0xc1). kind 5: fixext: 1 type byte + n payload.
_FORMATS = {
    0xC0: (0, 0, 0), 0xC1: (4, 0, 0), 0xC2: (0, 0, 0), 0xC3: (0, 0, 0),
    0xC4: (1, 1, 0), 0xC5: (1, 2, 0), 0xC6: (1, 4, 0),
    0xC7: (1, 1, 1), 0xC8: (1, 2, 1), 0xC9: (1, 4, 1),
    0xCA: (0, 4, 0), 0xCB: (0, 8, 0),
    0xCC: (0, 1, 0), 0xCD: (0, 2, 0), 0xCE: (0, 4, 0), 0xCF: (0, 8, 0),
    0xD0: (0, 1, 0), 0xD1: (0, 2, 0), 0xD2: (0, 4, 0), 0xD3: (0, 8, 0),
    0xD4: (5, 1, 0), 0xD5: (5, 2, 0), 0xD6: (5, 4, 0), 0xD7: (5, 8, 0), 0xD8: (5, 16, 0),
    0xD9: (1, 1, 0), 0xDA: (1, 2, 0), 0xDB: (1, 4, 0),
    0xDC: (2, 2, 0), 0xDD: (2, 4, 0), 0xDE: (3, 2, 0), 0xDF: (3, 4, 0),
}  # fmt: skip
_FMT = [_FORMATS.get(c) for c in range(256)]


def check_body(body: bytes, max_depth: int = MAX_DEPTH, cell_depth: int = 0, max_cells: int = 0) -> None:
    """Walks a body without allocating and checks it holds exactly one MessagePack object
    within the hard limits: nesting depth <= max_depth (the body is depth 1), every array
    or map count <= the bytes remaining (2 x count for a map), every str/bin/ext length <=
    the bytes remaining, no 0xc1, no trailing bytes. With cell_depth, the elements of the
    containers whose elements are at that depth (the cells of a result's rows, and the few
    other values as deep) are counted, an empty one as 1, and more than max_cells is refused
    before anything is built. Raises ProtocolError."""
    n = len(body)
    cells = 0
    if n == 0:
        raise ProtocolError("empty body")
    pos = 0
    stack = [1]  # objects still to read at each open level; len(stack) = their depth
    fmt = _FMT
    from_bytes = int.from_bytes
    while stack:
        if stack[-1] == 0:
            stack.pop()
            continue
        stack[-1] -= 1
        if pos >= n:
            raise ProtocolError("truncated msgpack")
        c = body[pos]
        pos += 1
        if c <= 0x7F or c >= 0xE0:
            continue
        if c < 0xA0:  # fixmap 0x80-0x8f, fixarray 0x90-0x9f
            count = (c & 0x0F) * (2 if c < 0x90 else 1)
        elif c < 0xC0:  # fixstr
            pos += c & 0x1F
            if pos > n:
                raise ProtocolError("truncated msgpack (str longer than the body)")
            continue
        else:
            kind, w, extra = fmt[c]
            if kind == 0:
                pos += w
                if pos > n:
                    raise ProtocolError("truncated msgpack")
                continue
            if kind == 4:
                raise ProtocolError("invalid msgpack byte 0xc1")
            if kind == 5:
                pos += 1 + w
                if pos > n:
                    raise ProtocolError("truncated msgpack (ext longer than the body)")
                continue
            if pos + w > n:
                raise ProtocolError("truncated msgpack")
            v = from_bytes(body[pos : pos + w], "big")
            pos += w
            if kind == 1:
                pos += extra + v
                if pos > n:
                    raise ProtocolError(f"str/bin/ext length {v} exceeds the bytes remaining")
                continue
            count = v * 2 if kind == 3 else v
        # a container of `count` objects
        if count > n - pos:
            raise ProtocolError(f"array/map count exceeds the {n - pos} bytes remaining")
        if cell_depth and len(stack) + 1 == cell_depth:
            cells += count or 1
            if cells > max_cells:
                raise ProtocolError(f"reply of more than {max_cells} cells (max_cells)")
        if count:
            if len(stack) >= max_depth:
                raise ProtocolError(f"nesting deeper than {max_depth}")
            stack.append(count)
    if pos != n:
        raise ProtocolError(f"{n - pos} trailing bytes after the body's object")


class _Pairs(list):
    """A decoded map, kept as its (key, value) pairs so duplicate keys can be refused."""

    __slots__ = ()


def unpack_body(body: bytes, cell_depth: int = 0, max_cells: int = 0) -> Any:
    """check_body, then decode the object (maps as _Pairs). Raises ProtocolError only."""
    check_body(body, MAX_DEPTH, cell_depth, max_cells)
    try:
        return msgpack.unpackb(
            body, raw=False, strict_map_key=False, object_pairs_hook=_Pairs, use_list=True
        )
    except Exception as e:  # invalid UTF-8, unhashable key, bad timestamp ext, ...
        raise ProtocolError(f"malformed msgpack: {e}") from None


def _map(v: Any, what: str) -> dict:
    if not isinstance(v, _Pairs):
        raise ProtocolError(f"{what} must be a map")
    d = {}
    for k, x in v:
        if not isinstance(k, str):
            raise ProtocolError(f"{what}: keys must be strings")
        if k in d:
            raise ProtocolError(f"{what}: duplicate key {k!r}")
        d[k] = x
    return d


def _uint(v: Any, what: str, limit: int = UINT64_MAX) -> int:
    if type(v) is not int or not 0 <= v <= limit:
        raise ProtocolError(f"{what} must be an unsigned integer <= {limit}")
    return v


def _str(v: Any, what: str, max_bytes: int) -> str:
    if type(v) is not str:
        raise ProtocolError(f"{what} must be a string")
    if len(v) > max_bytes // 4 and len(v.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ProtocolError(f"{what} longer than {max_bytes} bytes")
    return v


# ---- typed replies ---------------------------------------------------------------------------------------


class RawTimestamp(NamedTuple):
    """A timestamp Python's datetime cannot hold (a year outside 1..9999): seconds since
    the Unix epoch (UTC) and nanoseconds, as sent. PostgreSQL's +/-infinity are not this:
    they are datetime.max / datetime.min."""

    seconds: int
    nanoseconds: int


def _datetime(ts: msgpack.Timestamp, aware: bool) -> Any:
    sec, nsec = ts.seconds, ts.nanoseconds
    tz = _UTC if aware else None
    if sec == INT64_MAX:  # PostgreSQL 'infinity'
        return _dt.datetime.max.replace(tzinfo=tz)
    if sec == INT64_MIN:  # '-infinity'
        return _dt.datetime.min.replace(tzinfo=tz)
    try:
        return (_EPOCH if aware else _EPOCH_NAIVE) + _dt.timedelta(seconds=sec, microseconds=nsec // 1000)
    except OverflowError:
        return RawTimestamp(sec, nsec)


class Column(NamedTuple):
    """A result column: its name, its type code (a ColumnType, or the int of a code this
    version does not know, which is read as OTHER) and the type's name."""

    name: str
    type: int
    type_name: str


class Meta:
    """What the server says about an answer: ``source`` (Source.CACHE/REPLICA/PRIMARY),
    ``lsn`` (the data is at least this new; an LSN, prints as X/Y), ``age_ms`` (since it was
    read from the database), ``stale`` (served past its TTL), ``stored`` (for answers read
    from the database: whether the server stored it in the cache; None when not sent)."""

    __slots__ = ("source", "lsn", "age_ms", "stale", "stored")

    def __init__(self, source: Source, lsn: LSN, age_ms: int, stale: bool, stored: Optional[bool] = None):
        self.source = source
        self.lsn = lsn
        self.age_ms = age_ms
        self.stale = stale
        self.stored = stored

    def _tuple(self) -> tuple:
        return (self.source, self.lsn, self.age_ms, self.stale, self.stored)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Meta) and self._tuple() == other._tuple()

    def __hash__(self) -> int:
        return hash(self._tuple())

    def __repr__(self) -> str:
        return (f"Meta(source={self.source!r}, lsn={self.lsn!r}, age_ms={self.age_ms}, "
                f"stale={self.stale}, stored={self.stored})")


class Result:
    """A GET/REFRESH answer: ``columns`` (list of Column), ``rows`` (list of tuples of
    Python values) and ``meta``. Iterating yields the rows; ``len`` is the row count."""

    __slots__ = ("meta", "columns", "rows")

    def __init__(self, meta: Meta, columns: list, rows: list):
        self.meta = meta
        self.columns = list(columns)
        self.rows = rows

    @property
    def column_names(self) -> list:
        return [c.name for c in self.columns]

    def as_dicts(self) -> list:
        """The rows as dicts keyed by column name."""
        names = self.column_names
        return [dict(zip(names, r)) for r in self.rows]

    def first(self) -> Optional[tuple]:
        """The first row, or None when there is none."""
        return self.rows[0] if self.rows else None

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __repr__(self) -> str:
        return f"<Result {len(self.rows)} rows, columns={self.column_names}, meta={self.meta}>"


@dataclass(frozen=True)
class ServerInfo:
    """The HELLO reply: the protocol version the server speaks, its name, and the largest
    request body it accepts."""

    version: int
    server: str
    max_frame: int


@dataclass(frozen=True)
class DecodeOptions:
    """``json``: "parse" turns json/jsonb cells into Python objects (json.loads), "raw" keeps
    their text. ``max_cells``: a GET/REFRESH/MGET reply whose rows hold more cells than this
    in total (a row of no columns counts 1) is refused (ProtocolError) from its array
    headers, before any row is built: a 64 MiB reply of one-column NULL rows would
    otherwise cost gigabytes of Python objects."""

    json: str = "parse"
    max_cells: int = 1_000_000

    def __post_init__(self):
        if self.json not in ("parse", "raw"):
            raise ValueError('json must be "parse" or "raw"')
        if type(self.max_cells) is not int or self.max_cells < 1:
            raise ValueError("max_cells must be a positive int")


DEFAULT_OPTIONS = DecodeOptions()

_SCALARS = (type(None), bool, int, float, str, bytes, msgpack.Timestamp)


def _cell_generic(v: Any) -> Any:
    t = type(v)
    if t is int:
        if not INT64_MIN <= v <= INT64_MAX:
            raise ProtocolError(f"integer value {v} does not fit int64")
        return v
    if t is msgpack.Timestamp:
        return _datetime(v, True)
    if t in _SCALARS:
        return v
    raise ProtocolError(f"a result value must be a scalar, not {t.__name__}")


# PostgreSQL numeric text: digits with an optional sign, point and exponent, or NaN,
# Infinity, -Infinity. Decimal() alone would also take "1_000", " 1 ", "sNaN", "inf".
_NUMERIC_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]?Infinity")


def _conv_numeric(v: Any) -> Any:
    if type(v) is str:
        if _NUMERIC_RE.fullmatch(v) is None:
            raise ProtocolError(f"numeric value is not a decimal: {v[:40]!r}")
        try:
            return decimal.Decimal(v)
        except decimal.InvalidOperation:
            raise ProtocolError(f"numeric value is not a decimal: {v[:40]!r}") from None
    if type(v) is int:
        return decimal.Decimal(_cell_generic(v))
    return _cell_generic(v)


def _conv_timestamp(v: Any) -> Any:
    if type(v) is msgpack.Timestamp:
        return _datetime(v, False)
    return _cell_generic(v)


def _conv_json_parse(v: Any) -> Any:
    """A json/jsonb cell parsed with the json module. A text Python cannot parse (nested
    deeper than the interpreter's recursion limit, a number beyond int's digit limit such as
    '1e5000'::jsonb written out, or not JSON at all) is the cell's raw text, as with
    json="raw": one odd value never fails the reply (nor the connection)."""
    if type(v) is str:
        try:
            return _json.loads(v)
        except (ValueError, RecursionError, MemoryError):
            return v
    return _cell_generic(v)


_TYPE_NAMES = {t.value: t.name.lower() for t in ColumnType}


def _converter(code: int, opts: DecodeOptions) -> Callable[[Any], Any]:
    if code == ColumnType.NUMERIC:
        return _conv_numeric
    if code == ColumnType.TIMESTAMP:
        return _conv_timestamp
    if code == ColumnType.JSON and opts.json == "parse":
        return _conv_json_parse
    return _cell_generic


_SOURCES = (Source.CACHE, Source.REPLICA, Source.PRIMARY)


_KNOWN_META = frozenset({"src", "lsn", "age", "stale", "stored"})


def decode_meta(v: Any) -> Meta:
    """The meta map. Keys are str; src, lsn, age, stale are required, stored optional; a
    known key twice or of the wrong type is a protocol error; unknown keys are ignored
    whatever their value (PROTOCOL.md section 4)."""
    if not isinstance(v, _Pairs):
        raise ProtocolError("meta must be a map")
    m = {}
    for k, x in v:
        if type(k) is not str:
            raise ProtocolError("meta: keys must be strings")
        if k in _KNOWN_META:
            if k in m:
                raise ProtocolError(f"meta: duplicate key {k!r}")
            m[k] = x
    for k in ("src", "lsn", "age", "stale"):
        if k not in m:
            raise ProtocolError(f"meta has no {k!r}")
    src = _uint(m["src"], "meta src", 2)
    stale = m["stale"]
    if type(stale) is not bool:
        raise ProtocolError("meta stale must be a boolean")
    stored = m.get("stored")
    if "stored" in m and type(stored) is not bool:  # nil is the wrong type, not "absent"
        raise ProtocolError("meta stored must be a boolean")
    lsn = int.__new__(LSN, _uint(m["lsn"], "meta lsn"))
    return Meta(_SOURCES[src], lsn, _uint(m["age"], "meta age"), stale, stored)


# Column lists seen before (most replies repeat a query's columns): validated once, then
# looked up. Keyed by the json option and the (name, code) pairs; bounded.
_COLUMNS_CACHE: dict = {}
_COLUMNS_CACHE_MAX = 512


def _columns(cols: Any, opts: DecodeOptions) -> tuple:
    """Validated columns -> (list of Column, tuple of cell converters). Raises ProtocolError."""
    if type(cols) is not list:
        raise ProtocolError("result columns must be an array")
    try:
        key = (opts.json, *map(tuple, cols))
        hit = _COLUMNS_CACHE.get(key)
    except TypeError:  # not arrays, or unhashable parts: the slow path says what is wrong
        key, hit = None, None
    if hit is not None and all(type(c) is list and type(c[1]) is int for c in cols):
        return hit  # (the type check: 2.0 and True compare equal to the codes 2 and 1)
    if len(cols) > MAX_COLUMNS:
        raise ProtocolError(f"{len(cols)} columns, the limit is {MAX_COLUMNS}")
    columns = []
    convs = []
    for i, c in enumerate(cols):
        if type(c) is not list or len(c) != 2:
            raise ProtocolError(f"column {i} must be [name, type]")
        name = _str(c[0], f"column {i} name", MAX_COLUMN_NAME)
        code = c[1]
        if type(code) is not int or not 1 <= code <= 255:
            raise ProtocolError(f"column {i}: type must be an integer 1..255")
        known = code in _TYPE_NAMES
        columns.append(Column(name, ColumnType(code) if known else code, _TYPE_NAMES[code] if known else "other"))
        convs.append(_converter(code, opts))
    hit = (tuple(columns), tuple(convs))
    if key is not None:
        if len(_COLUMNS_CACHE) >= _COLUMNS_CACHE_MAX:
            _COLUMNS_CACHE.clear()
        _COLUMNS_CACHE[key] = hit
    return hit


def decode_result(v: Any, opts: DecodeOptions = DEFAULT_OPTIONS) -> Result:
    """[meta, result] (already unpacked) -> Result. Raises ProtocolError."""
    if type(v) is not list or len(v) != 2:
        raise ProtocolError("a result reply must be [meta, result]")
    meta = decode_meta(v[0])
    res = v[1]
    if type(res) is not list or len(res) != 2:
        raise ProtocolError("result must be [cols, rows]")
    cols, rows = res
    columns, convs = _columns(cols, opts)
    if type(rows) is not list:
        raise ProtocolError("result rows must be an array")
    ncols = len(columns)
    out = []
    for i, row in enumerate(rows):
        if type(row) is not list or len(row) != ncols:
            raise ProtocolError(f"row {i} must be an array of {ncols} values")
        out.append(tuple([None if x is None else f(x) for f, x in zip(convs, row)]))
    return Result(meta, columns, out)


def decode_error(body: bytes) -> ServerError:
    """An error reply body {"code": 1..255, "msg": str <= 1024 bytes} -> the exception
    (returned, not raised). Raises ProtocolError when the body is malformed."""
    return _error_of(_map(unpack_body(body), "error reply"), "error reply", "code")


def _error_of(m: dict, what: str, code_key: str) -> ServerError:
    if set(m) != {code_key, "msg"}:
        raise ProtocolError(f"{what} must be {{{code_key!r}, 'msg'}}, got keys {sorted(m)}")
    code = m[code_key]
    if type(code) is not int or not 1 <= code <= 255:
        raise ProtocolError(f"{what}: code must be 1..255")
    msg = _str(m["msg"], f"{what} message", MAX_MESSAGE)
    return server_error(code, msg)


def decode_mget(v: Any, nitems: Optional[int], opts: DecodeOptions = DEFAULT_OPTIONS) -> list:
    """An MGET reply (already unpacked) -> one Result or ServerError per item. ``nitems``:
    the number of GETs requested (None: not checked)."""
    if type(v) is not list:
        raise ProtocolError("an MGET reply must be an array")
    if len(v) > MAX_MGET:
        raise ProtocolError(f"MGET reply of {len(v)} items, the limit is {MAX_MGET}")
    if nitems is not None and len(v) != nitems:
        raise ProtocolError(f"MGET reply of {len(v)} items for {nitems} requested")
    out = []
    for i, item in enumerate(v):
        if isinstance(item, _Pairs):
            m = _map(item, f"MGET item {i} error")
            # {"err": code, "msg": str} today; {"code": code, "msg": str} from now on
            key = "code" if "code" in m else "err"
            out.append(_error_of(m, f"MGET item {i} error", key))
        else:
            out.append(decode_result(item, opts))
    return out


def decode_hello(v: Any) -> ServerInfo:
    m = _map(v, "HELLO reply")
    for k in ("v", "server", "max_frame"):
        if k not in m:
            raise ProtocolError(f"HELLO reply has no {k!r}")
    return ServerInfo(
        _uint(m["v"], "HELLO v", UINT32_MAX),
        _str(m["server"], "HELLO server", MAX_SERVER_NAME),
        _uint(m["max_frame"], "HELLO max_frame", UINT32_MAX),
    )


def decode_stats(v: Any) -> dict:
    m = _map(v, "STATS reply")
    for k, x in m.items():
        _str(k, "STATS name", MAX_STAT_NAME)
        t = type(x)
        if t is int:
            if not INT64_MIN <= x <= INT64_MAX:
                raise ProtocolError(f"STATS {k}: {x} does not fit int64")
        elif t is not float:
            raise ProtocolError(f"STATS {k}: value must be an int or a float")
    return m


def decode_invalidate(v: Any, whole_query: Optional[bool]) -> int:
    """{"deleted": n} (a key) or {"generation": n} (a whole query; whole_query None: either)."""
    m = _map(v, "INVALIDATE reply")
    if whole_query is None:
        key = "generation" if "generation" in m else "deleted"
    else:
        key = "generation" if whole_query else "deleted"
    if set(m) != {key}:
        raise ProtocolError(f"INVALIDATE reply must be {{{key!r}}}, got keys {sorted(m)}")
    return _uint(m[key], f"INVALIDATE {key}")


def decode_rows(v: Any, what: str = "SHOW") -> list:
    """A SHOW or ADMIN reply (already unpacked): an array of row maps, column name (str of
    at most 128 bytes, each once per row) -> scalar (None, bool, int64, float, str) -> a
    list of dicts. A row may leave columns out and unknown columns are kept: the columns of
    a view are the union of its rows' keys, in first-seen order (:func:`row_columns`)."""
    if type(v) is not list:
        raise ProtocolError(f"{what} reply must be an array of rows")
    out = []
    for i, row in enumerate(v):
        m = _map(row, f"{what} row {i}")
        for k, x in m.items():
            _str(k, f"{what} row {i} column name", MAX_ROW_KEY)
            t = type(x)
            if t is int:
                if not INT64_MIN <= x <= INT64_MAX:
                    raise ProtocolError(f"{what} row {i} {k}: {x} does not fit int64")
            elif x is not None and t not in (bool, float, str):
                raise ProtocolError(f"{what} row {i} {k}: a value must be nil, bool, int, float or str, not {t.__name__}")
        out.append(m)
    return out


def decode_admin(v: Any) -> dict:
    """An ADMIN reply (already unpacked): exactly one row -> its dict."""
    rows = decode_rows(v, "ADMIN")
    if len(rows) != 1:
        raise ProtocolError(f"ADMIN reply of {len(rows)} rows, want 1")
    return rows[0]


def row_columns(rows: Sequence[dict]) -> list:
    """The columns of SHOW rows: the union of their keys, in first-seen order."""
    seen: dict = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


# The depth of a result's cells in a reply body (the body itself is depth 1): GET/REFRESH
# [meta, [cols, [row...]]] -> 5; MGET [[meta, [cols, [row...]]]...] -> 6; SHOW/ADMIN rows'
# keys and values [{k: v...}...] -> 3 (counted by check_body as 2 per column).
_CELL_DEPTH = {Op.GET: 5, Op.REFRESH: 5, Op.MGET: 6, Op.SHOW: 3, Op.ADMIN: 3}


def decode_body(opcode: int, body: bytes, opts: DecodeOptions = DEFAULT_OPTIONS) -> Any:
    """Decodes a reply body by its opcode alone (no request to check it against; MGET item
    counts and the INVALIDATE reply's kind are not checked). An error body is returned as
    its ServerError. Raises ProtocolError."""
    if opcode == Op.ERROR:
        return decode_error(body)
    if opcode not in _REPLY_OPCODES:
        raise ProtocolError(f"opcode 0x{opcode:02x} is not a reply")
    op = opcode & ~REPLY_FLAG
    v = unpack_body(body, _CELL_DEPTH.get(op, 0), opts.max_cells)
    if op in (Op.GET, Op.REFRESH):
        return decode_result(v, opts)
    if op == Op.MGET:
        return decode_mget(v, None, opts)
    if op == Op.PING:
        if v is not None:
            raise ProtocolError("PING reply body must be nil")
        return None
    if op == Op.STATS:
        return decode_stats(v)
    if op == Op.INVALIDATE:
        return decode_invalidate(v, None)
    if op in (Op.SHOW, Op.ADMIN):
        return decode_rows(v, "SHOW" if op == Op.SHOW else "ADMIN")
    return decode_hello(v)


def decode_reply(req: Request, opcode: int, body: bytes, opts: DecodeOptions = DEFAULT_OPTIONS) -> Any:
    """Decodes the reply to ``req``. Returns the typed value, or a ServerError (returned,
    not raised) for an error frame. Raises ProtocolError for a malformed reply or an opcode
    that does not answer ``req``."""
    if opcode == Op.ERROR:
        return decode_error(body)
    if opcode != REPLY_FLAG | req.op:
        raise ProtocolError(f"reply opcode 0x{opcode:02x} does not answer a {req.op.name}")
    v = unpack_body(body, _CELL_DEPTH.get(req.op, 0), opts.max_cells)
    if isinstance(req, Get):
        return decode_result(v, opts)
    if isinstance(req, MGet):
        return decode_mget(v, len(req.items), opts)
    if isinstance(req, Ping):
        if v is not None:
            raise ProtocolError("PING reply body must be nil")
        return None
    if isinstance(req, Stats):
        return decode_stats(v)
    if isinstance(req, Invalidate):
        return decode_invalidate(v, False)
    if isinstance(req, InvalidateQuery):
        return decode_invalidate(v, True)
    if isinstance(req, Show):
        return decode_rows(v)
    if isinstance(req, Admin):
        return decode_admin(v)
    if isinstance(req, Hello):
        return decode_hello(v)
    raise ProtocolError(f"no decoder for {req!r}")  # unreachable for the request types above


def error_name(code: int) -> str:
    """The stable name of an error code ("internal" for codes this version does not know)."""
    return ERROR_NAMES.get(code, "internal")


# ---- reconnect backoff (pure: the caller sleeps) -----------------------------------------------------


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Capped exponential backoff with jitter: the delay before retry ``attempt`` (0 for the
    first retry) lies in [d/2, d] with d = min(cap, base * 2**attempt) ("equal jitter":
    never zero, so a fleet restarting at once spreads out)."""
    d = min(cap, base * (2 ** min(attempt, 62)))
    return d / 2 + rand() * d / 2
