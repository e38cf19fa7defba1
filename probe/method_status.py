"""Status-Server (RFC 5997): is the RADIUS server alive, without an account.

One Status-Server packet (code 12), always signed with Message-Authenticator
(RFC 5997 3: a server MUST silently discard a Status-Server without one), with
only NAS-IP-Address / NAS-Identifier from the NAS profile and no User-Name.  A
server that implements it answers an authentication port with Access-Accept and
an accounting port with Accounting-Response; the reply is verified like any other.
Microsoft NPS does not implement Status-Server and drops it silently: the
diagnosis of that silence says so (``status_server_unanswered``) instead of
calling the server down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .methods import RoundPayload
from .outcome import Outcome
from .radius import packet as pk

if TYPE_CHECKING:
    from .model import ProbeConfig

NAS_IP_ADDRESS, NAS_IDENTIFIER, NAS_IPV6_ADDRESS = 4, 32, 95
STATUS_NAS_ATTRIBUTES = frozenset({NAS_IP_ADDRESS, NAS_IDENTIFIER, NAS_IPV6_ADDRESS})


class StatusServerMethod:
    """One Status-Server request; any verified answer is the result."""

    user_name = ""  # RFC 5997 names no User-Name: none is sent
    primary_auth_done = False

    def __repr__(self) -> str:
        return "StatusServerMethod()"

    def start(self) -> RoundPayload:
        return RoundPayload(code=pk.STATUS_SERVER, nas_keep=STATUS_NAS_ATTRIBUTES)

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        return None  # a Challenge to Status-Server is not in RFC 5997: the result is "challenge"

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        return None

    def report(self, outcome: Outcome) -> None:
        return None


def make_status(cfg: ProbeConfig) -> StatusServerMethod:
    if cfg.password is not None or cfg.otp is not None:
        raise ValueError("Status-Server sends no password or OTP")
    return StatusServerMethod()
