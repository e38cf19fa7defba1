"""How a RADIUS client waits for one answer, without any I/O (sans-IO).

``Round`` is one request/reply exchange as a state machine: the driver asks it
which datagram to send now (``poll(now)``, called with a timestamp read BEFORE
the send), when to call again (``next_deadline``), and hands it what arrives
(``receive(data, now)``) and ICMP-style errors (``unreachable(detail, now)``).
It never reads a clock and never touches a socket; the drivers in
``probe.drivers`` (asyncio pool, blocking socket) do that.

Behaviour a real NAS relies on and that we keep:
- a retransmission is byte-identical (the driver sends it from the same source
  port), so NPS treats it as a duplicate of the pending request (not a second push);
- replies are matched by Identifier and verified; an invalid reply is recorded
  and ignored (a spoofed or mis-keyed datagram must not end the wait), and if
  nothing valid follows the exchange ends as that error (``bad_authenticator`` /
  ``malformed``), not as silence;
- a reply that verifies against the Identifier's PREVIOUS request (which the
  driver, who allocates Identifiers, hands to the round) is a stray, not an error;
- past the client's own deadline (timeout x (retries + 1)) we keep listening for
  a late answer until ``listen_s``: a late reply is recorded as late, not lost;
- ICMP port unreachable ends the wait;
- what a server (or a spoofer) sends is bounded per round: every invalid reply is
  counted (``Exchange.ignored_total``) but only the first ``MAX_IGNORED_KEPT`` are kept,
  with the last one, whose error ends a round nothing valid answered;
- a conversation's overall deadline (``RetryPolicy.total_deadline_s``) can cut a
  round's wait short (``Round.cut``).
All times are seconds of whatever monotonic clock the driver uses.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .packet import Packet, PacketError, Reply, verify_reply

if TYPE_CHECKING:  # the asyncio pool lives in probe.drivers.aio; re-exported lazily below
    from ..drivers.aio import RadiusClient as RadiusClient

Clock = Callable[[], float]
# Sees every datagram: (direction "out"/"in", data, local (ip, port), remote (ip, port)).
Tap = Callable[[str, bytes, tuple[str, int], tuple[str, int]], None]

UNREACHABLE = {errno.ECONNREFUSED: "ICMP port unreachable: nothing listens there",
               errno.EHOSTUNREACH: "ICMP host unreachable", errno.ENETUNREACH: "ICMP network unreachable",
               errno.EHOSTDOWN: "host is down"}
"""OS errors on a connected UDP socket that mean the server cannot be reached, and what they mean."""

MAX_IGNORED_KEPT = 8
"""Invalid replies kept per round (each is counted; a spoofer answering in a loop must not fill memory)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long a client waits.  The default waits out a long MFA hold (90 s)."""

    timeout_s: float = 30.0  # per transmission
    retries: int = 2  # retransmissions after the first send
    listen_s: float = 0.0  # keep listening for a late answer until this long after the first send
    deadline_s: float | None = None  # the whole authentication ends by then (None: total_deadline_s's default)

    @property
    def client_deadline_s(self) -> float:
        return self.timeout_s * (self.retries + 1)

    @property
    def listen_until_s(self) -> float:
        return max(self.client_deadline_s, self.listen_s)

    @property
    def total_deadline_s(self) -> float:
        """The deadline of a whole authentication, from its start: ``deadline_s`` if given, else the
        wait of one round (timeout x (retries + 1), or the late wait beyond it)."""
        return self.listen_until_s if self.deadline_s is None else self.deadline_s


@dataclass
class Exchange:
    """One request/reply round trip with all its transmissions."""

    request: Packet
    sent: list[float] = field(default_factory=list)  # time of each transmission (read before the send)
    reply: Reply | None = None
    answered: float | None = None  # arrival of the accepted reply
    late: bool = False  # answered after the client's own deadline
    error_kind: str | None = None  # unreachable | bad_authenticator | malformed (None: silence or reply)
    error_detail: str | None = None
    ignored: list[tuple[float, str, str]] = field(default_factory=list)  # the first MAX_IGNORED_KEPT: (t, kind, detail)
    ignored_total: int = 0  # every invalid reply, kept or not
    last_ignored: tuple[float, str, str] | None = None  # the latest, whose error ends a round nothing valid answered
    cut: bool = False  # the conversation's deadline ended the wait before the round's own end

    @property
    def retransmissions(self) -> int:
        return max(0, len(self.sent) - 1)

    @property
    def response_s(self) -> float | None:
        return None if self.answered is None or not self.sent else self.answered - self.sent[0]


class Disposition(enum.Enum):
    """What a round made of a datagram handed to it."""

    ACCEPTED = "accepted"  # the verified answer: the round is over
    IGNORED = "ignored"  # not trustworthy (recorded in Exchange.ignored); the wait goes on
    STRAY = "stray"  # not ours: another Identifier, or an answer to the Identifier's previous request
    DUPLICATE = "duplicate"  # the round is already over (e.g. a second answer to a retransmission)


class Round:
    """One exchange as a state machine: send, retransmit byte-identically, verify, wait out late answers."""

    def __init__(self, request: Packet, policy: RetryPolicy, secret: bytes, previous: Packet | None = None) -> None:
        self.request = request
        self.policy = policy
        self._secret = secret
        self.previous = previous  # the Identifier's earlier request, so its straggling answers are strays
        self.exchange = Exchange(request)
        self.done = False
        self._retries_left = policy.retries
        self._next_send: float | None = None  # None: the first transmission is due
        self._deadline = 0.0
        self._listen_end = 0.0

    def __repr__(self) -> str:  # never show the secret
        return f"Round(identifier={self.request.identifier}, sent={len(self.exchange.sent)}, done={self.done})"

    @property
    def identifier(self) -> int:
        return self.request.identifier

    @property
    def next_deadline(self) -> float | None:
        """When ``poll`` must be called again if nothing arrives (None: poll now, or the round is over)."""
        if self.done or self._next_send is None:
            return None
        return min(self._next_send if self._retries_left else self._listen_end, self._listen_end)

    def poll(self, now: float) -> bytes | None:
        """The datagram to send at ``now`` (first send or a due retransmission), or None.

        ``now`` is read by the driver just BEFORE it sends.  A poll at or after the
        listen window's end ends the round (silence, or the last ignored reply's error).
        """
        if self.done:
            return None
        ex = self.exchange
        if self._next_send is None:
            ex.sent.append(now)
            self._next_send = now + self.policy.timeout_s
            self._deadline = now + self.policy.client_deadline_s
            self._listen_end = now + self.policy.listen_until_s
            return self.request.raw
        if now >= self._listen_end:
            self._finish()
            return None
        if self._retries_left and now >= self._next_send:
            ex.sent.append(now)  # byte-identical; the driver sends it from the same socket, same source port
            self._retries_left -= 1
            self._next_send = now + self.policy.timeout_s
            return self.request.raw
        return None

    def receive(self, data: bytes, now: float) -> Disposition:
        """A datagram that arrived at ``now`` on the round's socket."""
        if self.done:
            return Disposition.DUPLICATE
        if len(data) < 2 or data[1] != self.request.identifier:
            return Disposition.STRAY
        try:
            reply = verify_reply(data, self.request, self._secret)
        except PacketError as exc:
            if self._answers_previous(data):
                return Disposition.STRAY  # a late answer to the Identifier's earlier request
            ex = self.exchange
            ex.ignored_total += 1
            ex.last_ignored = (now, exc.kind, exc.detail)
            if len(ex.ignored) < MAX_IGNORED_KEPT:
                ex.ignored.append(ex.last_ignored)
            return Disposition.IGNORED
        ex = self.exchange
        ex.reply, ex.answered = reply, now
        ex.late = bool(ex.sent) and now > self._deadline
        self.done = True
        return Disposition.ACCEPTED

    def _answers_previous(self, data: bytes) -> bool:
        if self.previous is None:
            return False
        try:
            verify_reply(data, self.previous, self._secret)
        except PacketError:
            return False
        return True

    def unreachable(self, detail: str, now: float) -> None:
        """An ICMP-style error for the round's socket: the wait ends."""
        if self.done:
            return
        self.exchange.error_kind, self.exchange.error_detail = "unreachable", detail
        self.done = True

    def over_by(self, now: float) -> bool:
        """Whether the round's own wait (its listen window) has ended at ``now``: a poll then ends it."""
        return bool(self.exchange.sent) and now >= self._listen_end

    def cut(self, now: float) -> None:
        """The conversation's deadline came first: the round ends now (silence, or the last ignored reply's error)."""
        if self.done:
            return
        self.exchange.cut = True
        self._finish()

    def _finish(self) -> None:
        ex = self.exchange
        if ex.reply is None and ex.error_kind is None and ex.last_ignored is not None:
            _, ex.error_kind, ex.error_detail = ex.last_ignored
        self.done = True


def __getattr__(name: str) -> Any:
    """``RadiusClient`` (the asyncio pool) moved to probe.drivers.aio; still importable from here."""
    if name == "RadiusClient":
        from ..drivers.aio import RadiusClient

        return RadiusClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
