"""The asyncio UDP driver: a pool of connected sockets driving sans-IO conversations.

- a pool of sockets connected to one server address, 256 Identifiers each,
  grown on demand, so any number of requests can be in flight to one server;
- a round's retransmissions leave from the socket (source port) of its first send;
- replies are routed by Identifier to the round waiting on it; datagrams for an
  Identifier nobody waits on, and answers to an Identifier's previous request,
  are counted as strays, and a datagram for an Identifier nobody waits on is handed
  (``stray``) to every machine waiting on the socket, so the Outcome counts it too;
- an ICMP unreachable is read from the socket's error queue (``IP_RECVERR``, see
  ``probe.drivers.icmp``): only one about the target, quoting a request in flight,
  ends the round that sent it (with an empty quote: every round on that socket);
  without an error queue, ECONNREFUSED etc. on the connected socket ends every round
  waiting on it, as before;
- the time is read before every send and at every arrival, and handed to the machine.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from typing import Any, Callable, Protocol

from ..conversation import Conversation, method_for_resumption, note_resumption
from ..methods import Method, make_method
from ..model import ProbeConfig
from ..outcome import Outcome
from ..radius.packet import Packet
from ..radius.transport import UNREACHABLE, Clock, Disposition, Exchange, RetryPolicy, Round, Tap
from . import judge
from .icmp import LOCAL_ROUTING_ERRNOS, enable_recverr, judge_error, quote_matches, read_errors

__all__ = ["RadiusClient", "authenticate", "converse"]


class _Machine(Protocol):
    """What a socket hands datagrams and errors to: a Conversation or a bare Round."""

    @property
    def done(self) -> bool: ...

    def receive(self, data: bytes, now: float) -> Disposition: ...

    def stray(self, data: bytes, now: float, previous: Packet | None = None) -> Disposition: ...

    def unreachable(self, detail: str, now: float) -> None: ...


class _Waiter:
    """A machine waiting on one Identifier, and the future that wakes its task."""

    __slots__ = ("machine", "future")

    def __init__(self, machine: _Machine) -> None:
        self.machine = machine
        self.future: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    async def sleep_until(self, deadline: float | None, clock: Clock) -> None:
        """Wait for a wake-up or ``deadline`` (absolute, on ``clock``)."""
        if deadline is None:
            return
        timeout = deadline - clock()
        if timeout <= 0:
            return
        # One future and one timer handle: asyncio.wait() would add a set, a second future, a
        # timer and done-callbacks on every round, for the same effect.
        loop = asyncio.get_running_loop()
        future = self.future = loop.create_future()
        timer = loop.call_later(timeout, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            self.future = None


def _resolve(future: asyncio.Future[None]) -> None:
    """The timer's end of :meth:`_Waiter.sleep_until`: wake the waiting task unless something did already."""
    if not future.done():
        future.set_result(None)


def _in_flight(machine: _Machine) -> bytes | None:
    """The request a machine is waiting on an answer to (None between rounds)."""
    rnd = machine if isinstance(machine, Round) else getattr(machine, "round", None)
    return rnd.request.raw if isinstance(rnd, Round) else None


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, clock: Clock, tap: Tap | None = None, errqueue: socket.socket | None = None,
                 target: tuple[str, int] | None = None) -> None:
        self.clock = clock
        self.tap = tap
        self.errqueue = errqueue  # the socket, when its ICMP errors can be read with their details
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.free: deque[int] = deque(range(256))
        self.pending: dict[int, _Waiter] = {}
        self.previous: dict[int, Packet] = {}  # the last request of each released Identifier
        self.stray = 0

    def __repr__(self) -> str:
        return f"_Socket(pending={len(self.pending)}, free={len(self.free)})"

    def release(self, ident: int, request: Packet | None) -> None:
        """Free an Identifier; remember its request so a straggling answer to it is not blamed on the next."""
        self.pending.pop(ident, None)
        if request is not None:
            self.previous[ident] = request
        self.free.append(ident)  # reused last

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)
        if self.tap is not None:
            self.tap("out", data, self.transport.get_extra_info("sockname")[:2],
                     self.transport.get_extra_info("peername")[:2])

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = self.clock()
        if self.tap is not None and self.transport is not None:
            self.tap("in", data, self.transport.get_extra_info("sockname")[:2], addr[:2])
        waiter = self.pending.get(data[1]) if len(data) >= 2 else None
        if waiter is None:
            self.stray += 1
            # Every machine waiting on this socket is told (each classifies it against its own request, so
            # an answer carrying another Identifier is recognised by the round it answers).  With a
            # previous request for the Identifier, a straggling answer to it stays a plain stray.
            previous = self.previous.get(data[1]) if len(data) >= 2 else None
            for machine in {id(w.machine): w.machine for w in self.pending.values()}.values():
                machine.stray(data, now, previous)
            return
        disposition = waiter.machine.receive(data, now)
        if disposition is Disposition.STRAY:
            self.stray += 1
        elif disposition is Disposition.ACCEPTED or waiter.machine.done:
            waiter.wake()

    def error_received(self, exc: Exception) -> None:
        if self.errqueue is None or self.target is None:
            reason = UNREACHABLE.get(getattr(exc, "errno", None) or -1)
            if reason is not None:
                self._unreachable(reason)
            return
        errors = read_errors(self.errqueue)  # drained: the socket reports no error again for these
        code = getattr(exc, "errno", None)
        if not errors and code in LOCAL_ROUTING_ERRNOS:  # our own stack refused the send: no ICMP to check
            self._unreachable(UNREACHABLE[code])
            return
        for err in errors:
            detail = judge_error(err, self.target)
            if detail is None:
                continue
            if not err.quoted:  # a quote of the UDP header only: it cannot name the round
                self._unreachable(detail)
                continue
            waiter = self.pending.get(err.quoted[1]) if len(err.quoted) >= 2 else None
            request = _in_flight(waiter.machine) if waiter is not None else None
            if waiter is None or request is None or not quote_matches(err.quoted, request):
                continue  # it quotes no request in flight (an old one, or one we never sent)
            waiter.machine.unreachable(detail, self.clock())
            waiter.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._unreachable(f"socket closed: {exc}")

    def _unreachable(self, reason: str) -> None:
        now = self.clock()
        for waiter in list(self.pending.values()):
            waiter.machine.unreachable(reason, now)
            waiter.wake()


class RadiusClient:
    """Client side of one RADIUS server address (a pool of sockets connected to it)."""

    def __init__(self, address: tuple[str, int], secret: bytes, *, clock: Clock = time.monotonic,
                 tap: Tap | None = None, source: str | None = None) -> None:
        self.address = address
        self.source = source  # bind every socket to (source, 0) before connecting: NPS knows clients by it
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
        return self._sockets[0].transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

    @property
    def stray_replies(self) -> int:
        return sum(s.stray for s in self._sockets)

    async def _new_socket(self) -> _Socket:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            recverr = enable_recverr(sock)
            if self.source:
                sock.bind((self.source, 0))  # --source: NPS knows its clients by the source address
            sock.connect(self.address)  # connected: replies only from the server, ICMP errors surface
            peer = sock.getpeername()[:2]  # the address ICMP errors must be about
            _, proto = await loop.create_datagram_endpoint(
                lambda: _Socket(self.clock, self.tap, sock if recverr else None, peer), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        self._sockets.append(proto)
        return proto

    async def _acquire(self) -> tuple[_Socket, int]:
        """A free Identifier on some socket (counted in flight until ``_release``)."""
        sock, ident = await self._acquire_free()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return sock, ident

    async def _acquire_free(self) -> tuple[_Socket, int]:
        for s in self._sockets:
            if s.free:
                return s, s.free.popleft()
        async with self._grow:
            for s in self._sockets:  # another task may have grown the pool meanwhile
                if s.free:
                    return s, s.free.popleft()
            s = await self._new_socket()
            return s, s.free.popleft()

    def _release(self, sock: _Socket, ident: int, request: Packet | None) -> None:
        self.in_flight -= 1
        sock.release(ident, request)

    async def exchange(self, make_request: Callable[[int], Packet], policy: RetryPolicy) -> Exchange:
        """Send one request (built for the Identifier we allocate) and wait per *policy*."""
        sock, ident = await self._acquire()
        try:
            request = make_request(ident)
        except BaseException:
            self._release(sock, ident, None)
            raise
        rnd = Round(request, policy, self._secret, sock.previous.get(ident))
        waiter = _Waiter(rnd)
        sock.pending[ident] = waiter
        try:
            while not rnd.done:
                data = rnd.poll(self.clock())  # the time is read before the send
                if data is not None:
                    sock.send(data)
                    continue
                if not rnd.done:
                    await waiter.sleep_until(rnd.next_deadline, self.clock)
        finally:
            self._release(sock, ident, request)
        return rnd.exchange

    async def converse(self, conv: Conversation) -> Outcome:
        """Drive one conversation to its end; the Outcome is complete but not judged."""
        waiter = _Waiter(conv)
        held: dict[int, _Socket] = {}  # Identifiers this conversation holds, and their sockets

        def free_released() -> None:
            for ident, request in conv.released():
                s = held.pop(ident, None)
                if s is not None:
                    self._release(s, ident, request)

        sock: _Socket | None = None
        try:
            conv.outcome.source = self.local_address[0]
            conv.start(self.clock())
            while not conv.done:
                free_released()  # before a new round takes an Identifier, as an exchange released its own
                if conv.wants_identifier:
                    sock, ident = await self._acquire()
                    held[ident] = sock
                    sock.pending[ident] = waiter
                    conv.begin_round(ident, sock.previous.get(ident))
                    continue
                data = conv.poll(self.clock())  # the time is read before the send
                if data is not None and sock is not None:
                    sock.send(data)  # every transmission of a round from the round's socket
                    continue
                if conv.done or conv.wants_identifier:
                    continue
                await waiter.sleep_until(conv.next_deadline, self.clock)
        finally:
            free_released()
            for ident, s in held.items():  # cancelled mid-round: give the Identifier back
                request = conv.round.request if conv.round is not None and conv.round.identifier == ident else None
                self._release(s, ident, request)
        return conv.outcome


async def converse(cfg: ProbeConfig, client: RadiusClient, method: Method | None = None) -> Outcome:
    """One conversation over an open client, judged (what ``Conversation(cfg, client, method).run()`` was)."""
    conv = Conversation(cfg, method, nas_ip=client.local_address[0])
    return judge(await client.converse(conv), cfg)


async def authenticate(cfg: ProbeConfig, client: RadiusClient | None = None, *,
                       keylog: Callable[[bytes], None] | None = None,
                       tap: Tap | None = None, resume: bool = False, method: Method | None = None) -> Outcome:
    """Run one probe; opens (and closes) a client unless one is given.

    Bad local input (unreadable certificate, wrong PKCS#12 password) raises before
    anything is sent; everything the server does ends in the returned Outcome.
    With ``resume`` (TLS methods), a successful authentication is followed by a
    second one offering the first's TLS session (fast reconnect); the second's
    Outcome is returned, its ``tls.resumption`` says whether the server resumed.
    """
    if method is None:
        method = make_method(cfg, keylog)
    if cfg.radsec is not None and client is None:  # RADIUS over TLS: its own connection (probe.drivers.radsec)
        from .radsec import authenticate_radsec

        return await authenticate_radsec(cfg, method=method, keylog=keylog, tap=tap)
    if client is not None:
        return await _authenticate(cfg, client, method, keylog, resume)
    async with RadiusClient(cfg.address, cfg.secret.value, clock=time.monotonic, tap=tap,
                            source=cfg.source) as own:
        return await _authenticate(cfg, own, method, keylog, resume)


async def _authenticate(cfg: ProbeConfig, client: RadiusClient, method: Method,
                        keylog: Callable[[bytes], None] | None, resume: bool) -> Outcome:
    nas_ip = client.local_address[0]
    first = await client.converse(Conversation(cfg, method, nas_ip=nas_ip))
    second_method = method_for_resumption(cfg, method, first, keylog) if resume else None
    if second_method is None:
        return judge(first, cfg)
    second = await client.converse(Conversation(cfg, second_method, nas_ip=nas_ip))
    note_resumption(first, second)
    return judge(second, cfg)
