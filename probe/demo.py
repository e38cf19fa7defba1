"""``radius-probe demo``: every method against every NPS failure mode, zero setup.

A lab PKI is written to a temporary directory, the emulator starts on a free
loopback port with EAP on, and all cases run at once.  Holds are shortened so
the demo takes seconds: an 8 s window stands in for the 60 s MFA window, and
the slow approvals scale with it.  Every case states what it is meant to show
(result and diagnosis code); the demo exits 0 when every case showed it, and
removes its temporary files.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .checks import RunOptions, run_check
from .emulator.config import DEFAULT_OTP, DEFAULT_PASSWORD, DEFAULT_SECRET, EapSettings, default_config
from .emulator.server import NpsEmulator
from .methods import METHODS
from .model import Check, Expectation, ExpectedResult, Module, Secret, Target, TlsOptions, target_text
from .outcome import Outcome
from .pki import init_pki
from .radius.transport import RetryPolicy
from .report import table

WINDOW_S = 8.0
HOLD_SLOW_S = 10.0  # past the window
HOLD_PATIENT_S = 3.0  # inside the window, past a 2 s client timeout
DEMO_POLICY = RetryPolicy(timeout_s=2.0, retries=1, listen_s=WINDOW_S)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    identity: str
    expect: ExpectedResult
    shows: tuple[str, str | None]  # (result, diagnosis code) this case demonstrates
    cert_user: str | None = None  # client certificate (EAP-TLS, PEAP-TLS)
    password: str = DEFAULT_PASSWORD
    otp: str | None = None
    secret: str = DEFAULT_SECRET
    ca: str = "ca"  # "ca" trusts the emulator; "untrusted-ca" does not
    policy: RetryPolicy = DEMO_POLICY
    closed_port: bool = False


def _cases() -> list[Case]:
    cases = [
        Case("push approved", "pap", "alice", "accept", ("accept", None)),
        Case("push denied", "pap", "bob", "reject", ("reject", "access_reject")),
        Case("ESTS_TOKEN_ERROR discard", "pap", "carol", "accept", ("discard", "no_reply")),
        Case("OTP asked, no code", "pap", "dave", "challenge", ("challenge", "otp_challenge")),
        Case("OTP answered", "pap", "dave", "accept", ("accept", None), otp=DEFAULT_OTP),
        Case("not enrolled (USER_MATCH)", "pap", "erin", "reject", ("reject", "access_reject")),
        Case("not found in Entra", "pap", "frank", "reject", ("reject", "access_reject")),
        Case("approved past window", "pap", "slow", "accept", ("accept", "answer_outside_window"),
             policy=RetryPolicy(timeout_s=12.0, retries=0, listen_s=12.0)),
        Case("past RRAS-like timeout", "pap", "patient", "accept", ("accept", "late_answer_beyond_client_timeout"),
             policy=RetryPolicy(timeout_s=1.0, retries=1, listen_s=WINDOW_S)),
        Case("wrong shared secret", "pap", "alice", "accept", ("discard", "no_reply"), secret="not-the-secret"),
        Case("nothing listening", "pap", "alice", "accept", ("error", "port_unreachable"), closed_port=True),
    ]
    for method in [name for name, m in METHODS.items() if m.eap and m.needs_ca and m.nps]:  # the TLS methods NPS runs
        cert = METHODS[method].credential == "certificate"
        behaviours: tuple[tuple[str, ExpectedResult, tuple[str, str | None], str], ...] = (
            ("alice", "accept", ("accept", None), "push approved"),
            ("bob", "reject", ("reject", "nps_reject_after_primary_auth"), "push denied"),
            ("carol", "accept", ("discard", "nps_discard_after_primary_auth"), "ESTS_TOKEN_ERROR discard"),
        )
        for user, expect, shows, label in behaviours:
            cases.append(Case(label, method, user, expect, shows, cert_user=user if cert else None))
        cases.append(Case("approved past window", method, "slow", "accept", ("accept", "answer_outside_window"),
                          cert_user="slow" if cert else None,
                          policy=RetryPolicy(timeout_s=12.0, retries=0, listen_s=12.0)))
        cases.append(Case("untrusted server cert", method, "alice", "accept", ("error", "server_certificate_untrusted"),
                          cert_user="alice" if cert else None, ca="untrusted-ca"))
        if cert:
            cases.append(Case("expired client cert", method, "expired", "reject",
                              ("reject", "client_certificate_rejected"), cert_user="expired"))
        else:
            cases.append(Case("wrong password", method, "alice", "reject", ("reject", "eap_credentials_rejected"),
                              password="wrong-password"))
    return cases


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shown(case: Case, o: Outcome) -> bool:
    result, code = case.shows
    return o.result == result and (code is None or code in {d["code"] for d in o.diagnosis})


def _check(case: Case, address: tuple[str, int], pki: Path) -> Check:
    """The case as a one-check probe in memory (as ``auth`` and probe files build theirs)."""
    tls = TlsOptions()
    if METHODS[case.method].eap:
        tls = TlsOptions(ca=str(pki / f"{case.ca}.pem"), server_name="nps.lab.test")
        if case.cert_user:
            tls.cert, tls.key = str(pki / f"{case.cert_user}.pem"), str(pki / f"{case.cert_user}.key")
    module = Module(name=case.name, method=case.method, identity=case.identity,
                    password=Secret(case.password.encode()), otp=Secret(case.otp.encode()) if case.otp else None,
                    policy=case.policy, window_s=WINDOW_S, tls=tls)
    where = target_text(*address)
    target = Target(name="emulator", address=where, host=address[0], port=address[1],
                    secret=Secret(case.secret.encode()))
    return Check(name=case.name, target=target, module=module, expect=Expectation(result=case.expect), source="demo")


async def _run(cases: list[Case], pki: Path) -> list[tuple[Case, Outcome]]:
    config = default_config()
    config.users["slow"].delay_s = HOLD_SLOW_S
    config.users["patient"].delay_s = HOLD_PATIENT_S
    config.eap = EapSettings.from_pki(pki, tls_max_eap_tls="1.3")
    config.sign_replies = "always"  # an NPS that signs every reply (KB5040268): the demo's OK cases are OK
    emulator = NpsEmulator(config)
    host, port = await emulator.start("127.0.0.1", 0)
    closed = _closed_udp_port()
    try:
        addresses = [(host, closed if c.closed_port else port) for c in cases]
        results = await asyncio.gather(*(run_check(_check(c, a, pki), a, RunOptions())
                                         for c, a in zip(cases, addresses)))
        outcomes = [r.outcome for r in results]
    finally:
        await emulator.stop()
    return list(zip(cases, outcomes))


def run_demo(*, json_out: bool = False) -> int:
    cases = _cases()
    with tempfile.TemporaryDirectory(prefix="radius-probe-demo-") as tmp:
        pki = Path(tmp) / "pki"
        init_pki(pki, extra_users=["bob", "carol", "slow"])
        results = asyncio.run(_run(cases, pki))
    shown = [_shown(c, o) for c, o in results]
    if json_out:
        print(json.dumps([{"case": c.name, "shows": list(c.shows), "shows_as_designed": ok, "outcome": o.to_dict()}
                          for (c, o), ok in zip(results, shown)], indent=2))
        return 0 if all(shown) else 2
    print(f"radius-probe demo: every method against the built-in NPS + MFA emulator "
          f"(holds shortened: a {WINDOW_S:g} s window stands in for 60 s)\n")
    print(table([(c.name, o) for c, o in results]))
    print("\nDiagnosis, case by case:")
    for c, o in results:
        for d in o.diagnosis:
            line = f"- {c.method} {c.name}: [{d['code']}] {d['text']}"
            print(textwrap.fill(line, width=110, subsequent_indent="    "))
    bad = [f"{c.method} {c.name}" for c, ok in zip(cases, shown) if not ok]
    print("\nevery case showed its behaviour" if not bad else f"\nNOT as designed: {', '.join(bad)}")
    return 0 if all(shown) else 2
