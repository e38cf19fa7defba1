"""The emulator's RADIUS MS-CHAPv2 (RFC 2548) and CHAP: NPS's first factor for them, then the MFA extension.

NPS checks the NT-Response (MS-CHAPv2) or the CHAP-Password (CHAP needs the account's password stored
with reversible encryption [?]) against the account; a wrong password or an unknown user is an
Access-Reject, reason 16, with MS-CHAP-Error "E=691 R=0 V=3" for MS-CHAPv2. A good password goes to the
extension, which acts as for PAP except that the OTP round cannot be carried: a TOTP user FAILS
(AuthZ: "Challenge requested in Authentication Ext for User"), see PROTOCOL-NOTES. The Access-Accept
carries MS-CHAP2-Success (the RFC 2759 authenticator response) and the RFC 3079 MS-MPPE keys, salted
(RFC 2548 2.4.2). An MFA reject carries no MS-CHAP-Error here (what NPS adds then is not known [?]).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from ..radius import mschap
from ..radius import packet as pk
from .nps_rules import account_name

if TYPE_CHECKING:
    from .server import NpsEmulator, _Answer

BAD_CREDENTIALS = 16
"""NPS reason 16: authentication failed (unknown user name or bad password)."""


def salts(random: Callable[[int], bytes] = os.urandom) -> tuple[bytes, bytes]:
    """Two different RFC 2548 salts (top bit set): one per key attribute of the packet."""
    first = bytes((random(1)[0] | 0x80,)) + random(1)
    second = first
    while second == first:
        second = bytes((random(1)[0] | 0x80,)) + random(1)
    return first, second


def handle(emulator: NpsEmulator, ans: _Answer, name: str) -> bool:
    """Answer a request that carries MS-CHAPv2 or CHAP attributes; False when it carries neither."""
    request = ans.request
    try:
        offer = mschap.find_offer(request)
    except mschap.MschapAttributeError as exc:
        emulator._reject(ans, name, BAD_CREDENTIALS, f"malformed MS-CHAPv2 attributes: {exc.detail}")
        return True
    if offer is not None:
        _mschapv2(emulator, ans, name, offer)
        return True
    if request.get(mschap.CHAP_PASSWORD) is not None:
        _chap(emulator, ans, name)
        return True
    return False


def _mschapv2(emulator: NpsEmulator, ans: _Answer, name: str, offer: mschap.Mschapv2Offer) -> None:
    user = emulator.config.users.get(account_name(name))
    if user is None or not mschap.server_verify(offer, name, user.password):
        ans.reject_attrs = [mschap.error_attribute(offer.ident, 691, retry=False)]
        emulator._reject(ans, name, BAD_CREDENTIALS, "MS-CHAPv2 authentication failed: unknown user or bad "
                         "password (MS-CHAP-Error E=691)")
        ans.reject_attrs = []
        return
    ans.accept_attrs = mschap.success_attributes(offer, name, user.password, emulator.config.secret,
                                                 ans.request.authenticator, salts())
    ans.no_otp = "MS-CHAPv2"
    emulator._mfa(ans, user)


def _chap(emulator: NpsEmulator, ans: _Answer, name: str) -> None:
    user = emulator.config.users.get(account_name(name))
    try:
        good = user is not None and mschap.chap_verify(ans.request, user.password.encode("utf-8"))
    except mschap.MschapAttributeError as exc:
        emulator._reject(ans, name, BAD_CREDENTIALS, f"malformed CHAP attributes: {exc.detail}")
        return
    if user is None or not good:
        emulator._reject(ans, name, BAD_CREDENTIALS, "CHAP authentication failed: unknown user or bad password")
        return
    ans.no_otp = "CHAP"
    emulator._mfa(ans, user)
