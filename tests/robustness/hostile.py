"""A hostile RADIUS server and a lossy UDP proxy on 127.0.0.1, in one small threaded relay.

``Relay`` is a plain UDP socket on 127.0.0.1 served by one thread (selectors, no asyncio,
so it runs beside the probe's own ``asyncio.run``).  Each datagram from a client goes to
``on_request``; a relay with an upstream (the emulator, FreeRADIUS) can forward it from a
per-client upstream socket, and each upstream answer goes to ``on_reply``.  Both hooks
return what to send, each item a :class:`Send` (bytes, optional delay, optional "from
another source port").  The thread stops by itself after ``lifetime_s`` or ``max_datagrams``
(whichever comes first), so no test can leave a loop running.

- :class:`HostileServer` knows the shared secret and plays one *case*: a callable
  ``case(ctx) -> list[Send]`` where ``ctx`` (:class:`Ctx`) holds the request, the round
  number, the upstream reply (if the case forwards) and signing helpers.  Cases that
  need a real EAP conversation (a valid TLS start, an Accept with MS-MPPE keys) forward
  to the emulator and mutate its replies.
- :class:`LossyProxy` applies seeded, deterministic rules (drop, duplicate, reorder,
  delay, random loss) to both directions in front of any server.
"""

from __future__ import annotations

import heapq
import itertools
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from probe.radius import packet as pk

Addr = tuple[str, int]

LIFETIME_S = 120.0  # a relay's thread ends after this whatever happens
MAX_DATAGRAMS = 400_000  # ... or after handling this many datagrams (both directions)


@dataclass(frozen=True)
class Send:
    data: bytes
    delay_s: float = 0.0
    other_port: bool = False  # send from a second socket (a wrong source port)


class Relay:
    """A UDP endpoint on 127.0.0.1 with an optional upstream; subclasses decide what to send."""

    def __init__(self, upstream: Addr | None = None, *, lifetime_s: float = LIFETIME_S,
                 max_datagrams: int = MAX_DATAGRAMS) -> None:
        self.upstream = upstream
        self.lifetime_s = lifetime_s
        self.max_datagrams = max_datagrams
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the "wrong source port"
        self.other.bind(("127.0.0.1", 0))
        self.other.setblocking(False)
        self.address: Addr = self.sock.getsockname()[:2]
        self._up: dict[Addr, socket.socket] = {}  # client address -> its upstream socket
        self._up_client: dict[int, Addr] = {}  # upstream socket fd -> client address
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ, None)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self.handled = 0
        self.sent_to_client = 0
        self.errors: list[str] = []  # exceptions in a hook (a test bug): the test asserts this stays empty

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in (self.sock, self.other, *self._up.values()):
            s.close()
        self._sel.close()

    # -- what subclasses override ---------------------------------------------

    def on_request(self, data: bytes, client: Addr) -> Sequence[Send] | None:
        """What to send the client for a datagram from it; None: forward it upstream as it is."""
        return None

    def on_reply(self, data: bytes, client: Addr) -> Sequence[Send]:
        """What to send the client for an upstream answer."""
        return [Send(data)]

    def forward(self, data: bytes, client: Addr, delay_s: float = 0.0) -> None:
        """Send ``data`` upstream from the client's own upstream socket (now or after ``delay_s``)."""
        if delay_s > 0:
            self.later(delay_s, lambda: self.forward(data, client))
            return
        assert self.upstream is not None, "this relay has no upstream"
        up = self._up.get(client)
        if up is None:
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.bind(("127.0.0.1", 0))
            up.setblocking(False)
            self._up[client] = up
            self._up_client[up.fileno()] = client
            self._sel.register(up, selectors.EVENT_READ, client)
        try:
            up.sendto(data, self.upstream)
        except OSError as exc:
            self.errors.append(f"forward: {exc}")

    def later(self, delay_s: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), fn))

    # -- the thread ------------------------------------------------------------

    def _to_client(self, items: Sequence[Send], client: Addr) -> None:
        for item in items:
            if item.delay_s > 0:
                self.later(item.delay_s, self._sender(Send(item.data, 0, item.other_port), client))
                continue
            try:
                (self.other if item.other_port else self.sock).sendto(item.data, client)
                self.sent_to_client += 1
            except BlockingIOError:
                time.sleep(0.0005)  # a flood filled the buffer: let the client read
            except OSError as exc:
                self.errors.append(f"send: {exc}")

    def _sender(self, item: Send, client: Addr) -> Callable[[], None]:
        return lambda: self._to_client([item], client)

    def _loop(self) -> None:
        end = time.monotonic() + self.lifetime_s
        while not self._stop.is_set() and time.monotonic() < end and self.handled < self.max_datagrams:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                self._guard(fn)
            timeout = 0.05 if not self._timers else max(0.0, min(0.05, self._timers[0][0] - now))
            for key, _ in self._sel.select(timeout):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                for _ in range(64):  # drain, bounded
                    try:
                        data, addr = sock.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break  # ICMP error of an earlier send: nothing to read
                    self.handled += 1
                    if sock is self.sock:
                        client = addr[:2]
                        self._guard(lambda: self._request(data, client))
                    else:
                        client = key.data
                        self._guard(lambda: self._to_client(self.on_reply(data, client), client))

    def _request(self, data: bytes, client: Addr) -> None:
        items = self.on_request(data, client)
        if items is None:
            self.forward(data, client)
        else:
            self._to_client(items, client)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # a case bug: recorded, asserted empty by the tests
            self.errors.append(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------
# The hostile server


@dataclass
class Ctx:
    """What a hostile case sees for one request."""

    server: "HostileServer"
    raw: bytes
    request: pk.Packet
    round: int  # 1-based count of distinct requests (a retransmission has the same number)
    copy: int  # 1 for the first copy of a request, 2 for its first retransmission, ...
    reply: bytes | None = None  # the upstream's answer, for cases that forward

    @property
    def secret(self) -> bytes:
        return self.server.secret

    def sign(self, code: int, attrs: Sequence[pk.Attr], *, ma: bool = True) -> bytes:
        """A correctly signed reply to this request."""
        return pk.build_reply(code, self.request, attrs, self.secret, message_authenticator=ma)

    def upstream_packet(self) -> pk.Packet:
        assert self.reply is not None
        return pk.parse_packet(self.reply)

    def resign(self, attrs: Sequence[pk.Attr], code: int | None = None, *, ma: bool = True) -> bytes:
        """The upstream's reply with ``attrs`` instead of its own, signed again."""
        up = self.upstream_packet()
        return self.sign(up.code if code is None else code, attrs, ma=ma)


Case = Callable[[Ctx], Sequence[Send] | None]
"""A hostile case: what to answer (None on a request: forward to the upstream and call again with ctx.reply)."""


class HostileServer(Relay):
    """A RADIUS server on 127.0.0.1 that knows the secret and plays ``case`` for every request."""

    def __init__(self, secret: bytes, case: Case, upstream: Addr | None = None, **kw: Any) -> None:
        super().__init__(upstream, **kw)
        self.secret = secret
        self.case = case
        self.rounds = 0
        self.requests = 0
        self._copies: dict[bytes, int] = {}  # request authenticator -> copies seen
        self._pending: dict[tuple[Addr, int], Ctx] = {}  # (client, Identifier) -> the forwarded request
        self.state: dict[str, Any] = {}  # scratch space for stateful cases

    def on_request(self, data: bytes, client: Addr) -> Sequence[Send] | None:
        self.requests += 1
        try:
            request = pk.parse_packet(data)
        except pk.PacketError:
            return []
        copies = self._copies.get(request.authenticator, 0) + 1
        if copies == 1:
            self.rounds += 1
            if len(self._copies) > 10_000:
                self._copies.clear()
        self._copies[request.authenticator] = copies
        ctx = Ctx(self, data, request, self.rounds, copies)
        out = self.case(ctx)
        if out is None:
            self._pending[(client, request.identifier)] = ctx
            return None  # forward
        return out

    def on_reply(self, data: bytes, client: Addr) -> Sequence[Send]:
        ctx = self._pending.get((client, data[1] if len(data) > 1 else -1))
        if ctx is None:
            return [Send(data)]
        ctx.reply = data
        out = self.case(ctx)
        return [Send(data)] if out is None else out


# ---------------------------------------------------------------------------
# The lossy proxy


@dataclass
class Rule:
    """Seeded, deterministic loss rules for one direction ("request" or "reply")."""

    drop_first: bool = False  # drop the first copy of every distinct datagram (recovered by a retransmission)
    drop_all: bool = False  # drop everything (nothing can recover)
    duplicate: int = 0  # send each datagram this many extra times
    reorder: bool = False  # hold each datagram until the next one, then send both swapped (flushed after 0.1 s)
    delay_s: float = 0.0
    loss: float = 0.0  # seeded random loss probability


@dataclass
class Counters:
    seen: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    reordered: int = 0


class LossyProxy(Relay):
    """A UDP proxy on 127.0.0.1 in front of ``upstream`` applying one :class:`Rule` per direction."""

    def __init__(self, upstream: Addr, *, request: Rule | None = None, reply: Rule | None = None,
                 seed: int = 11, **kw: Any) -> None:
        super().__init__(upstream, **kw)
        self.rules = {"request": request or Rule(), "reply": reply or Rule()}
        self.counters = {"request": Counters(), "reply": Counters()}
        self._rng = random.Random(seed)
        self._first: dict[str, set[bytes]] = {"request": set(), "reply": set()}
        self._held: dict[str, tuple[bytes, Addr] | None] = {"request": None, "reply": None}

    def on_request(self, data: bytes, client: Addr) -> Sequence[Send] | None:
        self._apply("request", data, client)
        return []

    def on_reply(self, data: bytes, client: Addr) -> Sequence[Send]:
        self._apply("reply", data, client)
        return []

    def _emit(self, direction: str, data: bytes, client: Addr, delay: float) -> None:
        if direction == "request":
            self.forward(data, client, delay)
        else:
            self._to_client([Send(data, delay)], client)

    def _apply(self, direction: str, data: bytes, client: Addr) -> None:
        rule, count = self.rules[direction], self.counters[direction]
        count.seen += 1
        if rule.drop_all:
            count.dropped += 1
            return
        if rule.drop_first and data not in self._first[direction]:
            self._first[direction].add(data)
            count.dropped += 1
            return
        if rule.loss and self._rng.random() < rule.loss:
            count.dropped += 1
            return
        if rule.delay_s:
            count.delayed += 1
        copies = 1 + rule.duplicate
        count.duplicated += rule.duplicate
        if rule.reorder:
            held = self._held[direction]
            if held is None:
                self._held[direction] = (data, client)
                self.later(0.1, lambda: self._flush(direction))
                return
            self._held[direction] = None
            count.reordered += 1
            for _ in range(copies):
                self._emit(direction, data, client, rule.delay_s)
            self._emit(direction, held[0], held[1], rule.delay_s)
            return
        for _ in range(copies):
            self._emit(direction, data, client, rule.delay_s)

    def _flush(self, direction: str) -> None:
        held = self._held[direction]
        if held is not None:
            self._held[direction] = None
            self._emit(direction, held[0], held[1], self.rules[direction].delay_s)


def random_bytes(rng: random.Random, lo: int = 0, hi: int = 200) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(lo, hi)))


__all__ = ["Ctx", "Case", "Counters", "HostileServer", "LossyProxy", "Relay", "Rule", "Send", "random_bytes"]
