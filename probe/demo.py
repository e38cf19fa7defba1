"""``radius-probe demo``: the emulator on a free loopback port, every behaviour probed.

Holds are shortened so the demo takes seconds: an 8 s window stands in for the
60 s MFA window, and the slow approvals scale with it.  Every case states what it
is meant to show (result and diagnosis); the demo exits 0 when every case showed it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
from dataclasses import dataclass

from .conversation import ProbeConfig, Secret, authenticate
from .emulator.config import DEFAULT_OTP, DEFAULT_PASSWORD, DEFAULT_SECRET, default_config
from .emulator.server import NpsEmulator
from .outcome import Outcome
from .radius.transport import RetryPolicy
from .report import table

WINDOW_S = 8.0
HOLD_SLOW_S = 10.0  # past the window
HOLD_PATIENT_S = 3.0  # inside the window, past a 2 s client timeout


@dataclass(frozen=True)
class Case:
    name: str
    identity: str
    expect: str
    shows: tuple[str, str | None]  # (result, diagnosis code) this case demonstrates
    otp: str | None = None
    secret: str = DEFAULT_SECRET
    policy: RetryPolicy = RetryPolicy(timeout_s=2.0, retries=1, listen_s=WINDOW_S)
    closed_port: bool = False


CASES = (
    Case("push approved", "alice", "accept", ("accept", None)),
    Case("push denied", "bob", "reject", ("reject", "access_reject")),
    Case("ESTS_TOKEN_ERROR discard", "carol", "accept", ("discard", "no_reply")),
    Case("OTP asked, no code", "dave", "challenge", ("challenge", "otp_challenge")),
    Case("OTP answered", "dave", "accept", ("accept", None), otp=DEFAULT_OTP),
    Case("not enrolled (USER_MATCH)", "erin", "reject", ("reject", "access_reject")),
    Case("not found in Entra", "frank", "reject", ("reject", "access_reject")),
    Case("approved past window", "slow", "accept", ("accept", "answer_outside_window"),
         policy=RetryPolicy(timeout_s=12.0, retries=0, listen_s=12.0)),
    Case("past RRAS-like timeout", "patient", "accept", ("accept", "late_answer_beyond_client_timeout"),
         policy=RetryPolicy(timeout_s=1.0, retries=1, listen_s=WINDOW_S)),
    Case("wrong shared secret", "alice", "accept", ("discard", "no_reply"), secret="not-the-secret"),
    Case("nothing listening", "alice", "accept", ("error", "port_unreachable"), closed_port=True),
)


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shown(case: Case, o: Outcome) -> bool:
    result, code = case.shows
    return o.result == result and (code is None or code in {d["code"] for d in o.diagnosis})


async def _run() -> list[tuple[Case, Outcome]]:
    config = default_config()
    config.users["slow"].delay_s = HOLD_SLOW_S
    config.users["patient"].delay_s = HOLD_PATIENT_S
    emulator = NpsEmulator(config)
    host, port = await emulator.start("127.0.0.1", 0)
    closed = _closed_udp_port()
    try:
        probes = []
        for case in CASES:
            cfg = ProbeConfig(
                address=(host, closed if case.closed_port else port), secret=Secret(case.secret.encode()),
                method="pap", identity=case.identity, password=Secret(DEFAULT_PASSWORD.encode()),
                otp=Secret(case.otp.encode()) if case.otp else None, policy=case.policy,
                window_s=WINDOW_S, expected=case.expect,
            )
            probes.append(authenticate(cfg))
        outcomes = await asyncio.gather(*probes)
    finally:
        await emulator.stop()
    return list(zip(CASES, outcomes))


def run_demo(*, json_out: bool = False) -> int:
    results = asyncio.run(_run())
    shown = [_shown(c, o) for c, o in results]
    if json_out:
        print(json.dumps([{"case": c.name, "shows_as_designed": ok, "outcome": o.to_dict()}
                          for (c, o), ok in zip(results, shown)], indent=2))
    else:
        print(f"radius-probe demo: PAP against the built-in NPS + MFA emulator "
              f"(holds shortened: a {WINDOW_S:g} s window stands in for 60 s)\n")
        print(table([(c.name, o) for c, o in results]))
        print("\nDiagnosis, case by case:")
        for c, o in results:
            for d in o.diagnosis:
                print(textwrap.fill(f"- {c.name}: [{d['code']}] {d['text']}", width=110, subsequent_indent="    "))
        bad = [c.name for c, ok in zip(CASES, shown) if not ok]
        print("\nevery case showed its behaviour" if not bad else f"\nNOT as designed: {', '.join(bad)}")
    return 0 if all(shown) else 2
