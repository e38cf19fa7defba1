"""`radius-probe auth` with the EAP methods, end to end in subprocesses (issue 3).

Bad input: exit 3, one stderr line naming the problem, no traceback, never a
secret. Debugging aids: --keylog writes NSS key log lines for the handshake the
--pcap file holds, and the pcap holds every RADIUS datagram of the exchange.
The JSON `tls` block reports the server's certificate, chain and our own
certificate; --insecure skips validation with a warning.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, default_users
from probe.pki import Pki, init_pki
from probe.radius import packet as pk
from tests.helpers import CLI, cli, free_udp_port

P12_PASSWORD = "P12-Passw0rd-never-shown"
KEY_PASSPHRASE = "Key-Passphrase-never-shown"
WRONG_PASSWORD = "Wrong-Passw0rd-never-shown"
USER_PASSWORD = "User-Passw0rd-never-shown"
SHARED_SECRET = "Shared-Secret-never-shown"
SECRETS = (P12_PASSWORD, KEY_PASSPHRASE, WRONG_PASSWORD, USER_PASSWORD, SHARED_SECRET, DEFAULT_SECRET)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A lab PKI holding a certificate for every emulator user, so the emulator reuses it."""
    return init_pki(tmp_path_factory.mktemp("pki"), p12_password=P12_PASSWORD, key_passphrase=KEY_PASSPHRASE,
                    extra_users=list(default_users()))


# ---------------------------------------------------------------------------
# Bad input


def _garbage(tmp: Path) -> str:
    path = tmp / "garbage.pem"
    path.write_bytes(b"this is not PEM\n\x00\x01\x02\xff" * 10)
    return str(path)


def _bad_input_cases(lab: Pki, tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (auth arguments after the target and secret, words the one stderr line must hold)."""
    alice, ecdsa = lab.users["alice"], lab.users["ecdsa-user"]
    tls = ["--method", "eap-tls", "--identity", "alice", "--ca", str(lab.ca)]
    pem = ["--cert", str(alice.cert), "--key", str(alice.key)]
    missing = str(tmp / "missing.pem")
    assert alice.encrypted_key is not None
    return {
        "unreadable_cert": ([*tls, "--cert", missing, "--key", str(alice.key)], f"certificate file {missing}"),
        "cert_is_a_directory": ([*tls, "--cert", str(tmp), "--key", str(alice.key)], "certificate file"),
        "cert_not_pem": ([*tls, "--cert", _garbage(tmp), "--key", str(alice.key)], "not a PEM certificate"),
        "unreadable_key": ([*tls, "--cert", str(alice.cert), "--key", missing], f"key file {missing}"),
        "key_not_matching_cert": ([*tls, "--cert", str(alice.cert), "--key", str(ecdsa.key)],
                                  "does not match the certificate"),
        "encrypted_key_wrong_passphrase": ([*tls, "--cert", str(alice.cert), "--key", str(alice.encrypted_key),
                                            "--key-password", WRONG_PASSWORD], "password is wrong"),
        "encrypted_key_without_passphrase": ([*tls, "--cert", str(alice.cert), "--key", str(alice.encrypted_key)],
                                             "encrypted"),
        "wrong_pkcs12_password": ([*tls, "--pkcs12", str(alice.p12), "--pkcs12-password", WRONG_PASSWORD],
                                  f"PKCS#12 file {alice.p12}"),
        "pkcs12_without_password": ([*tls, "--pkcs12", str(alice.p12)], "PKCS#12 file"),
        "pkcs12_that_is_pem": ([*tls, "--pkcs12", str(alice.cert), "--pkcs12-password", P12_PASSWORD],
                               "PKCS#12 file"),
        "ca_not_pem": (["--method", "eap-tls", "--identity", "alice", *pem, "--ca", _garbage(tmp)], "CA file"),
        "ca_unreadable": (["--method", "eap-tls", "--identity", "alice", *pem, "--ca", missing], "CA file"),
        "ca_is_a_key": (["--method", "eap-tls", "--identity", "alice", *pem, "--ca", str(lab.ca_key)], "CA file"),
        "tls_max_1_4": ([*tls, *pem, "--tls-max", "1.4"], "--tls-max '1.4'"),
        "tls_max_text": ([*tls, *pem, "--tls-max", "TLSv1.3"], "--tls-max"),
        "eap_tls_without_cert_or_key": (tls, "needs --cert and --key"),
        "eap_tls_cert_without_key": ([*tls, "--cert", str(alice.cert)], "needs --cert and --key"),
        "peap_tls_without_cert": (["--method", "peap-tls", "--identity", "alice", "--ca", str(lab.ca)],
                                  "needs --cert and --key"),
        "peap_mschapv2_without_password": (["--method", "peap-mschapv2", "--identity", "alice", "--ca", str(lab.ca)],
                                           "needs --password"),
        "eap_without_ca_or_insecure": (["--method", "eap-tls", "--identity", "alice", *pem], "--ca"),
        "framed_mtu_10": ([*tls, *pem, "--framed-mtu", "10"], "--framed-mtu"),
        "framed_mtu_too_small_for_eap": ([*tls, *pem, "--framed-mtu", "80"], "--framed-mtu must be >= 100"),
        "framed_mtu_too_large": ([*tls, *pem, "--framed-mtu", "5000"], "Framed-MTU 5000"),
        "keylog_unwritable": ([*tls, *pem, "--keylog", str(tmp / "no" / "dir" / "keys")], "--keylog"),
        "pcap_unwritable": ([*tls, *pem, "--pcap", str(tmp / "no" / "dir" / "x.pcap")], "--pcap"),
    }


BAD_INPUT_NAMES = [
    "unreadable_cert", "cert_is_a_directory", "cert_not_pem", "unreadable_key", "key_not_matching_cert",
    "encrypted_key_wrong_passphrase", "encrypted_key_without_passphrase", "wrong_pkcs12_password",
    "pkcs12_without_password", "pkcs12_that_is_pem", "ca_not_pem", "ca_unreadable", "ca_is_a_key", "tls_max_1_4",
    "tls_max_text", "eap_tls_without_cert_or_key", "eap_tls_cert_without_key", "peap_tls_without_cert",
    "peap_mschapv2_without_password", "eap_without_ca_or_insecure", "framed_mtu_10",
    "framed_mtu_too_small_for_eap", "framed_mtu_too_large", "keylog_unwritable", "pcap_unwritable",
]


@pytest.mark.parametrize("case", BAD_INPUT_NAMES)
def test_bad_input_exits_3_with_one_line_and_no_secret(lab: Pki, tmp_path: Path, case: str) -> None:
    cases = _bad_input_cases(lab, tmp_path)
    assert sorted(cases) == sorted(BAD_INPUT_NAMES)
    args, words = cases[case]
    port = free_udp_port()  # nothing listens: bad input must stop the probe before any packet
    r = cli("auth", f"127.0.0.1:{port}", "--secret", SHARED_SECRET, *args, "--json")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert lines[0].startswith("radius-probe"), lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    for secret in SECRETS:
        assert secret not in r.stderr + r.stdout, f"{secret!r} leaked"


def test_bad_input_leaves_existing_pcap_and_keylog_untouched(lab: Pki, tmp_path: Path) -> None:
    pcap, keylog = tmp_path / "earlier.pcap", tmp_path / "earlier.keys"
    pcap.write_bytes(b"an earlier capture")
    keylog.write_bytes(b"CLIENT_RANDOM " + b"ab" * 32 + b" " + b"cd" * 48 + b"\n")
    before = (pcap.read_bytes(), keylog.read_bytes())
    r = cli("auth", f"127.0.0.1:{free_udp_port()}", "--secret", SHARED_SECRET, "--method", "eap-tls",
            "--identity", "alice", "--cert", str(tmp_path / "missing.pem"), "--key", str(lab.users["alice"].key),
            "--ca", str(lab.ca), "--pcap", str(pcap), "--keylog", str(keylog))
    assert r.returncode == 3 and "certificate file" in r.stderr
    assert (pcap.read_bytes(), keylog.read_bytes()) == before


def test_peap_mschapv2_password_from_the_environment_is_never_echoed(lab: Pki) -> None:
    """With a garbage CA the probe stops at input; the password given in the environment stays unseen."""
    r = cli("auth", f"127.0.0.1:{free_udp_port()}", "--secret", SHARED_SECRET, "--method", "peap-mschapv2",
            "--identity", "alice", "--ca", str(lab.ca_key), env={"RADIUS_PROBE_PASSWORD": USER_PASSWORD})
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1
    assert USER_PASSWORD not in r.stderr + r.stdout and SHARED_SECRET not in r.stderr + r.stdout


# ---------------------------------------------------------------------------
# Against `radius-probe emulator` in a subprocess


@pytest.fixture(scope="module")
def emulator_port(lab: Pki) -> Iterator[int]:
    port = free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--pki", str(lab.directory),
                             "--duration", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    try:
        assert f"listening on 127.0.0.1:{port}" in first, first + (proc.stderr.read() if proc.poll() is not None
                                                                    else "")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def eap_tls(port: int, lab: Pki, *extra: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    u = lab.users[user]
    return cli("auth", f"127.0.0.1:{port}", "--secret", DEFAULT_SECRET, "--method", "eap-tls", "--identity", user,
               "--cert", str(u.cert), "--key", str(u.key), "--json", *extra)


ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _check_cert_entry(entry: dict[str, object]) -> None:
    assert set(entry) >= {"subject", "issuer", "not_after", "sha256"}, entry
    assert isinstance(entry["not_after"], str) and ISO_Z.match(entry["not_after"]), entry
    assert isinstance(entry["sha256"], str) and HEX64.match(entry["sha256"]), entry


@pytest.mark.parametrize("tls_max, version", [("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")])
def test_json_tls_block_for_eap_tls(emulator_port: int, lab: Pki, tls_max: str, version: str) -> None:
    r = eap_tls(emulator_port, lab, "--ca", str(lab.ca), "--server-name", "nps.lab.test", "--tls-max", tls_max)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert (doc["result"], doc["mppe"], doc["error_kind"]) == ("accept", "match", None)
    tls = doc["tls"]
    assert tls["version"] == version and isinstance(tls["cipher"], str) and tls["cipher"]
    assert tls["validation"] == "ok" and tls["warnings"] == []
    server = tls["server_cert"]
    _check_cert_entry(server)
    assert "nps.lab.test" in server["subject"] or "nps.lab.test" in server.get("san_dns", [])
    assert server["issuer"] != server["subject"]
    chain = tls["chain"]
    assert len(chain) >= 2 and chain[0]["sha256"] == server["sha256"]
    for entry in chain:
        _check_cert_entry(entry)
    assert chain[0]["issuer"] == chain[1]["subject"]  # the emulator sends server-chain.pem: leaf, then the CA
    client = tls["client_cert"]
    assert "alice" in client["subject"] and ISO_Z.match(client["not_after"])
    assert isinstance(client["days_left"], int) and client["days_left"] > 30
    assert DEFAULT_SECRET not in r.stdout


def test_insecure_with_the_wrong_ca_skips_validation_with_a_warning(emulator_port: int, lab: Pki) -> None:
    r = eap_tls(emulator_port, lab, "--insecure", "--ca", str(lab.untrusted_ca), "--server-name", "nps.lab.test")
    doc = json.loads(r.stdout)
    assert doc["result"] == "accept" and doc["error_kind"] is None and doc["mppe"] == "match", r.stdout
    assert r.returncode == 0, r.stdout  # auth's verdict today: the accept met its expectation
    assert doc["tls"]["validation"].startswith("skipped"), doc["tls"]["validation"]
    assert any("--insecure" in w for w in doc["warnings"]), doc["warnings"]
    _check_cert_entry(doc["tls"]["server_cert"])  # still reported


def test_wrong_ca_without_insecure_is_a_tls_error(emulator_port: int, lab: Pki) -> None:
    """The control for the test above: the same CA, validation on."""
    r = eap_tls(emulator_port, lab, "--ca", str(lab.untrusted_ca), "--server-name", "nps.lab.test")
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and (doc["result"], doc["error_kind"]) == ("error", "tls")
    assert doc["diagnosis"][0]["code"] == "server_certificate_untrusted"


# ---------------------------------------------------------------------------
# --keylog and --pcap


TLS12_LABELS = {"CLIENT_RANDOM"}
TLS13_LABELS = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"}


def _read_pcap(path: Path, emulator_port: int) -> list[tuple[str, pk.Packet]]:
    """("out"|"in", RADIUS packet) per datagram, read back with scapy."""
    from scapy.all import IP, UDP, rdpcap

    out = []
    for frame in rdpcap(str(path)):
        assert frame.haslayer(IP) and frame.haslayer(UDP), frame.summary()
        udp = frame[UDP]
        assert frame[IP].src == frame[IP].dst == "127.0.0.1"
        assert emulator_port in (udp.sport, udp.dport)
        direction = "out" if udp.dport == emulator_port else "in"
        out.append((direction, pk.parse_packet(bytes(udp.payload))))
    return out


def _client_hello_random(datagrams: list[tuple[str, pk.Packet]]) -> bytes:
    """The ClientHello.random from the first EAP-TLS response carrying TLS data."""
    for direction, packet in datagrams:
        eap = packet.eap()
        if direction != "out" or eap is None or len(eap) < 10 or eap[4] != 13:
            continue
        flags = eap[5]
        tls = eap[10:] if flags & 0x80 else eap[6:]
        if tls[:1] == b"\x16" and tls[5:6] == b"\x01":  # handshake record, ClientHello
            return tls[11:43]
    raise AssertionError("no ClientHello in the capture")


@pytest.mark.parametrize("tls_max, labels", [("1.2", TLS12_LABELS), ("1.3", TLS13_LABELS)])
def test_keylog_and_pcap_describe_the_same_exchange(emulator_port: int, lab: Pki, tmp_path: Path,
                                                    tls_max: str, labels: set[str]) -> None:
    keylog, pcap = tmp_path / "keys.log", tmp_path / "exchange.pcap"
    r = eap_tls(emulator_port, lab, "--ca", str(lab.ca), "--tls-max", tls_max, "--keylog", str(keylog),
                "--pcap", str(pcap))
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["result"] == "accept" and doc["tls"]["version"] == f"TLSv{tls_max}"

    lines = keylog.read_text().splitlines()
    assert lines and all(re.match(r"^[A-Z_0-9]+ [0-9a-f]{64} [0-9a-f]+$", line) for line in lines), lines
    assert {line.split()[0] for line in lines} == labels
    randoms = {line.split()[1] for line in lines}
    assert len(randoms) == 1, "one handshake, one client random"

    datagrams = _read_pcap(pcap, emulator_port)
    requests = [p for d, p in datagrams if d == "out"]
    replies = [p for d, p in datagrams if d == "in"]
    assert len(requests) == doc["round_trips"] + doc["retransmissions"] and len(replies) == doc["round_trips"]
    assert len(datagrams) == 2 * doc["round_trips"] + doc["retransmissions"]
    assert {p.code for p in requests} == {pk.ACCESS_REQUEST}
    assert [p.code_name for p in replies] == [a["code"] for a in doc["attempts"] if a["code"]]
    assert replies[-1].code == pk.ACCESS_ACCEPT
    assert all(p.code == pk.ACCESS_CHALLENGE for p in replies[:-1])
    if doc["retransmissions"] == 0:
        assert [p.identifier for p in replies] == [p.identifier for p in requests]
    assert _client_hello_random(datagrams).hex() == randoms.pop()
    assert DEFAULT_SECRET.encode() not in pcap.read_bytes()  # the pcap holds packets, not the secret


def test_keylog_appends_one_handshake_per_run(emulator_port: int, lab: Pki, tmp_path: Path) -> None:
    """Two runs into one key log: both handshakes stay decryptable (the file is appended, not replaced)."""
    keylog = tmp_path / "keys.log"
    for _ in range(2):
        r = eap_tls(emulator_port, lab, "--ca", str(lab.ca), "--tls-max", "1.2", "--keylog", str(keylog))
        assert r.returncode == 0, r.stdout + r.stderr
    randoms = [line.split()[1] for line in keylog.read_text().splitlines() if line.startswith("CLIENT_RANDOM")]
    assert len(randoms) == 2 and randoms[0] != randoms[1]


@pytest.mark.parametrize("method", ["peap-mschapv2", "peap-tls"])
def test_keylog_for_peap_holds_the_tunnel_secrets(emulator_port: int, lab: Pki, tmp_path: Path, method: str) -> None:
    keylog = tmp_path / "keys.log"
    u = lab.users["alice"]
    creds = ["--password", DEFAULT_PASSWORD] if method == "peap-mschapv2" else ["--cert", str(u.cert), "--key",
                                                                                   str(u.key)]
    r = cli("auth", f"127.0.0.1:{emulator_port}", "--secret", DEFAULT_SECRET, "--method", method,
            "--identity", "alice", "--ca", str(lab.ca), *creds, "--keylog", str(keylog), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = keylog.read_text().splitlines()
    # PEAP is TLS 1.2: the outer tunnel, plus the inner EAP-TLS handshake for PEAP-TLS
    assert [line.split()[0] for line in lines] == ["CLIENT_RANDOM"] * (2 if method == "peap-tls" else 1), lines
    assert DEFAULT_PASSWORD not in keylog.read_text()
