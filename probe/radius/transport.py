"""asyncio UDP transport for the probe: send, retransmit, wait out MFA, timestamp.

Behaviour a real NAS relies on and that we keep:
- a retransmission is byte-identical and leaves from the same source port, so
  NPS treats it as a duplicate of the pending request (not a second push);
- replies are matched by Identifier and verified; an invalid reply is recorded
  and ignored (a spoofed or mis-keyed datagram must not end the wait), and if
  nothing valid follows the exchange ends as ``bad_authenticator``, not silence;
- past the client's own deadline (timeout x (retries + 1)) we keep listening for
  a late answer until ``listen_s``: a late reply is recorded as late, not lost;
- ICMP port unreachable (ECONNREFUSED on the connected socket) ends the wait;
- a pool of connected sockets, 256 Identifiers each, so any number of requests
  can be in flight to one server.
All times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from .packet import Packet, PacketError, Reply, verify_reply

Clock = Callable[[], float]
# Sees every datagram: (direction "out"/"in", data, local (ip, port), remote (ip, port)).
Tap = Callable[[str, bytes, tuple[str, int], tuple[str, int]], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How long a client waits.  The default waits out a long MFA hold (90 s)."""

    timeout_s: float = 30.0  # per transmission
    retries: int = 2  # retransmissions after the first send
    listen_s: float = 0.0  # keep listening for a late answer until this long after the first send

    @property
    def client_deadline_s(self) -> float:
        return self.timeout_s * (self.retries + 1)

    @property
    def listen_until_s(self) -> float:
        return max(self.client_deadline_s, self.listen_s)


@dataclass
class Exchange:
    """One request/reply round trip with all its transmissions."""

    request: Packet
    sent: list[float] = field(default_factory=list)  # monotonic time of each transmission
    reply: Reply | None = None
    answered: float | None = None  # monotonic arrival of the accepted reply
    late: bool = False  # answered after the client's own deadline
    error_kind: str | None = None  # unreachable | bad_authenticator | malformed (None: silence or reply)
    error_detail: str | None = None
    ignored: list[tuple[float, str, str]] = field(default_factory=list)  # (time, kind, detail)

    @property
    def retransmissions(self) -> int:
        return max(0, len(self.sent) - 1)

    @property
    def response_s(self) -> float | None:
        return None if self.answered is None else self.answered - self.sent[0]


class Unreachable(Exception):
    pass


@dataclass
class _Pending:
    request: Packet
    future: asyncio.Future[tuple[Reply, float]]
    ignored: list[tuple[float, str, str]]


_UNREACHABLE = {errno.ECONNREFUSED: "ICMP port unreachable: nothing listens there",
                errno.EHOSTUNREACH: "ICMP host unreachable", errno.ENETUNREACH: "ICMP network unreachable",
                errno.EHOSTDOWN: "host is down"}


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, clock: Clock, secret: bytes, tap: Tap | None = None) -> None:
        self.clock = clock
        self._secret = secret
        self.tap = tap
        self.transport: asyncio.DatagramTransport | None = None
        self.free: deque[int] = deque(range(256))
        self.pending: dict[int, _Pending] = {}
        self.previous: dict[int, Packet] = {}  # the last request of each released Identifier
        self.stray = 0

    def __repr__(self) -> str:  # never show the secret
        return f"_Socket(pending={len(self.pending)}, free={len(self.free)})"

    def release(self, ident: int, request: Packet) -> None:
        """Free an Identifier; remember its request so a straggling answer to it is not blamed on the next."""
        del self.pending[ident]
        self.previous[ident] = request
        self.free.append(ident)  # reused last

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)
        if self.tap is not None:
            self.tap("out", data, self.transport.get_extra_info("sockname")[:2],
                     self.transport.get_extra_info("peername")[:2])

    def datagram_received(self, data: bytes, addr: object) -> None:
        now = self.clock()
        if self.tap is not None and self.transport is not None:
            self.tap("in", data, self.transport.get_extra_info("sockname")[:2], addr[:2])  # type: ignore[index]
        if len(data) < 2 or data[1] not in self.pending:
            self.stray += 1
            return
        pending = self.pending[data[1]]
        if pending.future.done():
            return  # a second answer (e.g. to our retransmission): the first one counts
        try:
            reply = verify_reply(data, pending.request, self._secret)
        except PacketError as exc:
            if self._answers_previous(data):
                self.stray += 1  # a late answer to the Identifier's earlier request
                return
            pending.ignored.append((now, exc.kind, exc.detail))
            return
        pending.future.set_result((reply, now))

    def _answers_previous(self, data: bytes) -> bool:
        earlier = self.previous.get(data[1])
        if earlier is None:
            return False
        try:
            verify_reply(data, earlier, self._secret)
        except PacketError:
            return False
        return True

    def error_received(self, exc: Exception) -> None:
        reason = _UNREACHABLE.get(getattr(exc, "errno", None) or -1)
        if reason is not None:
            for pending in self.pending.values():
                if not pending.future.done():
                    pending.future.set_exception(Unreachable(reason))

    def connection_lost(self, exc: Exception | None) -> None:
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(Unreachable(f"socket closed: {exc}"))


class RadiusClient:
    """Client side of one RADIUS server address (a pool of sockets connected to it)."""

    def __init__(self, address: tuple[str, int], secret: bytes, *, clock: Clock = time.monotonic,
                 tap: Tap | None = None) -> None:
        self.address = address
        self.tap = tap
        self._secret = secret
        self.clock = clock
        self._sockets: list[_Socket] = []
        self._grow = asyncio.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0

    def __repr__(self) -> str:  # never show the secret
        return f"RadiusClient({self.address[0]}:{self.address[1]}, sockets={len(self._sockets)})"

    async def __aenter__(self) -> "RadiusClient":
        await self._new_socket()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for s in self._sockets:
            if s.transport is not None:
                s.transport.close()
        self._sockets.clear()

    @property
    def local_address(self) -> tuple[str, int]:
        """Source address of the first socket (what a NAS would put in NAS-IP-Address)."""
        assert self._sockets and self._sockets[0].transport is not None
        return self._sockets[0].transport.get_extra_info("sockname")[:2]

    @property
    def stray_replies(self) -> int:
        return sum(s.stray for s in self._sockets)

    async def _new_socket(self) -> _Socket:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        _, proto = await loop.create_datagram_endpoint(
            lambda: _Socket(self.clock, self._secret, self.tap), remote_addr=self.address, family=family
        )
        self._sockets.append(proto)
        return proto

    async def _acquire(self) -> tuple[_Socket, int]:
        for s in self._sockets:
            if s.free:
                return s, s.free.popleft()
        async with self._grow:
            for s in self._sockets:  # another task may have grown the pool meanwhile
                if s.free:
                    return s, s.free.popleft()
            s = await self._new_socket()
            return s, s.free.popleft()

    async def exchange(self, make_request: Callable[[int], Packet], policy: RetryPolicy) -> Exchange:
        """Send one request (built for the Identifier we allocate) and wait per *policy*."""
        sock, ident = await self._acquire()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            request = make_request(ident)
        except BaseException:
            self.in_flight -= 1
            sock.free.append(ident)
            raise
        loop = asyncio.get_running_loop()
        pending = _Pending(request, loop.create_future(), [])
        sock.pending[ident] = pending
        ex = Exchange(request)
        try:
            await self._wait(sock, pending, ex, policy)
        finally:
            self.in_flight -= 1
            sock.release(ident, request)
        ex.ignored = pending.ignored
        if ex.reply is None and ex.error_kind is None and pending.ignored:
            _, ex.error_kind, ex.error_detail = pending.ignored[-1]
        return ex

    async def _wait(self, sock: _Socket, pending: _Pending, ex: Exchange, policy: RetryPolicy) -> None:
        raw = pending.request.raw
        sock.send(raw)
        first = self.clock()
        ex.sent.append(first)
        next_send = first + policy.timeout_s
        retries_left = policy.retries
        deadline = first + policy.client_deadline_s
        listen_end = first + policy.listen_until_s
        while True:
            now = self.clock()
            wake = min(next_send if retries_left else listen_end, listen_end)
            if wake > now:
                await asyncio.wait([pending.future], timeout=wake - now)
            if pending.future.done():
                try:
                    ex.reply, ex.answered = pending.future.result()
                    ex.late = ex.answered > deadline
                except Unreachable as exc:
                    ex.error_kind, ex.error_detail = "unreachable", str(exc)
                return
            now = self.clock()
            if now >= listen_end:
                return
            if retries_left and now >= next_send:
                sock.send(raw)  # byte-identical, same socket, same source port
                ex.sent.append(now)
                retries_left -= 1
                next_send = now + policy.timeout_s
