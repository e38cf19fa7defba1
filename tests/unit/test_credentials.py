"""The edge that reads certificates, keys, PKCS#12 bundles and CA files (probe/credentials.py).

It loads once per unchanged file (stat identity: device, inode, size, mtime_ns,
plus a keyed hash of the password), hands out immutable values with no
secret in their repr, and words every problem in one line that names the
file, never the password. Beyond it, probe/eap reads no file at all: the last
test runs whole conversations with file access forbidden.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import shutil
from pathlib import Path

import pytest

from probe import credentials as cr
from probe import pki
from probe.eap.packet import EapType
from probe.eap.peer import EapPeer, PeerConfig
from probe.eap.tls import TlsConfigError
from probe.emulator.eap_server import EapServerPolicy, EapServerSession, ServerTls

P12_PASSWORD = "p12-Secret-Sauce-42"
KEY_PASSPHRASE = "key-Passphrase-Zebra-7"
PASSWORD = "Lab-Password-1"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.init_pki(tmp_path_factory.mktemp("pki"), p12_password=P12_PASSWORD, key_passphrase=KEY_PASSPHRASE)


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    cr.clear_caches()


def one_line(exc: BaseException, *secrets: str) -> str:
    text = str(exc)
    assert "\n" not in text and text
    for secret in secrets:
        assert secret not in text
    return text


# --------------------------------------------------------------------------- loading


def test_pem_pair_and_pkcs12_load_the_same_certificate(lab: pki.Pki) -> None:
    alice = lab.users["alice"]
    pem = cr.load_client_credentials(alice.cert, alice.key)
    p12 = cr.load_client_credentials(pkcs12=alice.p12, pkcs12_password=P12_PASSWORD)
    assert pem is not None and p12 is not None
    assert pem.cert == p12.cert and pem.cert.subject.rfc4514_string() == "CN=alice"
    assert pem.origin == f"key file {alice.key}" and p12.origin == f"PKCS#12 file {alice.p12}"
    assert "PRIVATE" not in repr(pem) and "key=" not in repr(pem) and P12_PASSWORD not in repr(p12)


def test_nothing_given_is_no_credentials(lab: pki.Pki) -> None:
    assert cr.load_client_credentials() is None


def test_encrypted_key_with_its_passphrase(lab: pki.Pki) -> None:
    alice = lab.users["alice"]
    assert alice.encrypted_key is not None
    loaded = cr.load_client_credentials(alice.cert, alice.encrypted_key, KEY_PASSPHRASE)
    assert loaded is not None and loaded.cert.subject.rfc4514_string() == "CN=alice"


def test_system_trust_for_no_ca_file() -> None:
    assert cr.load_trust(None) is cr.SYSTEM_TRUST and cr.SYSTEM_TRUST.system


def test_ca_file(lab: pki.Pki) -> None:
    trust = cr.load_trust(lab.ca)
    assert not trust.system and [c.subject.rfc4514_string() for c in trust.certs] == [f"CN={pki.CA_NAME}"]


# --------------------------------------------------------------------------- the cache


def test_unchanged_files_are_loaded_once(lab: pki.Pki) -> None:
    alice = lab.users["alice"]
    first = cr.load_client_credentials(alice.cert, alice.key)
    again = cr.load_client_credentials(str(alice.cert), str(alice.key))  # str or Path: the same file
    assert again is first
    assert (cr._CREDENTIALS.hits, cr._CREDENTIALS.misses) == (1, 1)
    assert cr.load_trust(lab.ca) is cr.load_trust(lab.ca)


def test_a_changed_file_is_loaded_again(lab: pki.Pki, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    shutil.copy(lab.users["alice"].cert, cert)
    shutil.copy(lab.users["alice"].key, key)
    first = cr.load_client_credentials(cert, key)
    shutil.copy(lab.users["bob"].cert if "bob" in lab.users else lab.users["ecdsa-user"].cert, cert)
    shutil.copy(lab.users["bob"].key if "bob" in lab.users else lab.users["ecdsa-user"].key, key)
    second = cr.load_client_credentials(cert, key)
    assert second is not first and second is not None and first is not None and second.cert != first.cert


def test_the_same_content_touched_is_loaded_again(lab: pki.Pki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    shutil.copy(lab.ca, ca)
    first = cr.load_trust(ca)
    stat = os.stat(ca)
    os.utime(ca, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cr.load_trust(ca) is not first
    assert cr._TRUST.misses == 2


def test_a_replaced_file_with_the_same_times_is_loaded_again(lab: pki.Pki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    shutil.copy(lab.ca, ca)
    first = cr.load_trust(ca)
    stat = os.stat(ca)
    replacement = tmp_path / "new.pem"
    shutil.copy(lab.untrusted_ca, replacement)
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, ca)  # another inode (and here another size)
    assert cr.load_trust(ca).certs != first.certs


def test_a_different_password_is_another_entry(lab: pki.Pki) -> None:
    alice = lab.users["alice"]
    cr.load_client_credentials(pkcs12=alice.p12, pkcs12_password=P12_PASSWORD)
    with pytest.raises(TlsConfigError, match="cannot open it"):
        cr.load_client_credentials(pkcs12=alice.p12, pkcs12_password="wrong-Password-77")
    for key in cr._CREDENTIALS:
        assert P12_PASSWORD.encode() not in repr(key).encode() and P12_PASSWORD not in repr(key)


def test_the_caches_are_bounded(lab: pki.Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cr, "CACHE_SIZE", 3)
    files = []
    for i in range(5):
        ca = tmp_path / f"ca{i}.pem"
        shutil.copy(lab.ca, ca)
        files.append(ca)
        cr.load_trust(ca)
    assert len(cr._TRUST) == 3
    before = cr._TRUST.misses
    cr.load_trust(files[0])  # the oldest was dropped
    assert cr._TRUST.misses == before + 1
    cr.load_trust(files[4])
    assert cr._TRUST.hits >= 1


def test_shared_contexts_follow_the_loaded_values(lab: pki.Pki) -> None:
    alice = lab.users["alice"]
    creds, trust = cr.load_client_credentials(alice.cert, alice.key), cr.load_trust(lab.ca)
    cache = cr.ContextCache()
    one = cache.client(creds, trust, verify=False, min_version="1.2", max_version="1.3")
    assert cache.client(creds, trust, verify=False, min_version="1.2", max_version="1.3") is one
    assert cache.client(creds, trust, verify=False, min_version="1.2", max_version="1.2") is not one
    assert cache.client(None, trust, verify=False, min_version="1.2", max_version="1.3") is not one
    lines: list[bytes] = []
    assert cache.client(creds, trust, verify=False, min_version="1.2", max_version="1.3",
                        keylog=lines.append) is not one  # a key log belongs to one caller


# --------------------------------------------------------------------------- one-line errors


def test_error_lines(lab: pki.Pki, tmp_path: Path) -> None:
    alice, ecdsa = lab.users["alice"], lab.users["ecdsa-user"]
    missing = tmp_path / "missing.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate\n")
    assert alice.encrypted_key is not None
    cases = [
        (lambda: cr.load_client_credentials(missing, alice.key), f"certificate file {missing}: cannot read ("),
        (lambda: cr.load_client_credentials(alice.cert, missing), f"key file {missing}: cannot read ("),
        (lambda: cr.load_client_credentials(garbage, alice.key),
         f"certificate file {garbage}: not a PEM certificate file (no readable CERTIFICATE block)"),
        (lambda: cr.load_client_credentials(alice.cert, alice.encrypted_key),
         f"key file {alice.encrypted_key}: the key is encrypted and no password was given"),
        (lambda: cr.load_client_credentials(alice.cert, alice.key, KEY_PASSPHRASE),
         f"key file {alice.key}: a password was given but the key is not encrypted"),
        (lambda: cr.load_client_credentials(alice.cert, alice.encrypted_key, "wrong-Passphrase-1"),
         f"key file {alice.encrypted_key}: not a usable PEM private key, or the password is wrong"),
        (lambda: cr.load_client_credentials(alice.cert, ecdsa.key),
         f"key file {ecdsa.key}: the private key does not match the certificate"),
        (lambda: cr.load_client_credentials(pkcs12=alice.p12, pkcs12_password="wrong-Password-77"),
         f"PKCS#12 file {alice.p12}: cannot open it (wrong password, or not a PKCS#12 file)"),
        (lambda: cr.load_client_credentials(pkcs12=missing), f"PKCS#12 file {missing}: cannot read ("),
        (lambda: cr.load_client_credentials(alice.cert, alice.key, pkcs12=alice.p12),
         "give either a PKCS#12 file or a certificate and key, not both"),
        (lambda: cr.load_client_credentials(alice.cert), "a certificate needs its key: give both cert_file and key_file"),
        (lambda: cr.load_trust(missing), f"CA file {missing}: cannot read ("),
        (lambda: cr.load_trust(garbage), f"CA file {garbage}: not a PEM certificate file"),
    ]
    for call, start in cases:
        with pytest.raises(TlsConfigError) as caught:
            call()
        text = one_line(caught.value, KEY_PASSPHRASE, "wrong-Passphrase-1", "wrong-Password-77", P12_PASSWORD)
        assert text.startswith(start), (text, start)
        assert not isinstance(caught.value, ValueError)


def test_server_context_errors_from_files(lab: pki.Pki) -> None:
    with pytest.raises(TlsConfigError, match=re.escape("a TLS server needs a certificate and key")):
        cr.server_context_from_files()
    with pytest.raises(TlsConfigError, match=re.escape("verifying client certificates needs a CA file (ca_file)")):
        cr.server_context_from_files(cert_file=lab.server_chain, key_file=lab.server_key)


# --------------------------------------------------------------------------- beyond the edge: no file I/O


def test_probe_eap_reads_no_file_during_a_whole_conversation(lab: pki.Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Load at the edge, then forbid every file access: peer and server still authenticate."""
    alice = lab.users["alice"]
    credentials, trust = cr.load_client_credentials(alice.cert, alice.key), cr.load_trust(lab.ca)
    policy = EapServerPolicy(server_cert=lab.server_chain, server_key=lab.server_key, ca_file=lab.ca)
    tls = ServerTls(policy)  # the emulator's edge: loads its files here
    opened: list[str] = []

    def forbidden(*args: object, **kwargs: object) -> None:
        opened.append(str(args[:1]))
        raise AssertionError(f"file access beyond the edge: {args[:1]}")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(os, "stat", forbidden)
    monkeypatch.setattr(Path, "read_bytes", forbidden)
    monkeypatch.setattr(Path, "resolve", forbidden)
    for outer, inner in ((EapType.TLS, None), (EapType.PEAP, EapType.MSCHAPV2), (EapType.PEAP, EapType.TLS)):
        peer = EapPeer(PeerConfig(outer=outer, inner=inner, identity="alice", password=PASSWORD.encode(),
                                  credentials=credentials, trust=trust, server_name="nps.lab.test", tls_max="1.2"))
        server = EapServerSession(policy, {"alice": PASSWORD}.get, tls=tls)
        step = server.handle(peer.start())
        for _ in range(60):
            answer = peer.receive(step.eap)
            if answer.reply is None:
                break
            step = server.handle(answer.reply)
        assert (step.kind, peer.state) == ("success", "success")
    assert opened == []


_FILE_CALLS = {"open", "read_bytes", "read_text", "write_bytes", "write_text", "stat", "resolve", "urandom",
               "exists", "is_file"}
_MUTATORS = {"append", "pop", "popitem", "setdefault", "update", "clear", "add", "discard", "remove", "insert"}


def _findings(path: Path) -> list[str]:
    """File access, and module-level state mutated from inside functions (a cache), in one module."""
    tree = ast.parse(path.read_text())
    module_names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in _FILE_CALLS:
                found.append(f"{where}: calls {name}()")
            if isinstance(func, ast.Attribute) and func.attr in _MUTATORS and isinstance(func.value, ast.Name) \
                    and func.value.id in module_names:
                found.append(f"{where}: mutates module-level {func.value.id}")
        if isinstance(node, ast.Global):
            found.append(f"{where}: global {', '.join(node.names)}")
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in module_names:
                    found.append(f"{where}: stores into module-level {t.value.id}")
    return found


def test_probe_eap_does_no_file_io_and_keeps_no_module_state() -> None:
    root = Path(__file__).resolve().parents[2] / "probe" / "eap"
    assert [f for path in sorted(root.glob("*.py")) for f in _findings(path)] == []


def test_the_checker_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("_SEEN = {}\n\ndef f(p):\n    _SEEN[p] = open(p).read()\n    _SEEN.pop(p)\n")
    assert sorted(_findings(bad)) == ["bad.py:4: calls open()", "bad.py:4: stores into module-level _SEEN",
                                      "bad.py:5: mutates module-level _SEEN"]
