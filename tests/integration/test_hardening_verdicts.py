"""Exact key verdicts and ASCII-only numbers against real servers (issue 11, findings 4 and 5).

Finding 4: an Access-Accept with the right MS-MPPE keys but without EAP-Success was reported as
``error/mppe_mismatch`` blaming a proxy. Now:

* the EAP ending is judged first: an Accept without EAP-Success is an ``eap`` error
  (``eap_success_missing``; NPS always sends EAP-Success and a VPN client does not finish EAP
  without it), whatever the keys say;
* the keys are judged exactly: ``match``/``mismatch`` when the method finished (the peer derived
  its own keys, EAP-Success or not), ``unverified`` when keys come before the method finished
  (``mppe_unverified``: nothing to compare, no proxy blamed), ``absent`` without keys.

Servers: the NPS emulator behind a filter that drops EAP-Message from its Access-Accept (the
emulator's own EAP server logic, so the keys are the real ones), FreeRADIUS with a post-auth
``update reply { &EAP-Message !* ANY }``, and a small correctly signed rogue that accepts the
Identity with keys.

Finding 5: the ``/probe`` endpoint of a real ``serve`` answers 400, not 500, for a target port or a
timeout in non-ASCII digits (the CLI front doors are in tests/unit/test_numbers_ascii.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe.drivers.aio import authenticate
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EapSettings, EmulatedUser, default_config
from probe.emulator.server import NpsEmulator, _Answer
from probe.model import ProbeConfig, Secret, TlsOptions
from probe.outcome import Outcome
from probe.pki import Pki
from probe.radius import packet as pk
from probe.radius.transport import RetryPolicy
from tests.helpers import free_udp_port, rogue, run
from tests.servers.freeradius import EapConfig, FreeRadiusServer, User, freeradius_available
from tests.servers.serve import start_serve, stop, write_secrets

SECRET = DEFAULT_SECRET.encode()
SERVER_NAME = "nps.lab.test"
ONE_SHOT = RetryPolicy(timeout_s=3.0, retries=0, listen_s=0.0)
METHODS = ("eap-tls", "peap-mschapv2", "peap-tls")
Rewrite = Callable[[list[pk.Attr], pk.Packet], list[pk.Attr]]


# ---------------------------------------------------------------------------
# Building blocks


def eap_probe(p: Pki, address: tuple[str, int], method: str, *, password: str = DEFAULT_PASSWORD,
              tls_max: str = "1.3") -> ProbeConfig:
    tls = TlsOptions(ca=str(p.ca), server_name=SERVER_NAME, tls_max=tls_max)
    if method != "peap-mschapv2":
        tls.cert, tls.key = str(p.users["alice"].cert), str(p.users["alice"].key)
    return ProbeConfig(address=address, secret=Secret(SECRET), method=method, identity="alice",
                       password=Secret(password.encode()), tls=tls, policy=ONE_SHOT)


def _is_mppe(attr: pk.Attr) -> bool:
    if attr[0] != pk.VENDOR_SPECIFIC:
        return False
    vendor, subs = pk.split_vsa(attr[1])
    return vendor == pk.VENDOR_MICROSOFT and any(t in (pk.MS_MPPE_SEND_KEY, pk.MS_MPPE_RECV_KEY) for t, _ in subs)


def _salted(key: bytes, request: pk.Packet) -> bytes:
    return pk.salt_encrypt(key, SECRET, request.authenticator, bytes((0x80 | os.urandom(1)[0],)) + os.urandom(1))


def strip_eap_success(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    """A filter on the path that drops EAP-Message from the Access-Accept; the keys stay as NPS made them."""
    assert any(a[0] == pk.EAP_MESSAGE for a in attrs) and any(_is_mppe(a) for a in attrs)
    return [a for a in attrs if a[0] != pk.EAP_MESSAGE]


def strip_eap_success_and_swap_keys(attrs: list[pk.Attr], request: pk.Packet) -> list[pk.Attr]:
    """No EAP-Success, and Send/Recv swapped (right bytes, wrong direction): both problems at once."""
    keys = pk.mppe_keys(pk.Packet(pk.ACCESS_ACCEPT, 0, bytes(16), attrs), request.authenticator, SECRET)
    assert keys is not None
    send, recv = keys
    rest = [a for a in strip_eap_success(attrs, request) if not _is_mppe(a)]
    return rest + [pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_SEND_KEY, _salted(recv, request)),
                   pk.vsa(pk.VENDOR_MICROSOFT, pk.MS_MPPE_RECV_KEY, _salted(send, request))]


class FilteredNps(NpsEmulator):
    """The emulator (its own EAP server logic and keys), its Access-Accept rewritten by ``rewrite``."""

    def __init__(self, p: Pki, rewrite: Rewrite) -> None:
        config = default_config()
        config.eap = EapSettings.from_pki(p.directory, tls_max_eap_tls="1.3")
        super().__init__(config)
        self.rewrite = rewrite
        self.rewritten = 0

    def _accept(self, ans: _Answer, user: EmulatedUser, text: str) -> None:
        ans.accept_attrs = self.rewrite(list(ans.accept_attrs), ans.request)
        self.rewritten += 1
        super()._accept(ans, user, text)


def against(em: NpsEmulator, make: Callable[[tuple[str, int]], ProbeConfig]) -> Outcome:
    async def go() -> Outcome:
        await em.start("127.0.0.1", 0)
        try:
            return await authenticate(make(em.address))
        finally:
            await em.stop()
    return run(go())


def accept_the_identity_with_keys(request: pk.Packet) -> bytes:
    """A correctly signed server that answers the EAP-Response/Identity with Access-Accept and MS-MPPE keys."""
    keys = [pk.vsa(pk.VENDOR_MICROSOFT, t, _salted(os.urandom(32), request))
            for t in (pk.MS_MPPE_SEND_KEY, pk.MS_MPPE_RECV_KEY)]
    return pk.build_reply(pk.ACCESS_ACCEPT, request, keys, SECRET, message_authenticator=True)


def codes(o: Outcome) -> list[str]:
    return [str(d["code"]) for d in o.diagnosis]


# ---------------------------------------------------------------------------
# Finding 4 against the emulator


@pytest.mark.parametrize("method", METHODS)
def test_accept_without_eap_success_keeps_matching_keys_and_is_an_eap_error(lab_pki: Pki, method: str) -> None:
    """The reported case: right keys, no EAP-Success. Before: error/mppe_mismatch blaming a proxy."""
    em = FilteredNps(lab_pki, strip_eap_success)
    o = against(em, lambda addr: eap_probe(lab_pki, addr, method))
    assert em.rewritten == 1
    assert (o.result, o.error_kind, o.mppe) == ("error", "eap", "match"), o.to_json()
    assert o.error_detail is not None and o.error_detail.startswith("Access-Accept without EAP-Success after")
    assert codes(o) == ["eap_success_missing"], codes(o)
    assert "mppe_mismatch" not in o.to_json() and "proxy re-encrypts" not in o.to_json()
    assert (o.exit_code, o.expectation_met) == (2, False)
    assert o.tls is not None and o.tls["validation"] == "ok"


@pytest.mark.parametrize("method", ["eap-tls", "peap-mschapv2"])
def test_accept_without_eap_success_and_wrong_keys_names_both(lab_pki: Pki, method: str) -> None:
    em = FilteredNps(lab_pki, strip_eap_success_and_swap_keys)
    o = against(em, lambda addr: eap_probe(lab_pki, addr, method))
    assert (o.result, o.error_kind, o.mppe) == ("error", "eap", "mismatch"), o.to_json()
    assert codes(o) == ["eap_success_missing", "mppe_mismatch"], codes(o)


@pytest.mark.parametrize("method", METHODS)
def test_keys_before_the_method_finished_are_unverified_not_a_mismatch(lab_pki: Pki, method: str) -> None:
    """An Accept with keys on the Identity: nothing to compare them with; say so, blame no proxy."""
    async def go() -> Outcome:
        async with rogue(accept_the_identity_with_keys) as addr:
            return await authenticate(eap_probe(lab_pki, addr, method))
    o = run(go())
    assert (o.result, o.error_kind, o.mppe) == ("error", "eap", "unverified"), o.to_json()
    assert "before the EAP method finished" in (o.error_detail or "")
    assert codes(o) == ["mppe_unverified"], codes(o)
    assert any("not checked" in w for w in o.warnings), o.warnings
    assert o.to_dict()["mppe"] == "unverified" and o.exit_code == 2


@pytest.mark.parametrize("method", METHODS)
def test_the_untouched_emulator_still_matches(lab_pki: Pki, method: str) -> None:
    """The control: the same harness without the filter is a clean accept with mppe match."""
    o = against(FilteredNps(lab_pki, lambda attrs, request: attrs), lambda addr: eap_probe(lab_pki, addr, method))
    assert (o.result, o.error_kind, o.mppe, o.exit_code) == ("accept", None, "match", 0), o.to_json()


# ---------------------------------------------------------------------------
# Finding 4 against FreeRADIUS: post-auth removes EAP-Message from the Access-Accept

FR_SECRET = "fr-verdict-secret"
FR_PASSWORD = "Inner-Passw0rd"


class NoEapSuccessFreeRadius(FreeRadiusServer):
    """FreeRADIUS whose post-auth drops EAP-Message from every Access-Accept (unlang written here)."""

    def _site_conf(self, port: int, port_ma: int) -> str:
        text = super()._site_conf(port, port_ma)
        marker = "\tpost-auth {\n"
        assert text.count(marker) == 1
        strip = "\t\tupdate reply {\n\t\t\t&EAP-Message !* ANY\n\t\t}\n"
        return text.replace(marker, marker + strip)


@pytest.fixture(scope="module")
def no_success_server(tmp_path_factory: pytest.TempPathFactory, lab_pki: Pki) -> Iterator[FreeRadiusServer]:
    if not freeradius_available():
        pytest.skip("needs /usr/sbin/freeradius (Debian package freeradius)")
    eap = EapConfig(ca_file=lab_pki.ca, server_cert=lab_pki.server_chain, server_key=lab_pki.server_key,
                    tls_max_version="1.3")
    with NoEapSuccessFreeRadius(tmp_path_factory.mktemp("fr-no-success"), FR_SECRET, [User("alice", FR_PASSWORD)],
                                eap=eap) as srv:
        yield srv


@pytest.mark.freeradius
@pytest.mark.parametrize(("method", "extra"), [("eap-tls", ("--tls-max", "1.2")), ("eap-tls", ("--tls-max", "1.3")),
                                               ("peap-mschapv2", ("--password", FR_PASSWORD))])
def test_freeradius_accept_without_eap_success(no_success_server: FreeRadiusServer, lab_pki: Pki,
                                               tmp_path: Path, method: str, extra: tuple[str, ...]) -> None:
    secret = tmp_path / "secret"
    secret.write_text(FR_SECRET)
    certs = [] if method == "peap-mschapv2" else ["--cert", str(lab_pki.users["alice"].cert),
                                                  "--key", str(lab_pki.users["alice"].key)]
    done = subprocess.run([sys.executable, "-m", "probe.cli", "auth", f"127.0.0.1:{no_success_server.port}",
                           "--secret-file", str(secret), "--method", method, "--identity", "alice",
                           "--ca", str(lab_pki.ca), "--server-name", SERVER_NAME, "--timeout", "5", "--retries", "0",
                           "--json", *certs, *extra], capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    doc = json.loads(done.stdout)
    log = no_success_server.log_text()
    assert "EAP-Message" in log  # the unlang ran
    assert done.returncode == 2, doc
    assert (doc["result"], doc["error_kind"], doc["mppe"]) == ("error", "eap", "match"), doc
    assert [d["code"] for d in doc["diagnosis"]] == ["eap_success_missing"], doc["diagnosis"]
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------
# Finding 5: the /probe endpoint of a real `serve`


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("serve-numbers")
    secrets = write_secrets(directory)
    probe = directory / "probe.yaml"
    probe.write_text(f"""\
modules:
  alice: {{method: pap, identity: alice, password_file: {secrets['password']}, timeout: 0.5, retries: 0,
          late_wait: 0.5}}
targets:
  lab:
    address: 127.0.0.1:{free_udp_port()}
    secret_file: {secrets['secret']}
checks:
  - {{name: alice, target: lab, module: alice, interval: 3600}}
""")
    s = start_serve(directory, [probe], "--allow-target", "127.0.0.1:*", "--secret-file", str(secrets["secret"]))
    try:
        yield s
    finally:
        stop(s.proc)


@pytest.mark.parametrize("query", [
    {"target": "127.0.0.1:\u00b2", "module": "alice"},
    {"target": "127.0.0.1:\u0661\u0668\u0661\u0662", "module": "alice"},
    {"target": "127.0.0.1:+1812", "module": "alice"},
    {"target": "lab", "module": "alice", "timeout": "\u0661\u0662"},
    {"target": "lab", "module": "alice", "timeout": "1_0"},
    {"target": "lab", "module": "alice", "timeout": "nan"},
])
def test_probe_endpoint_refuses_non_ascii_numbers_with_400(served: Any, query: dict[str, str]) -> None:
    before = len(served.log.read_text())
    status, body = served.get("/probe?" + urllib.parse.urlencode(query))
    assert status == 400, (status, body)
    assert len(body.strip().splitlines()) == 1, body
    assert repr(query.get("timeout", query["target"].rsplit(":", 1)[-1])) in body, body
    assert "Traceback" not in served.log.read_text()[before:]
    assert served.proc.poll() is None
