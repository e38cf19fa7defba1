"""Accounting (RFC 2866): Accounting-Request records, each answered by a verified Accounting-Response.

By default one session's life: Start, Interim-Update, Stop, all with one
Acct-Session-Id, as a VPN server sends them for one user (the Request
Authenticator of each is computed, RFC 2866 3; a reply is verified against it).
A module (or ``acct --status-type``) that sets ``Acct-Status-Type`` itself sends
that one record.  The result is ``accept`` when every record was acknowledged; a
record unanswered ends the check as a discard (``accounting_unanswered``: a farm
whose accounting port is dead loses sessions silently).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .methods import RoundPayload
from .outcome import Outcome
from .radius import packet as pk
from .radius.dictionary import default_dictionary
from .radius.profiles import encode_pairs

if TYPE_CHECKING:
    from .model import ProbeConfig

SESSION = ("Start", "Interim-Update", "Stop")
STATUS_TYPES = {"start": "Start", "interim-update": "Interim-Update", "interim": "Interim-Update", "stop": "Stop",
                "accounting-on": "Accounting-On", "accounting-off": "Accounting-Off"}
"""``acct --status-type`` names (lower case) and the dictionary's values."""


class AccountingMethod:
    """Send each record of ``records`` in turn; every Accounting-Response moves to the next."""

    primary_auth_done = False

    def __init__(self, identity: str, records: tuple[str | None, ...], overridden: set[str],
                 session_id: str) -> None:
        self.user_name = identity
        self._records = records  # None: the module set Acct-Status-Type itself
        self._overridden = overridden  # attribute names the module sets itself
        self.session_id = session_id
        self._sent = 0
        self._acked: list[str] = []
        self._dictionary = default_dictionary()

    def __repr__(self) -> str:
        return f"AccountingMethod(user_name={self.user_name!r}, records={self._records!r})"

    def _payload(self) -> RoundPayload:
        status = self._records[self._sent]
        self._sent += 1
        pairs: list[tuple[str, str | int]] = [("Acct-Session-Id", self.session_id), ("Acct-Authentic", "RADIUS"),
                                              ("Acct-Delay-Time", 0)]
        if status is not None:
            pairs.insert(0, ("Acct-Status-Type", status))
        if status in ("Interim-Update", "Stop"):
            pairs += [("Acct-Session-Time", 60 * (self._sent - 1)), ("Acct-Input-Octets", 1000 * self._sent),
                      ("Acct-Output-Octets", 2000 * self._sent), ("Acct-Input-Packets", 10 * self._sent),
                      ("Acct-Output-Packets", 20 * self._sent)]
        if status == "Stop":
            pairs.append(("Acct-Terminate-Cause", "User-Request"))
        pairs = [(n, v) for n, v in pairs if n not in self._overridden]
        return RoundPayload(attributes=encode_pairs(pairs, self._dictionary), code=pk.ACCOUNTING_REQUEST)

    def _label(self) -> str:
        return self._records[self._sent - 1] or "(Acct-Status-Type of the module)"

    def start(self) -> RoundPayload:
        return self._payload()

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        if reply.code != pk.ACCOUNTING_RESPONSE:
            return None
        self._acked.append(self._label())
        return self._payload() if self._sent < len(self._records) else None

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        return None

    def report(self, outcome: Outcome) -> None:
        info: dict[str, Any] = {"session_id": self.session_id,
                                "records": [r or "(module)" for r in self._records[: self._sent]],
                                "acknowledged": list(self._acked)}
        outcome.accounting = info
        if outcome.result == "discard" and self._sent:
            outcome.warnings.append(f"accounting: the {self._label()} record went unanswered after "
                                    f"{len(self._acked)} acknowledged")


def make_acct(cfg: ProbeConfig) -> AccountingMethod:
    if cfg.password is not None or cfg.otp is not None:
        raise ValueError("accounting sends no password or OTP")
    overridden = {name for name, _ in cfg.extra_attrs}
    records: tuple[str | None, ...] = (None,) if "Acct-Status-Type" in overridden else SESSION
    session = next((v for n, v in cfg.extra_attrs if n == "Acct-Session-Id"), None)
    return AccountingMethod(cfg.identity, records, overridden, session or f"probe-{os.urandom(8).hex()}")
