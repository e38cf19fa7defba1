"""The asyncio driver waits with one future and one timer per wait (issue 14: per-round overhead).

``asyncio.wait`` built a set, a second future, a timer and callbacks on every wait of every
round. These conversations run with it forbidden: an answer still wakes the round at once,
and silence still ends in the retransmission and the timeout the policy says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, AsyncContextManager

import pytest

from probe.drivers.aio import RadiusClient, authenticate
from probe.emulator.server import NpsEmulator
from probe.model import ProbeConfig, Secret, TlsOptions
from probe.pki import Pki
from tests import helpers


@pytest.fixture()
def no_asyncio_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("asyncio.wait on the per-round path")

    monkeypatch.setattr(asyncio, "wait", forbidden)


def test_answers_wake_the_round(no_asyncio_wait: None, lab_pki: Pki,
                                lab_emulator: Callable[..., AsyncContextManager[NpsEmulator]]) -> None:
    alice = lab_pki.users["alice"]

    async def go() -> list[tuple[str, str | None]]:
        async with lab_emulator() as em:
            address = em.address
            pap = helpers.pap(address, "alice")
            tls = ProbeConfig(address=address, secret=pap.secret, method="eap-tls", identity="alice",
                              tls=TlsOptions(cert=str(alice.cert), key=str(alice.key), ca=str(lab_pki.ca),
                                             server_name="nps.lab.test"), policy=helpers.FAST)
            async with RadiusClient(address, pap.secret.value, clock=time.monotonic) as client:
                outcomes = [await authenticate(cfg, client) for cfg in (pap, tls, pap)]
        return [(o.result, o.mppe) for o in outcomes]

    assert helpers.run(go()) == [("accept", "absent"), ("accept", "match"), ("accept", "absent")]


def test_silence_still_retransmits_and_times_out(no_asyncio_wait: None) -> None:
    async def go() -> tuple[str, int, float]:
        async with helpers.rogue(lambda _request: None) as address:  # never answers
            cfg = helpers.pap(address, "alice", secret="s")
            t0 = time.monotonic()
            outcome = await authenticate(cfg)
            return outcome.result, outcome.retransmissions, time.monotonic() - t0

    result, retransmissions, elapsed = helpers.run(go())
    assert result in ("timeout", "discard") and retransmissions == 1
    assert elapsed >= helpers.FAST.timeout_s * 2 * 0.9  # it waited the policy's timeouts, not zero
