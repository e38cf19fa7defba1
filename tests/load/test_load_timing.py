"""The time to the final answer is the kernel's arrival time, not the moment a busy event loop got to it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from probe.conversation import Conversation
from probe.emulator.config import default_config
from probe.emulator.server import NpsEmulator
from probe.load.run import LoadClient
from tests import helpers

HOLD_S = 0.05
BUSY_S = 0.3


def emulator_in_thread(hold_s: float) -> "tuple[tuple[str, int], Any]":
    """The emulator on its own event loop in a thread, so it answers while the test's loop is blocked."""
    config = default_config()
    config.users["alice"].delay_s = hold_s
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def serve() -> None:
        em = NpsEmulator(config)
        ready["address"] = await em.start("127.0.0.1", 0)
        ready["stop"] = asyncio.Event()
        ready["loop"] = asyncio.get_running_loop()
        started.set()
        await ready["stop"].wait()
        await em.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)

    def stop() -> None:
        ready["loop"].call_soon_threadsafe(ready["stop"].set)
        thread.join(10)

    return ready["address"], stop


async def measured(address: tuple[str, int], kernel_timestamps: bool) -> float:
    client = LoadClient(address, helpers.DEFAULT_SECRET.encode(), buffer_bytes=1 << 20)
    client.kernel_timestamps = kernel_timestamps
    await client.__aenter__()
    try:
        cfg = helpers.pap(address, "alice")
        # the loop is busy (time.sleep holds it) from 10 ms to 310 ms: the answer arrives at ~50 ms, inside
        asyncio.get_running_loop().call_later(0.01, time.sleep, BUSY_S)
        outcome = await client.converse(Conversation(cfg, nas_ip="127.0.0.1"))
    finally:
        client.close()
    assert outcome.result == "accept" and outcome.final_response_s is not None
    return outcome.final_response_s


def test_a_busy_loop_does_not_lengthen_the_measured_answer_time() -> None:
    address, stop = emulator_in_thread(HOLD_S)
    try:
        with_kernel = helpers.run(measured(address, True))
        from_loop = helpers.run(measured(address, False))
    finally:
        stop()
    assert HOLD_S <= with_kernel < HOLD_S + 0.1, with_kernel
    assert from_loop >= BUSY_S, from_loop  # what the loop's own clock read says: the wait for the loop included
