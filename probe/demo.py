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
import shutil
import signal
import socket
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .checks import RunOptions, run_check
from .diagnosis import CATALOGUE
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
        Case("OTP wrong code", "pap", "dave", "reject", ("reject", "otp_rejected"), otp="000000"),
        Case("not enrolled (USER_MATCH)", "pap", "erin", "reject", ("reject", "access_reject")),
        Case("not found in Entra", "pap", "frank", "reject", ("reject", "access_reject")),
        Case("approved past window", "pap", "slow", "accept", ("accept", "answer_outside_window"),
             policy=RetryPolicy(timeout_s=12.0, retries=0, listen_s=12.0)),
        Case("past RRAS-like timeout", "pap", "patient", "accept", ("accept", "late_answer_beyond_client_timeout"),
             policy=RetryPolicy(timeout_s=1.0, retries=1, listen_s=WINDOW_S)),
        Case("wrong shared secret", "pap", "alice", "accept", ("discard", "no_reply"), secret="not-the-secret"),
        Case("nothing listening", "pap", "alice", "accept", ("error", "port_unreachable"), closed_port=True),
    ]
    for method in _demo_eap_methods():  # the TLS methods NPS runs
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


def run_demo(*, json_out: bool = False, detail: bool = False, width: int | None = None) -> int:
    cases = _cases()
    # SIGTERM ends the demo as Ctrl-C does, so the temporary PKI folder is removed either way
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="radius-probe-demo-") as tmp:
        pki = Path(tmp) / "pki"
        init_pki(pki, extra_users=["bob", "carol", "slow"])
        results = asyncio.run(_run(cases, pki))
    shown = [_shown(c, o) for c, o in results]
    if json_out:
        print(json.dumps([{"case": c.name, "shows": list(c.shows), "shows_as_designed": ok, "outcome": o.to_dict()}
                          for (c, o), ok in zip(results, shown)], indent=2))
        return 0 if all(shown) else 2
    width = width or shutil.get_terminal_size((100, 24)).columns
    print("\n".join(render_detail(results, shown, width) if detail else render(results, shown, width)))
    return 0 if all(shown) else 2


def _marks() -> tuple[str, str]:
    """A tick and a cross, or ASCII where stdout cannot encode them."""
    try:
        "\u2713\u2717".encode(sys.stdout.encoding or "ascii")
        return "\u2713", "\u2717"
    except (UnicodeEncodeError, LookupError):
        return "ok", "NO"


def _concluded(case: Case, o: Outcome) -> str:
    """What the probe concluded: the result and the diagnosis code that names the planted cause."""
    result = o.result + (f"/{o.error_kind}" if o.error_kind else "")
    codes = [str(d["code"]) for d in o.diagnosis]
    code = case.shows[1] if case.shows[1] in codes else (codes[0] if codes else None)
    return result + (f", {code}" if code else "")


def _demo_eap_methods() -> list[str]:
    """The EAP methods the demo runs: the TLS-based ones NPS offers (the breadth methods stay out of it)."""
    return [name for name, m in METHODS.items() if m.eap and m.needs_ca and m.nps]


def _methods_text(methods: list[str]) -> str:
    eap = _demo_eap_methods()
    every = ["pap"] + eap
    if methods == every:
        return "every method"
    if methods == eap:
        return "every EAP method"
    return ", ".join(methods)


def behaviours(results: list[tuple[Case, Outcome]], shown: list[bool]) -> list[tuple[bool, str, list[str], str]]:
    """(recognised, planted behaviour, methods, what the probe concluded): the cases of one behaviour that
    reached the same conclusion share a line, in the order the cases run."""
    rows: dict[tuple[str, str, bool], list[str]] = {}
    for (c, o), ok in zip(results, shown):
        rows.setdefault((c.name, _concluded(c, o), ok), []).append(c.method)
    return [(ok, name, methods, concluded) for (name, concluded, ok), methods in rows.items()]


def render(results: list[tuple[Case, Outcome]], shown: list[bool], width: int = 100) -> list[str]:
    """The default view: one line per planted behaviour with a tick when the probe concluded what was
    planted (the planted failures are the probe's successes), each cause it named once (the catalogue's
    title), and the total last."""
    good, bad = _marks()
    rows = behaviours(results, shown)
    lines = textwrap.wrap(f"radius-probe demo: NPS + MFA behaviours planted in the built-in emulator and what the "
                          f"probe concluded ({WINDOW_S:g} s stand in for the 60 s MFA window)", width=max(width, 40))
    name_w = max(len(name) for _, name, _, _ in rows)
    method_w = max(len(_methods_text(m)) for _, _, m, _ in rows)
    for ok, name, methods, concluded in rows:
        lines.append(f"{good if ok else bad:<2} {name:<{name_w}}  {_methods_text(methods):<{method_w}}  -> {concluded}")
    causes: list[str] = []
    for c, o in results:
        codes = [str(d["code"]) for d in o.diagnosis]
        code = c.shows[1] if c.shows[1] in codes else (codes[0] if codes else None)
        if code and code not in causes:
            causes.append(code)
    for code in causes:
        title = CATALOGUE[code].title if code in CATALOGUE else code
        lines.append("   " + textwrap.shorten(f"{code}: {title}", width=max(width, 40) - 3, placeholder=" ..."))
    recognised = sum(ok for ok, _, _, _ in rows)
    total = f"{recognised} of {len(rows)} behaviours recognised ({len(results)} probes; -v: every Outcome in full)"
    if recognised < len(rows):
        total += ". NOT recognised: " + "; ".join(f"{name} ({_methods_text(m)})" for ok, name, m, _ in rows if not ok)
    lines.append(total)
    return lines


def render_detail(results: list[tuple[Case, Outcome]], shown: list[bool], width: int = 100) -> list[str]:
    """``demo -v``: the full table and every diagnosis of every case, then the total."""
    lines = [f"radius-probe demo: every method against the built-in NPS + MFA emulator "
             f"(holds shortened: a {WINDOW_S:g} s window stands in for 60 s)", ""]
    lines += table([(c.name, o) for c, o in results]).splitlines()
    lines += ["", "Diagnosis, case by case:"]
    for c, o in results:
        for d in o.diagnosis:
            lines += textwrap.wrap(f"- {c.method} {c.name}: [{d['code']}] {d['text']}", width=max(width, 40),
                                   subsequent_indent="    ")
    rows = behaviours(results, shown)
    lines += ["", f"{sum(ok for ok, _, _, _ in rows)} of {len(rows)} behaviours recognised ({len(results)} probes)"]
    return lines
