"""Shared test helpers: run coroutines, start the emulator, build probe configs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from probe.conversation import ProbeConfig, Secret
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EmulatorConfig, default_config
from probe.emulator.server import NpsEmulator
from probe.radius import packet as pk
from probe.radius.transport import RetryPolicy

T = TypeVar("T")

FAST = RetryPolicy(timeout_s=0.5, retries=1, listen_s=1.0)  # a discard is classified in 1 s


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def emulator(config: EmulatorConfig | None = None) -> AsyncIterator[NpsEmulator]:
    em = NpsEmulator(config or default_config())
    await em.start("127.0.0.1", 0)
    try:
        yield em
    finally:
        await em.stop()


def pap(address: tuple[str, int], identity: str, *, password: str = DEFAULT_PASSWORD,
        secret: str = DEFAULT_SECRET, **kw: Any) -> ProbeConfig:
    otp = kw.pop("otp", None)
    kw.setdefault("policy", FAST)
    return ProbeConfig(address=address, secret=Secret(secret.encode()), method="pap", identity=identity,
                       password=Secret(password.encode()), otp=Secret(otp.encode()) if otp else None, **kw)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RogueServer(asyncio.DatagramProtocol):
    """A deliberately broken RADIUS server: answers every request with ``respond(request)``.

    Used only for replies no sane server sends (bad signatures, broken lengths), to prove
    they become Outcomes.
    """

    def __init__(self, respond: Callable[[pk.Packet], bytes | None]) -> None:
        self.respond = respond
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        answer = self.respond(pk.parse_packet(data))
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


@contextlib.asynccontextmanager
async def rogue(respond: Callable[[pk.Packet], bytes | None]) -> AsyncIterator[tuple[str, int]]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: RogueServer(respond), local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[:2]
    finally:
        transport.close()
