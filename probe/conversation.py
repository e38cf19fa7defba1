"""One authentication: NAS attributes + method + transport -> Outcome.

The loop is the same for every method: build an Access-Request for this round
(fresh Request Authenticator, Message-Authenticator first, State echoed), send
it through the transport, and let the method decide what an Access-Challenge
means.  Every way a conversation can end becomes an Outcome; nothing raises.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable

# The method interface moved to probe.methods / method_pap / method_eap, the input types to probe.model;
# imported back so existing callers (and this module) keep working.
from .method_eap import EapMethod
from .method_pap import PapMethod  # noqa: F401
from .methods import METHOD_NAMES as METHODS, Method, MethodError, RoundPayload, make_method  # noqa: F401
from .model import ProbeConfig, Secret, TlsOptions  # noqa: F401
from .outcome import AttemptRecord, Outcome, finalize
from .radius import packet as pk
from .radius.dictionary import RadiusDictionary, default_dictionary
from .radius.profiles import NasContext, nas_attributes
from .radius.transport import Exchange, RadiusClient, RetryPolicy, Tap  # noqa: F401

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
    """Runs one authentication over an open RadiusClient."""

    def __init__(self, cfg: ProbeConfig, client: RadiusClient, method: Method | None = None,
                 dictionary: RadiusDictionary | None = None) -> None:
        self.cfg = cfg
        self.client = client
        self.method = method if method is not None else make_method(cfg)
        self.dictionary = dictionary or default_dictionary()

    def _nas_attrs(self) -> list[pk.Attr]:
        ctx = NasContext(nas_ip=self.client.local_address[0], nas_identifier=self.cfg.nas_identifier,
                         framed_mtu=self.cfg.framed_mtu)
        return nas_attributes(self.cfg.profile, ctx, self.cfg.extra_attrs, self.dictionary)

    async def run(self) -> Outcome:
        cfg = self.cfg
        o = Outcome(target=cfg.target, method=cfg.method, identity=cfg.identity, expected=cfg.expected,
                    window_s=cfg.window_s, client_timeout_s=cfg.policy.client_deadline_s)
        t0 = self.client.clock()
        try:
            await self._converse(o, t0)
        except (pk.PacketError, MethodError) as exc:
            o.result, o.error_kind, o.error_detail = "error", exc.kind, exc.detail
        except Exception as exc:  # a bug must still end in an Outcome, not a traceback
            log.debug("conversation failed", exc_info=True)
            o.result, o.error_kind, o.error_detail = "error", "internal", f"{type(exc).__name__}: {exc}"
        try:
            self.method.report(o)
        except Exception:  # the report is extra detail: never let it turn an Outcome into a traceback
            log.debug("method report failed", exc_info=True)
        o.duration_s = self.client.clock() - t0
        return finalize(o, slow_fraction=self.cfg.slow_fraction)

    async def _converse(self, o: Outcome, t0: float) -> None:
        cfg = self.cfg
        method = self.method
        nas = self._nas_attrs()
        user_name = (pk.USER_NAME, method.user_name.encode("utf-8"))
        payload: RoundPayload | None = method.start()
        state: bytes | None = None
        ma_seen: list[str] = []
        while payload is not None:
            if o.round_trips >= cfg.round_limit:
                raise MethodError("eap", f"the server kept challenging: stopped after {cfg.round_limit} rounds")
            o.round_trips += 1
            current = payload

            def build(ident: int, current: RoundPayload = current, state: bytes | None = state) -> pk.Packet:
                auth = os.urandom(16)
                attrs = [user_name, *nas]
                if current.password is not None:
                    attrs.append(pk.password_attr(current.password, cfg.secret.value, auth))
                attrs += current.attributes
                if state is not None:
                    attrs.append((pk.STATE, state))
                return pk.build_request(ident, auth, attrs, cfg.secret.value)

            ex = await self.client.exchange(build, cfg.policy)
            self._record(o, ex, t0)
            o.primary_auth_done = method.primary_auth_done
            if ex.reply is None:
                o.final_response_s = None  # the final round went unanswered
                if ex.error_kind:
                    o.result, o.error_kind, o.error_detail = "error", ex.error_kind, ex.error_detail
                else:
                    o.result = "discard"
                break
            reply = ex.reply.packet
            ma_seen.append(ex.reply.message_authenticator)
            if ex.reply.message_authenticator == "absent" and reply.eap() is not None:
                note = "a reply carrying EAP-Message had no Message-Authenticator (RFC 3579 requires one)"
                if note not in o.warnings:
                    o.warnings.append(note)
            o.message_authenticator = "absent" if "absent" in ma_seen else "valid"
            o.final_response_s = ex.response_s
            o.late = o.late or ex.late  # a round past the client's timeout loses the user, whatever follows
            message = reply.get(pk.REPLY_MESSAGE)
            o.reply_message = message.decode("utf-8", "replace") if message is not None else None
            o.reply_attributes = _reply_attributes(reply, self.dictionary)
            if reply.code == pk.ACCESS_CHALLENGE:
                state = reply.get(pk.STATE)
                payload = method.on_challenge(reply)
                if payload is None:
                    o.result = "challenge"
                continue
            o.result = "accept" if reply.code == pk.ACCESS_ACCEPT else "reject"
            method.on_final(reply, ex.request, o)
            payload = None

    def _record(self, o: Outcome, ex: Exchange, t0: float) -> None:
        o.retransmissions += ex.retransmissions
        for i, sent in enumerate(ex.sent):
            last = i == len(ex.sent) - 1
            rec = AttemptRecord(round=o.round_trips, sent_s=sent - t0, retransmission=i)
            if last and ex.reply is not None and ex.answered is not None:
                rec.answered_s = ex.answered - t0
                rec.code = ex.reply.packet.code_name
                rec.late = ex.late
            if last:
                rec.ignored = [f"{when - t0:.3f}s {kind}: {detail}" for when, kind, detail in ex.ignored]
            o.attempts.append(rec)


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
    if client is not None:
        return await _authenticate(cfg, client, method, keylog, resume)
    async with RadiusClient(cfg.address, cfg.secret.value, clock=time.monotonic, tap=tap) as own:
        return await _authenticate(cfg, own, method, keylog, resume)


async def _authenticate(cfg: ProbeConfig, client: RadiusClient, method: Method,
                        keylog: Callable[[bytes], None] | None, resume: bool) -> Outcome:
    first = await Conversation(cfg, client, method).run()
    if not resume or not isinstance(method, EapMethod) or first.result != "accept":
        return first
    session = method.peer.session_for_resumption()
    if session is None:
        first.warnings.append("fast reconnect: no TLS session to resume after the first authentication")
        return first
    second = await Conversation(cfg, client, make_method(cfg, keylog, session)).run()
    resumed = bool(second.tls and second.tls.get("resumed"))
    if second.tls is not None:
        second.tls["resumption"] = {"offered": True, "resumed": resumed,
                                    "first_duration_s": round(first.duration_s, 6),
                                    "first_round_trips": first.round_trips}
    if not resumed:
        second.warnings.append("fast reconnect: the server did a full handshake instead of resuming "
                               "(TLS session caching / fast reconnect is off on the server)")
    return second
