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
- every stray that reaches the round's socket while it waits (``Round.stray``: a datagram
  whose Identifier no request in flight carries, with that Identifier's previous request
  from the driver) is counted (``Exchange.stray_total``) and the first ``MAX_IGNORED_KEPT``
  are classified and kept: ``previous`` (a straggling answer to that earlier request: normal
  after a retransmission), ``misidentified`` (its Response Authenticator verifies against THIS
  round's request computed with the datagram's own Identifier: the server answered us but
  put another Identifier in) or ``unmatched`` (it matches no request we know);
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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from .packet import CODE_NAMES, Packet, PacketError, Reply, verify_reply

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
"""Invalid replies kept per round (each is counted; a spoofer answering in a loop must not fill memory).
Strays are bounded the same way: the first MAX_IGNORED_KEPT of a round are classified (at most two
verifications each) and kept, the rest only counted, so a flood costs O(1) per datagram."""

STRAY_PREVIOUS, STRAY_MISIDENTIFIED, STRAY_UNMATCHED = "previous", "misidentified", "unmatched"
"""The kinds of a kept stray (``Exchange.strays``)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long a client waits.  The default waits out a long MFA hold (90 s)."""

    timeout_s: float = 30.0  # per transmission
    retries: int = 2  # retransmissions after the first send
    listen_s: float = 0.0  # keep listening for a late answer until this long after the first send
    deadline_s: float | None = None  # the whole authentication ends by then (None: total_deadline_s's default)

    def reliable(self) -> RetryPolicy:
        """The policy on a reliable transport (RadSec, TCP): one transmission, the same total wait.

        RFC 6614 2.2 / RFC 5080 2.2.1: a client does not retransmit on the same reliable connection
        (TCP delivers it or the connection fails), so the whole client deadline is one wait.
        """
        return replace(self, timeout_s=self.client_deadline_s, retries=0)

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
    strays: list[tuple[float, str, str]] = field(default_factory=list)  # the first MAX_IGNORED_KEPT: (t, kind, detail)
    stray_total: int = 0  # every stray that reached the round's socket, kept (classified) or not
    stray_unmatched: int = 0  # of the kept ones, those that answer no earlier request (kind != "previous")

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
            return self.stray(data, now)  # the driver knows no previous request for that Identifier
        try:
            reply = verify_reply(data, self.request, self._secret)
        except PacketError as exc:
            if self.previous is not None and _verifies(data, self.previous, self._secret):
                # a late answer to the Identifier's earlier request
                self._keep_stray(now, STRAY_PREVIOUS, _describe(data, "answers the previous request with this "
                                                                      "Identifier (a straggler)"))
                return Disposition.STRAY
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

    def stray(self, data: bytes, now: float, previous: Packet | None = None) -> Disposition:
        """A datagram that reached the round's socket at ``now`` with an Identifier that is not the round's.

        ``previous``: the request the driver last sent with the datagram's Identifier (None if none), so a
        straggling answer to it is told apart.  Counted always; the first ``MAX_IGNORED_KEPT`` are classified.
        """
        if self.done:
            return Disposition.DUPLICATE
        ex = self.exchange
        if len(ex.strays) >= MAX_IGNORED_KEPT:
            ex.stray_total += 1
            return Disposition.STRAY
        if len(data) < 2:
            self._keep_stray(now, STRAY_UNMATCHED, f"{len(data)} byte(s): too short to carry an Identifier")
        elif previous is not None and _verifies(data, previous, self._secret):
            self._keep_stray(now, STRAY_PREVIOUS, _describe(data, "answers the previous request with its "
                                                                  "Identifier (a straggler)"))
        elif _verifies(data, replace(self.request, identifier=data[1]), self._secret):
            self._keep_stray(now, STRAY_MISIDENTIFIED, _describe(
                data, f"answers this round's request (Identifier {self.request.identifier}): its Response "
                      f"Authenticator verifies with the Identifier it carries, so the server (or a NAT/proxy) "
                      f"put another Identifier in its answer"))
        else:
            self._keep_stray(now, STRAY_UNMATCHED, _describe(data, "matches no request in flight"))
        return Disposition.STRAY

    def _keep_stray(self, now: float, kind: str, detail: str) -> None:
        ex = self.exchange
        ex.stray_total += 1
        if len(ex.strays) < MAX_IGNORED_KEPT:
            ex.strays.append((now, kind, detail))
            if kind != STRAY_PREVIOUS:
                ex.stray_unmatched += 1

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


def _verifies(data: bytes, request: Packet, secret: bytes) -> bool:
    try:
        verify_reply(data, request, secret)
    except PacketError:
        return False
    return True


def _describe(data: bytes, what: str) -> str:
    """One line about a stray datagram: its Identifier, code and length (never its content)."""
    code = CODE_NAMES.get(data[0], f"code {data[0]}") if data else "empty"
    return f"Identifier {data[1]} ({code}, {len(data)} bytes) {what}"


def __getattr__(name: str) -> Any:
    """``RadiusClient`` (the asyncio pool) moved to probe.drivers.aio; still importable from here."""
    if name == "RadiusClient":
        from ..drivers.aio import RadiusClient

        return RadiusClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
