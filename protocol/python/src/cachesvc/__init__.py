"""cachesvc: Python client for the cachesvc caching tier (protocol version 1).

Sync::

    import cachesvc
    with cachesvc.Client("127.0.0.1:6380", token="sesame") as cs:
        r = cs.get("user_profile", [42])
        print(r.meta.source, r.meta.lsn, r.as_dicts())

asyncio: see :mod:`cachesvc.aio`. The wire codec is :mod:`cachesvc.codec` (pure).
"""

from . import aio, codec, errors
from ._address import Address, parse_address
from .client import Client, Connection, Pending, connect
from .codec import (
    LSN,
    Admin,
    Column,
    ColumnType,
    Get,
    Invalidate,
    InvalidateQuery,
    Meta,
    MGet,
    Ping,
    RawTimestamp,
    Refresh,
    Result,
    ServerInfo,
    Show,
    Source,
    Stats,
    Tier,
    Token,
    format_lsn,
    format_token,
    parse_lsn,
    parse_token,
)
from .errors import *  # noqa: F401,F403  (the exception hierarchy)
from .errors import __all__ as _errors_all

__version__ = "0.1.0"

__all__ = [
    "aio", "codec", "errors",
    "Address", "parse_address",
    "Client", "Connection", "Pending", "connect",
    "LSN", "Column", "ColumnType", "Get", "Invalidate", "InvalidateQuery", "Meta", "MGet",
    "Ping", "RawTimestamp", "Refresh", "Result", "ServerInfo", "Show", "Admin", "Source", "Stats", "Tier",
    "Token", "format_lsn", "format_token", "parse_lsn", "parse_token", "__version__",
] + list(_errors_all)
