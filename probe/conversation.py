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
from dataclasses import dataclass, field
from typing import Protocol

from .outcome import AttemptRecord, Outcome, finalize
from .radius import packet as pk
from .radius.dictionary import RadiusDictionary, default_dictionary
from .radius.profiles import NasContext, nas_attributes
from .radius.transport import Exchange, RadiusClient, RetryPolicy

log = logging.getLogger(__name__)

METHODS = ("pap", "eap-tls", "peap-mschapv2", "peap-tls")


@dataclass
class Secret:
    """A secret value that never shows itself in a repr, log or traceback."""

    value: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"


@dataclass
class ProbeConfig:
    address: tuple[str, int]  # resolved (ip, port)
    secret: Secret
    method: str
    identity: str
    target: str = ""  # as the user wrote it, for reports
    password: Secret | None = None
    otp: Secret | None = None
    profile: str = "rras"
    extra_attrs: list[tuple[str, str]] = field(default_factory=list)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    window_s: float = 60.0
    expected: str = "accept"
    framed_mtu: int = 1500
    nas_identifier: str = "radius-probe"
    max_rounds: int = 64

    def __post_init__(self) -> None:
        if not self.target:
            self.target = f"{self.address[0]}:{self.address[1]}"


@dataclass
class RoundPayload:
    """What a method adds to the next Access-Request."""

    attributes: list[pk.Attr] = field(default_factory=list)
    password: bytes | None = None  # hidden with this request's authenticator


class MethodError(Exception):
    """The method cannot go on; ``kind`` becomes the Outcome's error_kind."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Method(Protocol):
    primary_auth_done: bool

    def start(self) -> RoundPayload: ...

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        """Next payload, or None to stop with result ``challenge``."""

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        """Check an Access-Accept/Reject (keys, EAP-Success) and fill the outcome."""


class PapMethod:
    """PAP with the OTP round: a Challenge with State is answered with the OTP."""

    def __init__(self, password: bytes, otp: bytes | None) -> None:
        self._password = password
        self._otp = otp
        self.primary_auth_done = False

    def start(self) -> RoundPayload:
        return RoundPayload(password=self._password)

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        if self._otp is None or self.primary_auth_done or reply.get(pk.STATE) is None:
            return None
        self.primary_auth_done = True  # the password was accepted: we are asked for the second factor
        return RoundPayload(password=self._otp)

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        return None


def make_method(cfg: ProbeConfig) -> Method:
    if cfg.method == "pap":
        if cfg.password is None:
            raise ValueError("PAP needs a password (--password or --password-file)")
        return PapMethod(cfg.password.value, cfg.otp.value if cfg.otp else None)
    raise ValueError(f"method {cfg.method!r} is not available yet")


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

    def __init__(self, cfg: ProbeConfig, client: RadiusClient, dictionary: RadiusDictionary | None = None) -> None:
        self.cfg = cfg
        self.client = client
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
        o.duration_s = self.client.clock() - t0
        return finalize(o)

    async def _converse(self, o: Outcome, t0: float) -> None:
        cfg = self.cfg
        method = make_method(cfg)
        nas = self._nas_attrs()
        user_name = (pk.USER_NAME, cfg.identity.encode("utf-8"))
        payload: RoundPayload | None = method.start()
        state: bytes | None = None
        ma_seen: list[str] = []
        while payload is not None:
            if o.round_trips >= cfg.max_rounds:
                raise MethodError("eap", f"the server kept challenging: stopped after {cfg.max_rounds} rounds")
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
                if ex.error_kind:
                    o.result, o.error_kind, o.error_detail = "error", ex.error_kind, ex.error_detail
                else:
                    o.result = "discard"
                break
            reply = ex.reply.packet
            ma_seen.append(ex.reply.message_authenticator)
            o.message_authenticator = "absent" if "absent" in ma_seen else "valid"
            o.final_response_s = ex.response_s
            o.late = ex.late
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


async def authenticate(cfg: ProbeConfig, client: RadiusClient | None = None) -> Outcome:
    """Run one probe; opens (and closes) a client unless one is given."""
    if client is not None:
        return await Conversation(cfg, client).run()
    async with RadiusClient(cfg.address, cfg.secret.value, clock=time.monotonic) as own:
        return await Conversation(cfg, own).run()
