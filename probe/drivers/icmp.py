"""ICMP errors a UDP socket was told about, read from its error queue and matched to the target.

A connected UDP socket turns an ICMP error into ``ECONNREFUSED`` (and the like)
on its next ``recv``/``send``, but the errno alone says neither who sent the ICMP
nor which datagram it quotes.  With ``IP_RECVERR`` / ``IPV6_RECVERR`` (Linux) the
kernel also queues each error with those details on the socket's error queue
(``recvmsg(..., MSG_ERRQUEUE)``):

- ``struct sock_extended_err`` in the ancillary data: ``ee_errno``, ``ee_origin``
  (ICMP / ICMPv6), ``ee_type`` / ``ee_code``, then the offender's address (the
  ICMP packet's source);
- ``msg_name``: the quoted datagram's destination (for a connected socket the
  kernel only delivers errors quoting the socket's own peer, and we check it again);
- the data: the quoted datagram's UDP payload (as much as the ICMP quoted).

:func:`judge_error` keeps only what can explain silence from *this* target: a
destination unreachable quoting a datagram to the target's address and port,
and for "port unreachable" (which only the destination host itself sends) an
offender that IS the target.  Anything else (another destination, another
offender, fragmentation needed, time exceeded) is logged and ignored.  The
drivers then hand it to the round whose request the quote matches.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass

log = logging.getLogger(__name__)

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
SOL_IPV6 = getattr(socket, "SOL_IPV6", 41)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err
MAX_ERRORS_PER_READ = 64  # an ICMP flood cannot keep a driver in its error queue

# (origin, ICMP type, code) -> (what it means, only the target host itself may send it)
_MEANING: dict[tuple[int, int, int], tuple[str, bool]] = {
    (SO_EE_ORIGIN_ICMP, 3, 3): ("ICMP port unreachable: nothing listens there", True),
    (SO_EE_ORIGIN_ICMP, 3, 0): ("ICMP network unreachable", False),
    (SO_EE_ORIGIN_ICMP, 3, 1): ("ICMP host unreachable", False),
    (SO_EE_ORIGIN_ICMP, 3, 2): ("ICMP protocol unreachable", True),
    (SO_EE_ORIGIN_ICMP, 3, 9): ("ICMP network administratively prohibited", False),
    (SO_EE_ORIGIN_ICMP, 3, 10): ("ICMP host administratively prohibited", False),
    (SO_EE_ORIGIN_ICMP, 3, 13): ("ICMP communication administratively prohibited", False),
    (SO_EE_ORIGIN_ICMP6, 1, 0): ("ICMPv6 no route to destination", False),
    (SO_EE_ORIGIN_ICMP6, 1, 1): ("ICMPv6 communication administratively prohibited", False),
    (SO_EE_ORIGIN_ICMP6, 1, 3): ("ICMPv6 address unreachable", False),
    (SO_EE_ORIGIN_ICMP6, 1, 4): ("ICMP port unreachable: nothing listens there", True),
}


@dataclass(frozen=True)
class IcmpError:
    """One entry of a socket's error queue."""

    errno: int
    origin: int
    type: int
    code: int
    offender: str | None  # the ICMP packet's source address
    quoted_to: tuple[str, int] | None  # the quoted datagram's destination
    quoted: bytes  # the quoted datagram's UDP payload (possibly truncated)

    def __str__(self) -> str:
        return (f"ICMP type {self.type} code {self.code} from {self.offender} quoting a datagram to "
                f"{self.quoted_to} ({errno.errorcode.get(self.errno, self.errno)})")


def enable_recverr(sock: socket.socket) -> bool:
    """Ask the kernel to queue ICMP errors with their details (False: not supported here)."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except (OSError, AttributeError):
        return False
    return True


def read_errors(sock: socket.socket) -> list[IcmpError]:
    """Drain the socket's error queue (never blocks; an empty list if there is none or it is unsupported)."""
    out: list[IcmpError] = []
    timeout = sock.gettimeout()
    try:
        if timeout != 0:
            sock.settimeout(0)  # a socket with a timeout would wait for readability first
        for _ in range(MAX_ERRORS_PER_READ):
            try:
                data, ancdata, _flags, name = sock.recvmsg(4096, 1024, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            except (OSError, AttributeError, NotImplementedError):  # no error queue on this platform/socket
                break
            err = _parse(data, ancdata, name)
            if err is not None:
                out.append(err)
    finally:
        if timeout != 0:
            sock.settimeout(timeout)
    return out


def _parse(data: bytes, ancdata: list[tuple[int, int, bytes]], name: object) -> IcmpError | None:
    for level, kind, payload in ancdata:
        if (level, kind) not in ((socket.IPPROTO_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)):
            continue
        if len(payload) < _EXTENDED_ERR.size:
            return None
        ee_errno, origin, etype, code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(payload)
        offender = _sockaddr_ip(payload[_EXTENDED_ERR.size:])
        quoted_to = (str(name[0]), int(name[1])) if isinstance(name, tuple) and len(name) >= 2 else None
        return IcmpError(ee_errno, origin, etype, code, offender, quoted_to, bytes(data))
    return None


def _sockaddr_ip(raw: bytes) -> str | None:
    """The address in a struct sockaddr_in / sockaddr_in6 (family in host order)."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], "little" if struct.pack("=H", 1) == b"\x01\x00" else "big")
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None


def _same_ip(a: str | None, b: str) -> bool:
    if a is None:
        return False
    try:
        ia, ib = ipaddress.ip_address(a.split("%")[0]), ipaddress.ip_address(b.split("%")[0])
    except ValueError:
        return False
    mapped_a = getattr(ia, "ipv4_mapped", None) or ia
    mapped_b = getattr(ib, "ipv4_mapped", None) or ib
    return mapped_a == mapped_b


def judge_error(err: IcmpError, target: tuple[str, int]) -> str | None:
    """What ``err`` says about ``target`` (the detail for ``unreachable``), or None if it is not about it."""
    meaning = _MEANING.get((err.origin, err.type, err.code))
    if meaning is None:
        log.debug("ignored %s: not an unreachable", err)
        return None
    detail, from_target_only = meaning
    if err.quoted_to is None or not _same_ip(err.quoted_to[0], target[0]) or err.quoted_to[1] != target[1]:
        log.debug("ignored %s: it quotes a datagram to another destination than %s", err, target)
        return None
    if from_target_only and not _same_ip(err.offender, target[0]):
        log.debug("ignored %s: only %s itself can say that", err, target[0])
        return None
    return detail


LOCAL_ROUTING_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
"""Errnos a send can fail with locally (no route, no neighbour) with nothing on the error queue: still believed."""


def quote_matches(quoted: bytes, request: bytes) -> bool:
    """Whether the ICMP's quote is (the start of) ``request``; an empty quote (8 bytes of UDP header
    only, all RFC 792 asks for) cannot tell and matches."""
    return len(quoted) <= len(request) and request[: len(quoted)] == quoted
