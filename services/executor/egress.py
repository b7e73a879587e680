"""The SFTP egress policy: Ferry never opens a connection into the network it runs in.

A customer names an SFTP host; Ferry (validator, executor, route scanner) connects to it from
inside its own network. Without a policy that makes Ferry a port scanner and a bridge to
loopback services, the VPC, the instance metadata service (169.254.169.254) and the like.

Every SFTP connect therefore goes through :func:`open_checked_socket`:

1. resolve the host once (``getaddrinfo``);
2. check *every* address: any address in a non-public range (:func:`classify`) that the
   deployment did not allow-list (``FERRY_EGRESS_ALLOW=CIDR,...``) refuses the whole host
   with :class:`~services.executor.errors.EgressDenied` — no socket is opened at all;
3. open the TCP socket to a checked address ourselves and hand the connected socket to
   asyncssh (``sock=``), so nothing re-resolves the name between check and connect (DNS
   rebinding). The host *name* is kept for the host-key pin and for messages.

Non-public means: unspecified, loopback, link-local, private (RFC 1918, ULA), CGNAT, multicast,
broadcast, reserved, documentation, benchmarking, IETF protocol assignments, deprecated
site-local and IPv4-compatible IPv6, Teredo, and every IPv6 form that embeds an IPv4 address
(IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) whose embedded
address is itself non-public. Anything Python's ``ipaddress`` does not call global is refused
too, so a range missing from the table below is still refused (as ``reserved``).

The classifier and the allow-list are pure and table-tested (tests/unit/test_egress.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.executor.errors import (
    ConnectionRefused,
    EgressDenied,
    HostNotFound,
    TransferError,
    TransferTimeout,
    UnreachableHost,
)
from services.executor.settings import EgressSettings, IPNetwork, parse_allow_list

__all__ = [
    "EgressPolicy",
    "IPAddress",
    "IPNetwork",
    "Resolved",
    "classify",
    "embedded_ipv4",
    "open_checked_socket",
    "parse_allow_list",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

#: (network, category), most specific first where ranges nest.
_BLOCKED: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "cgnat"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),  # incl. 169.254.169.254, the metadata service
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "reserved"),  # 6to4 relay anycast (deprecated)
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "reserved"),  # benchmarking
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "reserved"),  # IPv4-compatible (deprecated)
    (_V6("64:ff9b:1::/48"), "private"),  # local-use NAT64
    (_V6("100::/64"), "reserved"),  # discard-only
    (_V6("2001::/32"), "reserved"),  # Teredo (the client address is obfuscated)
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("2001::/23"), "reserved"),  # IETF protocol assignments
    (_V6("3fff::/20"), "documentation"),
    (_V6("fc00::/7"), "private"),  # unique local
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "private"),  # site-local (deprecated)
    (_V6("ff00::/8"), "multicast"),
)

_MAPPED = _V6("::ffff:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_SIXTOFOUR = _V6("2002::/16")


def _address(value: str | IPAddress) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    text = value.split("%", 1)[0]  # a scope id (fe80::1%eth0) does not change the range
    return ipaddress.ip_address(text)


def embedded_ipv4(address: str | IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), else None."""
    ip = _address(address)
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip in _MAPPED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIXTOFOUR:
        return ip.sixtofour
    return None


def classify(address: str | IPAddress) -> str | None:
    """The category of a non-public address (``"loopback"``, ``"private"``, ...), or None when
    Ferry may connect to it by default. IPv6 forms embedding IPv4 are judged by the IPv4."""
    ip = _address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip in _MAPPED:
        return classify(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    inner = embedded_ipv4(ip)
    if inner is not None:
        category = classify(inner)
        if category is not None:
            return category
    for network, category in _BLOCKED:
        if ip.version == network.version and ip in network:
            return category
    if inner is None and not ip.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class Resolved:
    """One checked address of a host: what :func:`open_checked_socket` connects to."""

    family: int
    sockaddr: tuple[Any, ...]

    @property
    def address(self) -> str:
        return str(self.sockaddr[0])


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses SFTP connections may reach: every public address, plus the
    ``allow`` networks. ``resolver`` is ``socket.getaddrinfo`` (a test may inject another)."""

    allow: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=socket.getaddrinfo, compare=False, repr=False)

    @classmethod
    def from_allow_list(cls, text: str | Iterable[str] | None) -> EgressPolicy:
        return cls(parse_allow_list(text))

    @classmethod
    def from_settings(cls) -> EgressPolicy:
        """The deployment's policy (``FERRY_EGRESS_ALLOW``, read by the executor's settings)."""
        return cls(EgressSettings().allow_networks())

    def allowed(self, address: str | IPAddress) -> bool:
        ip = _address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip in _MAPPED:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # the kernel connects over IPv4
        if any(ip.version == net.version and ip in net for net in self.allow):
            return True
        return classify(ip) is None

    def resolve(self, host: str, port: int) -> list[Resolved]:
        """Resolve ``host`` once and check every address. Raises :class:`HostNotFound` or
        :class:`EgressDenied` (if *any* address is refused: a name is usable only when all of
        its addresses are)."""
        try:
            infos = self.resolver(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            transient = exc.errno in (socket.EAI_AGAIN,)
            raise HostNotFound(host, transient=transient) from None
        except (UnicodeError, ValueError, OSError):
            raise HostNotFound(host) from None
        out: list[Resolved] = []
        for family, _type, _proto, _canon, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ok = self.allowed(str(sockaddr[0]))
            except ValueError:
                ok = False
            if not ok:
                raise EgressDenied(host)
            item = Resolved(family, tuple(sockaddr))
            if item not in out:
                out.append(item)
        if not out:
            raise HostNotFound(host)
        return out


async def open_checked_socket(
    policy: EgressPolicy, host: str, port: int, timeout: float
) -> socket.socket:
    """A TCP socket connected to a checked address of ``host`` (tried in resolver order).

    Failures are the executor's stable errors, with fixed messages: :class:`EgressDenied`,
    :class:`HostNotFound`, :class:`ConnectionRefused`, :class:`TransferTimeout` or
    :class:`UnreachableHost` — never the OS's text."""
    loop = asyncio.get_running_loop()
    addresses = await loop.run_in_executor(None, policy.resolve, host, port)
    last: TransferError = UnreachableHost(host, port)
    for item in addresses:
        sock = socket.socket(item.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, item.sockaddr)
        except TimeoutError:
            sock.close()
            last = TransferTimeout.connecting(host, port)
            continue
        except ConnectionRefusedError:
            sock.close()
            last = ConnectionRefused(host, port)
            continue
        except OSError:
            sock.close()
            last = UnreachableHost(host, port)
            continue
        except BaseException:
            with contextlib.suppress(OSError):
                sock.close()
            raise
        return sock
    raise last
