"""Probe files: what loads, and every kind of error naming its exact line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from probe.config import ConfigIssue, ProbeFileError, load_probe_files

SECRET = "S3cret-value-never-shown"
PASSWORD = "Pw-never-shown-42"


@pytest.fixture()
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "nps.secret").write_text(SECRET + "\n")
    (tmp_path / "user.pw").write_text(PASSWORD + "\n")
    (tmp_path / "ca.pem").write_text("not checked here: only readability\n")
    for name in list(__import__("os").environ):
        if name.startswith("PROBE_TEST_"):
            monkeypatch.delenv(name)
    return tmp_path


GOOD = """\
x-common: &common
  method: pap
  password_file: user.pw
  timeout: 5
modules:
  alice:
    <<: *common
    identity: alice
    attrs: {NAS-IP-Address: 192.0.2.50, Framed-MTU: 1400}
  bob:
    <<: *common
    identity: bob
    timeout: ${PROBE_TEST_TIMEOUT:-2.5}
targets:
  nps1:
    address: ${PROBE_TEST_NPS1:-127.0.0.1:11812}
    secret_file: nps.secret
    labels: {site: dc1}
  nps2:
    address: "[::1]:1812"
    secret_env: PROBE_TEST_SECRET
checks:
  - name: alice
    targets: "*"
    module: alice
    expect:
      result: accept
      within: 10
      reply_message: "^Welcome"
      attributes: {Class: vpn, Session-Timeout: [3600]}
  - name: bob
    target: nps1
    module: bob
    expect: {result: reject}
    interval: 30
"""


def write(directory: Path, text: str, name: str = "probe.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if needle in line]
    return hits[occurrence - 1]


def issues(path: Path | list[Path]) -> list[ConfigIssue]:
    with pytest.raises(ProbeFileError) as info:
        load_probe_files([str(p) for p in (path if isinstance(path, list) else [path])])
    return info.value.issues


def test_good_file_loads_with_merges_env_and_star(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_TEST_SECRET", "from-env")
    monkeypatch.setenv("PROBE_TEST_NPS1", "127.0.0.1:18123")
    checks = load_probe_files([str(write(lab, GOOD))])
    assert [(c.name, c.target.name) for c in checks] == [("alice", "nps1"), ("alice", "nps2"), ("bob", "nps1")]
    alice, _, bob = checks
    assert alice.target.address == "127.0.0.1:18123" and (alice.target.host, alice.target.port) == ("127.0.0.1", 18123)
    assert checks[1].target.address == "[::1]:1812" and checks[1].target.secret.value == b"from-env"
    assert alice.target.secret.value == SECRET.encode() and alice.module.password.value == PASSWORD.encode()
    assert alice.module.policy.timeout_s == 5 and bob.module.policy.timeout_s == 2.5  # merge + env default
    assert alice.module.attrs == [("NAS-IP-Address", "192.0.2.50"), ("Framed-MTU", "1400")]
    assert alice.expect.within_s == 10 and alice.expect.reply_message.pattern == "^Welcome"
    assert alice.expect.attributes == {"Class": ["vpn"], "Session-Timeout": ["3600"]}
    assert bob.expect.result == "reject" and bob.interval_s == 30 and alice.interval_s == 60
    assert alice.target.labels == {"site": "dc1"} and alice.line == line_of(lab / "probe.yaml", "- name: alice")
    cfg = alice.probe_config(("127.0.0.1", 18123))
    assert cfg.expected == "accept" and cfg.target == "127.0.0.1:18123" and cfg.extra_attrs == alice.module.attrs
    assert cfg.policy.listen_s == 90.0  # late_wait defaults to 1.5 x window, as `auth`
    text = repr(checks) + repr(cfg)
    assert SECRET not in text and PASSWORD not in text and "from-env" not in text


# Each case: the YAML with one mistake, the text that marks its line, the field path, words of the message.
BROKEN = [
    ("unknown field", GOOD.replace("    identity: alice\n", "    identity: alice\n    colour: blue\n"),
     "colour: blue", "modules.alice.colour", "unknown field"),
    ("literal password", GOOD.replace("    identity: bob\n", "    identity: bob\n    password: hunter2\n"),
     "password: hunter2", "modules.bob.password", "use password_file or password_env"),
    ("unknown method", GOOD.replace("  method: pap", "  method: kerberos"), "method: kerberos", "modules.alice.method",
     "unknown method 'kerberos'"),
    ("unknown profile", GOOD.replace("  timeout: 5\n", "  timeout: 5\n  profile: cisco\n"), "profile: cisco",
     "modules.alice.profile", "unknown NAS profile 'cisco'"),
    ("unknown attribute", GOOD.replace("Framed-MTU: 1400", "No-Such-Attr: 1"), "No-Such-Attr",
     "modules.alice.attrs.No-Such-Attr", "unknown attribute 'No-Such-Attr'"),
    ("bad attribute value", GOOD.replace("NAS-IP-Address: 192.0.2.50", "NAS-IP-Address: 300.1.1.1"),
     "300.1.1.1", "modules.alice.attrs.NAS-IP-Address", "not a valid ipaddr"),
    ("hidden request attribute", GOOD.replace("Framed-MTU: 1400", "Tunnel-Password: hunter2"), "Tunnel-Password",
     "modules.alice.attrs.Tunnel-Password", "a hidden attribute cannot be sent as a plain value"),
    ("probe-owned attribute", GOOD.replace("Framed-MTU: 1400", "State: 0x01"), "State: 0x01",
     "modules.alice.attrs.State", "the probe sets State itself"),
    ("wrong type", GOOD.replace("  timeout: 5", "  timeout: soon"), "timeout: soon", "modules.alice.timeout",
     "expected a number"),
    ("wrong type list", GOOD.replace("    labels: {site: dc1}", "    labels: [dc1]"), "labels: [dc1]",
     "targets.nps1.labels", "expected a mapping"),
    ("negative", GOOD.replace("    interval: 30", "    interval: -5"), "interval: -5", "checks[1].interval",
     "must be > 0"),
    ("undefined module", GOOD.replace("    module: bob", "    module: carol"), "module: carol", "checks[1].module",
     "undefined module 'carol'"),
    ("undefined target", GOOD.replace("    target: nps1", "    target: nps9"), "target: nps9", "checks[1].target",
     "undefined target 'nps9'"),
    ("unreadable secret", GOOD.replace("secret_file: nps.secret", "secret_file: missing.secret"),
     "secret_file: missing.secret", "targets.nps1.secret_file", "cannot read"),
    ("unreadable password", GOOD.replace("password_file: user.pw", "password_file: nope.pw"),
     "password_file: nope.pw", "modules.alice.password_file", "cannot read"),
    ("unset env", GOOD.replace("${PROBE_TEST_NPS1:-127.0.0.1:11812}", "${PROBE_TEST_UNSET}"),
     "PROBE_TEST_UNSET", "targets.nps1.address", "environment variable PROBE_TEST_UNSET is not set"),
    ("bad address", GOOD.replace("${PROBE_TEST_NPS1:-127.0.0.1:11812}", "nps1:99999"), "nps1:99999",
     "targets.nps1.address", "port '99999'"),
    ("bad regex", GOOD.replace('"^Welcome"', '"(unclosed"'), "(unclosed", "checks[0].expect.reply_message",
     "not a valid regular expression"),
    ("bad result", GOOD.replace("{result: reject}", "{result: maybe}"), "result: maybe", "checks[1].expect.result",
     "unknown result 'maybe'"),
    ("discard with attributes", GOOD.replace("      result: accept\n", "      result: discard\n"),
     "within: 10", "checks[0].expect.within", "a discard has no reply"),
    ("duplicate key", GOOD.replace("    identity: bob\n", "    identity: bob\n    identity: bobby\n"),
     "identity: bobby", "modules.bob.identity", "duplicate key (first at line"),
    ("both target and targets", GOOD.replace("    target: nps1", "    target: nps1\n    targets: [nps2]"),
     "targets: [nps2]", "checks[1].targets", "not both"),
    ("cert with pap", GOOD.replace("    identity: bob\n", "    identity: bob\n    ca: ca.pem\n"),
     "ca: ca.pem", "modules.bob.ca", "pap uses no TLS"),
    ("unknown top level", GOOD + "extra: 1\n", "extra: 1", "extra", "unknown field"),
    ("yaml syntax", GOOD.replace("    labels: {site: dc1}", "    labels: {site: dc1"), "secret_env", "(syntax)",
     "not valid YAML"),
]


@pytest.mark.parametrize("case, text, marker, path, words", BROKEN, ids=[c[0] for c in BROKEN])
def test_each_error_names_its_line_and_field(lab: Path, monkeypatch: pytest.MonkeyPatch, case: str, text: str,
                                             marker: str, path: str, words: str) -> None:
    monkeypatch.setenv("PROBE_TEST_SECRET", "from-env")
    probe = write(lab, text)
    found = issues(probe)
    matching = [i for i in found if i.path == path]
    assert matching, f"no issue at {path}: {[str(i) for i in found]}"
    issue = matching[0]
    if case == "yaml syntax":
        assert issue.line >= line_of(probe, "labels: {site: dc1")
    else:
        assert issue.line == line_of(probe, marker), str(issue)
    assert issue.file == str(probe)
    assert words in issue.message, str(issue)
    assert str(issue).startswith(f"{probe}:{issue.line}: {path}: ")
    everything = "\n".join(map(str, found))
    assert SECRET not in everything and PASSWORD not in everything and "from-env" not in everything


def test_every_error_is_collected(lab: Path) -> None:
    text = (GOOD.replace("  method: pap", "  method: kerberos")
            .replace("Framed-MTU: 1400", "No-Such-Attr: 1")
            .replace("secret_file: nps.secret", "secret_file: missing.secret")
            .replace("    module: bob", "    module: carol")
            .replace("    interval: 30", "    interval: soon"))
    probe = write(lab, text)
    found = issues(probe)
    paths = {i.path for i in found}
    assert {"modules.alice.method", "modules.bob.method", "modules.alice.attrs.No-Such-Attr",
            "targets.nps1.secret_file", "targets.nps2.secret_env", "checks[1].module", "checks[1].interval"} <= paths


def test_errors_from_several_files_and_duplicate_checks(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_TEST_SECRET", "x")
    first = write(lab, GOOD, "a.yaml")
    second = write(lab, GOOD, "b.yaml")
    broken = write(lab, "modules: {}\ntargets: {}\nchecks: []\n", "c.yaml")
    found = issues([first, second, broken])
    assert any(i.file == str(second) and "also defined at" in i.message and str(first) in i.message for i in found)
    assert any(i.file == str(broken) and i.path == "checks" and i.message == "no checks" for i in found)


def test_missing_secret_env_names_the_variable_only(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = write(lab, GOOD)
    (issue,) = [i for i in issues(probe) if i.path == "targets.nps2.secret_env"]
    assert issue.line == line_of(probe, "secret_env: PROBE_TEST_SECRET")
    assert issue.message == "environment variable PROBE_TEST_SECRET is not set or empty"


EAP_MODULES = """\
modules:
  peap:
    method: peap-mschapv2
    identity: alice
    password_file: user.pw
    otp_env: PROBE_TEST_OTP
  tls-no-cert:
    method: eap-tls
    identity: alice
    ca: ca.pem
  tls-no-ca:
    method: peap-tls
    identity: alice
    pkcs12: ca.pem
    key: ca.pem
  tls-ok:
    method: peap-tls
    identity: alice
    pkcs12: user.p12
    pkcs12_password_file: user.pw
    ca: ca.pem
    server_name: nps.lab.test
    tls_max: 1.2
    insecure: false
targets:
  t: {address: 127.0.0.1, secret_file: nps.secret}
checks:
  - {name: ok, target: t, module: tls-ok}
"""


def test_method_rules_and_tls_fields(lab: Path) -> None:
    (lab / "user.p12").write_bytes(b"x")
    probe = write(lab, EAP_MODULES)
    by_path = {i.path: i for i in issues(probe)}
    assert by_path["modules.peap.otp_env"].message == "an OTP answer is sent with pap only"
    assert by_path["modules.peap"].message.startswith("peap-mschapv2 needs ca")
    assert by_path["modules.tls-no-cert"].message == "eap-tls needs cert and key, or pkcs12"
    assert by_path["modules.tls-no-cert"].line == line_of(probe, "  tls-no-cert:") + 1
    assert by_path["modules.tls-no-ca.pkcs12"].message == "give pkcs12 or cert and key, not both"
    assert not any(i.startswith("modules.tls-ok") for i in by_path)
    only_ok = "modules:\n  tls-ok:\n" + EAP_MODULES.split("  tls-ok:\n")[1]
    checks = load_probe_files([str(write(lab, only_ok, "fixed.yaml"))])
    tls = checks[0].module.tls
    assert tls.pkcs12 == str(lab / "user.p12") and tls.ca == str(lab / "ca.pem") and tls.tls_max == "1.2"
    assert tls.server_name == "nps.lab.test" and tls.pkcs12_password.value == PASSWORD.encode()
    assert PASSWORD not in repr(tls)


def test_hidden_attribute_cannot_be_asserted(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_TEST_SECRET", "x")
    probe = write(lab, GOOD.replace("Session-Timeout: [3600]", "MS-MPPE-Send-Key: abc"))
    (issue,) = [i for i in issues(probe) if "hidden" in i.message]
    assert issue.path == "checks[0].expect.attributes.MS-MPPE-Send-Key"


def test_empty_and_unreadable_files(lab: Path) -> None:
    empty = write(lab, "", "empty.yaml")
    assert [str(i) for i in issues(empty)] == [f"{empty}:1: empty probe file"]
    missing = lab / "absent.yaml"
    assert "cannot read" in str(issues(missing)[0])
    listing = write(lab, "- a\n- b\n", "list.yaml")
    assert issues(listing)[0].message == "a probe file is a mapping of modules, targets and checks, not a list"


def test_aliased_module_and_bad_merge(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An alias shares its node: the second use must not see merged keys as duplicates."""
    text = """\
        x-c: &c {method: pap, password_file: user.pw, identity: z}
        modules:
          a: &a {<<: *c, identity: alice}
          b: *a
        targets:
          t: {address: "127.0.0.1:1", secret_file: nps.secret}
        checks:
          - {name: a, target: t, module: a}
          - {name: b, target: t, module: b}
        """
    checks = load_probe_files([str(write(lab, text))])
    assert [c.module.identity for c in checks] == ["alice", "alice"]
    broken = write(lab, text.replace("  b: *a", "  b: {<<: [1, 2], identity: q}"), "bad.yaml")
    (issue,) = issues(broken)
    assert (issue.line, issue.path) == (line_of(broken, "<<: [1, 2]"), "modules.b")
    assert issue.message.startswith("bad merge key")


def test_numbers_from_the_environment(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_TEST_SECRET", "x")
    monkeypatch.setenv("PROBE_TEST_TIMEOUT", "soon")
    probe = write(lab, GOOD)
    (issue,) = issues(probe)
    assert issue.path == "modules.bob.timeout" and issue.line == line_of(probe, "PROBE_TEST_TIMEOUT")
    assert issue.message == "expected a number, got 'soon' after expanding ${PROBE_TEST_TIMEOUT:-2.5}"
    monkeypatch.setenv("PROBE_TEST_TIMEOUT", "7")
    assert load_probe_files([str(probe)])[2].module.policy.timeout_s == 7.0
