"""The emulator's accounting port (RFC 2866): what NPS does with an Accounting-Request.

In NPS's order: a request from an address that is not a RADIUS client is dropped
(event 13); one whose Request Authenticator does not verify (another shared
secret) is dropped (event 18: NPS cannot trust it, and says nothing); a
duplicate (same source, Identifier and authenticator) within ``duplicate_hold_s``
gets the same answer again, without recording twice; anything else is recorded
(bounded: the last ``max_records``) and answered with an Accounting-Response.
Status-Server on this port is dropped, as on the authentication port: NPS does
not implement RFC 5997.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable

from ..radius import packet as pk
from .config import EmulatorConfig

log = logging.getLogger("probe.emulator.accounting")

ACCT_STATUS_TYPE, ACCT_SESSION_ID = 40, 44
STATUS_NAMES = {1: "Start", 2: "Stop", 3: "Interim-Update", 7: "Accounting-On", 8: "Accounting-Off"}
MAX_RECORDS = 10_000
MAX_DUPLICATES = 10_000


@dataclass(frozen=True)
class AccountingRecord:
    status: str
    session_id: str
    user: str | None
    source: str
    at: float


class AccountingListener(asyncio.DatagramProtocol):
    """The accounting half of the NPS emulator, on its own UDP port."""

    def __init__(self, config: EmulatorConfig, *, clock: Callable[[], float] = time.monotonic,
                 max_records: int = MAX_RECORDS) -> None:
        self.config = config
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self.records: deque[AccountingRecord] = deque(maxlen=max_records)
        self.events: deque[tuple[int, str]] = deque(maxlen=max_records)
        self._answered: OrderedDict[tuple[Any, int, bytes], tuple[float, bytes]] = OrderedDict()
        self.requests = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _event(self, event_id: int, text: str) -> None:
        self.events.append((event_id, text))
        log.info("accounting event %d: %s", event_id, text)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.requests += 1
        try:
            source = ipaddress.ip_address(addr[0])
        except ValueError:
            return
        if not any(source in net for net in self.config.clients):
            self._event(13, f"accounting request from {addr[0]}, which is not a RADIUS client: discarded")
            return
        try:
            request = pk.parse_packet(data)
        except pk.PacketError as exc:
            self._event(4405, f"malformed accounting request discarded: {exc.detail}")
            return
        if request.code == pk.STATUS_SERVER:
            self._event(4406, "Status-Server discarded: NPS does not implement RFC 5997")
            return
        if request.code != pk.ACCOUNTING_REQUEST:
            return
        if not pk.accounting_request_valid(request, self.config.secret):
            self._event(18, "Accounting-Request authenticator invalid (wrong shared secret?): discarded")
            return
        now = self.clock()
        key = (addr, request.identifier, request.authenticator)
        cached = self._answered.get(key)
        if cached is not None and now < cached[0]:
            self._send(cached[1], addr)  # a retransmission: the same answer, recorded once
            return
        status = request.get(ACCT_STATUS_TYPE)
        session = request.get(ACCT_SESSION_ID)
        user = request.get(pk.USER_NAME)
        if status is None or len(status) != 4 or session is None:
            # RFC 2866 5.1 / 5.5: Acct-Status-Type and Acct-Session-Id are required; NPS drops it
            self._event(4407, "Accounting-Request without Acct-Status-Type or Acct-Session-Id: discarded")
            return
        kind = STATUS_NAMES.get(int.from_bytes(status, "big"), f"Status-{int.from_bytes(status, 'big')}")
        self.records.append(AccountingRecord(kind, session.decode("utf-8", "replace"),
                                             user.decode("utf-8", "replace") if user else None, addr[0], now))
        reply = pk.build_reply(pk.ACCOUNTING_RESPONSE, request, [], self.config.secret, message_authenticator=False)
        self._answered[key] = (now + self.config.duplicate_hold_s, reply)
        while len(self._answered) > MAX_DUPLICATES or (
                self._answered and next(iter(self._answered.values()))[0] <= now):
            self._answered.popitem(last=False)
        self._send(reply, addr)

    def _send(self, data: bytes, addr: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)
