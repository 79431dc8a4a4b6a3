"""Address parsing shared by the sync and asyncio clients (pure)."""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

from .errors import InvalidRequestError

DEFAULT_PORT = 6380


class Address(NamedTuple):
    """Either a TCP (host, port) or a unix socket path (host None)."""

    host: Optional[str]
    port: int
    path: Optional[str]

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        if ":" in (self.host or ""):
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_address(address: Union[str, tuple, Address]) -> Address:
    """Accepts "host:port", "[v6addr]:port", "host" (port 6380), "unix:/path" or a path
    starting with "/" (a unix socket), or a (host, port) tuple."""
    if isinstance(address, Address):
        return address
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
        return Address(str(host), _port(port, address), None)
    if not isinstance(address, str) or not address:
        raise InvalidRequestError(f"not an address: {address!r}")
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise InvalidRequestError("unix: needs a socket path")
        return Address(None, 0, path)
    if address.startswith("/"):
        return Address(None, 0, address)
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidRequestError(f"bad address {address!r}")
        return Address(host, _port(rest[1:], address) if rest else DEFAULT_PORT, None)
    host, sep, port = address.rpartition(":")
    if not sep:
        return Address(address, DEFAULT_PORT, None)
    if ":" in host:
        raise InvalidRequestError(f"write an IPv6 address as [addr]:port: {address!r}")
    return Address(host, _port(port, address), None)


def _port(port, address) -> int:
    try:
        p = int(port)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"bad port in {address!r}") from None
    if not 1 <= p <= 65535:
        raise InvalidRequestError(f"port out of range in {address!r}")
    return p
