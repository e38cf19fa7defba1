"""`radius-probe diagnose` against real servers: each planted cause is named first, with its steps.

The emulator plants every cause from its configuration (probe/emulator/config.py documents each key
with its real-world counterpart); FreeRADIUS plays the ones it can (unknown client, wrong secret,
Message-Authenticator required, a healthy PAP server).  No push without --allow-push: the emulator
records every user it began MFA for, and the test counts them.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe.diagnose import Diagnosis, Facts
from probe.eap.packet import EapType
from probe.diagnose_run import run_diagnosis
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EmulatedUser, EmulatorConfig, default_config
from probe.model import Check, Expectation, Module, Secret, Target
from probe.radius.transport import RetryPolicy
from tests import helpers
from tests.servers.freeradius import FreeRadiusServer, User, freeradius_available

QUICK = RetryPolicy(timeout_s=0.4, retries=1, listen_s=0.0)
MFA_WAIT = RetryPolicy(timeout_s=4.0, retries=0, listen_s=4.0)
APPROVE_S = 1.8  # a person's approval: above diagnose's 1.5 s floor, below RRAS's 5 s timeout


def base_check(address: tuple[str, int], identity: str | None, *, secret: str = DEFAULT_SECRET,
               source: str | None = None, password: str = DEFAULT_PASSWORD, otp: str | None = None) -> Check:
    module = Module(name="diagnose", method="pap", identity=identity or "radius-probe-diagnose",
                    password=Secret(password.encode()), policy=MFA_WAIT, window_s=60.0,
                    otp=Secret(otp.encode()) if otp else None)
    target = Target(name="t", address=f"{address[0]}:{address[1]}", host=address[0], port=address[1],
                    secret=Secret(secret.encode()), source=source)
    return Check(name="diagnose", target=target, module=module, expect=Expectation(), source="(test)")


def diagnose(address: tuple[str, int], identity: str | None = None, *, allow_push: bool = True,
             nas_timeout_s: float = 5.0, **kw: Any) -> Diagnosis:
    facts = Facts(account=identity is not None, allow_push=allow_push, nas_timeout_s=nas_timeout_s,
                  allow_unsigned=True)
    return helpers.run(run_diagnosis(base_check(address, identity, **kw), address, facts, quick=QUICK))


def users(**behaviours: tuple[str, float]) -> dict[str, EmulatedUser]:
    return {name: EmulatedUser(name, DEFAULT_PASSWORD, mfa, delay, "123456" if mfa == "otp" else None)
            for name, (mfa, delay) in behaviours.items()}


@dataclass
class Case:
    name: str
    cause: str
    identity: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # EmulatorConfig fields to set
    steps: tuple[str, ...] | None = None
    remaining: tuple[str, ...] = ()
    kw: dict[str, Any] = field(default_factory=dict)  # diagnose() keywords
    pushed: tuple[str, ...] = ()  # users the emulator began MFA for


ALL4 = ("unknown_user", "unknown_user_unsigned", "wrong_password", "account")

CASES = [
    Case("healthy", "healthy", "hc", steps=ALL4, pushed=("hc",)),
    Case("healthy, no account", "healthy", None, steps=("unknown_user", "unknown_user_unsigned")),
    Case("unknown client (--source 127.0.0.2)", "unknown_client", "hc",
         {"clients": [ipaddress.ip_network("127.0.0.1/32")]}, ("unknown_user", "unknown_user_unsigned"),
         ("wrong_secret_with_message_authenticator", "filtered"), {"source": "127.0.0.2"}),
    Case("wrong secret", "wrong_secret", "hc", {"secret": b"another-secret"}, ("unknown_user", "unknown_user_unsigned")),
    Case("wrong secret, Message-Authenticator required", "unknown_client", "hc",
         {"secret": b"another-secret", "require_message_authenticator": True},
         ("unknown_user", "unknown_user_unsigned"), ("wrong_secret_with_message_authenticator", "filtered")),
    Case("Message-Authenticator required", "message_authenticator_required", "hc",
         {"require_message_authenticator": True}, ALL4, pushed=("hc",)),
    Case("ESTS_TOKEN_ERROR discard", "ests_token_error", "carol", steps=ALL4, remaining=("mfa_unreachable",)),
    Case("push denied", "mfa_denied", "denier", steps=ALL4, pushed=("denier",)),
    Case("push unanswered", "mfa_denied", "ignorer", steps=ALL4, pushed=("ignorer",)),
    Case("not enrolled, REQUIRE_USER_MATCH true", "mfa_not_possible", "erin", steps=ALL4),
    Case("not enrolled, REQUIRE_USER_MATCH false", "accepted_without_mfa", "erin", {"require_user_match": False},
         ALL4 + ("account_other_nas",)),
    Case("foreign tenant (AccessDenied)", "mfa_not_possible", "tenant", steps=ALL4),
    Case("OTP over PAP, a wrong code", "otp_rejected", "dave", steps=ALL4, remaining=("otp_session_expired",),
         kw={"otp": "000000"}, pushed=("dave",)),
    Case("OTP answered after the MFA session (InvalidSession)", "otp_rejected", "dave", {"otp_session_lifetime_s": 0.0},
         ALL4, ("otp_session_expired",), {"otp": "123456"}, ("dave",)),
    Case("OTP over PAP, the right code", "healthy", "dave", steps=ALL4, kw={"otp": "123456"}, pushed=("dave",)),
    Case("OTP over PAP", "otp_challenge", "dave", steps=ALL4, pushed=("dave",)),
    Case("IP_WHITELIST by NAS-IP-Address", "ip_whitelist", "hc", {"ip_whitelist": ["127.0.0.1"]},
         ALL4 + ("account_other_nas",), pushed=("hc",)),
    Case("IP_WHITELIST hides an ESTS discard", "ests_token_error", "carol", {"ip_whitelist": ["127.0.0.1"]},
         ALL4 + ("account_other_nas",), ("mfa_unreachable",)),
    Case("approval slower than the VPN's timeout", "approval_slower_than_nas_timeout", "hc",
         kw={"nas_timeout_s": 1.0}, steps=ALL4, pushed=("hc",)),
    Case("approval after the MFA window", "approval_outside_window", "hc", kw={"window_s": 1.0}, steps=ALL4,
         pushed=("hc",)),
]


def _config(case: Case) -> EmulatorConfig:
    cfg = default_config()
    cfg.users.update(users(hc=("approve", APPROVE_S), denier=("deny", APPROVE_S), ignorer=("unanswered", APPROVE_S),
                           tenant=("foreign_tenant", 0.0)))
    for key, value in case.config.items():
        setattr(cfg, key, value)
    return cfg


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_emulator_cause_is_named_first(case: Case) -> None:
    async def go() -> tuple[Diagnosis, list[str]]:
        async with helpers.emulator(_config(case)) as em:
            facts = Facts(account=case.identity is not None, allow_push=True,
                          nas_timeout_s=case.kw.get("nas_timeout_s", 5.0), allow_unsigned=True,
                          otp_given="otp" in case.kw, window_s=case.kw.get("window_s", 60.0))
            check = base_check(em.address, case.identity, source=case.kw.get("source"), otp=case.kw.get("otp"))
            check.module.window_s = case.kw.get("window_s", 60.0)
            d = await run_diagnosis(check, em.address, facts, quick=QUICK)
            return d, list(em.mfa_started)

    d, pushed = helpers.run(go())
    c = d.conclusion
    assert c is not None
    assert c.cause.code == case.cause, d.render("emulator")
    if case.steps is not None:
        assert tuple(t.step.key for t in d.trace) == case.steps
    assert tuple(r.code for r in c.remaining) == case.remaining
    assert tuple(dict.fromkeys(pushed)) == case.pushed
    if "account_other_nas" in (case.steps or ()) and case.cause not in ("ip_whitelist", "accepted_without_mfa"):
        assert any("IP_WHITELIST" in n for n in c.notes)  # the probe's own NAS-IP-Address skipped MFA
    if case.cause == "otp_rejected":  # the probe answered at once: the look separates a wrong code from InvalidSession
        assert c.separating_look is not None and "InvalidSession" in c.separating_look
        assert "s after the Access-Challenge" in d.trace[-1].shows


@pytest.mark.parametrize(("user", "require_user_match", "cause"), [
    ("hc", True, "healthy"), ("erin", False, "accepted_without_mfa")])
def test_over_ipv6_no_nas_ip_address_means_mfa_and_event_4(user: str, require_user_match: bool, cause: str) -> None:
    """Over IPv6 the requests carry NAS-IPv6-Address only: IP_WHITELIST cannot apply, NPS logs event 4, MFA runs."""
    import socket

    from probe.emulator.server import NpsEmulator

    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError:
        pytest.skip("no IPv6 here")
    cfg = _config(Case("", ""))
    cfg.ip_whitelist, cfg.require_user_match = ["127.0.0.1"], require_user_match

    async def go() -> tuple[Diagnosis, list[Any]]:
        em = NpsEmulator(cfg)
        await em.start("::1", 0)
        try:
            facts = Facts(account=True, allow_push=True, allow_unsigned=True, nas_ip=False)
            d = await run_diagnosis(base_check(em.address, user), em.address, facts, quick=QUICK)
            return d, list(em.events)
        finally:
            await em.stop()

    d, events = helpers.run(go())
    c = d.conclusion
    assert c is not None and c.cause.code == cause, d.render("emulator")
    assert [t.step.key for t in d.trace] == list(ALL4)  # no IP_WHITELIST question without NAS-IP-Address
    assert any("AuthZ event 4" in n for n in c.notes)
    assert (4, user) in [(e.event_id, e.user) for e in events]


def test_no_push_reaches_the_emulator_without_allow_push() -> None:
    """Every account's right password reaches MFA only with --allow-push; without it the step is skipped."""
    async def go(allow: bool) -> tuple[Diagnosis, list[str], list[int]]:
        cfg = _config(Case("", ""))
        async with helpers.emulator(cfg) as em:
            facts = Facts(account=True, allow_push=allow, allow_unsigned=True)
            d = await run_diagnosis(base_check(em.address, "hc"), em.address, facts, quick=QUICK)
            return d, list(em.mfa_started), [e.event_id for e in em.events_for("hc")]

    d, pushed, events = helpers.run(go(False))
    assert pushed == [] and 6272 not in events and events == [6273]  # only the wrong password, rejected by "AD"
    assert d.trace[-1].skipped and "--allow-push" in d.trace[-1].shows
    d, pushed, events = helpers.run(go(True))
    assert pushed == ["hc"] and 6272 in events  # the same run with the flag: the push was sent and approved


def test_cli_unknown_client_from_127_0_0_2(tmp_path: Path, cli_runner: Any) -> None:
    """`diagnose --source 127.0.0.2` to an emulator that knows only 127.0.0.1: unknown client, exit 2, JSON."""
    config = tmp_path / "em.yaml"
    config.write_text("clients: [127.0.0.1/32]\n")
    port = helpers.free_udp_port()
    import subprocess
    import sys

    em = subprocess.Popen([sys.executable, "-m", "probe.cli", "emulator", "--listen", f"127.0.0.1:{port}",
                           "--config", str(config), "--duration", "30"], stdout=subprocess.PIPE, text=True,
                          env=helpers.clean_env())
    try:
        assert em.stdout is not None and "listening" in em.stdout.readline()
        base = ("diagnose", f"127.0.0.1:{port}", "--secret", DEFAULT_SECRET, "--quick-timeout", "0.4", "--json")
        bad = cli_runner(*base, "--source", "127.0.0.2")
        assert bad.returncode == 2, bad.stderr
        doc = json.loads(bad.stdout)
        assert doc["cause"]["code"] == "unknown_client" and doc["source"] == "127.0.0.2"
        assert {s["outcome"]["source"] for s in doc["steps"]} == {"127.0.0.2"}
        good = cli_runner(*base, "--source", "127.0.0.1", "--allow-unsigned")
        assert good.returncode == 0, good.stdout + good.stderr
        assert json.loads(good.stdout)["cause"]["code"] == "healthy"
        auth = cli_runner("auth", f"127.0.0.1:{port}", "--secret", DEFAULT_SECRET, "--identity", "alice",
                          "--password", DEFAULT_PASSWORD, "--timeout", "0.4", "--retries", "0", "--late-wait", "0.4",
                          "--source", "127.0.0.2", "--json")
        assert auth.returncode == 2 and json.loads(auth.stdout)["source"] == "127.0.0.2"
        assert "sent from 127.0.0.2" in json.loads(auth.stdout)["diagnosis"][0]["text"]
    finally:
        em.terminate()
        em.wait(timeout=10)


def test_cli_nothing_listens(cli_runner: Any) -> None:
    port = helpers.free_udp_port()
    r = cli_runner("diagnose", f"127.0.0.1:{port}", "--secret", "x", "--quick-timeout", "0.4")
    assert r.returncode == 2 and "[nothing_listens]" in r.stdout, r.stdout


# ---------------------------------------------------------------------------------------------------------
# FreeRADIUS plays what it can

FR_SECRET = "fr-diagnose-secret"
FR_PASSWORD = "Corr3ct-Horse"


@pytest.fixture(scope="module")
def freeradius(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadiusServer]:
    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius (Debian package freeradius)")
    with FreeRadiusServer(tmp_path_factory.mktemp("fr-diagnose"), FR_SECRET, [User("alice", FR_PASSWORD)]) as srv:
        yield srv


@pytest.mark.freeradius
@pytest.mark.parametrize(("name", "cause", "kw", "port_kind"), [
    ("no MFA: the NAS-IP-Address makes no difference", "accepted_without_mfa", {}, "plain"),
    ("unknown client (--source 127.0.0.2)", "unknown_client", {"source": "127.0.0.2"}, "plain"),
    ("wrong secret", "wrong_secret", {"secret": "not-the-secret"}, "plain"),
    ("Message-Authenticator required", "message_authenticator_required", {}, "require_ma"),
])
def test_freeradius_cause_is_named_first(freeradius: FreeRadiusServer, name: str, cause: str, kw: dict[str, Any],
                                         port_kind: str) -> None:
    port = freeradius.port if port_kind == "plain" else freeradius.port_require_ma
    kw.setdefault("secret", FR_SECRET)
    d = diagnose((freeradius.host, port), "alice", password=FR_PASSWORD, **kw)
    assert d.conclusion is not None and d.conclusion.cause.code == cause, d.render("freeradius")
    if cause == "unknown_client":
        assert freeradius.wait_for_log(r"unknown client 127\.0\.0\.2")
    if cause == "accepted_without_mfa":  # FreeRADIUS has no MFA: a fast accept, the same with another NAS-IP-Address
        assert [t.step.key for t in d.trace] == list(ALL4) + ["account_other_nas"]


# ---------------------------------------------------------------------------------------------------------
# EAP: the certificate round, the method on the policy, the TOTP user


@dataclass
class EapCase:
    name: str
    method: str
    identity: str
    cause: str
    steps: tuple[str, ...]
    eap: dict[str, Any] = field(default_factory=dict)  # EapSettings keywords
    config: dict[str, Any] = field(default_factory=dict)
    pushed: tuple[str, ...] = ()
    remaining: tuple[str, ...] = ()
    offered: str | None = None  # what the evidence says the server proposed (eap_offered)


FREE = ("unknown_user", "unknown_user_unsigned")
EAP_CASES = [
    EapCase("PEAP-MSCHAPv2 healthy", "peap-mschapv2", "hc", "healthy", ALL4, pushed=("hc",)),
    EapCase("TOTP user over PEAP-MSCHAPv2", "peap-mschapv2", "dave", "otp_user_over_eap", ALL4,
            remaining=("mfa_not_possible",)),
    EapCase("EAP-TLS: fragments dropped on the path", "eap-tls", "alice", "fragments_dropped",
            FREE + ("account", "account_small_mtu"), config={"max_reply_size": 1200}, pushed=("alice",)),
    EapCase("PEAP-MSCHAPv2: fragments dropped (found with the wrong password, no push)", "peap-mschapv2", "hc",
            "fragments_dropped", FREE + ("wrong_password", "wrong_password_small_mtu"), config={"max_reply_size": 1200}),
    EapCase("EAP-TLS not offered by the policy", "eap-tls", "alice", "eap_method_not_offered", FREE + ("account",),
            eap={"methods": ("peap",)}, offered="PEAP"),
    EapCase("PEAP not offered by the policy (found with the wrong password, no push)", "peap-mschapv2", "hc",
            "eap_method_not_offered", FREE + ("wrong_password",), eap={"methods": ("eap-tls",)},
            offered="TLS"),
]


@pytest.mark.parametrize("case", EAP_CASES, ids=[c.name for c in EAP_CASES])
def test_emulator_eap_cause_is_named_first(case: EapCase, lab_pki: Any, lab_emulator: Any) -> None:
    from probe.methods import spec
    from probe.model import TlsOptions

    method = spec(case.method)
    tls = TlsOptions(ca=str(lab_pki.directory / "ca.pem"), server_name="nps.lab.test")
    if method.credential == "certificate":
        tls.cert, tls.key = str(lab_pki.directory / f"{case.identity}.pem"), str(lab_pki.directory / f"{case.identity}.key")

    async def go() -> tuple[Diagnosis, list[str]]:
        cfg = _config(Case("", ""))
        for key, value in case.config.items():
            setattr(cfg, key, value)
        async with lab_emulator(cfg, **case.eap) as em:
            check = base_check(em.address, case.identity)
            check.module.method, check.module.tls = case.method, tls
            if method.credential == "certificate":
                check.module.password = None
            facts = Facts(account=True, allow_push=True, allow_unsigned=True, account_eap=True,
                          account_password=method.credential == "password",
                          account_peap=method.eap_type == EapType.PEAP)
            d = await run_diagnosis(check, em.address, facts, quick=QUICK)
            return d, list(em.mfa_started)

    d, pushed = helpers.run(go())
    c = d.conclusion
    assert c is not None and c.cause.code == case.cause, d.render("emulator")
    assert d.not_nps == [] and "may not be NPS" not in d.render("emulator")  # the emulator binds PEAP as NPS does
    assert tuple(t.step.key for t in d.trace) == case.steps
    assert tuple(r.code for r in c.remaining) == case.remaining
    assert tuple(dict.fromkeys(pushed)) == case.pushed
    if case.offered is not None:
        assert f"the server proposed: {case.offered} " in " ".join(c.evidence), c.evidence
        assert d.trace[-1].outcome is not None and d.trace[-1].outcome.eap_offered == [case.offered]


# ---------------------------------------------------------------------------------------------------------
# FreeRADIUS plays the EAP causes it can: a method the server does not offer, a path that drops big datagrams

ONE_FRAME = 1472  # the largest UDP payload in one 1500-byte IP packet: a bigger datagram travels as fragments


@dataclass
class FrEapCase:
    name: str
    method: str
    cause: str
    steps: tuple[str, ...]
    eap: dict[str, Any] = field(default_factory=dict)  # EapConfig keywords
    relay_limit: int | None = None  # a relay in front that loses replies larger than this
    offered: str | None = None


FR_EAP_CASES = [
    FrEapCase("PEAP-MSCHAPv2 without MFA or cryptobinding: not NPS, said so", "peap-mschapv2", "accepted_without_mfa",
              ALL4 + ("account_other_nas",)),
    FrEapCase("EAP-TLS not offered (eap module without tls)", "eap-tls", "eap_method_not_offered", FREE + ("account",),
              {"methods": ("peap", "mschapv2")}, offered="PEAP"),
    FrEapCase("PEAP not offered (eap module with tls only)", "peap-mschapv2", "eap_method_not_offered",
              FREE + ("wrong_password",), {"methods": ("tls",), "default_eap_type": "tls"}, offered="TLS"),
    FrEapCase("EAP-TLS: datagrams above one frame lost on the path", "eap-tls", "fragments_dropped",
              FREE + ("account", "account_small_mtu"), {"fragment_size": 1500}, relay_limit=ONE_FRAME),
    FrEapCase("PEAP-MSCHAPv2: datagrams above one frame lost (wrong password, no push)", "peap-mschapv2",
              "fragments_dropped", FREE + ("wrong_password", "wrong_password_small_mtu"), {"fragment_size": 1500},
              relay_limit=ONE_FRAME),
]


@pytest.mark.freeradius
@pytest.mark.parametrize("case", FR_EAP_CASES, ids=[c.name for c in FR_EAP_CASES])
def test_freeradius_eap_cause_is_named_first(case: FrEapCase, lab_pki: Any, tmp_path: Path) -> None:
    from probe.methods import spec
    from probe.model import TlsOptions
    from tests.servers.freeradius import EapConfig
    from tests.servers.udp_relay import SizeLimitingRelay

    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius (Debian package freeradius)")
    method = spec(case.method)
    tls = TlsOptions(ca=str(lab_pki.directory / "ca.pem"), server_name="nps.lab.test")
    if method.credential == "certificate":
        tls.cert, tls.key = str(lab_pki.directory / "alice.pem"), str(lab_pki.directory / "alice.key")
    eap = EapConfig(ca_file=lab_pki.ca, server_cert=lab_pki.server_chain, server_key=lab_pki.server_key, **case.eap)
    with FreeRadiusServer(tmp_path, FR_SECRET, [User("alice", FR_PASSWORD)], eap=eap) as srv:
        async def go() -> tuple[Diagnosis, list[int]]:
            async def diagnose_at(address: tuple[str, int]) -> Diagnosis:
                check = base_check(address, "alice", secret=FR_SECRET, password=FR_PASSWORD)
                check.module.method, check.module.tls = case.method, tls
                if method.credential == "certificate":
                    check.module.password = None
                facts = Facts(account=True, allow_push=True, allow_unsigned=True, account_eap=True,
                              account_password=method.credential == "password",
                              account_peap=method.eap_type == EapType.PEAP)
                return await run_diagnosis(check, address, facts, quick=QUICK)

            if case.relay_limit is None:
                return await diagnose_at((srv.host, srv.port)), []
            async with SizeLimitingRelay((srv.host, srv.port), max_reply_size=case.relay_limit) as relay:
                return await diagnose_at(relay.address), relay.dropped

        d, dropped = helpers.run(go())
        c = d.conclusion
        assert c is not None and c.cause.code == case.cause, d.render("freeradius") + "\n" + srv.log_text()[-3000:]
    assert tuple(t.step.key for t in d.trace) == case.steps
    if case.offered is not None:
        assert f"the server proposed: {case.offered} " in " ".join(c.evidence), c.evidence
        assert c.cause.elsewhere is not None and "FreeRADIUS" in c.cause.elsewhere
    text = d.render("freeradius")
    if case.cause == "accepted_without_mfa":  # what it saw, without pretending it is NPS
        assert d.not_nps and "Cryptobinding TLV" in d.not_nps[0]
        assert "This server may not be NPS with the MFA extension" in text
        assert "read for any RADIUS server: the server asks no second factor" in text
        assert "If this server is not NPS" not in text and "Where to look (on NPS):" in text
        assert d.to_dict("freeradius")["not_nps_signs"] == d.not_nps
    if case.relay_limit is not None:  # the first round's big challenge was lost; with Framed-MTU 1000 none was
        assert dropped and min(dropped) > case.relay_limit
        last = d.trace[-1].outcome
        assert last is not None and last.round_trips > 3 and last.attempts[-1].code is not None


def test_cli_bare_eap_tls_is_flagged_outside_microsofts_support(tmp_path: Path, cli_runner: Any, lab_pki: Any) -> None:
    """`diagnose --method eap-tls`: the extension supports PAP, MS-CHAPv2 and PEAP; bare EAP-TLS is outside [?]."""
    import subprocess
    import sys

    config = tmp_path / "em.yaml"
    config.write_text(f"eap: {{pki: {lab_pki.directory}}}\ndefault_users: true\n"
                      f"users: {{alice: {{mfa: approve, delay: {APPROVE_S}}}}}\n")  # a person's approval
    port = helpers.free_udp_port()
    em = subprocess.Popen([sys.executable, "-m", "probe.cli", "emulator", "--listen", f"127.0.0.1:{port}",
                           "--config", str(config), "--duration", "60"], stdout=subprocess.PIPE, text=True,
                          env=helpers.clean_env())
    try:
        assert em.stdout is not None and "listening" in em.stdout.readline()
        d = lab_pki.directory
        common = ("diagnose", f"127.0.0.1:{port}", "--secret", DEFAULT_SECRET, "--quick-timeout", "0.4", "--json",
                  "--allow-unsigned", "--allow-push", "--identity", "alice", "--ca", str(d / "ca.pem"),
                  "--server-name", "nps.lab.test", "--timeout", "3", "--retries", "0")
        tls = cli_runner(*common, "--method", "eap-tls", "--cert", str(d / "alice.pem"), "--key", str(d / "alice.key"))
        assert tls.returncode == 0, tls.stdout + tls.stderr
        doc = json.loads(tls.stdout)
        assert doc["cause"]["code"] == "healthy"
        assert any("outside Microsoft's documented support" in n and "[?]" in n for n in doc["notes"])
        peap = cli_runner(*common, "--method", "peap-tls", "--cert", str(d / "alice.pem"), "--key", str(d / "alice.key"))
        assert peap.returncode == 0, peap.stdout + peap.stderr
        assert not any("outside Microsoft" in n for n in json.loads(peap.stdout)["notes"])
    finally:
        em.terminate()
        em.wait(timeout=10)
