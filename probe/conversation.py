"""One authentication as a sans-IO state machine: NAS attributes + method -> Outcome.

The loop is the same for every method: build an Access-Request for this round
(fresh Request Authenticator, Message-Authenticator first, State echoed), let
the driver send it, and let the method decide what an Access-Challenge means.
``Conversation`` knows no sockets, event loop or clock: a driver
(``probe.drivers.aio`` over the asyncio pool, ``probe.drivers.blocking`` over
one plain UDP socket) allocates each round's Identifier, reads the time before
every send, sends what the machine says, and hands back what arrives with its
arrival time.  Every way a conversation can end becomes an Outcome; nothing raises.

Every authentication has an overall deadline (``RetryPolicy.total_deadline_s``,
from its first transmission): ``next_deadline`` never lies past it, a round still waiting then
is cut (silent for one timeout, or half the deadline: a discard with a warning;
otherwise ``deadline``), and no round begins after it.  What the server sends is bounded
too: the round limit (``ProbeConfig.round_limit``), a few invalid replies kept
per round (all counted in ``Outcome.ignored_replies``), a few strays per round (datagrams whose
Identifier matches no request in flight, all counted in ``Outcome.stray_replies``), one copy of each warning.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

# The method interface lives in probe.methods (registry) with method_pap / method_eap; input types in probe.model.
from .method_eap import EapMethod
from .methods import Method, MethodError, RoundPayload, make_method
from .model import ProbeConfig
from .outcome import AttemptRecord, ErrorKind, Outcome
from .radius import packet as pk
from .radius.dictionary import RadiusDictionary, default_dictionary
from .radius.profiles import NasContext, nas_attributes
from .radius.transport import STRAY_MISIDENTIFIED, Disposition, Exchange, RetryPolicy, Round

log = logging.getLogger(__name__)


def _reply_attributes(reply: pk.Packet, dictionary: RadiusDictionary) -> dict[str, list[object]]:
    """Reply attributes by name for reports and assertions; hidden values are never shown."""
    out: dict[str, list[object]] = {}
    skip = {pk.EAP_MESSAGE, pk.MESSAGE_AUTHENTICATOR}
    for atype, value in reply.attributes:
        if atype in skip:
            continue
        items = [(0, atype, value)]
        if atype == pk.VENDOR_SPECIFIC:
            vid, subs = pk.split_vsa(value)
            items = [(vid, vt, vv) for vt, vv in subs]
        for vid, code, data in items:
            adef = dictionary.by_key(vid, code)
            if adef is None:
                out.setdefault(f"Attr-{vid}-{code}" if vid else f"Attr-{code}", []).append(data)
            elif adef.encrypt:
                out.setdefault(adef.name, []).append("(hidden)")
            else:
                out.setdefault(adef.name, []).append(dictionary.decode(adef, data))
    return out


class Conversation:
    """One authentication as a state machine; a driver does the I/O.

    The driver's loop (see probe/drivers/aio.py and blocking.py)::

        conv.start(clock())
        while not conv.done:
            if conv.wants_identifier:            # a new round: the driver allocates its Identifier
                conv.begin_round(ident, previous_request_of(ident))
            data = conv.poll(clock())            # time read BEFORE the send
            if data is not None: send(data); continue
            for ident, request in conv.released(): free(ident, request)
            wait until conv.next_deadline for a datagram -> conv.receive(data, clock())
                                         or an ICMP error -> conv.unreachable(detail, clock())
                 (a datagram for another Identifier -> conv.stray(data, clock(), previous_request_of(its ident)))
        for ident, request in conv.released(): free(ident, request)
        outcome = conv.outcome                   # complete, not yet judged

    ``released()`` hands back the Identifiers whose round is over, with the request
    each carried last (None if it was never built) so the driver can keep it as that
    Identifier's ``previous`` and recognise a straggling answer to it as a stray.
    """

    def __init__(self, cfg: ProbeConfig, method: Method | None = None, *, nas_ip: str,
                 dictionary: RadiusDictionary | None = None,
                 urandom: Callable[[int], bytes] = os.urandom, reliable: bool = False) -> None:
        self.cfg = cfg
        # reliable (RadSec over TCP): no retransmission on the connection, one wait as long as the client's
        self._round_policy = cfg.policy.reliable() if reliable else cfg.policy
        self.method = method if method is not None else make_method(cfg)
        self.dictionary = dictionary or default_dictionary()
        self.nas_ip = nas_ip
        self._urandom = urandom
        self.outcome = Outcome(target=cfg.target, method=cfg.method, identity=cfg.identity, expected=cfg.expected,
                               window_s=cfg.window_s, client_timeout_s=cfg.policy.client_deadline_s,
                               deadline_s=cfg.policy.total_deadline_s)
        self.done = False
        self.round: Round | None = None
        self._t0 = 0.0
        self._deadline_at = float("inf")  # the first transmission + the policy's total deadline
        self._started = False
        self._payload: RoundPayload | None = None  # the next round's payload, waiting for an Identifier
        self._state: bytes | None = None
        self._nas: list[pk.Attr] = []
        self._ma_seen: list[str] = []
        self._released: list[tuple[int, pk.Packet | None]] = []
        self._last_now = 0.0  # the latest time a driver told us (ends a conversation that failed in begin_round)

    def __repr__(self) -> str:  # never show secrets
        return f"Conversation({self.cfg.method}, rounds={self.outcome.round_trips}, done={self.done})"

    # -- what the driver asks ------------------------------------------------

    @property
    def wants_identifier(self) -> bool:
        """A round is ready to be built: call ``begin_round`` with a free Identifier."""
        return not self.done and self._payload is not None

    @property
    def next_deadline(self) -> float | None:
        """When to call ``poll`` again if nothing arrives (None: act now, or the conversation is over)."""
        if self.done or self.round is None:
            return None
        wake = self.round.next_deadline
        return None if wake is None else min(wake, self._deadline_at)

    def released(self) -> list[tuple[int, pk.Packet | None]]:
        """Identifiers whose round is over (and the request each carried); each is handed out once."""
        out, self._released = self._released, []
        return out

    # -- what the driver tells -----------------------------------------------

    def start(self, now: float, *, deadline_from: float | None = None) -> None:
        """The conversation begins at ``now``: the method's first payload waits for an Identifier.

        ``deadline_from``: the overall deadline runs from then (RadSec: the connection's start, so TCP + TLS
        setup counts) instead of from the first transmission.
        """
        if self._started:
            return
        self._started = True
        self._t0 = self._last_now = now
        if deadline_from is not None:
            self._deadline_at = deadline_from + self.cfg.policy.total_deadline_s
        self._guard(now, self._start)

    def begin_round(self, identifier: int, previous: pk.Packet | None = None) -> None:
        """Build this round's Access-Request for ``identifier`` (``previous``: its last request, for strays)."""
        if not self.wants_identifier:
            raise RuntimeError("begin_round without a round waiting for an Identifier")  # a driver bug
        self._released.append((identifier, None))  # freed as-is if the request cannot be built
        self._guard(None, self._begin_round, identifier, previous)

    def poll(self, now: float) -> bytes | None:
        """The datagram to send at ``now`` (read just before the send), or None; also handles timer expiry."""
        if self.done or self.round is None:
            return None
        return self._guard(now, self._poll, now)

    def receive(self, data: bytes, now: float) -> Disposition:
        """A datagram that arrived at ``now`` for this conversation's current Identifier."""
        if self.done or self.round is None:
            return Disposition.DUPLICATE
        result = self._guard(now, self._receive, data, now)
        return result if result is not None else Disposition.DUPLICATE

    def stray(self, data: bytes, now: float, previous: pk.Packet | None = None) -> Disposition:
        """A datagram on this conversation's socket whose Identifier no request in flight of ours carries.

        ``previous``: the request the driver last released for the datagram's Identifier (None if none),
        so a straggling answer to it stays a plain stray.  Counted in the round (and the Outcome's
        ``stray_replies``); it never ends the wait.
        """
        if self.done:
            return Disposition.DUPLICATE
        if self.round is None:  # between rounds: nothing to classify it against
            self.outcome.stray_replies += 1
            return Disposition.STRAY
        result = self._guard(now, self.round.stray, data, now, previous)
        return result if result is not None else Disposition.DUPLICATE

    def unreachable(self, detail: str, now: float) -> None:
        """An ICMP-style error (port/host unreachable, socket closed): the round ends as ``unreachable``."""
        if self.done or self.round is None:
            return
        self._guard(now, self._unreachable, detail, now)

    def transport_error(self, kind: str, detail: str, now: float) -> None:
        """The driver's transport failed (a RadSec connection closed, a stream that cannot be framed, a TLS
        alert): the conversation ends as error ``kind`` (an ErrorKind value)."""
        if self.done:
            return
        if self.round is None:
            self._fail(kind, detail, now)
            return
        self._guard(now, self._transport_error, kind, detail, now)

    def _transport_error(self, kind: str, detail: str, now: float) -> None:
        assert self.round is not None
        self.round.unreachable(detail, now)  # the wait ends, with the transport's own kind below
        self.round.exchange.error_kind = kind
        self._end_round(now)  # the round's transmissions are recorded in the attempts

    def abort(self, detail: str, now: float) -> None:
        """The driver itself failed (a bug): the conversation ends as an ``internal`` error."""
        if not self.done:
            self._fail("internal", detail, now)

    # -- inside ----------------------------------------------------------------

    def _guard(self, now: float | None, fn: Callable[..., Any], *args: Any) -> Any:
        if now is not None:
            self._last_now = max(self._last_now, now)
        try:
            return fn(*args)
        except pk.PacketError as exc:
            self._fail(exc.kind, exc.detail, now)
        except MethodError as exc:
            self._fail(exc.kind, exc.detail, now, exc.state)
        except Exception as exc:  # a bug must still end in an Outcome, not a traceback
            log.debug("conversation failed", exc_info=True)
            self._fail("internal", f"{type(exc).__name__}: {exc}", now)
        return None

    def _fail(self, kind: str, detail: str, now: float | None, state: str | None = None) -> None:
        o = self.outcome
        o.result, o.error_kind, o.error_detail = "error", ErrorKind.coerce(kind), detail
        o.error_state = state
        self._release_round()
        self._end(self._last_now if now is None else now)

    def _end(self, now: float) -> None:
        if self.done:
            return
        self.done = True
        self._payload = None
        self._release_round()
        try:
            self.method.report(self.outcome)
        except Exception:  # the report is extra detail: never let it turn an Outcome into a traceback
            log.debug("method report failed", exc_info=True)
        self.outcome.duration_s = now - self._t0

    def _release_round(self) -> None:
        if self.round is not None:
            self._released.append((self.round.identifier, self.round.request))
            self.round = None

    def _start(self) -> None:
        ctx = NasContext(nas_ip=self.nas_ip, nas_identifier=self.cfg.nas_identifier, framed_mtu=self.cfg.framed_mtu)
        self._nas = nas_attributes(self.cfg.profile, ctx, self.cfg.extra_attrs, self.dictionary)
        self._next(self.method.start(), self._t0)

    def _next(self, payload: RoundPayload | None, now: float) -> None:
        if payload is None:
            self._end(now)
            return
        if self.outcome.round_trips >= self.cfg.round_limit:
            raise MethodError("eap", f"the server kept challenging: stopped after {self.cfg.round_limit} rounds")
        if now >= self._deadline_at:
            rounds = self.outcome.round_trips
            detail = self._deadline_detail(now, rounds, f"none left for round {rounds + 1}")
            raise MethodError(ErrorKind.DEADLINE, detail)
        self._payload = payload

    def _begin_round(self, identifier: int, previous: pk.Packet | None) -> None:
        cfg = self.cfg
        current, self._payload = self._payload, None
        assert current is not None
        self.outcome.round_trips += 1
        auth = self._urandom(16)  # a fresh Request Authenticator every round
        nas = self._nas if current.nas_keep is None else [a for a in self._nas if a[0] in current.nas_keep]
        user = [(pk.USER_NAME, self.method.user_name.encode("utf-8"))] if self.method.user_name else []
        attrs = [*user, *nas]
        if current.password is not None:
            attrs.append(pk.password_attr(current.password, cfg.secret.value, auth))
        attrs += current.attributes
        if self._state is not None:
            attrs.append((pk.STATE, self._state))
        request = pk.build_request(identifier, auth, attrs, cfg.secret.value,
                                   message_authenticator=cfg.module.message_authenticator, code=current.code)
        self._released.pop()  # built: the Identifier is released with its request when the round ends
        self.round = Round(request, self._round_policy, cfg.secret.value, previous)

    def _poll(self, now: float) -> bytes | None:
        assert self.round is not None
        if now >= self._deadline_at and not self.round.over_by(now):
            self.round.cut(now)  # the overall deadline came before the round's own end
            self._end_round(now)
            return None
        data = self.round.poll(now)
        if data is not None and self._deadline_at == float("inf"):
            # From the first transmission, as each round's own wait is: by default they end together.
            self._deadline_at = now + self.cfg.policy.total_deadline_s
        if self.round.done:
            self._end_round(now)
        return data

    def _receive(self, data: bytes, now: float) -> Disposition:
        assert self.round is not None
        disposition = self.round.receive(data, now)
        if self.round.done:
            self._end_round(now)
        return disposition

    def _unreachable(self, detail: str, now: float) -> None:
        assert self.round is not None
        self.round.unreachable(detail, now)
        self._end_round(now)

    def _end_round(self, now: float) -> None:
        rnd = self.round
        assert rnd is not None and rnd.done
        self._release_round()
        ex = rnd.exchange
        o, method = self.outcome, self.method
        self._record(ex)
        o.primary_auth_done = method.primary_auth_done
        if ex.reply is None:
            o.final_response_s = None  # the final round went unanswered
            waited = now - ex.sent[0] if ex.sent else 0.0
            if ex.error_kind:
                o.result, o.error_kind, o.error_detail = "error", ErrorKind.coerce(ex.error_kind), ex.error_detail
            elif ex.cut and waited < min(self.cfg.policy.timeout_s, self.cfg.policy.total_deadline_s / 2):
                # Cut before one timeout (or half the deadline) of silence: the server is slow overall, not silent.
                o.result, o.error_kind = "error", ErrorKind.DEADLINE
                o.error_detail = self._deadline_detail(now, o.round_trips - 1,
                                                   f"round {o.round_trips} cut after {waited:.1f} s")
            else:
                o.result = "discard"
                if ex.cut:
                    o.warnings.append(f"the wait for round {o.round_trips} was cut after {waited:.1f} s by the "
                                      f"{self.cfg.policy.total_deadline_s:g} s deadline of the whole authentication")
            self._end(now)
            return
        reply = ex.reply.packet
        if reply.code != pk.ACCOUNTING_RESPONSE:  # Blast-RADIUS is about Access-* replies: accounting has no say
            self._ma_seen.append(ex.reply.message_authenticator)  # an unsigned EAP reply never gets here (RFC 3579)
            o.message_authenticator = "absent" if "absent" in self._ma_seen else "valid"
        o.final_response_s = ex.response_s  # from the round's first transmission
        o.late = o.late or ex.late  # a round past the client's timeout loses the user, whatever follows
        message = reply.get(pk.REPLY_MESSAGE)
        o.reply_message = message.decode("utf-8", "replace") if message is not None else None
        o.reply_attributes = _reply_attributes(reply, self.dictionary)
        if reply.code == pk.ACCESS_CHALLENGE:
            self._state = reply.get(pk.STATE)
            payload = method.on_challenge(reply)
            if payload is None:
                o.result = "challenge"
            self._next(payload, now)
            return
        if reply.code == pk.ACCOUNTING_RESPONSE:  # accounting: the method may send the session's next record
            payload = method.on_challenge(reply)
            if payload is not None:
                self._next(payload, now)
                return
        o.result = "accept" if reply.code in (pk.ACCESS_ACCEPT, pk.ACCOUNTING_RESPONSE) else "reject"
        method.on_final(reply, ex.request, o)
        self._end(now)

    def _deadline_detail(self, now: float, answered: int, where: str) -> str:
        return (f"the authentication did not finish within its {self.cfg.policy.total_deadline_s:g} s deadline: "
                f"{now - self._t0:.1f} s, {answered} round(s) answered, {where}")

    def _record(self, ex: Exchange) -> None:
        o, t0 = self.outcome, self._t0
        o.retransmissions += ex.retransmissions
        o.ignored_replies += ex.ignored_total
        o.stray_replies += ex.stray_total
        misidentified = next((d for _, kind, d in ex.strays if kind == STRAY_MISIDENTIFIED), None)
        if misidentified is not None:
            note = (f"the server answered a request with another Identifier (round {o.round_trips}: {misidentified}); "
                    f"such answers are never accepted")
            if not any(w.startswith("the server answered a request with another Identifier") for w in o.warnings):
                o.warnings.append(note)  # one copy per conversation
        for i, sent in enumerate(ex.sent):
            last = i == len(ex.sent) - 1
            rec = AttemptRecord(round=o.round_trips, sent_s=sent - t0, retransmission=i)
            if last and ex.reply is not None and ex.answered is not None:
                rec.answered_s = ex.answered - t0
                rec.code = ex.reply.packet.code_name
                rec.late = ex.late
            if last:
                rec.ignored = [f"{when - t0:.3f}s {kind}: {detail}" for when, kind, detail in ex.ignored]
                rec.ignored_total = ex.ignored_total
                rec.strays = [f"{when - t0:.3f}s {kind}: {detail}" for when, kind, detail in ex.strays]
                rec.stray_total, rec.stray_unmatched = ex.stray_total, ex.stray_unmatched
            o.attempts.append(rec)


# -- fast reconnect (--resume): a second conversation offering the first's TLS session -------------


def method_for_resumption(cfg: ProbeConfig, method: Method, first: Outcome,
                          keylog: Callable[[bytes], None] | None = None) -> Method | None:
    """The method for the second conversation of ``--resume``, or None to stop at ``first``.

    Only an accepted TLS method is followed up; with no session to offer, ``first`` gets a warning.
    """
    if not isinstance(method, EapMethod) or first.result != "accept":
        return None
    session = method.peer.session_for_resumption()
    if session is None:
        first.warnings.append("fast reconnect: no TLS session to resume after the first authentication")
        return None
    return make_method(cfg, keylog, session)


def note_resumption(first: Outcome, second: Outcome) -> None:
    """Record in ``second`` (the Outcome reported) whether the server resumed ``first``'s session."""
    resumed = bool(second.tls and second.tls.get("resumed"))
    if second.tls is not None:
        second.tls["resumption"] = {"offered": True, "resumed": resumed,
                                    "first_duration_s": round(first.duration_s, 6),
                                    "first_round_trips": first.round_trips}
    if not resumed:
        second.warnings.append("fast reconnect: the server did a full handshake instead of resuming "
                               "(TLS session caching / fast reconnect is off on the server)")

