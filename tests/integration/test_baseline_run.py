"""`radius-probe run --baseline EARLIER.json` against the emulator: a rollout that breaks one user.

The emulator runs as `radius-probe emulator` in its own process (127.0.0.1); the suite runs once
with --json, the emulator restarts on the same port with one user's behaviour changed, and the
suite runs again with --baseline: exactly that check must come out as the regression.
"""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import cli, free_udp_port
from tests.servers.serve import LAB_PASSWORD, LAB_SECRET, start_emulator, stop

USERS = "default_users: true\nusers:\n  kim: {mfa: approve%s}\n"


def probe_file(directory: Path, port: int) -> Path:
    (directory / "secret").write_text(LAB_SECRET + "\n")
    (directory / "password").write_text(LAB_PASSWORD + "\n")
    path = directory / "probe.yaml"
    path.write_text(textwrap.dedent(f"""\
        x-pap: &pap {{method: pap, password_file: password, timeout: 3, retries: 0, late_wait: 3}}
        modules:
          alice: {{<<: *pap, identity: alice}}
          bob: {{<<: *pap, identity: bob}}
          erin: {{<<: *pap, identity: erin}}
          grace: {{<<: *pap, identity: grace}}
          kim: {{<<: *pap, identity: kim}}
        targets:
          lab: {{address: 127.0.0.1:{port}, secret_file: secret}}
        checks:
          - {{name: alice-accept, target: lab, module: alice, expect: {{message_authenticator: optional}}}}
          - {{name: bob-denied, target: lab, module: bob, expect: {{result: reject, message_authenticator: optional}}}}
          - {{name: erin-unenrolled, target: lab, module: erin, expect: {{result: reject, message_authenticator: optional}}}}
          - {{name: grace-whitelisted, target: lab, module: grace, expect: {{message_authenticator: optional}}}}
          - {{name: kim-push, target: lab, module: kim, expect: {{message_authenticator: optional}}}}
        """))
    return path


class Lab:
    """One emulator port; ``behave(kim)`` restarts the emulator there with kim's behaviour changed."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port, self.proc = directory, free_udp_port(), None
        self.probe = probe_file(directory, self.port)

    def behave(self, kim: str) -> None:
        if self.proc is not None:
            stop(self.proc)
        config = self.directory / "emulator.yaml"
        config.write_text(USERS % kim)
        self.proc, _ = start_emulator(config, self.directory / "emulator.log", port=self.port)

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def run(lab: Lab, *args: str) -> tuple[int, str, str]:
    r = cli("run", str(lab.probe), "--no-progress", *args, timeout=60)
    return r.returncode, r.stdout, r.stderr


def changes(path: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads(path.read_text())
    return {c["name"]: c for c in doc["baseline"]["changes"]}


def test_the_user_whose_behaviour_changed_is_exactly_the_regression(lab: Lab, tmp_path: Path) -> None:
    before, after, page = tmp_path / "before.json", tmp_path / "after.json", tmp_path / "after.html"
    lab.behave("")
    code, out, err = run(lab, "--json", str(before))
    assert code == 0, out + err  # every check as expected
    lab.behave(", mfa: deny")  # the rollout: kim's push is now denied
    code, out, err = run(lab, "--baseline", str(before), "--json", str(after), "--html", str(page))
    assert code == 4, out + err  # regressed: not 2, which a failure that was there before would give
    doc = json.loads(after.read_text())
    assert doc["exit_code"] == 4 and doc["baseline"]["regressed"] is True
    assert doc["baseline"]["unchanged"] == 4
    got = changes(after)
    assert list(got) == ["kim-push"]
    assert got["kim-push"]["change"] == "worse" and (got["kim-push"]["before"], got["kim-push"]["now"]) == ("OK", "FAILED")
    assert got["kim-push"]["reasons"][0] == "verdict OK -> FAILED (reject, was accept)"
    table = out[out.index("Against the baseline"):].splitlines()
    assert table[1].split()[:5] == ["change", "check", "target", "before", "now"]
    assert table[3].split()[:5] == ["WORSE", "kim-push", "lab", "OK", "FAILED"]
    assert len(table) == 5 and table[4] == ("5 check(s) compared: 1 worse, 0 better, 0 new, 0 gone, 4 unchanged: "
                                             "REGRESSED (exit 4)")
    html = page.read_text()
    assert '<section id="baseline"' in html and "<td>kim-push</td>" in html and "REGRESSED" in html

    # the same broken state compared with itself: still failing, but nothing regressed -> the plain exit 2
    code, out, err = run(lab, "--baseline", str(after))
    assert code == 2, out + err
    assert out.rstrip().endswith("5 check(s) compared: 0 worse, 0 better, 0 new, 0 gone, 5 unchanged: no regression")


def test_a_slower_answer_with_the_same_verdict_is_a_regression(lab: Lab, tmp_path: Path) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    lab.behave("")
    assert run(lab, "--json", str(before))[0] == 0
    lab.behave(", delay: 1.5")  # the extension now takes 1.5 s longer to get the approval
    code, out, err = run(lab, "--baseline", str(before), "--json", str(after))
    assert code == 4, out + err
    got = changes(after)
    assert list(got) == ["kim-push"] and (got["kim-push"]["before"], got["kim-push"]["now"]) == ("OK", "OK")
    assert got["kim-push"]["reasons"][0].startswith("answer 1.5")
    assert "beyond the earlier spread (limit " in got["kim-push"]["reasons"][0]

    # and back: the faster answer is "better", no regression, exit 0
    lab.behave("")
    code, out, err = run(lab, "--baseline", str(after), "--json", str(tmp_path / "again.json"))
    assert code == 0, out + err
    assert changes(tmp_path / "again.json")["kim-push"]["change"] == "better"


def test_a_baseline_that_is_no_run_json_or_an_unwritable_html_is_refused_before_any_check_runs(
        tmp_path: Path) -> None:
    """One line, exit 3, and not one datagram sent: an MFA run is long, a typo must not cost it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(0.3)
        probe = probe_file(tmp_path, sink.getsockname()[1])
        auth = tmp_path / "auth.json"
        auth.write_text('{"schema": 1, "target": "127.0.0.1:1812", "method": "pap", "result": "accept"}\n')
        nowhere = tmp_path / "no-such-folder" / "report.html"
        for args, message in ((["--baseline", str(auth)], "one Outcome (auth --json), not a run --json output"),
                              (["--baseline", str(probe)], "not JSON (line 1 column 1: Expecting value)"),
                              (["--html", str(nowhere)], "cannot write (No such file or directory)")):
            r = cli("run", str(probe), *args, timeout=60)
            assert r.returncode == 3 and r.stdout == ""
            assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"radius-probe: {args[0]} {args[1]}: ")
            assert message in r.stderr
        with pytest.raises(TimeoutError):
            sink.recv(4096)
