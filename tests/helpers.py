"""Shared test helpers: run coroutines, start the emulator, build probe configs, run the CLI.

Test modules share code through this module, tests/servers/* and tests/conftest.py's
fixtures; no test module imports another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from probe.methods import RoundPayload
from probe.model import ProbeConfig, Secret
from probe.outcome import Outcome
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EmulatorConfig, default_config
from probe.emulator.server import NpsEmulator
from probe.radius import packet as pk
from probe.radius.transport import RetryPolicy

T = TypeVar("T")

FAST = RetryPolicy(timeout_s=0.5, retries=1, listen_s=1.0)  # a discard is classified in 1 s

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "probe.cli"]
CLI_TIMEOUT_S = 60.0  # every CLI subprocess is bounded by this unless a test says otherwise
WAIT_S = 45.0  # every polling wait is bounded by this (or less)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: no RADIUS_PROBE_* from the caller, this checkout's probe first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADIUS_PROBE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT_S,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python3 -m probe.cli *args`` in a subprocess, bounded by ``timeout`` (returncode, stdout, stderr)."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=clean_env(env),
                          input=input)


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT_S, step: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; a bounded number of tries."""
    for _ in range(int(timeout / step)):
        got = predicate()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"gave up waiting for {what}")


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


class Endless:
    """A method that answers every Access-Challenge, forever (an EAP peer that never sees the end);
    counts its report() calls."""

    primary_auth_done = False
    user_name = "eve"

    def __init__(self) -> None:
        self.reported = 0

    def start(self) -> RoundPayload:
        return RoundPayload(attributes=[(pk.EAP_MESSAGE, b"\x02\x01\x00\x05\x01")])

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        return self.start()

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        return None

    def report(self, outcome: Outcome) -> None:
        self.reported += 1
