"""RADIUS MS-CHAPv2 (RFC 2548 + RFC 2759) and CHAP (RFC 2865): what a VPN appliance sends when it
runs the password method itself instead of passing EAP through.

MS-CHAPv2: one Access-Request with MS-CHAP-Challenge + MS-CHAP2-Response. An Access-Accept must carry
MS-CHAP2-Success whose authenticator response proves the server knows the password (RFC 2759 8.8)
and MS-MPPE-Send/Recv-Key equal to the RFC 3079 keys of this NT-Response. An Access-Reject's
MS-CHAP-Error (E=691 wrong password, 646/647/648/649 account restrictions, R= retry) goes into the
Outcome's ``eap_detail`` (what the method learned) and from there into the diagnosis.

CHAP: CHAP-Password + CHAP-Challenge; nothing comes back to verify beyond the RADIUS authenticators.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Callable

from .methods import MethodError, RoundPayload
from .outcome import Outcome
from .radius import mschap
from .radius import packet as pk

if TYPE_CHECKING:
    from .model import ProbeConfig

MAX_MSCHAP_PASSWORD = 256  # RFC 2759 8.1: up to 256 Unicode characters
Random = Callable[[int], bytes]


class MschapV2RadiusMethod:
    """RADIUS MS-CHAPv2: MS-CHAP-Challenge + MS-CHAP2-Response out, MS-CHAP2-Success and keys checked."""

    def __init__(self, identity: str, password: str, secret: bytes, random: Random = secrets.token_bytes) -> None:
        self.user_name = identity
        self._password = password
        self._secret = secret
        self._random = random
        self._sent: mschap.Mschapv2Request | None = None
        self.primary_auth_done = False

    def __repr__(self) -> str:
        return f"MschapV2RadiusMethod(user_name={self.user_name!r})"

    def start(self) -> RoundPayload:
        self._sent = mschap.mschapv2_request(self.user_name, self._password, self._random(1)[0],
                                             self._random(16), self._random(16))
        return RoundPayload(attributes=self._sent.attributes())

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        return None  # MS-CHAPv2 cannot answer a challenge: the OTP prompt ends as result "challenge"

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        if reply.code != pk.ACCESS_ACCEPT:
            self._note_error(reply, outcome)
            return
        assert self._sent is not None
        problem = self._check_success(reply)
        keys_problem = self._check_keys(reply, request, outcome)
        if problem is not None:
            raise problem  # the server's proof comes first; ``mppe`` still says what the keys are
        if keys_problem is not None:
            raise keys_problem

    def _note_error(self, reply: pk.Packet, outcome: Outcome) -> None:
        """The reject stays a reject (it verified); its MS-CHAP-Error says why, in words."""
        try:
            error = mschap.find_error(reply)
        except mschap.MschapAttributeError as exc:
            outcome.eap_detail = "MS-CHAP-Error present but unreadable"
            outcome.warnings.append(f"the Access-Reject's {exc.detail}")
            return
        if error is not None:
            outcome.eap_detail = error.describe()

    def _check_success(self, reply: pk.Packet) -> MethodError | None:
        sent = self._sent
        assert sent is not None
        try:
            success = mschap.find_success(reply)
        except mschap.MschapAttributeError as exc:
            return MethodError("mschapv2", f"server failed to prove knowledge of the password: {exc.detail}",
                               "mschapv2/success")
        if success is None:
            return MethodError("mschapv2", "server failed to prove knowledge of the password: the Access-Accept "
                                           "carries no MS-CHAP2-Success (RFC 2548; NPS always sends one, and a VPN "
                                           "client does not connect without it)", "mschapv2/success")
        if success.ident != sent.ident:
            return MethodError("mschapv2", f"server failed to prove knowledge of the password: MS-CHAP2-Success "
                                           f"Ident {success.ident} answers no request of ours ({sent.ident})",
                               "mschapv2/success")
        if not mschap.check_success(sent, self.user_name, self._password, success):
            return MethodError("mschapv2", "server failed to prove knowledge of the password: the MS-CHAP2-Success "
                                           "authenticator response is wrong (RFC 2759 8.8)", "mschapv2/success")
        return None

    def _check_keys(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> MethodError | None:
        """``outcome.mppe`` exactly, as for EAP: match, mismatch (or undecryptable), absent."""
        assert self._sent is not None
        try:
            got = pk.mppe_keys(reply, request.authenticator, self._secret)
        except pk.PacketError as exc:
            outcome.mppe = "mismatch"
            return MethodError("mppe_mismatch", f"MS-MPPE keys in the Access-Accept do not decrypt: {exc.detail}")
        if got is None:
            outcome.mppe = "absent"
            outcome.warnings.append("Access-Accept without MS-MPPE-Send/Recv-Key: the VPN server cannot encrypt")
            return None
        if got == mschap.expected_mppe(self._password, self._sent):
            outcome.mppe = "match"
            return None
        outcome.mppe = "mismatch"
        return MethodError("mppe_mismatch", "MS-MPPE keys in the Access-Accept differ from the RFC 3079 keys of "
                                            "this MS-CHAPv2 exchange")

    def report(self, outcome: Outcome) -> None:
        return None


class ChapMethod:
    """CHAP: CHAP-Password (MD5 over Ident, password, challenge) and a 16-byte CHAP-Challenge."""

    def __init__(self, identity: str, password: bytes, random: Random = secrets.token_bytes) -> None:
        self.user_name = identity
        self._password = password
        self._random = random
        self.primary_auth_done = False

    def __repr__(self) -> str:
        return f"ChapMethod(user_name={self.user_name!r})"

    def start(self) -> RoundPayload:
        return RoundPayload(attributes=mschap.chap_attributes(self._password, self._random(1)[0], self._random(16)))

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        return None

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        return None

    def report(self, outcome: Outcome) -> None:
        return None


def _password(cfg: ProbeConfig, method: str) -> bytes:
    if cfg.otp is not None:
        raise ValueError(f"{method} cannot carry an OTP (--otp is for PAP)")
    if cfg.password is None:
        raise ValueError(f"{method} needs a password (--password or --password-file)")
    return cfg.password.value


def make_mschapv2(cfg: ProbeConfig) -> MschapV2RadiusMethod:
    """RADIUS MS-CHAPv2 for ``cfg``; ValueError for a password it cannot hash."""
    raw = _password(cfg, "MS-CHAPv2")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the password is not valid UTF-8 (MS-CHAPv2 hashes it as text)") from None
    if len(text) > MAX_MSCHAP_PASSWORD:
        raise ValueError(f"--password longer than the {MAX_MSCHAP_PASSWORD} characters MS-CHAPv2 hashes")
    return MschapV2RadiusMethod(cfg.identity, text, cfg.secret.value)


def make_chap(cfg: ProbeConfig) -> ChapMethod:
    """CHAP for ``cfg``."""
    raw = _password(cfg, "CHAP")
    if len(raw) > 253:
        raise ValueError("--password longer than 253 bytes")
    return ChapMethod(cfg.identity, raw)
