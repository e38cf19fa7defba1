"""Self-test of tests/servers/freeradius.py: the real FreeRADIUS behaves as its docstring promises.

radclient (freeradius-utils) is the client, plus hand-built PAP packets where
the test needs byte-level control (retransmitting the very same datagram).
Assertions rest on what the client received and on what the server logged.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.servers.freeradius import (
    HOST,
    UNKNOWN_USER_MESSAGE,
    OTP_PROMPT,
    WRONG_PASSWORD_MESSAGE,
    Behaviour,
    EapConfig,
    Event,
    FreeRadiusServer,
    User,
    freeradius_available,
)

RADCLIENT = shutil.which("radclient")
EAPOL_TEST = shutil.which("eapol_test")

pytestmark = [
    pytest.mark.freeradius,
    pytest.mark.skipif(not freeradius_available(), reason="needs /usr/sbin/freeradius (Debian package freeradius)"),
    pytest.mark.skipif(RADCLIENT is None, reason="needs radclient (Debian package freeradius-utils)"),
]

SECRET = "itest-shared-secret"
OTP_CODE = "246810"
SHORT_HOLD_S = 4
ACCESS_REQUEST, ACCESS_ACCEPT = 1, 2
USERS = (
    User(
        "alice",
        "alice-pass-1",
        reply_attributes=(
            ("Class", b"\x01grp"),
            ("Session-Timeout", 3600),
            ("Filter-Id", "vpn-users"),
            ("Tunnel-Type:1", "VLAN"),
            ("Tunnel-Medium-Type:1", "IEEE-802"),
            ("Tunnel-Private-Group-Id:1", "42"),
        ),
    ),
    User("mallory", "mallory-pass-1", behaviour=Behaviour.REJECT, reply_message="No VPN for you"),
    User("ghost", "ghost-pass-1", behaviour=Behaviour.DISCARD),
    User("otto", "otto-pass-1", behaviour=Behaviour.OTP, otp_code=OTP_CODE),
    User("hal", "hal-pass-1", hold_s=SHORT_HOLD_S),
    User("slowhal", "slowhal-pass-1", hold_s=65),
)


@dataclass
class Reply:
    """What radclient reported: the reply code (None if nothing valid arrived) and attributes."""

    code: str | None
    attributes: list[tuple[str, str]]
    output: str

    def values(self, name: str) -> list[str]:
        return [value for attribute, value in self.attributes if attribute == name]


def _parse_radclient(output: str) -> Reply:
    code: str | None = None
    attributes: list[tuple[str, str]] = []
    in_reply = False
    for line in output.splitlines():
        if line.startswith("Received "):
            code, in_reply = line.split()[1], True
        elif in_reply and line.startswith("\t") and " = " in line:
            name, value = line.strip().split(" = ", 1)
            attributes.append((name, value.strip('"')))
        else:
            in_reply = False
    return Reply(code, attributes, output)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadiusServer]:
    with FreeRadiusServer(tmp_path_factory.mktemp("freeradius"), SECRET, USERS) as srv:
        yield srv


@pytest.fixture(scope="module")
def secret_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """radclient reads the secret from a file (-S) so it never shows on a command line."""
    folder = tmp_path_factory.mktemp("secrets")
    files = {}
    for label, value in (("right", SECRET), ("wrong", "not-the-secret")):
        path = folder / label
        path.write_text(value + "\n")
        path.chmod(0o600)
        files[label] = path
    return files


def radclient(
    secret_file: Path, port: int, attributes: str, timeout_s: float = 2.0
) -> Reply:
    """One Access-Request, no retransmission."""
    assert RADCLIENT is not None
    argv = [RADCLIENT, "-x", "-t", str(timeout_s), "-r", "1", "-S", str(secret_file), f"{HOST}:{port}", "auth"]
    done = subprocess.run(argv, input=attributes, capture_output=True, text=True, timeout=timeout_s + 30)
    return _parse_radclient(done.stdout + done.stderr)


def _events_for(server: FreeRadiusServer, user: str) -> list[Event]:
    return [event for event in server.events() if event.user == user]


def _wait_for_event(server: FreeRadiusServer, kind: str, vector: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(e.kind == kind and e.vector == vector for e in server.events()):
        assert time.monotonic() < deadline, f"no {kind} event for {vector}:\n{server.log_text()[-4000:]}"
        time.sleep(0.05)


# -- hand-built PAP packets (RFC 2865 5.2 password hiding) ---------------------


def _attribute(kind: int, value: bytes) -> bytes:
    return bytes([kind, len(value) + 2]) + value


def _hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    padded = password + b"\x00" * (-len(password) % 16) if password else b"\x00" * 16
    hidden, previous = b"", authenticator
    for offset in range(0, len(padded), 16):
        key = hashlib.md5(secret + previous).digest()
        previous = bytes(a ^ b for a, b in zip(padded[offset : offset + 16], key))
        hidden += previous
    return hidden


def pap_request(identifier: int, user: str, password: str, secret: str = SECRET) -> bytes:
    authenticator = os.urandom(16)
    body = _attribute(1, user.encode()) + _attribute(
        2, _hide_password(password.encode(), secret.encode(), authenticator)
    )
    return struct.pack("!BBH", ACCESS_REQUEST, identifier, 20 + len(body)) + authenticator + body


def reply_is_authentic(reply: bytes, request: bytes, secret: str = SECRET) -> bool:
    expected = hashlib.md5(reply[:4] + request[4:20] + reply[20:] + secret.encode()).digest()
    return reply[1] == request[1] and reply[4:20] == expected


def _vector(packet: bytes) -> str:
    return "0x" + packet[4:20].hex()


# -- PAP behaviours ------------------------------------------------------------


def test_accept_carries_reply_message_and_attributes(server: FreeRadiusServer, secret_files: dict[str, Path]) -> None:
    reply = radclient(secret_files["right"], server.port, 'User-Name = "alice", User-Password = "alice-pass-1"')
    assert reply.code == "Access-Accept", reply.output
    assert reply.values("Reply-Message") == ["Welcome alice"]
    assert reply.values("Class") == ["0x01677270"]
    assert reply.values("Session-Timeout") == ["3600"]
    assert reply.values("Filter-Id") == ["vpn-users"]
    assert reply.values("Tunnel-Type:1") == ["VLAN"]
    assert reply.values("Tunnel-Medium-Type:1") == ["IEEE-802"]
    assert reply.values("Tunnel-Private-Group-Id:1") == ["42"]


def test_wrong_password_is_rejected_with_message(server: FreeRadiusServer, secret_files: dict[str, Path]) -> None:
    reply = radclient(secret_files["right"], server.port, 'User-Name = "alice", User-Password = "nope"')
    assert reply.code == "Access-Reject", reply.output
    assert reply.values("Reply-Message") == [WRONG_PASSWORD_MESSAGE]
    assert reply.values("Class") == []


def test_reject_user_is_rejected_even_with_right_password(
    server: FreeRadiusServer, secret_files: dict[str, Path]
) -> None:
    reply = radclient(secret_files["right"], server.port, 'User-Name = "mallory", User-Password = "mallory-pass-1"')
    assert reply.code == "Access-Reject", reply.output
    assert reply.values("Reply-Message") == ["No VPN for you"]


def test_unknown_user_is_rejected(server: FreeRadiusServer, secret_files: dict[str, Path]) -> None:
    reply = radclient(secret_files["right"], server.port, 'User-Name = "nobody", User-Password = "x"')
    assert reply.code == "Access-Reject", reply.output


def test_discard_user_gets_no_reply(server: FreeRadiusServer, secret_files: dict[str, Path]) -> None:
    since = server.log_size()
    reply = radclient(secret_files["right"], server.port, 'User-Name = "ghost", User-Password = "ghost-pass-1"')
    assert reply.code is None, reply.output
    assert "No reply from server" in reply.output
    assert [e.kind for e in _events_for(server, "ghost")][-1:] == ["discard"]
    server.wait_for_log(r"Not sending reply to client", since=since)


def test_otp_challenge_then_code_accepts(server: FreeRadiusServer, secret_files: dict[str, Path]) -> None:
    challenge = radclient(secret_files["right"], server.port, 'User-Name = "otto", User-Password = "otto-pass-1"')
    assert challenge.code == "Access-Challenge", challenge.output
    assert challenge.values("Reply-Message") == [OTP_PROMPT]
    (state,) = challenge.values("State")
    answer = f'User-Name = "otto", User-Password = "{OTP_CODE}", State = {state}'
    accept = radclient(secret_files["right"], server.port, answer)
    assert accept.code == "Access-Accept", accept.output
    replayed = radclient(secret_files["right"], server.port, answer)
    assert replayed.code == "Access-Reject", "a used State must not be accepted again"


def test_otp_wrong_code_or_password_rejects(server: FreeRadiusServer, secret_files: dict[str, Path]) -> None:
    challenge = radclient(secret_files["right"], server.port, 'User-Name = "otto", User-Password = "otto-pass-1"')
    (state,) = challenge.values("State")
    wrong = radclient(
        secret_files["right"], server.port, f'User-Name = "otto", User-Password = "000000", State = {state}'
    )
    assert wrong.code == "Access-Reject", wrong.output
    bad_password = radclient(secret_files["right"], server.port, 'User-Name = "otto", User-Password = "nope"')
    assert bad_password.code == "Access-Reject", bad_password.output


# -- shared secret and Message-Authenticator -------------------------------------


def test_wrong_secret_with_message_authenticator_is_dropped(
    server: FreeRadiusServer, secret_files: dict[str, Path]
) -> None:
    since = server.log_size()
    signed = 'User-Name = "alice", User-Password = "alice-pass-1", Message-Authenticator = 0x00'
    reply = radclient(secret_files["wrong"], server.port, signed)
    assert reply.code is None, reply.output
    server.wait_for_log(r"invalid Message-Authenticator!\s+\(Shared secret is incorrect\.\)", since=since)


def test_wrong_secret_without_message_authenticator_gives_unverifiable_reply(
    server: FreeRadiusServer, secret_files: dict[str, Path]
) -> None:
    reply = radclient(secret_files["wrong"], server.port, 'User-Name = "alice", User-Password = "alice-pass-1"')
    assert reply.code is None, reply.output
    assert "invalid Response Authenticator" in reply.output


def test_require_ma_port_drops_unsigned_and_answers_signed(
    server: FreeRadiusServer, secret_files: dict[str, Path]
) -> None:
    since = server.log_size()
    unsigned = radclient(
        secret_files["right"], server.port_require_ma, 'User-Name = "alice", User-Password = "alice-pass-1"'
    )
    assert unsigned.code is None, unsigned.output
    server.wait_for_log(r"Packet does not contain required Message-Authenticator", since=since)
    signed = radclient(
        secret_files["right"],
        server.port_require_ma,
        'User-Name = "alice", User-Password = "alice-pass-1", Message-Authenticator = 0x00',
    )
    assert signed.code == "Access-Accept", signed.output


# -- holds, threading, duplicates -------------------------------------------------


def _held_exchange(server: FreeRadiusServer, user: str, password: str, secret_file: Path, hold_s: float) -> None:
    """Send, retransmit the same bytes during the hold, and check one hold and one reply."""
    request = pap_request(identifier=77, user=user, password=password)
    vector = _vector(request)
    since = server.log_size()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.sendto(request, (HOST, server.port))
        _wait_for_event(server, "hold-start", vector)
        sock.sendto(request, (HOST, server.port))
        server.wait_for_log(r"Ignoring duplicate packet from client localhost port \d+ - ID: 77", since=since)

        meanwhile = radclient(secret_file, server.port, 'User-Name = "alice", User-Password = "alice-pass-1"')
        assert meanwhile.code == "Access-Accept", "a held request must not block others"
        assert not any(e.kind == "hold-end" and e.vector == vector for e in server.events())

        sock.settimeout(hold_s + 30)
        reply = sock.recv(4096)
        assert reply[0] == ACCESS_ACCEPT and reply_is_authentic(reply, request)
        held = [e.kind for e in server.events() if e.vector == vector]
        assert held == ["hold-start", "hold-end", "accept"], held
        sock.settimeout(2)
        with pytest.raises(TimeoutError):
            sock.recv(4096)

        # Within cleanup_delay a retransmission gets the cached reply, not a new hold.
        sock.sendto(request, (HOST, server.port))
        sock.settimeout(5)
        assert sock.recv(4096) == reply
    assert [e.kind for e in server.events() if e.vector == vector].count("hold-start") == 1


def test_held_request_answers_once_and_does_not_block(
    server: FreeRadiusServer, secret_files: dict[str, Path]
) -> None:
    _held_exchange(server, "hal", "hal-pass-1", secret_files["right"], SHORT_HOLD_S)


@pytest.mark.slow
def test_sixty_five_second_hold_still_answers(server: FreeRadiusServer, secret_files: dict[str, Path]) -> None:
    _held_exchange(server, "slowhal", "slowhal-pass-1", secret_files["right"], 65)


# -- helper hygiene ---------------------------------------------------------------


def test_log_redacts_secret_and_passwords(server: FreeRadiusServer, secret_files: dict[str, Path]) -> None:
    radclient(secret_files["right"], server.port, 'User-Name = "alice", User-Password = "alice-pass-1"')
    text = server.log_text()
    assert "Welcome alice" in text
    assert SECRET not in text and "alice-pass-1" not in text
    assert SECRET not in repr(USERS) and "alice-pass-1" not in repr(USERS)


def test_two_instances_run_side_by_side_and_stop_cleanly(tmp_path: Path, secret_files: dict[str, Path]) -> None:
    users = [User("bob", "bob-pass-1")]
    with FreeRadiusServer(tmp_path / "a", SECRET, users) as first, FreeRadiusServer(
        tmp_path / "b", SECRET, users
    ) as second:
        ports = {first.port, first.port_require_ma, second.port, second.port_require_ma}
        assert len(ports) == 4
        for srv in (first, second):
            reply = radclient(secret_files["right"], srv.port, 'User-Name = "bob", User-Password = "bob-pass-1"')
            assert reply.code == "Access-Accept", reply.output
        pid = first.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- EAP: EAP-TLS (1.2 and 1.3), PEAP-MSCHAPv2, PEAP-TLS, checked with eapol_test ---------

needs_eapol_test = pytest.mark.skipif(EAPOL_TEST is None, reason="needs eapol_test (Debian package eapoltest)")
EAP_SECRET = "eap-shared-secret"
SERVER_KEY_PASSWORD = "server-key-pass"
EAP_USERS = (
    User("carol"),  # certificate only: EAP-TLS and PEAP-TLS
    User("dave", "dave-pass-1", reply_attributes=(("Filter-Id", "eap-users"),)),
    User("erin", "erin-pass-1", hold_s=2),
    User("rex", "rex-pass-1", behaviour=Behaviour.REJECT),
    User("ghost", "ghost-pass-1", behaviour=Behaviour.DISCARD),
)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _certificate(
    subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey, usage: str
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=usage == "ca", path_length=None), critical=True)
    )
    if usage == "ca":
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        eku = ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        ).add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if usage == "server":
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    path.chmod(0o600)
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(folder: Path) -> Pki:
    """CA, server cert (serverAuth, encrypted key) and client cert for "carol" (clientAuth)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("Probe Test CA", "Probe Test CA", ca_key, ca_key, "ca")
    return Pki(
        ca=_write_cert(folder / "ca.pem", ca),
        server_cert=_write_cert(
            folder / "server.pem", _certificate("radius.test", "Probe Test CA", server_key, ca_key, "server")
        ),
        server_key=_write_key(folder / "server.key", server_key, SERVER_KEY_PASSWORD),
        client_cert=_write_cert(
            folder / "client.pem", _certificate("carol", "Probe Test CA", client_key, ca_key, "client")
        ),
        client_key=_write_key(folder / "client.key", client_key),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def eap_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[FreeRadiusServer]:
    eap = EapConfig(
        ca_file=pki.ca,
        server_cert=pki.server_cert,
        server_key=pki.server_key,
        server_key_password=SERVER_KEY_PASSWORD,
        tls_max_version="1.3",
    )
    with FreeRadiusServer(tmp_path_factory.mktemp("freeradius-eap"), EAP_SECRET, EAP_USERS, eap=eap) as srv:
        yield srv


@dataclass
class EapolResult:
    exit_code: int
    output: str

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.output.rstrip().endswith("SUCCESS")


def eapol_test(server: FreeRadiusServer, folder: Path, network: dict[str, str], timeout_s: int = 15) -> EapolResult:
    """Run eapol_test with one network block; values are written quoted unless they are methods."""
    assert EAPOL_TEST is not None
    bare = {"key_mgmt", "eap"}
    body = "".join(f"\t{k}={v}\n" if k in bare else f'\t{k}="{v}"\n' for k, v in network.items())
    conf = folder / f"eapol-{os.urandom(4).hex()}.conf"
    conf.write_text(f"network={{\n\tkey_mgmt=IEEE8021X\n{body}}}\n")
    argv = [EAPOL_TEST, "-c", str(conf), "-a", HOST, "-p", str(server.port), "-s", EAP_SECRET, "-t", str(timeout_s)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 30)
    except subprocess.TimeoutExpired:
        pytest.fail("eapol_test did not exit")  # no argv in the message: it holds the secret
    return EapolResult(done.returncode, done.stdout + done.stderr)


def _eap_tls(pki: Pki, tls13: bool) -> dict[str, str]:
    return {
        "eap": "TLS",
        "identity": "carol",
        "ca_cert": str(pki.ca),
        "client_cert": str(pki.client_cert),
        "private_key": str(pki.client_key),
        "phase1": f"tls_disable_tlsv1_3={0 if tls13 else 1}",
    }


def _peap_mschapv2(pki: Pki, identity: str, password: str, outer: str | None = None) -> dict[str, str]:
    network = {"eap": "PEAP", "identity": identity, "password": password, "ca_cert": str(pki.ca)}
    if outer:
        network["anonymous_identity"] = outer
    return network | {"phase1": "peapver=0", "phase2": "auth=MSCHAPV2"}


def _last_event(server: FreeRadiusServer, user: str) -> str:
    kinds = [event.kind for event in _events_for(server, user)]
    return kinds[-1] if kinds else "none"


@needs_eapol_test
@pytest.mark.eapol_test
@pytest.mark.parametrize("tls13", [True, False], ids=["tls1.3", "tls1.2"])
def test_eap_tls_accepts_with_matching_keys(
    eap_server: FreeRadiusServer, pki: Pki, tmp_path: Path, tls13: bool
) -> None:
    result = eapol_test(eap_server, tmp_path, _eap_tls(pki, tls13))
    assert result.succeeded, eap_server.log_text()[-3000:]
    assert "MPPE keys OK: 1  mismatch: 0" in result.output
    assert f"SSL: Using TLS version TLSv1.{3 if tls13 else 2}" in result.output
    assert _last_event(eap_server, "carol") == "accept"


@needs_eapol_test
@pytest.mark.eapol_test
def test_peap_mschapv2_accepts_and_rejects_wrong_password(
    eap_server: FreeRadiusServer, pki: Pki, tmp_path: Path
) -> None:
    good = eapol_test(eap_server, tmp_path, _peap_mschapv2(pki, "dave", "dave-pass-1"))
    assert good.succeeded, eap_server.log_text()[-3000:]
    assert "MPPE keys OK: 1  mismatch: 0" in good.output
    assert "SSL: Using TLS version TLSv1.2" in good.output
    assert "Attribute 11 (?Unknown?) length=11" in good.output.split("code=2 (Access-Accept)", 1)[1]  # Filter-Id
    assert _last_event(eap_server, "dave") == "accept"

    bad = eapol_test(eap_server, tmp_path, _peap_mschapv2(pki, "dave", "wrong-pass"))
    assert not bad.succeeded
    assert "code=3 (Access-Reject)" in bad.output
    assert _last_event(eap_server, "dave") == "reject"


@needs_eapol_test
@pytest.mark.eapol_test
def test_peap_tls_uses_inner_identity_behind_anonymous_outer(
    eap_server: FreeRadiusServer, pki: Pki, tmp_path: Path
) -> None:
    network = {
        "eap": "PEAP",
        "identity": "carol",
        "anonymous_identity": "anonymous",
        "ca_cert": str(pki.ca),
        "phase1": "peapver=0",
        "phase2": "auth=TLS",
        "ca_cert2": str(pki.ca),
        "client_cert2": str(pki.client_cert),
        "private_key2": str(pki.client_key),
    }
    before = len(_events_for(eap_server, "carol"))
    result = eapol_test(eap_server, tmp_path, network)
    assert result.succeeded, eap_server.log_text()[-3000:]
    assert "MPPE keys OK: 1  mismatch: 0" in result.output
    assert [e.kind for e in _events_for(eap_server, "carol")][before:] == ["accept"]


@needs_eapol_test
@pytest.mark.eapol_test
def test_peap_hold_is_on_the_final_round_only(eap_server: FreeRadiusServer, pki: Pki, tmp_path: Path) -> None:
    result = eapol_test(eap_server, tmp_path, _peap_mschapv2(pki, "erin", "erin-pass-1", outer="anonymous"))
    assert result.succeeded, eap_server.log_text()[-3000:]
    events = _events_for(eap_server, "erin")
    assert [e.kind for e in events] == ["hold-start", "hold-end", "accept"]
    assert len({e.vector for e in events}) == 1, "hold and accept belong to one (the last) request"


@needs_eapol_test
@pytest.mark.eapol_test
def test_eap_reject_user_gets_eap_failure_after_the_method_succeeds(
    eap_server: FreeRadiusServer, pki: Pki, tmp_path: Path
) -> None:
    result = eapol_test(eap_server, tmp_path, _peap_mschapv2(pki, "rex", "rex-pass-1"))
    assert not result.succeeded
    assert "code=3 (Access-Reject)" in result.output
    assert "EAP: Received EAP-Failure" in result.output
    assert "MS-MPPE" not in result.output.split("code=3 (Access-Reject)", 1)[1]
    assert _last_event(eap_server, "rex") == "reject"


@needs_eapol_test
@pytest.mark.eapol_test
def test_eap_discard_user_final_round_gets_no_reply(eap_server: FreeRadiusServer, pki: Pki, tmp_path: Path) -> None:
    result = eapol_test(eap_server, tmp_path, _peap_mschapv2(pki, "ghost", "ghost-pass-1"), timeout_s=6)
    assert not result.succeeded
    assert "Access-Challenge" in result.output, "the TLS and inner rounds are answered"
    assert "Access-Accept" not in result.output and "Access-Reject" not in result.output
    assert _last_event(eap_server, "ghost") == "discard"


@needs_eapol_test
@pytest.mark.eapol_test
def test_eap_identity_without_user_entry_is_rejected(eap_server: FreeRadiusServer, pki: Pki, tmp_path: Path) -> None:
    network = _eap_tls(pki, tls13=False) | {"identity": "stranger"}
    result = eapol_test(eap_server, tmp_path, network)
    assert not result.succeeded
    assert f"Value: '{UNKNOWN_USER_MESSAGE}'" in result.output


def test_eap_log_redacts_key_password(eap_server: FreeRadiusServer) -> None:
    text = eap_server.log_text()
    assert "private_key_password" in text
    assert SERVER_KEY_PASSWORD not in text and EAP_SECRET not in text
