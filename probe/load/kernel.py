"""What the kernel says about UDP: the receive-buffer error counters, and socket buffer sizes.

A burst of datagrams larger than a socket's receive buffer is dropped by the
kernel before any program sees it; the only trace is ``RcvbufErrors`` in
``/proc/net/snmp`` (``Udp6RcvbufErrors`` in ``/proc/net/snmp6``), counted for
the whole host.  A load run reads it before and after, so loss is measured, not
guessed.  Buffers are raised with ``SO_RCVBUFFORCE`` where we may (root,
CAP_NET_ADMIN), else ``SO_RCVBUF``, which the kernel caps at
``net.core.rmem_max``; the size the kernel granted is read back and a cap is
reported with the sysctl that lifts it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["UdpCounters", "udp_counters", "BufferGrant", "set_buffers", "DEFAULT_SOCKET_BUFFER"]

DEFAULT_SOCKET_BUFFER = 8 * 1024 * 1024
"""Bytes asked for SO_RCVBUF and SO_SNDBUF of each load socket (the kernel doubles what it grants)."""

_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


@dataclass(frozen=True)
class UdpCounters:
    """The host's UDP error counters (IPv4 + IPv6); None where the kernel does not expose them."""

    rcvbuf_errors: int | None
    sndbuf_errors: int | None
    in_errors: int | None

    def minus(self, before: "UdpCounters") -> "UdpCounters":
        def sub(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a - b
        return UdpCounters(sub(self.rcvbuf_errors, before.rcvbuf_errors),
                           sub(self.sndbuf_errors, before.sndbuf_errors), sub(self.in_errors, before.in_errors))

    def as_dict(self) -> dict[str, int | None]:
        return {"rcvbuf_errors": self.rcvbuf_errors, "sndbuf_errors": self.sndbuf_errors,
                "in_errors": self.in_errors}


def _snmp4(text: str) -> dict[str, int]:
    rows = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:]) if v.lstrip("-").isdigit()}


def _snmp6(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("Udp6") and parts[1].isdigit():
            out[parts[0][4:]] = int(parts[1])
    return out


def udp_counters(proc: Path = Path("/proc/net")) -> UdpCounters:
    """``RcvbufErrors``, ``SndbufErrors`` and ``InErrors`` of UDP over IPv4 and IPv6 (None: not readable)."""
    try:
        v4 = _snmp4((proc / "snmp").read_text())
    except OSError:
        return UdpCounters(None, None, None)
    try:
        v6 = _snmp6((proc / "snmp6").read_text())
    except OSError:
        v6 = {}

    def total(name: str) -> int | None:
        return v4[name] + v6.get(name, 0) if name in v4 else None
    return UdpCounters(total("RcvbufErrors"), total("SndbufErrors"), total("InErrors"))


@dataclass(frozen=True)
class BufferGrant:
    """What a socket asked for and what the kernel granted (getsockopt reports twice the usable size)."""

    asked: int
    rcvbuf: int
    sndbuf: int

    @property
    def capped(self) -> bool:
        return min(self.rcvbuf, self.sndbuf) < self.asked

    def warning(self) -> str | None:
        """One line naming the sysctl to raise, or None when the kernel granted what was asked."""
        if not self.capped:
            return None
        which = []
        if self.rcvbuf < self.asked:
            which.append(f"SO_RCVBUF {self.rcvbuf} (net.core.rmem_max)")
        if self.sndbuf < self.asked:
            which.append(f"SO_SNDBUF {self.sndbuf} (net.core.wmem_max)")
        return (f"warning: the kernel capped the socket buffers below the {self.asked} bytes asked: "
                f"{', '.join(which)}; bursts may be dropped (RcvbufErrors): raise them with "
                f"sysctl -w net.core.rmem_max={self.asked} net.core.wmem_max={self.asked}")


def set_buffers(sock: socket.socket, size: int) -> BufferGrant:
    """Raise SO_RCVBUF/SO_SNDBUF to ``size`` (forced past rmem_max/wmem_max when allowed); what was granted."""
    for force, plain in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF), (_SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:  # not root (EPERM): the kernel caps at the sysctl
            try:
                sock.setsockopt(socket.SOL_SOCKET, plain, size)
            except OSError:
                pass
    # Linux reports the doubled value (bookkeeping overhead included); halve it to compare with the ask.
    rcv = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    snd = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
    return BufferGrant(size, rcv, snd)
