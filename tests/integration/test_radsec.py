"""RadSec (RADIUS over TLS, RFC 6614) against FreeRADIUS 3.2's TLS listener on 127.0.0.1.

The listener (tests/servers/freeradius_transport.py) requires a client certificate from the
test PKI's CA (generated at test time), knows 127.0.0.1 as a `proto = tls` client with the
secret "radsec", and runs the same policy as the UDP ports, EAP included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe.pki import Pki, init_pki
from tests import helpers
from tests.servers.freeradius import EapConfig, User, freeradius_available
from tests.servers.freeradius_transport import RadsecConfig, TransportFreeRadius

pytestmark = pytest.mark.skipif(not freeradius_available(), reason="needs /usr/sbin/freeradius")

UDP_SECRET = "fr-udp-secret"
PASSWORD = "Radsec-pw-1"
SERVER_NAME = "nps.lab.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("radsec-pki"), extra_users=["nas", "alice"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TransportFreeRadius]:
    radsec = RadsecConfig(pki.ca, pki.server_chain, pki.server_key)
    eap = EapConfig(ca_file=pki.ca, server_cert=pki.server_chain, server_key=pki.server_key)
    users = [User("alice", PASSWORD), User("slow", PASSWORD, hold_s=2)]
    with TransportFreeRadius(tmp_path_factory.mktemp("fr-radsec"), UDP_SECRET, users, radsec=radsec, eap=eap) as srv:
        yield srv


def radsec_args(pki: Pki, *, cert: bool = True, ca: Path | None = None, name: str = SERVER_NAME) -> list[str]:
    args = ["--transport", "radsec", "--radsec-ca", str(ca or pki.ca), "--radsec-server-name", name]
    if cert:
        args += ["--radsec-cert", str(pki.users["nas"].cert), "--radsec-key", str(pki.users["nas"].key)]
    return args


def auth(server: TransportFreeRadius, pki: Pki, *extra: str, user: str = "alice",
         method: str = "pap", **kw: Any) -> tuple[int, dict[str, Any]]:
    r = helpers.cli("auth", f"127.0.0.1:{server.radsec_port}", "--method", method, "--identity", user,
                    "--password", PASSWORD, "--json", "--allow-unsigned", "--timeout", "1", "--retries", "1",
                    *radsec_args(pki, **kw), *extra)
    assert r.stderr == "", r.stderr
    return r.returncode, json.loads(r.stdout)


def codes(doc: dict[str, Any]) -> list[str]:
    return [d["code"] for d in doc["diagnosis"]]


def test_pap_over_radsec(server: TransportFreeRadius, pki: Pki) -> None:
    rc, doc = auth(server, pki)
    assert (rc, doc["result"], doc["reply_message"]) == (0, "accept", "Welcome alice"), doc
    t = doc["transport"]
    assert t["kind"] == "radsec" and t["tls_version"] in ("TLSv1.2", "TLSv1.3") and t["client_certificate_sent"]
    assert t["server_cert"]["subject"] == f"CN={SERVER_NAME}" and SERVER_NAME in t["server_cert"]["dns_names"]
    assert t["client_cert"]["subject"].endswith("CN=nas") or "nas" in t["client_cert"]["subject"], t["client_cert"]
    assert "(TLS)" in server.log_text() and "Login OK: [alice]" in server.log_text()


def test_pcap_holds_the_decrypted_records(server: TransportFreeRadius, pki: Pki, tmp_path: Path) -> None:
    pcap = tmp_path / "radsec.pcap"
    rc, doc = auth(server, pki, "--pcap", str(pcap))
    data = pcap.read_bytes()
    assert rc == 0 and len(data) > 24 and data.count(b"alice") >= 1  # the Access-Request, as a datagram to 2083's port
    assert server.radsec_port.to_bytes(2, "big") in data


def test_radsec_does_not_retransmit_on_the_connection(server: TransportFreeRadius, pki: Pki) -> None:
    """RFC 6614 2.2: a held answer (2 s) with a 0.7 s timeout and 3 retries: one transmission, answered.

    Over UDP the same options retransmit at 0.7 s and 1.4 s (test_udp_retransmits_the_same_hold)."""
    rc, doc = auth(server, pki, "--timeout", "0.7", "--retries", "3", user="slow")
    assert doc["result"] == "accept", doc
    assert doc["retransmissions"] == 0 and len(doc["attempts"]) == 1 and doc["final_response_s"] >= 1.9
    assert doc["late"] is False  # the client's deadline is the whole 0.7 x 4 s, one wait on a reliable transport
    assert server.log_text().count("Ignoring duplicate") == 0


def test_udp_retransmits_the_same_hold(server: TransportFreeRadius, tmp_path: Path) -> None:
    """The control: the same user and options over UDP retransmit while the answer is held."""
    r = helpers.cli("auth", f"127.0.0.1:{server.port}", "--secret", UDP_SECRET, "--identity", "slow", "--password",
                    PASSWORD, "--json", "--allow-unsigned", "--timeout", "0.7", "--retries", "3")
    doc = json.loads(r.stdout)
    assert doc["result"] == "accept" and doc["retransmissions"] >= 2, doc


def test_peap_mschapv2_over_radsec(server: TransportFreeRadius, pki: Pki) -> None:
    rc, doc = auth(server, pki, "--ca", str(pki.ca), "--server-name", SERVER_NAME, method="peap-mschapv2")
    assert (rc, doc["result"], doc["mppe"]) == (0, "accept", "match"), doc
    assert doc["round_trips"] > 3 and doc["transport"]["kind"] == "radsec"


def test_status_and_accounting_over_radsec(server: TransportFreeRadius, pki: Pki) -> None:
    before = len(server.acct_records())
    for command in ("status", "acct"):
        r = helpers.cli(command, f"127.0.0.1:{server.radsec_port}", "--json", "--allow-unsigned", *radsec_args(pki))
        doc = json.loads(r.stdout)
        assert (r.returncode, doc["result"]) == (0, "accept"), doc
    assert [rec[0] for rec in server.acct_records()[before:]] == ["Start", "Interim-Update", "Stop"]


def test_no_client_certificate(server: TransportFreeRadius, pki: Pki) -> None:
    rc, doc = auth(server, pki, cert=False)
    assert (rc, doc["result"], doc["error_kind"]) == (2, "error", "radsec"), doc
    assert codes(doc)[0] == "radsec_tls_failed" and "no client certificate" in doc["error_detail"]


def test_untrusted_server_certificate(server: TransportFreeRadius, pki: Pki) -> None:
    rc, doc = auth(server, pki, ca=pki.untrusted_ca)
    assert (rc, doc["error_kind"]) == (2, "radsec") and codes(doc)[0] == "radsec_tls_failed", doc
    assert "does not verify" in doc["error_detail"] and doc["attempts"] == []


def test_server_name_mismatch(server: TransportFreeRadius, pki: Pki) -> None:
    rc, doc = auth(server, pki, name="radius.other.test")
    assert (rc, doc["error_kind"]) == (2, "radsec") and "does not verify" in doc["error_detail"], doc


def test_wrong_radsec_secret_is_never_accepted(server: TransportFreeRadius, pki: Pki) -> None:
    rc, doc = auth(server, pki, "--secret", "not-radsec")
    assert rc == 2 and doc["result"] != "accept", doc


def test_nothing_listening(pki: Pki) -> None:
    port = helpers.free_udp_port()  # no TCP listener there either (a free port of 127.0.0.1)
    r = helpers.cli("auth", f"127.0.0.1:{port}", "--identity", "a", "--password", "p", "--json", *radsec_args(pki))
    doc = json.loads(r.stdout)
    assert (r.returncode, doc["error_kind"]) == (2, "unreachable") and codes(doc)[0] == "port_unreachable"


def test_probe_file_transport_radsec(server: TransportFreeRadius, pki: Pki, probe_writer: Any) -> None:
    path = probe_writer(f"""
modules:
  pap: {{method: pap, identity: alice, password_env: RS_PW, timeout: 1, retries: 0}}
targets:
  rs:
    address: "127.0.0.1:{server.radsec_port}"
    transport: radsec
    radsec: {{cert: {pki.users['nas'].cert}, key: {pki.users['nas'].key}, ca: {pki.ca}, server_name: {SERVER_NAME}}}
checks:
  - {{name: over-tls, target: rs, module: pap, expect: {{message_authenticator: optional}}}}
""")
    r = helpers.cli("run", str(path), "--json", "-", "--no-progress", env={"RS_PW": PASSWORD})
    assert r.returncode == 0, r.stdout + r.stderr
    outcome = json.loads(r.stdout)["checks"][0]["outcome"]
    assert outcome["result"] == "accept" and outcome["transport"]["kind"] == "radsec"


def test_bad_radsec_input_is_one_line(pki: Pki, probe_writer: Any) -> None:
    r = helpers.cli("auth", "127.0.0.1", "--identity", "a", "--password", "p", "--transport", "radsec")
    assert r.returncode == 3 and "--radsec-ca" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = helpers.cli("auth", "127.0.0.1", "--identity", "a", "--password", "p", "--secret", "s",
                    "--radsec-ca", str(pki.ca))
    assert r.returncode == 3 and "is for --transport radsec" in r.stderr
    r = helpers.cli("auth", "127.0.0.1", "--identity", "a", "--password", "p", "--transport", "radsec",
                    "--radsec-ca", str(pki.ca), "--radsec-cert", str(pki.users["nas"].cert),
                    "--radsec-key", str(pki.users["alice"].key))
    assert r.returncode == 3 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = helpers.cli("auth", "127.0.0.1", "--identity", "a", "--password", "p", "--resume", *radsec_args(pki))
    assert r.returncode == 3 and "--resume is not supported with --transport radsec" in r.stderr
    path = probe_writer("""
targets:
  rs: {address: "127.0.0.1", transport: radsec}
modules:
  m: {method: pap, identity: a, password_env: X}
checks: [{name: c, target: rs, module: m}]
""")
    r = helpers.cli("run", str(path), env={"X": "p"})
    assert r.returncode == 3 and "transport: radsec needs radsec:" in r.stderr
