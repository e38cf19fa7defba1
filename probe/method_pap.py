"""PAP: User-Password, and the OTP round (an Access-Challenge with State answered with the code)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .methods import MAX_PAP_SECRET, RoundPayload
from .outcome import Outcome
from .radius import packet as pk

if TYPE_CHECKING:
    from .model import ProbeConfig


class PapMethod:
    """PAP with the OTP round: a Challenge with State is answered with the OTP."""

    def __init__(self, identity: str, password: bytes, otp: bytes | None) -> None:
        self.user_name = identity
        self._password = password
        self._otp = otp
        self.primary_auth_done = False

    def __repr__(self) -> str:
        return f"PapMethod(user_name={self.user_name!r}, otp={'yes' if self._otp is not None else 'no'})"

    def start(self) -> RoundPayload:
        return RoundPayload(password=self._password)

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        if self._otp is None or self.primary_auth_done or reply.get(pk.STATE) is None:
            return None
        self.primary_auth_done = True  # the password was accepted: we are asked for the second factor
        return RoundPayload(password=self._otp)

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        return None

    def report(self, outcome: Outcome) -> None:
        return None


def make_pap(cfg: ProbeConfig) -> PapMethod:
    """PAP for ``cfg``; ValueError for input PAP cannot carry."""
    for what, secret in (("--password", cfg.password), ("--otp", cfg.otp)):
        if secret is not None and len(secret.value) > MAX_PAP_SECRET:
            raise ValueError(f"{what} longer than the {MAX_PAP_SECRET} bytes PAP can carry")
    if cfg.password is None:
        raise ValueError("PAP needs a password (--password or --password-file)")
    return PapMethod(cfg.identity, cfg.password.value, cfg.otp.value if cfg.otp else None)
