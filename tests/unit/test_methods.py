"""The method registry (probe.methods): one entry per method, the rules every front door reads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from probe.method_eap import EapMethod
from probe.method_pap import PapMethod
from probe.methods import (METHOD_NAMES, METHODS, Given, MethodError, MethodSpec, Problem, UnknownMethod, make_method,
                           spec)
from probe.model import Module, ProbeConfig, Secret, TlsOptions
from probe.outcome import ErrorKind

ROOT = Path(__file__).resolve().parents[2]


def test_every_method_has_one_entry() -> None:
    assert METHOD_NAMES[:4] == ("pap", "eap-tls", "peap-mschapv2", "peap-tls")
    assert {"status-server", "accounting"} <= set(METHOD_NAMES)  # issue 16: the non-authentication checks
    for name, entry in METHODS.items():
        assert isinstance(entry, MethodSpec) and entry.name == name and spec(name) is entry


@pytest.mark.parametrize("name, credential, eap, ca, mppe, binding, reject, emulator", [
    ("pap", "password", False, False, False, False, "access_reject", ("pap", None)),
    ("eap-tls", "certificate", True, True, True, False, "client_certificate_rejected", ("eap-tls", None)),
    ("peap-mschapv2", "password", True, True, True, True, "eap_credentials_rejected", ("peap", "mschapv2")),
    ("peap-tls", "certificate", True, True, True, True, "client_certificate_rejected", ("peap", "tls")),
])
def test_entries(name: str, credential: str, eap: bool, ca: bool, mppe: bool, binding: bool, reject: str,
                 emulator: tuple[str, str | None]) -> None:
    s = spec(name)
    assert (s.credential, s.eap, s.needs_ca, s.mppe, s.cryptobinding, s.reject_code) == (
        credential, eap, ca, mppe, binding, reject)
    assert (s.emulator_name, s.emulator_inner) == emulator
    assert s.otp is (name == "pap")


def test_unknown_method_says_what_exists_and_guesses() -> None:
    with pytest.raises(UnknownMethod, match=r"unknown method 'peap-mschap' \(choose pap, eap-tls, peap-mschapv2, "
                                            r"peap-tls, .*\); did you mean 'peap-mschapv2'\?"):
        spec("peap-mschap")
    with pytest.raises(UnknownMethod) as exc:
        spec("kerberos")
    assert "did you mean" not in str(exc.value) and exc.value.name == "kerberos"
    assert not isinstance(exc.value, ValueError)


@pytest.mark.parametrize("name, asked, expected", [
    ("eap-tls", None, ("1.2", "1.3")), ("eap-tls", "1.2", ("1.2", "1.2")), ("eap-tls", "1.1", ("1.1", "1.1")),
    ("eap-tls", "1.0", ("1.0", "1.0")), ("peap-mschapv2", None, ("1.2", "1.2")), ("peap-tls", None, ("1.2", "1.2")),
    ("peap-mschapv2", "1.3", ("1.2", "1.2")), ("peap-tls", "1.0", ("1.0", "1.0")),
])
def test_tls_range(name: str, asked: str | None, expected: tuple[str, str]) -> None:
    assert spec(name).tls_range(asked) == expected


def test_tls_defaults_and_caps() -> None:
    assert spec("eap-tls").tls_default_max == "1.3" and "1.3" in spec("eap-tls").tls_versions
    for name in ("peap-mschapv2", "peap-tls"):
        assert spec(name).tls_default_max == "1.2" and "1.3" not in spec(name).tls_versions  # as NPS
    assert spec("pap").tls_default_max is None and spec("pap").tls_versions == ()


def test_default_outer_identity() -> None:
    assert spec("eap-tls").default_outer_identity("alice@lab.test") == "alice@lab.test"
    assert spec("peap-mschapv2").default_outer_identity("alice@lab.test") == "anonymous"
    assert spec("peap-tls").default_outer_identity("alice") == "anonymous"
    assert spec("pap").default_outer_identity("alice") == "alice"


@pytest.mark.parametrize("name, given, problems", [
    ("pap", Given(password=True), []),
    ("pap", Given(), [Problem("missing", "password")]),
    ("pap", Given(password=True, otp=True), []),
    ("pap", Given(password=True, ca=True, tls=True), [Problem("unused", "tls")]),
    ("pap", Given(password=True, cert=True, tls=True), [Problem("unused", "tls")]),
    ("peap-mschapv2", Given(password=True, ca=True, tls=True), []),
    ("peap-mschapv2", Given(password=True, insecure=True, tls=True), []),
    ("peap-mschapv2", Given(password=True), [Problem("missing", "ca")]),
    ("peap-mschapv2", Given(ca=True, tls=True), [Problem("missing", "password")]),
    ("peap-mschapv2", Given(password=True, otp=True, ca=True, tls=True), [Problem("unused", "otp")]),
    ("peap-mschapv2", Given(password=True, ca=True, pkcs12=True, tls=True), [Problem("unused", "client_certificate")]),
    ("peap-mschapv2", Given(password=True, ca=True, cert=True, tls=True), [Problem("unused", "client_certificate")]),
    ("eap-tls", Given(cert=True, key=True, ca=True, tls=True), []),
    ("eap-tls", Given(pkcs12=True, ca=True, tls=True), []),
    ("eap-tls", Given(cert=True, ca=True, tls=True), [Problem("missing", "certificate")]),
    ("eap-tls", Given(key=True, ca=True, tls=True), [Problem("missing", "certificate")]),
    ("eap-tls", Given(pkcs12=True, key=True, ca=True, tls=True), [Problem("unused", "pkcs12_and_cert")]),
    ("eap-tls", Given(pkcs12=True, cert=True, ca=True, tls=True), [Problem("unused", "pkcs12_and_cert")]),
    ("peap-tls", Given(cert=True, key=True, tls=True), [Problem("missing", "ca")]),
    ("peap-tls", Given(cert=True, key=True, ca=True, password=True, tls=True), [Problem("unused", "password")]),
    ("eap-tls", Given(), [Problem("missing", "certificate"), Problem("missing", "ca")]),
])
def test_requirements(name: str, given: Given, problems: list[Problem]) -> None:
    assert spec(name).requirements(given) == problems


def test_given_of_a_module() -> None:
    m = Module(name="m", method="eap-tls", identity="alice", tls=TlsOptions(cert="c", key="k", ca="ca"))
    assert Given.of(m) == Given(cert=True, key=True, ca=True, tls=True)
    m = Module(name="m", method="pap", identity="a", password=Secret(b"p"), otp=Secret(b"1"))
    assert Given.of(m) == Given(password=True, otp=True)
    m = Module(name="m", method="peap-tls", identity="a", tls=TlsOptions(insecure=True))
    assert Given.of(m) == Given(insecure=True, tls=True)
    m = Module(name="m", method="peap-tls", identity="a", tls=TlsOptions(server_name="nps"))
    assert Given.of(m).tls and not Given.of(m).ca


def test_make_method_uses_the_factory() -> None:
    pap = make_method(ProbeConfig(method="pap", identity="alice", password=Secret(b"pw"), otp=Secret(b"123")))
    assert isinstance(pap, PapMethod) and pap.user_name == "alice" and "pw" not in repr(pap)
    with pytest.raises(ValueError, match="PAP needs a password"):
        make_method(ProbeConfig(method="pap", identity="alice"))
    with pytest.raises(ValueError, match="longer than the 128 bytes"):
        make_method(ProbeConfig(method="pap", identity="alice", password=Secret(b"x" * 129)))
    with pytest.raises(ValueError, match="exceeds the 253-byte User-Name"):
        make_method(ProbeConfig(method="pap", identity="a" * 254, password=Secret(b"x")))
    with pytest.raises(ValueError, match="unknown method 'kerberos'"):
        make_method(ProbeConfig(method="kerberos", identity="a", password=Secret(b"x")))


def test_make_method_eap_outer_identity(tmp_path: Path) -> None:
    from probe.pki import init_pki

    lab = init_pki(tmp_path / "pki")
    cfg = ProbeConfig(method="peap-mschapv2", identity="alice", password=Secret(b"pw"),
                      tls=TlsOptions(ca=str(lab.ca)))
    m = make_method(cfg)
    assert isinstance(m, EapMethod) and m.user_name == "anonymous"
    cfg = ProbeConfig(method="peap-mschapv2", identity="alice", password=Secret(b"pw"), outer_identity="x@lab",
                      tls=TlsOptions(ca=str(lab.ca)))
    assert make_method(cfg).user_name == "x@lab"


def test_method_error_is_a_protocol_error() -> None:
    e = MethodError("eap", "went wrong", state="handshake")
    assert e.kind is ErrorKind.EAP and e.detail == "went wrong" and e.state == "handshake"
    assert not isinstance(e, ValueError)
    assert MethodError("whatever", "x").kind is ErrorKind.INTERNAL


def test_probe_config_composes_the_module() -> None:
    m = Module(name="m", method="pap", identity="alice", password=Secret(b"pw"), attrs=[("Class", "x")])
    cfg = ProbeConfig(m, ("127.0.0.1", 1812), Secret(b"s"))
    assert cfg.module is m and cfg.method == "pap" and cfg.extra_attrs is m.attrs and cfg.target == "127.0.0.1:1812"
    m.identity = "bob"
    assert cfg.identity == "bob"  # read through, never copied
    with pytest.raises(AttributeError):
        cfg.identity = "carol"  # type: ignore[misc]  # read-only on purpose
    with pytest.raises(TypeError):
        ProbeConfig(m, ("127.0.0.1", 1812), method="pap")
    assert "pw" not in repr(cfg) and "Secret(***)" in repr(cfg)


def test_no_method_name_comparisons_outside_the_registry() -> None:
    r = subprocess.run(["grep", "-rnE", r"method (==|!=|in \(|not in)", "probe/"], cwd=ROOT, capture_output=True,
                       text=True)
    allowed = re.compile(r"^probe/(methods\.py|method_[a-z_]+\.py):")
    offending = [line for line in r.stdout.splitlines() if not allowed.match(line)]
    assert offending == []
